"""``model=sru_ner`` hyperparameters: the shared optimiser keys, the loss normalisation, and every SRU head
hyperparameter with the head's own type and default (``SRUHeadConfig``), so the two cannot drift apart."""

from __future__ import annotations

import dataclasses
from dataclasses import field, make_dataclass

from lightning_modules.base import ModelConfig
from lightning_modules.sru_ner.network import SRUHeadConfig
from losses.dynamic_multi_hot import NORMALIZATIONS

# set from the label space and the encoder, not by the user
DERIVED_HEAD_KEYS = ("num_actions", "hidden")
HEAD_KEYS = tuple(f.name for f in dataclasses.fields(SRUHeadConfig) if f.name not in DERIVED_HEAD_KEYS)
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _check(config: ModelConfig) -> None:
    if config.loss_normalization not in NORMALIZATIONS:
        raise ValueError(
            f"model.loss_normalization={config.loss_normalization}: use one of {', '.join(NORMALIZATIONS)}"
        )
    for key in ("action_space_dim", "half_context", "sync_every"):
        if getattr(config, key) < 1:
            raise ValueError(f"model.{key}={getattr(config, key)}: must be >= 1")
    if config.train_step_factor < 1 or config.infer_step_factor <= 0:
        raise ValueError("model.train_step_factor must be >= 1 and model.infer_step_factor > 0")
    for key in ("dropout_positions", "dropout_latents", "dropout_mlp"):
        if not 0.0 <= getattr(config, key) < 1.0:
            raise ValueError(f"model.{key}={getattr(config, key)}: must be in [0, 1)")
    try:
        SRUHeadConfig(num_actions=2, hidden=1, **{k: getattr(config, k) for k in HEAD_KEYS})
    except ValueError as err:  # the head's own checks, e.g. "omega must be 'softmax' or 'logits'"
        raise ValueError(f"model.{err}") from None


SRUNERConfig = make_dataclass(
    "SRUNERConfig",
    [
        ("loss_normalization", str, field(default="rows")),  # "rows" (reference) or "sentences" (paper)
        *(
            (f.name, _TYPES[f.type], field(default=f.default))
            for f in dataclasses.fields(SRUHeadConfig)
            if f.name in HEAD_KEYS
        ),
    ],
    bases=(ModelConfig,),
    namespace={"check": _check},
)
SRUNERConfig.__doc__ = __doc__
