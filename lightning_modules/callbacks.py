"""Small callbacks shared by the training entry points."""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

SUMMARIES = {
    "val/f1_merged_macro": "max",
    "val/f1_disjoint_macro": "max",
    "train/loss": "min",
}


class WandbSummaries(pl.Callback):
    """Declare best-value summaries (``define_metric``) so the W&B run table shows the best scores."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for name, summary in SUMMARIES.items():
                    logger.experiment.define_metric(name, summary=summary)


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
        trainer.save_checkpoint(f"{self.last.dirpath}/{self.last.filename}{self.last.FILE_EXTENSION}")
