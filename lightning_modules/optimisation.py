"""What a model's optimiser reads, typed: the ``encoder`` and ``optim`` config sections (``configs/schema.py``
composes them into the run config), the schedule's length, which the job hands over when it builds the model,
and the per-group learning-rate multipliers: linear warmup, then linear or cosine decay to 0."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

Section = TypeVar("Section")


@dataclass
class EncoderCfg:
    name: str = "${minilm:}"  # a hub name (e.g. michiyasunaga/BioLinkBERT-large) or a local directory
    lr: float = 2e-5
    weight_decay: float = 1e-3
    warmup_epochs: float = 1.0


@dataclass
class OptimCfg:
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    schedule: str = "linear"  # per-group linear warmup then "linear" or "cosine" decay to 0 at the last step
    total_steps: int | None = None  # schedule length; None: trainer.max_steps, else epochs x epoch steps


@dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule's length in optimiser steps (``training/schedule.py`` works it out)."""

    steps_per_epoch: int
    total_steps: int


def config_section(section: type[Section], values: Mapping[str, Any] | None) -> Section:
    """The dataclass ``section`` from a run config's plain section, its known keys only (a checkpoint
    written by another version may hold more or fewer)."""
    known = {f.name for f in dataclasses.fields(section)}  # type: ignore[arg-type]
    return section(**{k: v for k, v in (values or {}).items() if k in known})


class linear_warmup_decay:  # noqa: N801 - a picklable function object
    """Multiplier: step / warmup during warmup, then linear decay to 0 at ``total``."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = max(0, warmup), max(1, total)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / self.warmup
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))


class cosine_warmup_decay(linear_warmup_decay):  # noqa: N801
    """Multiplier: step / warmup during warmup, then half a cosine down to 0 at ``total``."""

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
