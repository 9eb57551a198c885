"""``model=tabert_cnn`` hyperparameters: the shared optimiser keys, the mode, the table CNN's settings and
the decisions. The network takes this dataclass itself (``TabERTCNNNetwork(encoder, config, out_channels)``),
so there is no second list of the CNN's settings to drift from it."""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.decisions import check_decisions
from lightning_modules.model_config import ModelConfig

MODES = ("auto", "paper", "span")
WEIGHTINGS = ("none", "welt")
FIRST_LAYERS = ("factored", "straightforward")


@dataclass
class TabERTCNNConfig(ModelConfig):
    """``model=tabert_cnn``: the word-pair table CNN (spec B3/B8 defaults)."""

    lr: float = 1e-3  # everything outside the encoder (B8)
    weight_decay: float = 0.01
    warmup_epochs: float = 0.2
    mode: str = "auto"  # auto | paper (joint NER + RE) | span (multi-corpus nested NER)
    pair_dim: int = 256  # p: word vectors are projected to this width before pairing; 0 = no projection
    channels: int = 512  # H
    kernel: int = 3
    layers: int = 2  # convolutions, the last one giving the logits
    dropout: float = 0.3  # pair dropout (cells or word vectors, see network.py)
    conv_dropout: float = 0.3  # Dropout2d after each hidden convolution
    first_layer: str = "factored"  # factored (row + column term) | straightforward (the n x n x 2p table)
    threshold: float = 0.5  # span mode: a cell is a mention above this probability
    project_coeff: float = 1.0  # span mode: scale of the other corpora's soft targets (1 = no gradient)
    class_weighting: str = "none"  # none | welt (losses.class_weights)
    # what decisions read (lightning_modules/decisions.py): calibrated (with class_weighting, the cell
    # threshold on u - log(w+/w-), paper mode's argmax on u - log w), thresholds (the cells only) or raw
    decisions: str = "thresholds"

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"model.mode={self.mode}: use one of {', '.join(MODES)}")
        if self.class_weighting not in WEIGHTINGS:
            raise ValueError(
                f"model.class_weighting={self.class_weighting}: use one of {', '.join(WEIGHTINGS)}"
            )
        if self.first_layer not in FIRST_LAYERS:
            raise ValueError(f"model.first_layer={self.first_layer}: use one of {', '.join(FIRST_LAYERS)}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"model.kernel={self.kernel}: an odd size >= 1 (padding 'same')")
        if self.layers < 2:
            raise ValueError(
                f"model.layers={self.layers}: at least 2 (one hidden convolution and the output one)"
            )
        if self.channels < 1 or self.pair_dim < 0:
            raise ValueError("model.channels must be >= 1, model.pair_dim >= 0")
        for key in ("dropout", "conv_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"model.{key}={getattr(self, key)}: must be in [0, 1)")
        check_decisions(self.decisions)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"model.threshold={self.threshold}: must be in (0, 1)")
        if self.project_coeff < 0:
            raise ValueError(f"model.project_coeff={self.project_coeff}: must be >= 0")
