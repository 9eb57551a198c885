"""``ModelConfig``: the ``model`` config section every model has; a model's own config dataclass extends
it with its hyperparameters (and its network may take that dataclass directly)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """The ``model`` config section every model has; a model's own config dataclass extends it."""

    name: str = ""  # the registry name, set by ``model=NAME``
    lr: float = 3e-4  # learning rate of every parameter outside the encoder
    weight_decay: float = 1e-3
    warmup_epochs: float = 0.5  # linear warmup of the head group, in epochs, then linear decay to 0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("model.lr must be > 0, model.weight_decay and model.warmup_epochs >= 0")
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the ``model.<key>`` whose value this model cannot use."""
