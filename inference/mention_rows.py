"""Mentions as flat rows: one per mention, the same columns for Parquet output and the Ray worker.

``doc_id``, ``passage`` (the index of the passage holding the mention), ``start``/``end`` (document
character offsets, end exclusive), ``text``, ``type`` (merged or corpus-qualified, as requested),
``corpus_type`` (always qualified), ``score`` (null for a model that reports none), and the model's identity:
``model`` (the export directory's or checkpoint's name; a Hub model's repo id), ``model_sha256`` (of its
weights file) and ``model_revision`` (a Hub model's commit; empty for a local one), so that rows from
different runs can be told apart once they are pooled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.documents import Document, Entity

COLUMNS = (
    "doc_id",
    "passage",
    "start",
    "end",
    "text",
    "type",
    "corpus_type",
    "score",
    "model",
    "model_sha256",
    "model_revision",
)


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str
    revision: str = ""  # the Hub commit of a model loaded by Hub id

    @classmethod
    def of(cls, path: str | Path, weights: str | Path) -> ModelIdentity:
        """``path``'s name and the SHA-256 of ``weights`` (read in 1 MiB blocks)."""
        digest = hashlib.sha256()
        with open(weights, "rb") as file:
            for block in iter(lambda: file.read(2**20), b""):
                digest.update(block)
        return cls(Path(path).resolve().name, digest.hexdigest())


def arrow_schema() -> Any:
    """The Parquet schema of mention rows (pyarrow is imported only by this and the Parquet writer)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("passage", pa.int32()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("type", pa.string()),
            ("corpus_type", pa.string()),
            ("score", pa.float32()),
            ("model", pa.string()),
            ("model_sha256", pa.string()),
            ("model_revision", pa.string()),
        ]
    )


def passage_of(document: Document, entity: Entity) -> int:
    """The index of the passage of ``document`` that holds ``entity``."""
    for index, passage in enumerate(document.passages):
        if passage.offset <= entity.start and entity.end <= passage.offset + len(passage.text):
            return index
    raise ValueError(f"mention {entity.start}-{entity.end} outside every passage of {document.id}")


def mention_rows(
    documents: Sequence[Document], entities: Sequence[Sequence[Entity]], model: ModelIdentity
) -> list[dict[str, Any]]:
    """One row per mention (``COLUMNS``), in document order, each document's mentions as the tagger sorted
    them."""
    return [
        {
            "doc_id": entity.doc_id,
            "passage": passage_of(document, entity),
            "start": entity.start,
            "end": entity.end,
            "text": entity.text,
            "type": entity.type,
            "corpus_type": entity.corpus_type,
            "score": entity.score,
            "model": model.name,
            "model_sha256": model.sha256,
            "model_revision": model.revision,
        }
        for document, found in zip(documents, entities, strict=True)
        for entity in found
    ]
