"""``model=sru_ner`` hyperparameters: the shared optimiser keys, the loss normalisation, and every SRU head
hyperparameter with the head's own type and default (``SRUHeadConfig``; ``tests/test_model_contract.py``
checks that the two list the same fields, types and defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.base import ModelConfig
from lightning_modules.sru_ner.network import SRUHeadConfig
from losses.dynamic_multi_hot import NORMALIZATIONS


@dataclass
class SRUNERConfig(ModelConfig):
    """``model=sru_ner``: the action generator with a slot memory (spec ``sru-ner.md``)."""

    loss_normalization: str = "rows"  # "rows" (reference) or "sentences" (paper)
    # --- the SRU head (SRUHeadConfig), less what the label space and the encoder set
    action_space_dim: int = 2  # J = action_space_dim * num_actions latents
    half_context: int = 150
    dropout_positions: float = 0.2
    dropout_latents: float = 0.2
    dropout_mlp: float = 0.1
    token_multiplier: float = 1.0
    train_token_multiplier: bool = False
    omega: str = "softmax"  # "softmax" (reference) or "logits" (paper)
    memory: str = "decomposed"  # or "dense" (the straightforward A3 form; for tests and benchmarks)
    loop: str = "fused"  # "fused" (hand-written backward, fused.py) or "autograd"; dense memory is autograd
    train_step_factor: float = 2.0  # cap on training steps, x T_gold
    infer_step_factor: float = 1.5  # cap on inference steps, x Q
    sync_every: int = 8
    project_coeff: float = 1.0

    def check(self) -> None:
        if self.loss_normalization not in NORMALIZATIONS:
            raise ValueError(
                f"model.loss_normalization={self.loss_normalization}: use one of {', '.join(NORMALIZATIONS)}"
            )
        for key in ("action_space_dim", "half_context", "sync_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key}={getattr(self, key)}: must be >= 1")
        if self.train_step_factor < 1 or self.infer_step_factor <= 0:
            raise ValueError("model.train_step_factor must be >= 1 and model.infer_step_factor > 0")
        for key in ("dropout_positions", "dropout_latents", "dropout_mlp"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"model.{key}={getattr(self, key)}: must be in [0, 1)")
        try:
            self.head_config(num_actions=2, hidden=1)
        except ValueError as err:  # the head's own checks, e.g. "omega must be 'softmax' or 'logits'"
            raise ValueError(f"model.{err}") from None

    def head_config(self, num_actions: int, hidden: int) -> SRUHeadConfig:
        """The head's config: these settings plus the action count (label space) and the encoder width."""
        return SRUHeadConfig(
            num_actions=num_actions,
            hidden=hidden,
            action_space_dim=self.action_space_dim,
            half_context=self.half_context,
            dropout_positions=self.dropout_positions,
            dropout_latents=self.dropout_latents,
            dropout_mlp=self.dropout_mlp,
            token_multiplier=self.token_multiplier,
            train_token_multiplier=self.train_token_multiplier,
            omega=self.omega,
            memory=self.memory,
            loop=self.loop,
            train_step_factor=self.train_step_factor,
            infer_step_factor=self.infer_step_factor,
            sync_every=self.sync_every,
            project_coeff=self.project_coeff,
        )
