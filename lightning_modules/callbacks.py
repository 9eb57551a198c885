"""Small callbacks shared by the training entry points."""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

from metrics.names import DEFAULT_MONITOR, RENAMED, best_value_summaries


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


class RenamedMetrics(pl.Callback):
    """Resume checkpoints written before a metric was renamed (``metrics.names.RENAMED``): the state of a
    ``ModelCheckpoint`` or ``EarlyStopping`` that monitored the old name is filed under the new one, so the
    resumed run keeps its best score instead of starting its selection afresh."""

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        states = checkpoint.get("callbacks") or {}
        for key in list(states):
            new_key = key
            for old, new in RENAMED.items():
                new_key = new_key.replace(repr(old), repr(new))
            state = states.pop(key)
            if isinstance(state, dict) and state.get("monitor") in RENAMED:
                state = {**state, "monitor": RENAMED[state["monitor"]]}
            states[new_key] = state


class RNGStateCheckpoint(pl.Callback):
    """Carry every rank's RNG states (torch, its CUDA device, NumPy, Python) in checkpoints.

    Lightning restores model, optimizer, schedule and loader position but not the RNGs, so dropout masks
    after a resume would differ from an uninterrupted run. Ranks drift apart (their batches have
    different shapes), so the states of all ranks are gathered and rank r restores its own. They are
    applied at the first training batch after loading, so nothing that runs in between (sanity check,
    loader setup) consumes them.
    """

    KEY = "rng_states"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @staticmethod
    def _capture() -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate(),
        }

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        states = self._capture()
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
        else:
            gathered = [states]
        checkpoint[self.KEY] = gathered

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        states = checkpoint.get(self.KEY)
        if not states:
            return
        if len(states) != trainer.world_size:
            rank_zero_warn(
                f"checkpoint has RNG states of {len(states)} ranks, this run has {trainer.world_size}: "
                "the run continues, but not bit-for-bit"
            )
        self._pending = states[min(trainer.global_rank, len(states) - 1)]

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class FinalCheckpoint(pl.Callback):
    """Write ``last.ckpt`` when training ends on its budget after the last save (e.g. ``max_steps`` reached
    mid-epoch, with no validation since): the latest checkpoint always holds the final step.

    ``last`` is the unmonitored ``ModelCheckpoint`` that writes the latest state after each validation.
    """

    def __init__(self, last: pl.callbacks.ModelCheckpoint) -> None:
        self.last = last

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(self.last, "_last_global_step_saved", -1) == trainer.global_step or not self.last.dirpath:
            return
        # a full checkpoint (optimizer, loops, callbacks); said, so that Lightning does not log its default
        path = f"{self.last.dirpath}/{self.last.filename}{self.last.FILE_EXTENSION}"
        trainer.save_checkpoint(path, weights_only=False)


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


class F1Chart(pl.Callback):
    """Keep ``<run_dir>/f1_per_corpus.png`` current: the per-corpus dev F1 after each validation (the end
    of training replaces it with the test scores), so every run directory has one, interrupted runs too."""

    def __init__(self, run_dir: str, run_name: str) -> None:
        self.path = f"{run_dir}/f1_per_corpus.png"
        self.run_name = run_name

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # not on_validation_epoch_end: callbacks run it before the module logs this validation's scores
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from metrics.charts import f1_bar_chart

        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        title = f"{self.run_name}: dev F1 at step {trainer.global_step}"
        f1_bar_chart(scores, "val", self.path, title=title)
