"""``<run_dir>/f1_per_corpus.png``, kept current after each validation."""

from __future__ import annotations

import lightning.pytorch as pl


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
