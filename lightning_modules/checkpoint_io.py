"""Checkpoint files are written atomically: a temporary file in the same directory, then a rename; they are
read through the project's restricted loader.

A kill, a crash or a full disk during a save leaves the previous checkpoint of that name intact (and at
most a stray ``.<name>.tmp-<pid>`` file), never a truncated newest checkpoint. Lightning's own loads
(``trainer.fit(ckpt_path=...)``, ``trainer.test(ckpt_path=...)``) go through ``load_checkpoint``, i.e.
``checkpoints.read_checkpoint``: plain data only unless ``trust`` (``trust_checkpoint=true``); the
``weights_only`` Lightning passes does not widen that.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_modules.checkpoints import read_checkpoint


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
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, temporary, storage_options)
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
