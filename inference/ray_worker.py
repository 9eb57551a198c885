"""``TaggerWorker``: the tagger as a Ray Data callable class, for tagging millions of documents.

Each Ray worker loads the model once (``inference.load``) and maps batches of ``{doc_id, text}`` rows to one
row per mention with the columns and Arrow types of ``inference.mention_rows`` (the rows ``predict.py``
writes to Parquet)::

    import ray
    from inference.ray_worker import TaggerWorker

    mentions = ray.data.read_json("abstracts.jsonl").map_batches(
        TaggerWorker,
        fn_constructor_args=(model_dir,),
        fn_constructor_kwargs={"id_column": "id"},  # JSONL {id, text}; the default is doc_id
        concurrency=2,  # workers, each with its own copy of the model
        num_gpus=1,  # per worker; leave out on CPUs
        num_cpus=1,  # per worker: leave the cluster at least one more, or the reads wait forever
        batch_size=256,  # documents per call; the tagger batches their sentences itself
        batch_format="numpy",
    )
    mentions.write_parquet("mentions/")

``read_parquet(...)`` and ``from_items([{"doc_id": ..., "text": ...}, ...])`` work the same way. A document is
one passage (its text at offset 0), so ``passage`` is always 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.eval_batches import DEFAULT_EVAL_MEMORY_MB
from errors import BionerError
from inference.documents import Document, Passage
from inference.mention_rows import arrow_schema, mention_rows
from inference.tagger import load


class TaggerWorker:
    def __init__(
        self,
        model: str | Path,
        *,
        types: str = "merged",
        corpus: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        memory_mb: float | None = DEFAULT_EVAL_MEMORY_MB,
        trust_checkpoint: bool = False,
        text_column: str = "text",
        id_column: str = "doc_id",
    ):
        self.tagger = load(
            model,
            device=device,
            batch_size=batch_size,
            memory_mb=memory_mb,
            trust_checkpoint=trust_checkpoint,
        )
        self.types, self.corpus = types, corpus
        self.text_column, self.id_column = text_column, id_column
        self.tagger.annotate([], types=types, corpus=corpus)  # a bad types/corpus fails here, not per batch
        self.identity = self.tagger.identity

    def __call__(self, batch: Mapping[str, np.ndarray]) -> Any:
        """One row per mention of the batch's documents, as a ``pyarrow.Table`` of ``arrow_schema()``: a
        fixed schema, so that blocks without mentions (or without scores) concatenate with the others."""
        import pyarrow as pa

        documents = [Document(i, [Passage(0, t)]) for i, t in zip(self._ids(batch), self._texts(batch))]
        entities = self.tagger.annotate(documents, types=self.types, corpus=self.corpus)
        return pa.Table.from_pylist(mention_rows(documents, entities, self.identity), schema=arrow_schema())

    def _column(self, batch: Mapping[str, np.ndarray], name: str, argument: str) -> np.ndarray:
        if name not in batch:
            raise BionerError(
                f"TaggerWorker: the batch has no column {name!r} "
                f"(its columns: {', '.join(batch) or 'none'}); name the right one with {argument}="
            )
        return batch[name]

    def _ids(self, batch: Mapping[str, np.ndarray]) -> list[str]:
        ids = []
        for value in self._column(batch, self.id_column, "id_column"):
            # numpy scalars from a numpy batch: np.str_ is a str, np.int64 is no int but an np.integer
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, int, np.integer)):
                raise BionerError(
                    f"TaggerWorker: column {self.id_column!r} holds a {type(value).__name__} "
                    f"({value!r:.60}); a document id is a string or an integer"
                )
            ids.append(str(value))
        return ids

    def _texts(self, batch: Mapping[str, np.ndarray]) -> list[str]:
        texts = self._column(batch, self.text_column, "text_column")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise BionerError(
                    f"TaggerWorker: column {self.text_column!r} holds a {type(text).__name__} in row {i} "
                    f"({self.id_column} {batch[self.id_column][i]!r:.60}); a document's text is a string"
                )
        return [str(text) for text in texts]
