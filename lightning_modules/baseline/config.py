"""``model=baseline`` hyperparameters: the shared optimiser keys and the heads' dropout."""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.model_config import ModelConfig


@dataclass
class BaselineConfig(ModelConfig):
    """``model=baseline``: the shared encoder and one BIO head per corpus (flat mentions only)."""

    dropout: float = 0.1  # on the word vectors, before the heads

    def check(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout={self.dropout}: must be in [0, 1)")
