"""The W&B side of a run: best-value summaries in the run table, and a table of dev predictions."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import WandbLogger

from metrics.names import DEFAULT_MONITOR, best_value_summaries


class WandbSummaries(pl.Callback):
    """Declare best-value summaries (``define_metric``) so the W&B run table shows the best scores: the
    run's selection metric ``monitor`` among them (``metrics.names.best_value_summaries``)."""

    def __init__(self, monitor: str = DEFAULT_MONITOR) -> None:
        self.summaries = best_value_summaries(monitor)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for name, summary in self.summaries.items():
                    logger.experiment.define_metric(name, summary=summary)


class WandbPredictions(pl.Callback):
    """At each validation, a W&B table of the same dev sentences (the first ``per_corpus`` of each corpus's
    first batch on rank 0) with their gold and predicted mentions, so runs and steps compare side by side."""

    COLUMNS = ["step", "corpus", "sentence", "gold", "predicted"]

    def __init__(self, per_corpus: int = 8) -> None:
        self.per_corpus = per_corpus
        self.rows: list[list[Any]] = []
        self._keys: dict[str, np.ndarray] = {}

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows = []

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero or outputs is None:
            return
        label_space = pl_module.label_space
        corpus = label_space.corpora[dataloader_idx]
        dataset = trainer.datamodule.datasets["dev"][corpus]
        if corpus not in self._keys:  # (sentence_index, chunk) of every dev row, to find a row's words
            columns = dataset.select_columns(["sentence_index", "chunk"]).with_format("numpy")[:]
            self._keys[corpus] = columns["sentence_index"].astype(np.int64) * 1_000 + columns["chunk"]
        keys = self._keys[corpus]
        for k in range(min(self.per_corpus, len(batch["num_words"]))):
            key = int(batch["sentence_index"][k]) * 1_000 + int(batch["chunk"][k])
            tokens = dataset[int(np.flatnonzero(keys == key)[0])]["tokens"]
            gold = [tuple(s) for s in batch["spans"][k].tolist()]
            self.rows.append(
                [
                    trainer.global_step,
                    corpus,
                    " ".join(tokens),
                    _mentions(tokens, gold, label_space, corpus),
                    _mentions(tokens, outputs.spans[k], label_space, corpus),
                ]
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.rows or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table("val/predictions", columns=self.COLUMNS, data=self.rows)


def _mentions(tokens: Any, spans: Any, label_space: Any, corpus: str) -> str:
    """``"IL-2 [Gene]; aspirin [BC4CHEMD/Chemical]"``: a type of the sentence's own corpus unqualified."""
    out = []
    for start, end, type_id in sorted(spans):
        qualified = label_space.types[type_id]
        shown = qualified.split("/", 1)[1] if label_space.corpus_of(type_id) == corpus else qualified
        out.append(f"{' '.join(tokens[start:end])} [{shown}]")
    return "; ".join(out)
