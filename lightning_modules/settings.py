"""``ModuleSettings``: the parts of a run config a model reads, typed. The model factory
(``SpanNERModule.build``) cuts them from the run config; the module sees nothing else of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightning_modules.model_config import ModelConfig
from lightning_modules.optimisation import EncoderCfg, OptimCfg, Schedule, config_section


@dataclass(frozen=True)
class ModuleSettings:
    """A model's own section (its config dataclass), the encoder's and the optimiser's sections, the
    training precision (for its activation-size estimates) and, when it trains, the schedule's length."""

    model: ModelConfig
    encoder: EncoderCfg
    optim: OptimCfg
    precision: str | int | None = None
    schedule: Schedule | None = None

    @classmethod
    def of(
        cls, config_class: type[ModelConfig], cfg: Mapping[str, Any], schedule: Schedule | None = None
    ) -> ModuleSettings:
        """The settings of the plain run config ``cfg`` (as checkpoints hold it) for a model whose config
        dataclass is ``config_class``."""
        return cls(
            model=config_class(**cfg["model"]),
            encoder=config_section(EncoderCfg, cfg.get("encoder")),
            optim=config_section(OptimCfg, cfg.get("optim")),
            precision=(cfg.get("trainer") or {}).get("precision"),
            schedule=schedule,
        )
