"""Which input files this process tags: ``--shard i/N``, else the share torchrun and a SLURM job array give.

File ``k`` of the sorted inputs goes to shard ``k % N``. Without ``--shard`` the share comes from the
environment: torchrun's ``RANK``/``WORLD_SIZE``, a SLURM array's ``SLURM_ARRAY_TASK_ID`` (less
``SLURM_ARRAY_TASK_MIN``, over ``SLURM_ARRAY_TASK_STEP``) of ``SLURM_ARRAY_TASK_COUNT``, or both: array task
``a`` of ``A`` with rank ``r`` of ``R`` is shard ``a * R + r`` of ``A * R``. Each process works alone; no
process group is needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from errors import BionerError


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def share(self, files: Sequence[str]) -> list[str]:
        """This shard's files of ``files`` (sorted first, so every process sees the same order)."""
        return sorted(files)[self.index :: self.count]


WHOLE = Shard(0, 1)


def parse_shard(text: str) -> Shard:
    """``"i/N"`` with ``0 <= i < N``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise BionerError(f"--shard {text}: expected i/N, e.g. 0/4")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise BionerError(f"--shard {text}: needs 0 <= i < N")
    return Shard(index, count)


def _int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = environ.get(name)
    if value is None or value == "":
        if default is None:
            raise BionerError(
                f"{name} is not set (needed with the other {name.rsplit('_', 1)[0]}_* variables)"
            )
        return default
    if not re.fullmatch(r"\d+", value.strip()):
        raise BionerError(f"{name}={value!r}: not a non-negative integer")
    return int(value)


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard:
    """The share the launcher gave this process (``WHOLE`` when none did)."""
    environ = os.environ if environ is None else environ
    rank = Shard(_int(environ, "RANK"), _int(environ, "WORLD_SIZE")) if "WORLD_SIZE" in environ else WHOLE
    if rank.index >= rank.count:
        raise BionerError(f"RANK={rank.index} is not below WORLD_SIZE={rank.count}")
    task = WHOLE
    if environ.get("SLURM_ARRAY_TASK_ID"):
        count = _int(environ, "SLURM_ARRAY_TASK_COUNT")
        first = _int(environ, "SLURM_ARRAY_TASK_MIN", 0)
        step = max(_int(environ, "SLURM_ARRAY_TASK_STEP", 1), 1)
        offset = _int(environ, "SLURM_ARRAY_TASK_ID") - first
        if offset < 0 or offset % step or offset // step >= count:
            raise BionerError(
                f"SLURM_ARRAY_TASK_ID={environ['SLURM_ARRAY_TASK_ID']} is not one of {count} tasks from "
                f"{first} by {step}: submit the array as --array=0-{count - 1} (or pass --shard i/N)"
            )
        task = Shard(offset // step, count)
    return Shard(task.index * rank.count + rank.index, task.count * rank.count)


def local_device(environ: Mapping[str, str] | None = None) -> str | None:
    """``cuda:LOCAL_RANK`` for a torchrun rank on a machine with CUDA, else None (the tagger's default)."""
    import torch

    environ = os.environ if environ is None else environ
    local = environ.get("LOCAL_RANK")
    if local is None or not local.strip().isdigit() or not torch.cuda.is_available():
        return None
    return f"cuda:{int(local) % torch.cuda.device_count()}"
