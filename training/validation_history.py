"""``<run_dir>/history.jsonl`` (``metrics.history``): one line per validation, so runs can be compared
without W&B (``python -m metrics.compare``).

Each line: ``{"step", "epoch", "wall_s", "metrics": {"val/...": value}}``, with the validation's synced
scores (``trainer.callback_metrics``, every process agrees on them) and the training wall time so far
(seconds, summed over the resumed segments of the run). Written by rank 0, one whole line per append.
On a resume the lines past the resumed step are dropped first (they belong to the interrupted segment
after its last checkpoint, which the resumed run repeats).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl

from atomic_output import atomic_output
from metrics.history import HISTORY, read_history


class ValidationHistory(pl.Callback):
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / HISTORY
        self._started = 0.0
        self._wall_before = 0.0  # training wall time of the earlier segments of a resumed run

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # not on_fit_start: Lightning restores a resumed run's global step only after that hook
        self._started = time.perf_counter()
        if not trainer.is_global_zero:
            return
        kept = [line for line in read_history(self.path.parent) if line["step"] <= trainer.global_step]
        self._wall_before = kept[-1]["wall_s"] if kept else 0.0
        if self.path.is_file():  # rewritten whole (atomically) with the lines up to the resumed step
            with atomic_output(self.path) as temporary:
                temporary.write_text("".join(json.dumps(line) + "\n" for line in kept))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the module logged this validation's scores (as F1Chart)
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        line = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "wall_s": round(self._wall_before + time.perf_counter() - self._started, 1),
            "metrics": scores,
        }
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")
