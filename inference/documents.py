"""Documents in and out: raw text, JSONL ``{id, text}``, PubTator, BioC (XML or JSON) and, in only,
PubMed XML (``inference.pubmed``); any input may be gzipped (``.gz``).

A ``Document`` is an id and passages, each passage a text at a character offset in the document (PubTator:
the title at 0 and the abstract after the title and one separator; BioC: the passage's own ``offset``).
Entity offsets are document offsets, so ``passage.text[start - passage.offset : end - passage.offset]``
is the mention. Writers for PubTator and BioC copy what they read untouched (title and abstract lines
byte for byte, BioC passages, infons and ids) and add the predicted annotations.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from errors import BionerError
from inference.document import Document, Entity, Passage
from inference.input_errors import InputFormatError, cut
from untrusted import regular_file

FORMATS_IN = ("text", "jsonl", "pubtator", "bioc", "pubmed")
FORMATS_OUT = ("jsonl", "pubtator", "bioc")


# --- reading ------------------------------------------------------------------------------------
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".pubtator": "pubtator", ".xml": "bioc", ".json": "bioc"}
INPUT_SUFFIXES = (".txt", ".jsonl", ".pubtator", ".xml", ".json")  # each also with ``.gz``
_GLOB = re.compile(r"[*?\[]")


def guess_format(path: str | Path) -> str:
    """The input format a file name suggests (``text`` when it suggests none), ``.gz`` aside: PubMed XML
    for ``*.xml.gz`` and ``pubmed*.xml`` (PubMed's baseline and update files), else BioC for ``.xml``."""
    name = str(path).lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
        if name.endswith(".xml"):
            return "pubmed"
    if Path(name).name.startswith("pubmed") and name.endswith(".xml"):
        return "pubmed"
    if "pubtator" in name:
        return "pubtator"
    return _SUFFIX_FORMATS.get(Path(name).suffix, "text")


def _is_input_file(name: str) -> bool:
    name = name.lower()
    return not name.startswith(".") and name.removesuffix(".gz").endswith(INPUT_SUFFIXES)


def _directory_files(directory: str) -> list[str]:
    files = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        try:
            regular = entry.is_file()  # through symlinks; a FIFO or a socket is no input file
        except OSError:
            regular = False
        if regular and _is_input_file(entry.name):
            files.append(os.path.join(directory, entry.name))
    return files


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """The input files named by ``inputs``, in a fixed order (sharding numbers files by it): ``-`` (stdin)
    and a file as given; a directory: its input files (``INPUT_SUFFIXES``, also gzipped; not hidden,
    not in subdirectories), sorted by name; a pattern with ``*``, ``?`` or ``[``: its matches, sorted
    (a matched directory as a directory). A path appearing twice is kept the first time. A name that is
    none of these, or a directory or pattern with no input file, is a ``BionerError``."""
    files: list[str] = []
    for item in inputs:
        if item == "-" or os.path.lexists(item):
            matches = [item]
        elif _GLOB.search(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise BionerError(f"{item}: no such file, directory or matching file")
        else:
            raise BionerError(f"{item}: no such file, directory or matching file")
        found = [f for m in matches for f in (_directory_files(m) if os.path.isdir(m) else [m])]
        if not found:
            raise BionerError(f"{item}: no input files in it ({', '.join(INPUT_SUFFIXES)}, or .gz of them)")
        files += found
    seen: set[str] = set()
    unique = []
    for name in files:
        key = name if name == "-" else os.path.abspath(name)
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique


class _Input:
    """The bytes of one input (``-``: stdin), a ``.gz`` file decompressed as it is read; a corrupt or
    truncated gzip stream is an ``InputFormatError`` naming the file, raised when the read reaches it."""

    def __init__(self, path: str | Path):
        self.stdin = str(path) == "-"
        self.name = "<stdin>" if self.stdin else str(path)
        if self.stdin:
            self.file: BinaryIO = sys.stdin.buffer
        else:
            try:
                self.file = regular_file(path).open("rb")
            except OSError as err:
                raise BionerError(f"{path}: cannot read ({err.strerror})") from None
        self.stream: BinaryIO = (
            gzip.GzipFile(fileobj=self.file, mode="rb") if self.name.lower().endswith(".gz") else self.file
        )

    def _failed(self, err: Exception) -> BionerError:
        if isinstance(err, EOFError):
            return InputFormatError(self.name, None, None, "truncated gzip stream (the file ends too early)")
        if isinstance(err, (gzip.BadGzipFile, zlib.error)):
            return InputFormatError(self.name, None, None, f"corrupt gzip stream ({cut(err)})")
        return BionerError(f"{self.name}: cannot read ({getattr(err, 'strerror', None) or cut(err)})")

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except (OSError, EOFError, zlib.error) as err:
            raise self._failed(err) from None

    def readline(self) -> bytes:
        try:
            return self.stream.readline()
        except (OSError, EOFError, zlib.error) as err:
            raise self._failed(err) from None

    def lines(self) -> Iterator[tuple[int, str]]:
        """``(number, line)`` for each line (``\\n`` kept; only ``\\n`` ends a line: U+2028 and a lone
        ``\\r`` are text), decoded on its own: UTF-8 never has a ``\\n`` byte inside a character."""
        position = 0
        for number, line in enumerate(iter(self.readline, b""), 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputFormatError(
                    self.name, number, None, f"not UTF-8 (byte {position + err.start})"
                ) from None
            position += len(line)
            yield number, text

    def close(self) -> None:
        if not self.stdin:
            self.stream.close()
            self.file.close()


def iter_documents(
    path: str | Path, fmt: str, *, text_unit: str = "file", deleted: list[str] | None = None
) -> Iterator[Document]:
    """The documents of one input (``-`` is stdin, a ``.gz`` file is decompressed on the fly) in format
    ``fmt``, one at a time. Line formats (JSONL, PubTator, text with ``text_unit="line"``) and PubMed XML
    are read incrementally: memory holds one document (and JSONL's ids, PubTator's ids), not the file.
    Raw text with ``text_unit="file"`` is one document of the whole file, and BioC is read whole (by the
    safe parser of ``inference.bioc_input``). A malformed input is an ``InputFormatError`` naming the
    file, the line and the document, raised where the reading reaches it, after the documents before it;
    anything but a regular file (a FIFO would block the read forever) is refused before it is opened.
    ``deleted``: where PubMed's ``DeleteCitation`` PMIDs are appended."""
    if fmt not in FORMATS_IN:
        raise BionerError(f"unknown input format {fmt!r}; one of {', '.join(FORMATS_IN)}")
    source = _Input(path)
    try:
        if fmt == "pubmed":
            from inference.pubmed import iter_pubmed

            yield from iter_pubmed(source.name, source, deleted)
        elif fmt == "bioc":
            yield from _read_bioc(source.name, source.read())
        elif fmt == "text" and text_unit == "file":
            raw = source.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                line = raw[: err.start].count(b"\n") + 1
                raise InputFormatError(source.name, line, None, f"not UTF-8 (byte {err.start})") from None
            stem = "stdin" if source.name == "<stdin>" else Path(source.name).stem
            yield Document(stem, [Passage(0, text)])
        elif fmt == "text":
            yield from _read_text_lines(source.name, source.lines())
        elif fmt == "jsonl":
            yield from _read_jsonl(source.name, source.lines())
        else:
            yield from _read_pubtator(source.name, source.lines())
    finally:
        source.close()


def read_documents(path: str | Path, fmt: str, *, text_unit: str = "file") -> list[Document]:
    """All documents of one input (``iter_documents``, its errors included)."""
    return list(iter_documents(path, fmt, text_unit=text_unit))


def _read_text_lines(name: str, lines: Iterable[tuple[int, str]]) -> Iterator[Document]:
    stem = "stdin" if name == "<stdin>" else Path(name).stem
    for i, line in lines:
        line = line.removesuffix("\n")
        if line.strip():
            yield Document(f"{stem}:{i}", [Passage(0, line)])


def _read_jsonl(name: str, lines: Iterable[tuple[int, str]]) -> Iterator[Document]:
    seen = set()
    for i, line in lines:
        line = line.removesuffix("\n")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputFormatError(name, i, None, f"not JSON ({err.msg})") from None
        except RecursionError:
            raise InputFormatError(name, i, None, "not JSON of a document (nested too deeply)") from None
        doc_id = record.get("id") if isinstance(record, dict) else None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputFormatError(name, i, doc_id, 'expected an object {"id": ..., "text": "..."}')
        if doc_id is not None and (isinstance(doc_id, bool) or not isinstance(doc_id, (str, int))):
            raise InputFormatError(
                name, i, None, f"the id is a {type(doc_id).__name__}; give a string or a number"
            )
        doc_id = str(doc_id) if doc_id is not None else str(i)
        if doc_id in seen:
            raise InputFormatError(name, i, doc_id, "the id appears twice")
        seen.add(doc_id)
        yield Document(doc_id, [Passage(0, record["text"])], source=record)


_PUBTATOR_TEXT = re.compile(r"^([^|\t]+)\|([ta])\|(.*)$", re.DOTALL)


@dataclass
class _PubTatorSource:
    title_line: str  # exactly as read, line ending included
    abstract_line: str
    annotation_lines: list[str] = field(default_factory=list)


def _read_pubtator(name: str, lines: Iterable[tuple[int, str]]) -> Iterator[Document]:
    current: Document | None = None
    seen: set[str] = set()

    def finish(line_no: int) -> Document | None:
        nonlocal current
        if current is not None and current.source.abstract_line == "":
            raise InputFormatError(name, line_no, current.id, "a title line without an abstract line")
        done, current = current, None
        return done

    line_no, raw = 0, "\n"
    for line_no, raw in lines:
        content = raw.rstrip("\r\n")
        if not content.strip():
            if done := finish(line_no):
                yield done
            continue
        match = _PUBTATOR_TEXT.match(content)
        if match:
            doc_id, kind, body = match.groups()
            if kind == "t":
                if done := finish(line_no):
                    yield done
                if doc_id in seen:
                    raise InputFormatError(name, line_no, doc_id, "the document appears twice")
                seen.add(doc_id)
                current = Document(doc_id, [Passage(0, body)], _PubTatorSource(raw, ""))
            else:
                if current is None or current.id != doc_id or current.source.abstract_line:
                    raise InputFormatError(
                        name, line_no, doc_id, "an abstract line that does not follow its title"
                    )
                title = current.passages[0].text
                current.passages.append(Passage(len(title) + 1, body))
                current.source.abstract_line = raw
            continue
        fields = content.split("\t")
        doc_id = fields[0]
        if current is None or not current.source.abstract_line:
            raise InputFormatError(
                name, line_no, doc_id, "expected 'ID|t|title' then 'ID|a|abstract' before annotations"
            )
        if doc_id != current.id:
            raise InputFormatError(
                name, line_no, doc_id, f"an annotation line inside document {cut(current.id)}"
            )
        if len(fields) < 4:
            raise InputFormatError(
                name, line_no, doc_id, "an annotation line needs at least 4 tab-separated fields"
            )
        # "ID CID D1 D2" (a relation: a name, then no offset), else "ID start end text type ..." (a mention)
        relation = re.fullmatch(r"[A-Za-z_][\w-]*", fields[1]) and not fields[2].isdigit()
        if not relation and not (
            fields[1].isdigit() and fields[2].isdigit() and int(fields[1]) <= int(fields[2])
        ):
            raise InputFormatError(
                name,
                line_no,
                doc_id,
                f"mention offsets {cut(fields[1])!r}, {cut(fields[2])!r} are not 0 <= start <= end",
            )
        current.source.annotation_lines.append(raw)
    # the end of the file counts as a line after a final line break (the line numbers errors had before)
    if done := finish(line_no + 1 if raw.endswith("\n") else line_no):
        yield done


def _read_bioc(name: str, raw: bytes) -> list[Document]:
    from inference.bioc_input import read_bioc

    collection, kind = read_bioc(name, raw)
    documents = []
    for document in collection.documents:
        passages = []
        for p in document.passages:  # text at passage level, else at sentence level (both are BioC)
            passages += (
                [Passage(int(p.offset), p.text)]
                if p.text
                else [Passage(int(s.offset), s.text) for s in p.sentences if s.text]
            )
        documents.append(Document(document.id, passages, source=(collection, document, kind)))
    return documents


# --- writing ------------------------------------------------------------------------------------
def write_documents(
    documents: Sequence[Document], entities: Sequence[Sequence[Entity]], fmt: str, out: TextIO
) -> None:
    """Write each document with its predicted entities in ``fmt`` (``jsonl``, ``pubtator``, ``bioc``)."""
    if fmt == "jsonl":
        for found in entities:
            for entity in found:
                out.write(json.dumps(entity.to_dict(), ensure_ascii=False) + "\n")
    elif fmt == "pubtator":
        for document, found in zip(documents, entities):
            _write_pubtator(document, found, out)
    elif fmt == "bioc":
        _write_bioc(documents, entities, out)
    else:
        raise BionerError(f"unknown output format {fmt!r}; one of {', '.join(FORMATS_OUT)}")


def _write_pubtator(document: Document, found: Iterable[Entity], out: TextIO) -> None:
    source = document.source
    if isinstance(source, _PubTatorSource):
        out.write(source.title_line if source.title_line.endswith("\n") else source.title_line + "\n")
        out.write(
            source.abstract_line if source.abstract_line.endswith("\n") else source.abstract_line + "\n"
        )
        for line in source.annotation_lines:
            out.write(line if line.endswith("\n") else line + "\n")
        shift = lambda offset: offset  # noqa: E731 - PubTator offsets are the document's own
    else:  # from another format: the first passage is the title, the others joined by spaces the abstract
        texts = [p.text for p in document.passages]
        title, abstract = (texts[0] if texts else ""), " ".join(texts[1:])
        if "\n" in title or "\n" in abstract:
            raise BionerError(f"document {document.id}: text with line breaks cannot be written as PubTator")
        out.write(f"{document.id}|t|{title}\n{document.id}|a|{abstract}\n")
        starts, position = [], 0
        for text in texts:  # where each passage lands in "title abstract"
            starts.append(position)
            position += len(text) + 1
        passages = list(zip(document.passages, starts))

        def shift(offset: int) -> int:
            passage, start = next((p, s) for p, s in passages if p.offset <= offset < p.offset + len(p.text))
            return offset - passage.offset + start

    for entity in found:
        start, end = shift(entity.start), shift(entity.start) + (entity.end - entity.start)
        out.write(f"{document.id}\t{start}\t{end}\t{entity.text}\t{entity.type}\t-\n")
    out.write("\n")


def _write_bioc(documents: Sequence[Document], entities: Sequence[Sequence[Entity]], out: TextIO) -> None:
    import bioc
    from bioc import biocjson, biocxml

    sources = {id(d.source[0]): d.source[0] for d in documents if isinstance(d.source, tuple)}
    kinds = {d.source[2] for d in documents if isinstance(d.source, tuple)}
    if len(kinds) > 1:
        raise BionerError(
            "BioC inputs in XML and in JSON: write them separately (or pass --out-format jsonl)"
        )
    kind = kinds.pop() if kinds else "xml"
    single = len(sources) == 1 and all(isinstance(d.source, tuple) for d in documents)
    if single:  # one input collection: written back as it was, with its own source, date and infons
        collection = next(iter(sources.values()))
    else:
        collection = bioc.BioCCollection()
        collection.source = "bioner-mtl"
    for document, found in zip(documents, entities):
        bioc_document = document.source[1] if isinstance(document.source, tuple) else document.to_bioc()
        if not single:
            collection.add_document(bioc_document)
        _add_bioc_annotations(bioc_document, found)
    buffer = io.StringIO()
    (biocjson if kind == "json" else biocxml).dump(collection, buffer)
    out.write(buffer.getvalue())


def _add_bioc_annotations(bioc_document: Any, found: Iterable[Entity]) -> None:
    import bioc

    taken = {a.id for p in bioc_document.passages for a in p.annotations} | {
        a.id for a in bioc_document.annotations
    }
    number = 0
    containers = [c for p in bioc_document.passages for c in ([p] if p.text else p.sentences) if c.text]
    for entity in found:
        passage = next(
            c for c in containers if c.offset <= entity.start and entity.end <= c.offset + len(c.text)
        )
        number += 1
        while f"bioner{number}" in taken:
            number += 1
        annotation = bioc.BioCAnnotation()
        annotation.id = f"bioner{number}"
        annotation.text = entity.text
        score = "" if entity.score is None else f"{entity.score:.4f}"
        annotation.infons.update(
            {
                "type": entity.type,
                "corpus_type": entity.corpus_type,
                "score": score,
                "annotator": "bioner-mtl",
            }
        )
        annotation.add_location(bioc.BioCLocation(entity.start, entity.end - entity.start))
        passage.add_annotation(annotation)
