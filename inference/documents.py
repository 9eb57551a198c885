"""Documents in and out: raw text, JSONL ``{id, text}``, PubTator and BioC (XML or JSON).

A ``Document`` is an id and passages, each passage a text at a character offset in the document (PubTator:
the title at 0 and the abstract after the title and one separator; BioC: the passage's own ``offset``).
Entity offsets are document offsets, so ``passage.text[start - passage.offset : end - passage.offset]``
is the mention. Writers for PubTator and BioC copy what they read untouched (title and abstract lines
byte for byte, BioC passages, infons and ids) and add the predicted annotations.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from errors import BionerError
from inference.input_errors import InputFormatError, cut
from untrusted import regular_file

FORMATS_IN = ("text", "jsonl", "pubtator", "bioc")
FORMATS_OUT = ("jsonl", "pubtator", "bioc")


@dataclass
class Passage:
    offset: int
    text: str


@dataclass
class Document:
    id: str
    passages: list[Passage]
    source: Any = None  # what the writer of the same format needs to reproduce the input

    def to_bioc(self) -> Any:
        """A ``bioc.BioCDocument`` with this document's id and passages (offsets, texts), no annotations."""
        import bioc  # only the BioC formats need it

        document = bioc.BioCDocument()
        document.id = self.id
        for passage in self.passages:
            bioc_passage = bioc.BioCPassage()
            bioc_passage.offset, bioc_passage.text = passage.offset, passage.text
            document.add_passage(bioc_passage)
        return document


@dataclass(frozen=True)
class Entity:
    doc_id: str
    start: int  # document character offsets, end exclusive
    end: int
    text: str
    type: str  # merged (``Chemical``) or corpus-qualified (``BC5CDR/Chemical``), as requested
    corpus_type: str  # always corpus-qualified
    score: float | None  # the model's confidence in [0, 1]; None for a model that reports none

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "type": self.type,
            "corpus_type": self.corpus_type,
            "score": None if self.score is None else round(self.score, 4),
        }


# --- reading ------------------------------------------------------------------------------------
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".pubtator": "pubtator", ".xml": "bioc", ".json": "bioc"}


def guess_format(path: str | Path) -> str:
    """The input format a file name suggests (``text`` when it suggests none)."""
    name = str(path).lower()
    if "pubtator" in name:
        return "pubtator"
    return _SUFFIX_FORMATS.get(Path(name).suffix, "text")


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """The input files named by ``inputs``: files as given, ``-`` (stdin) as is."""
    return list(inputs)


def iter_documents(
    path: str | Path, fmt: str, *, text_unit: str = "file", deleted: list[str] | None = None
) -> Iterator[Document]:
    """The documents of one input, one at a time (``read_documents``'s errors). ``deleted``: where a
    format that can delete documents (PubMed's ``DeleteCitation``) appends their ids."""
    yield from read_documents(path, fmt, text_unit=text_unit)


def read_documents(path: str | Path, fmt: str, *, text_unit: str = "file") -> list[Document]:
    """Documents of one input (``-`` is stdin) in format ``fmt``; a malformed one is an
    ``InputFormatError`` naming the file, the line and the document; anything but a regular file (a FIFO
    would block the read forever) is refused before it is opened."""
    name = "<stdin>" if str(path) == "-" else str(path)
    if str(path) == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = regular_file(path).read_bytes()
        except OSError as err:
            raise BionerError(f"{path}: cannot read ({err.strerror})") from None
    if fmt == "bioc":
        return _read_bioc(name, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputFormatError(name, line, None, f"not UTF-8 (byte {err.start})") from None
    if fmt == "text":
        return _read_text(name, text, text_unit)
    if fmt == "jsonl":
        return _read_jsonl(name, text)
    if fmt == "pubtator":
        return _read_pubtator(name, text)
    raise BionerError(f"unknown input format {fmt!r}; one of {', '.join(FORMATS_IN)}")


def _read_text(name: str, text: str, unit: str) -> list[Document]:
    stem = "stdin" if name == "<stdin>" else Path(name).stem
    if unit == "file":
        return [Document(stem, [Passage(0, text)])]
    lines = text.split("\n")
    return [Document(f"{stem}:{i}", [Passage(0, line)]) for i, line in enumerate(lines, 1) if line.strip()]


def _read_jsonl(name: str, text: str) -> list[Document]:
    documents, seen = [], set()
    for i, line in enumerate(text.split("\n"), 1):
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
        documents.append(Document(doc_id, [Passage(0, record["text"])], source=record))
    return documents


_PUBTATOR_TEXT = re.compile(r"^([^|\t]+)\|([ta])\|(.*)$", re.DOTALL)


@dataclass
class _PubTatorSource:
    title_line: str  # exactly as read, line ending included
    abstract_line: str
    annotation_lines: list[str] = field(default_factory=list)


def _read_pubtator(name: str, text: str) -> list[Document]:
    documents: list[Document] = []
    current: Document | None = None
    seen: set[str] = set()

    def finish() -> None:
        nonlocal current
        if current is not None and current.source.abstract_line == "":
            raise InputFormatError(name, line_no, current.id, "a title line without an abstract line")
        current = None

    line_no = 0
    for line_no, raw in enumerate(re.split(r"(?<=\n)", text), 1):  # not splitlines: U+2028 is text
        if not raw:
            continue
        content = raw.rstrip("\r\n")
        if not content.strip():
            finish()
            continue
        match = _PUBTATOR_TEXT.match(content)
        if match:
            doc_id, kind, body = match.groups()
            if kind == "t":
                finish()
                if doc_id in seen:
                    raise InputFormatError(name, line_no, doc_id, "the document appears twice")
                seen.add(doc_id)
                current = Document(doc_id, [Passage(0, body)], _PubTatorSource(raw, ""))
                documents.append(current)
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
    finish()
    return documents


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
