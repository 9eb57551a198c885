"""Corpus readers: ``token<TAB>tag`` IOB files and SpERT JSON, both into :class:`Sentence` lists.

Pure file parsers: each takes a path and what it needs to read it (corpus name, scheme, reading, type
renames) as arguments and knows nothing of the registered corpora (``datamodules/corpora.py`` does).

IOB files (:func:`read_iob`)
----------------------------
- One ``token<TAB>tag`` per line (exactly two TAB-separated columns), a blank line after each sentence.
  Several blank lines in a row are one separator; the last sentence needs no trailing blank line.
  A whitespace-only line is a blank line too, and trailing whitespace after a tag is stripped; both are
  counted in :class:`ReadNotes` (the stats command shows them).
- Errors (``file:line: problem``): a NUL byte anywhere in a line, a malformed tag, a missing column, an
  empty or whitespace-only token, and tags that break the scheme (below).
- Encoding: UTF-8. A leading UTF-8 BOM is skipped and CRLF line ends are read as LF, so Windows-edited
  files give the same sentences as the original. Line numbers in errors are 1-based physical lines.
- ``-DOCSTART-`` lines (first column ``-DOCSTART-``, no tag, ``O`` or any other non-entity tag) are
  document boundaries, not sentences. They must start a block (file start or after a blank line); the
  blank line after them is optional. A ``-DOCSTART-`` line with an entity tag (``B-X`` ...) is an error.
- Document ids are ``f"{doc_prefix}-{k}"`` (``doc_prefix`` defaults to the file stem), ``k`` counting
  from 0. In a file with ``-DOCSTART-`` lines, ``k`` advances at each ``-DOCSTART-`` that follows at
  least one sentence (sentences before the first one form document 0). In a file without any, the
  order of sentences says nothing reliable about documents (e.g. BC2GM), so every sentence is its own
  document and ``k`` is the sentence index.
- Types are kept as written unless ``rename`` maps them (a registered corpus's documented renames, e.g.
  JNLPBA ``protein`` -> ``Gene_or_protein``, passed in by ``datamodules.corpora.read_split``).

Tagging schemes (``scheme=``)
-----------------------------
- ``"iob2"`` (strict): a mention starts with ``B-X``; ``I-X`` must continue a mention of type ``X``.
  ``I-X`` after ``O``, at a sentence start or after a mention of another type is an error (file:line).
- ``"iob1"``: ``I-X`` after ``O`` / sentence start / another type starts a mention; ``B-X`` always
  starts a new mention (in IOB1 it separates two adjacent mentions of one type).
- ``"iobes"`` (strict): ``B-`` ``I-``* ``E-`` or a lone ``S-``; every other sequence is an error.
- ``"auto"`` (default): IOBES if the file has any ``S-``/``E-`` tag; otherwise IOB1 if some mention
  starts with ``I-`` and no mention starts with ``B-`` after ``O``/sentence start/another type (a
  file that is IOB1 everywhere); otherwise strict IOB2. A file that mixes the two conventions is an
  error at its first ``I-`` that starts a mention, so stray tags are never silently reinterpreted.
  ``ReadNotes.detected`` says when "auto" chose a scheme other than IOB2.
- ``S-``/``E-`` tags in a file read as ``"iob1"``/``"iob2"`` are errors.

Readings (``reading=``)
-----------------------
- ``"full"``: every mention in the file.
- ``"paper"``: the gold set of the reference SRU-NER BIO converter (spec A10.1), which keeps a mention
  only when the token right after it is ``O`` in the same sentence. This reproduces its two drops:
  (a) a mention still open at the sentence end, (b) a mention directly followed by the start of
  another mention (any type). Its third bug (losing a last sentence without a trailing blank line)
  is not reproduced. With it the counts equal the published SRU-NER Table 8 figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from datamodules.sentence import Relation, Sentence, Span
from errors import CorpusFormatError

READINGS = ("full", "paper")
SCHEMES = ("auto", "iob2", "iob1", "iobes")
DOCSTART = "-DOCSTART-"

# A parsed block: first physical line, tokens, (prefix, type) per token, document index.
_Block = tuple[int, list[str], list[tuple[str, str]], int]


@dataclass(frozen=True)
class ReadNotes:
    """What reading one IOB file took beyond the strict format."""

    scheme: str  # the scheme the file was read with: iob2, iob1 or iobes
    detected: bool = False  # True when scheme="auto" chose iob1 or iobes
    whitespace_lines: int = 0  # whitespace-only lines, read as blank lines (sentence breaks)
    stripped_tags: int = 0  # tags that had trailing whitespace, stripped

    @property
    def tolerated(self) -> bool:
        """Whether reading the file relied on auto-detecting IOB1/IOBES or on a tolerance."""
        return self.detected or bool(self.whitespace_lines or self.stripped_tags)

    def describe(self, asked_by: str = "") -> str:
        """E.g. ``read as IOB1 (auto-detected), 2 whitespace-only lines ...``; empty for a strict IOB2 file.
        ``asked_by`` names what set a scheme that was not detected (e.g. ``corpus.yaml``)."""
        parts = []
        if self.scheme != "iob2":
            source = "auto-detected" if self.detected else asked_by
            parts.append(f"read as {self.scheme.upper()}{f' ({source})' if source else ''}")
        if self.whitespace_lines:
            parts.append(f"{_plural(self.whitespace_lines, 'whitespace-only line')} read as sentence breaks")
        if self.stripped_tags:
            parts.append(f"{_plural(self.stripped_tags, 'tag')} with trailing whitespace stripped")
        return ", ".join(parts)


class ReadResult(NamedTuple):
    """The sentences of one file and, for an IOB file, its :class:`ReadNotes` (None for SpERT JSON)."""

    sentences: list[Sentence]
    notes: ReadNotes | None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusFormatError(path, None, f"cannot read file: {e.strerror or e}") from e
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusFormatError(path, line, f"not valid UTF-8 (byte 0x{data[e.start]:02x})") from e
    return text.replace("\r\n", "\n") if "\r" in text else text


def _parse_tag(tag: str) -> tuple[str, str] | str:
    """``(prefix, type)`` for a well-formed tag, else the problem as a string."""
    if tag == "O":
        return ("O", "")
    if not tag:
        return "missing tag (empty second column)"
    if len(tag) < 2 or tag[1] != "-" or tag[0] not in "BIES":
        return f"bad tag {tag!r} (expected O, B-X, I-X, E-X or S-X)"
    etype = tag[2:]
    if not etype:
        return f"bad tag {tag!r}: empty entity type"
    if etype != etype.strip() or any(c.isspace() for c in etype):
        return f"bad tag {tag!r}: whitespace in entity type"
    return (tag[0], etype)


@dataclass
class _Split:
    blocks: list[_Block]
    has_docstart: bool
    prefixes: set[str]  # tag prefixes seen (O, B, I, E, S)
    whitespace_lines: int
    stripped_tags: int


def _split_blocks(path: Path, text: str) -> _Split:
    """Blocks of token lines with document indices, and what the file looked like."""
    blocks: list[_Block] = []
    tag_cache: dict[str, tuple[str, str]] = {}
    tokens: list[str] = []
    tags: list[tuple[str, str]] = []
    start = 0
    doc = 0
    has_docstart = False
    whitespace_lines = stripped_tags = 0
    has_nul = "\x00" in text
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it is not an empty line
    for lineno, line in enumerate(lines, 1):
        if not line or line.isspace():
            whitespace_lines += bool(line)
            if tokens:
                blocks.append((start, tokens, tags, doc))
                tokens, tags = [], []
            continue
        token, sep, tag = line.partition("\t")
        if has_nul and "\x00" in line:
            column = "token" if "\x00" in token else "tag"
            problem = f"NUL byte in the {column} (a UTF-16 or binary file? expected UTF-8 text)"
            raise CorpusFormatError(path, lineno, problem)
        if tag[-1:].isspace():
            tag = tag.rstrip()
            stripped_tags += 1
        if token == DOCSTART:
            if tokens:
                problem = f"{DOCSTART} inside a sentence (no blank line before it)"
                raise CorpusFormatError(path, lineno, problem)
            parsed_docstart = _parse_tag(tag) if tag else ("O", "")
            if isinstance(parsed_docstart, tuple) and parsed_docstart[0] != "O":
                problem = f"{DOCSTART} line tagged {tag!r}: a document boundary cannot be part of a mention"
                raise CorpusFormatError(path, lineno, problem)
            if blocks and blocks[-1][3] == doc:
                doc += 1
            has_docstart = True
            continue
        if not sep:
            hint = " (space-separated? expected token<TAB>tag)" if " " in line else ""
            raise CorpusFormatError(path, lineno, f"no TAB: expected token<TAB>tag{hint}")
        if "\t" in tag:
            raise CorpusFormatError(
                path, lineno, f"expected 2 TAB-separated columns (token, tag), found {line.count(chr(9)) + 1}"
            )
        if not token:
            raise CorpusFormatError(path, lineno, "empty token (line starts with TAB)")
        if token.isspace():
            raise CorpusFormatError(path, lineno, f"whitespace-only token {token!r}")
        parsed = tag_cache.get(tag)
        if parsed is None:
            result = _parse_tag(tag)
            if isinstance(result, str):
                raise CorpusFormatError(path, lineno, result)
            parsed = tag_cache[tag] = result
        if not tokens:
            start = lineno
        tokens.append(token)
        tags.append(parsed)
    if tokens:
        blocks.append((start, tokens, tags, doc))
    if not blocks:
        raise CorpusFormatError(path, None, "no sentences (empty file)")
    prefixes = {prefix for prefix, _ in tag_cache.values()}
    return _Split(blocks, has_docstart, prefixes, whitespace_lines, stripped_tags)


def _spans_iob(path: Path, block: _Block, iob1: bool) -> list[Span]:
    start, _, tags, _ = block
    spans: list[Span] = []
    open_type = ""
    open_at = 0
    for i, (prefix, etype) in enumerate(tags):
        if prefix == "O":
            if open_type:
                spans.append(Span(open_at, i, open_type))
                open_type = ""
        elif prefix == "I":
            if open_type == etype:
                continue
            if not iob1:
                if open_type:
                    after = f"after a {open_type} mention"
                else:
                    after = "after O" if i else "at sentence start"
                problem = f"I-{etype} {after}: IOB2 mentions start with B- (an IOB1 file? read it as iob1)"
                raise CorpusFormatError(path, start + i, problem)
            if open_type:
                spans.append(Span(open_at, i, open_type))
            open_type, open_at = etype, i
        elif prefix == "B":
            if open_type:
                spans.append(Span(open_at, i, open_type))
            open_type, open_at = etype, i
        else:
            scheme = "IOB1" if iob1 else "IOB2"
            raise CorpusFormatError(path, start + i, f"IOBES tag {prefix}-{etype} in an {scheme} file")
    if open_type:
        spans.append(Span(open_at, len(tags), open_type))
    return spans


def _spans_iobes(path: Path, block: _Block) -> list[Span]:
    start, _, tags, _ = block
    spans: list[Span] = []
    open_type = ""
    open_at = 0
    for i, (prefix, etype) in enumerate(tags):
        tag = f"{prefix}-{etype}" if etype else "O"
        if prefix in "IE":
            if open_type != etype:
                after = f"after a {open_type} mention" if open_type else "without a preceding B-"
                raise CorpusFormatError(path, start + i, f"IOBES tag {tag} {after}")
            if prefix == "E":
                spans.append(Span(open_at, i + 1, etype))
                open_type = ""
            continue
        if open_type:
            raise CorpusFormatError(
                path, start + i, f"IOBES mention {open_type} (B- at line {start + open_at}) not closed by E-"
            )
        if prefix == "B":
            open_type, open_at = etype, i
        elif prefix == "S":
            spans.append(Span(i, i + 1, etype))
    if open_type:
        raise CorpusFormatError(
            path, start + open_at, f"IOBES mention {open_type} not closed by E- before the sentence end"
        )
    return spans


def _looks_iob1(blocks: list[_Block]) -> bool:
    """True when no mention starts with B- after O / sentence start / another type."""
    for _, _, tags, _ in blocks:
        prev = ""
        for prefix, etype in tags:
            if prefix == "B" and prev != etype:
                return False
            prev = etype
    return True


def _paper_drops(spans: list[Span], n_tokens: int) -> list[Span]:
    """Keep a mention only if the next token is O (reference converter, spec A10.1)."""
    starts = {s.start for s in spans}
    return [s for s in spans if s.end < n_tokens and s.end not in starts]


def read_iob(
    path: str | os.PathLike,
    corpus: str,
    *,
    reading: str = "full",
    scheme: str = "auto",
    doc_prefix: str | None = None,
    rename: Mapping[str, str] | None = None,
) -> ReadResult:
    """Read a ``token<TAB>tag`` file: its sentences (types renamed by ``rename``) and its
    :class:`ReadNotes` (scheme used, lines and tags tolerated); see the module docstring."""
    _check_choice("reading", reading, READINGS)
    _check_choice("scheme", scheme, SCHEMES)
    path = Path(path)
    parsed = _split_blocks(path, _read_text(path))
    blocks, has_docstart = parsed.blocks, parsed.has_docstart
    prefix = path.stem if doc_prefix is None else doc_prefix

    used = scheme
    if scheme == "auto":
        used = "iobes" if parsed.prefixes & {"S", "E"} else "iob2"
    try:
        if used == "iobes":
            all_spans = [_spans_iobes(path, b) for b in blocks]
        else:
            all_spans = [_spans_iob(path, b, iob1=used == "iob1") for b in blocks]
    except CorpusFormatError:
        # Under "auto", only a file that is IOB1 everywhere is re-read as IOB1; a mixed file stays an error.
        if scheme != "auto" or used != "iob2" or not _looks_iob1(blocks):
            raise
        used = "iob1"
        all_spans = [_spans_iob(path, b, iob1=True) for b in blocks]
    notes = ReadNotes(
        used, scheme == "auto" and used != "iob2", parsed.whitespace_lines, parsed.stripped_tags
    )

    sentences = []
    for k, (block, spans) in enumerate(zip(blocks, all_spans)):
        _, tokens, _, doc = block
        if reading == "paper":
            spans = _paper_drops(spans, len(tokens))
        doc_id = f"{prefix}-{doc if has_docstart else k}"
        sentences.append(Sentence(tuple(tokens), _renamed(spans, rename), corpus, doc_id))
    return ReadResult(sentences, notes)


def _renamed(spans: list[Span], rename: Mapping[str, str] | None) -> tuple[Span, ...]:
    if not rename:
        return tuple(spans)
    return tuple(Span(s.start, s.end, rename.get(s.type, s.type)) for s in spans)


def _spert_int(value: object, what: str, path: Path, i: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CorpusFormatError(path, None, f"document {i}: {what} must be an integer, got {value!r}")
    return value


def _spert_str(value: object, what: str, path: Path, i: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CorpusFormatError(path, None, f"document {i}: {what} must be a non-empty string, got {value!r}")
    return value


def _spert_list(doc: dict, key: str, path: Path, i: int, required: bool = True) -> list:
    if key not in doc:
        if required:
            raise CorpusFormatError(path, None, f"document {i}: missing key {key!r}")
        return []
    value = doc[key]
    if not isinstance(value, list):
        raise CorpusFormatError(path, None, f"document {i}: {key!r} must be a list")
    return value


def read_spert_json(
    path: str | os.PathLike, corpus: str, *, rename: Mapping[str, str] | None = None
) -> list[Sentence]:
    """Read a SpERT JSON file (list of ``{"tokens", "entities", "relations", "orig_id"?}``); entity types
    are renamed by ``rename``.

    Entity ``end`` is exclusive, as in SpERT. ``relations`` may be absent (no relations). Errors carry no
    line number (JSON parse errors excepted); the problem text names the 0-based document index.
    Document ids are ``str(orig_id)`` when present, else ``f"{file stem}-{index}"``.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CorpusFormatError(path, e.lineno, f"invalid JSON: {e.msg}") from e
    if not isinstance(data, list):
        raise CorpusFormatError(path, None, "expected a JSON list of documents")
    if not data:
        raise CorpusFormatError(path, None, "no sentences (empty list)")
    sentences = []
    for i, doc in enumerate(data):
        if not isinstance(doc, dict):
            raise CorpusFormatError(path, None, f"document {i}: expected an object")
        tokens = tuple(_spert_str(t, "token", path, i) for t in _spert_list(doc, "tokens", path, i))
        if not tokens:
            raise CorpusFormatError(path, None, f"document {i}: no tokens")
        spans = []
        for j, ent in enumerate(_spert_list(doc, "entities", path, i)):
            if not isinstance(ent, dict) or not {"type", "start", "end"} <= ent.keys():
                raise CorpusFormatError(path, None, f"document {i}: entity {j} needs type, start and end")
            start = _spert_int(ent["start"], f"entity {j} start", path, i)
            end = _spert_int(ent["end"], f"entity {j} end", path, i)
            if not 0 <= start < end <= len(tokens):
                raise CorpusFormatError(
                    path, None, f"document {i}: entity {j} [{start}, {end}) outside 0..{len(tokens)} tokens"
                )
            spans.append(Span(start, end, _spert_str(ent["type"], f"entity {j} type", path, i)))
        relations = []
        for j, rel in enumerate(_spert_list(doc, "relations", path, i, required=False)):
            if not isinstance(rel, dict) or not {"type", "head", "tail"} <= rel.keys():
                raise CorpusFormatError(path, None, f"document {i}: relation {j} needs type, head and tail")
            ends = [_spert_int(rel[k], f"relation {j} {k}", path, i) for k in ("head", "tail")]
            for k, idx in zip(("head", "tail"), ends):
                if not 0 <= idx < len(spans):
                    problem = f"document {i}: relation {j} {k} {idx} outside the {len(spans)} entities"
                    raise CorpusFormatError(path, None, problem)
            rtype = _spert_str(rel["type"], f"relation {j} type", path, i)
            relations.append(Relation(ends[0], ends[1], rtype))
        doc_id = str(doc["orig_id"]) if "orig_id" in doc else f"{path.stem}-{i}"
        sentences.append(Sentence(tokens, _renamed(spans, rename), corpus, doc_id, tuple(relations)))
    return sentences


def read_corpus_file(
    path: str | os.PathLike,
    corpus: str,
    *,
    format: str,
    reading: str = "full",
    scheme: str = "auto",
    doc_prefix: str = "",
    rename: Mapping[str, str] | None = None,
) -> ReadResult:
    """One corpus file in its ``format`` (``iob``: ``read_iob``; ``spert``: ``read_spert_json``, whose
    result has no reading notes; ``reading="paper"`` only concerns IOB files, the reference converter's)."""
    if format == "iob":
        return read_iob(path, corpus, reading=reading, scheme=scheme, doc_prefix=doc_prefix, rename=rename)
    if format == "spert":
        return ReadResult(read_spert_json(path, corpus, rename=rename), None)
    raise ValueError(f"corpus {corpus}: unknown format {format!r}")
