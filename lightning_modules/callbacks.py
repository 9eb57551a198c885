"""Small callbacks shared by the training entry points."""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

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
    """Carry the global RNG states (torch, CUDA, NumPy, Python) in checkpoints for exact resume.

    Lightning restores model, optimizer, schedule and loader position but not the RNGs, so dropout masks
    after a resume would differ from an uninterrupted run. The saved states are applied at the first
    training batch after loading, so nothing that runs in between (sanity check, loader setup) can
    consume them. Every rank is seeded identically, so rank 0's states are every rank's states.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
