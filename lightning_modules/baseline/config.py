"""``model=baseline`` hyperparameters: the shared optimiser keys, the heads' dropout and the word pooling."""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.model_config import ModelConfig

POOLINGS = ("max", "first")


@dataclass
class BaselineConfig(ModelConfig):
    """``model=baseline``: the shared encoder and one BIO head per corpus (flat mentions only)."""

    dropout: float = 0.1  # on the word vectors, before the heads
    # a word's vector: the max over its subwords, or its first subword's (what a transformers token
    # classifier reads: ``export.py --format transformers`` is then exact)
    pooling: str = "max"

    def check(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout={self.dropout}: must be in [0, 1)")
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling={self.pooling!r}: must be one of {', '.join(POOLINGS)}")
