"""Writers that take tagged documents a chunk at a time and never hold more than a chunk.

JSONL and PubTator are written document by document (``write_documents`` on each chunk). BioC is one
collection: its header (the input collection's own source, date, key and infons when there is one input,
else a new ``bioner-mtl`` collection, as ``write_documents`` does), then each document as it comes, then
the footer; the bytes equal what ``write_documents`` writes for the same documents at once. Parquet: the
mention rows (``inference.mention_rows``), one row group per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TextIO

from errors import BionerError
from inference.documents import FORMATS_OUT, Document, Entity, _add_bioc_annotations, write_documents
from inference.mention_rows import ModelIdentity, arrow_schema, mention_rows

STREAM_FORMATS_OUT = (*FORMATS_OUT, "parquet")
BINARY_FORMATS = ("parquet",)

WriteDocuments = Callable[[Sequence[Document], Sequence[Sequence[Entity]], str, TextIO], None]


class TextWriter:
    """JSONL or PubTator: each chunk written as it comes (``write`` is ``write_documents`` or a stand-in)."""

    def __init__(self, fmt: str, out: TextIO, write: WriteDocuments = write_documents):
        self.fmt, self.out, self._write = fmt, out, write

    def write(self, documents: Sequence[Document], entities: Sequence[Sequence[Entity]]) -> None:
        self._write(documents, entities, self.fmt, self.out)

    def close(self) -> None:
        self.out.flush()


class BiocWriter:
    """A BioC XML or JSON collection written document by document (the module docstring)."""

    def __init__(self, out: TextIO, *, single_input: bool):
        self.out = out
        self.single_input = single_input  # one input: its own collection header is kept
        self.kind: str | None = None  # "xml" or "json", from the first document
        self._footer = ""
        self._separator = ""
        self._encoding = "utf8"

    def write(self, documents: Sequence[Document], entities: Sequence[Sequence[Entity]]) -> None:
        pieces = []
        for document, found in zip(documents, entities, strict=True):
            source = document.source if isinstance(document.source, tuple) else None
            kind = source[2] if source else "xml"
            if self.kind is None:
                pieces.append(self._header(source[0] if source and self.single_input else None, kind))
            elif kind != self.kind:
                raise BionerError(
                    "BioC inputs in XML and in JSON: write them separately (or pass --out-format jsonl)"
                )
            bioc_document = source[1] if source else document.to_bioc()
            _add_bioc_annotations(bioc_document, found)
            pieces.append(self._separator + self._document(bioc_document))
            if self.kind == "json":
                self._separator = ", "
        self.out.write("".join(pieces))

    def close(self) -> None:
        if self.kind is None:
            self.out.write(self._header(None, "xml"))
        self.out.write(self._footer)
        self.out.flush()

    def _header(self, collection: Any, kind: str) -> str:
        import bioc
        from bioc import biocjson, biocxml

        header = bioc.BioCCollection()
        if collection is None:
            header.source = "bioner-mtl"
        else:
            for name in ("source", "date", "key", "version", "encoding", "standalone"):
                if hasattr(collection, name):
                    setattr(header, name, getattr(collection, name))
            header.infons = dict(collection.infons)
        self.kind, self._encoding = kind, header.encoding
        if kind == "json":
            text = biocjson.dumps(header)
            self._footer = "]}"
        else:
            text = biocxml.dumps(header)
            self._footer = "</collection>\n"
        if not text.endswith("[]}" if kind == "json" else self._footer):
            raise AssertionError(f"unexpected BioC {kind} collection: {text[-40:]!r}")
        return text[: -len(self._footer)]

    def _document(self, bioc_document: Any) -> str:
        if self.kind == "json":
            from bioc import biocjson

            return biocjson.dumps(bioc_document)
        from bioc.biocxml.encoder import encode_document
        from lxml import etree

        # pretty-printed inside a bare <collection>: the indentation it has in the whole collection
        wrapper = etree.Element("collection")
        wrapper.append(encode_document(bioc_document))
        text = etree.tostring(wrapper, pretty_print=True, encoding=self._encoding, xml_declaration=False)
        return text.decode(self._encoding)[len("<collection>\n") : -len("</collection>\n")]


class ParquetWriter:
    """Mention rows (``mention_rows.COLUMNS``) with the model's identity, one row group per chunk."""

    def __init__(self, out: BinaryIO, identity: ModelIdentity):
        import pyarrow.parquet as pq

        self.schema = arrow_schema()
        self.identity = identity
        self._writer = pq.ParquetWriter(out, self.schema)

    def write(self, documents: Sequence[Document], entities: Sequence[Sequence[Entity]]) -> None:
        import pyarrow as pa

        rows = mention_rows(documents, entities, self.identity)
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema), row_group_size=len(rows))

    def close(self) -> None:
        self._writer.close()


def open_writer(
    fmt: str,
    out: TextIO | BinaryIO,
    *,
    identity: Callable[[], ModelIdentity],
    single_input: bool,
    write: WriteDocuments = write_documents,
) -> TextWriter | BiocWriter | ParquetWriter:
    """The chunk writer of ``fmt`` on ``out`` (binary for ``BINARY_FORMATS``, else text). ``identity`` is
    asked only by Parquet (it hashes the weights); ``single_input``: BioC keeps that input's header."""
    if fmt in ("jsonl", "pubtator"):
        return TextWriter(fmt, out, write)  # type: ignore[arg-type]
    if fmt == "bioc":
        return BiocWriter(out, single_input=single_input)  # type: ignore[arg-type]
    if fmt == "parquet":
        return ParquetWriter(out, identity())  # type: ignore[arg-type]
    raise BionerError(f"unknown output format {fmt!r}; one of {', '.join(STREAM_FORMATS_OUT)}")
