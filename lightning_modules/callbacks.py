"""Small callbacks shared by the training entry points."""

from __future__ import annotations

import lightning.pytorch as pl
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
