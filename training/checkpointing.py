"""How a run writes its checkpoints, and what it restores beyond Lightning's own state.

- ``AtomicCheckpointIO``: every checkpoint file is written atomically, a temporary file in the same
  directory then a rename, so a kill, a crash or a full disk during a save leaves the previous checkpoint
  of that name intact (and at most a stray ``.<name>.tmp-<pid>`` file), never a truncated newest
  checkpoint. Lightning's own loads (``trainer.fit(ckpt_path=...)``, ``trainer.test(ckpt_path=...)``) go
  through ``load_checkpoint``, i.e. ``lightning_modules.checkpoints.read_checkpoint``: plain data only
  unless ``trust`` (``trust_checkpoint=true``); the ``weights_only`` Lightning passes does not widen that.
- ``RNGStateCheckpoint``: every rank's RNG states, so a resumed run draws what the uninterrupted one would.
- ``FinalCheckpoint``: ``last.ckpt`` always holds the final step.
- ``RenamedMetrics``: checkpoints written before a metric was renamed keep their best score.
- ``newest_good_checkpoint``: the checkpoint ``resume=auto`` continues from.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from atomic_output import atomic_output
from errors import CheckpointError
from lightning_modules.checkpoints import UntrustedCheckpointError, read_checkpoint
from metrics.names import RENAMED
from training.lightning_internals import last_saved_step


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self, *, trust: bool = False) -> None:
        super().__init__()
        self.trust = trust

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # on the CPU, as Lightning's default (storage, loc) -> storage; Lightning moves what it restores
        return read_checkpoint(path, trust=self.trust, mmap=False)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temporary:
            super().save_checkpoint(checkpoint, temporary, storage_options)


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
        if last_saved_step(self.last) == trainer.global_step or not self.last.dirpath:
            return
        # a full checkpoint (optimizer, loops, callbacks); said, so that Lightning does not log its default
        path = f"{self.last.dirpath}/{self.last.filename}{self.last.FILE_EXTENSION}"
        trainer.save_checkpoint(path, weights_only=False)


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


def newest_good_checkpoint(run_dir: Path, *, trust: bool = False) -> str | None:
    """The readable checkpoint of ``run_dir`` with the most optimiser steps (ties: the newest file).

    Candidates: ``checkpoints/*.ckpt`` and SLURM's ``hpc_ckpt_*.ckpt``. An unreadable checkpoint newer
    than the chosen one gets a one-line warning that names it; a refused one (``UntrustedCheckpointError``)
    is raised, not skipped: a run directory holding such a file is not resumed from an older state.
    """
    candidates = [*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    good: list[tuple[int, float, Path]] = []
    bad: list[tuple[float, str]] = []
    for path in candidates:
        mtime = path.stat().st_mtime
        try:
            good.append((int(read_checkpoint(path, trust=trust).get("global_step", 0)), mtime, path))
        except UntrustedCheckpointError:
            raise
        except CheckpointError as err:
            bad.append((mtime, str(err)))
    chosen = max(good, default=None)
    for mtime, problem in sorted(bad, reverse=True):
        if chosen is None or mtime >= chosen[1]:
            fallback = f"resuming from {chosen[2]}" if chosen else "starting from scratch"
            print(f"warning: resume=auto skips {problem}; {fallback}", file=sys.stderr, flush=True)
    return str(chosen[2]) if chosen else None
