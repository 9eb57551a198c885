"""``model=sru_ner`` hyperparameters: the shared optimiser keys, the loss normalisation and the SRU head's
settings. The network takes this dataclass itself (``SRUNERNetwork(encoder, config, num_actions)``), so
there is no second list of the head's settings to drift from it."""

from __future__ import annotations

from dataclasses import dataclass

from lightning_modules.decisions import DECISIONS
from lightning_modules.model_config import ModelConfig
from losses.dynamic_multi_hot import NORMALIZATIONS

OMEGAS = ("softmax", "logits")
MEMORIES = ("decomposed", "dense")
LOOPS = ("fused", "autograd")
ACTION_WEIGHTINGS = ("none", "welt", "balanced")
WEIGHTED_ACTIONS = ("all", "typed")
SH_TARGETS = ("hard", "soft")


@dataclass
class SRUNERConfig(ModelConfig):
    """``model=sru_ner``: the action generator with a slot memory (spec ``sru-ner.md``)."""

    loss_normalization: str = "rows"  # "rows" (reference) or "sentences" (paper)
    # per-column weights of the gold action cells from the training rows' action counts (module.py):
    # none (the reference), welt (WeLT per column, as TabERT-CNN's class_weighting), balanced (the
    # column's negative/positive ratio on its positives, clamped to [1 / cap, cap])
    action_weighting: str = "none"
    action_weight_cap: float = 10.0
    # which columns the weighting covers: all, or typed (TR/RE only; SH and EOA keep weight 1)
    weighted_actions: str = "all"
    # what decisions read (lightning_modules/decisions.py): thresholds (the TR/RE thresholds read
    # u - log(w+/w-); issue 33's study), calibrated (also the pointer's argmax, the EOA stop and the
    # dynamic target's SH test) or raw (u, as before)
    decisions: str = "thresholds"
    # --- the SRU head (network.SRUHead)
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
    # the displaced-SH test of the dynamic target: keep SH's target only while every other corpus's
    # action is at least this much below it (0: the reference rule, q <= p_SH)
    sh_margin: float = 0.0
    # the SH target of a gold-SH row in multi-corpus training: soft (one minus the model's calibrated
    # belief in another corpus's action there; losses/dynamic_multi_hot.py; issue 33) or hard (1, the
    # reference)
    sh_target: str = "soft"

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
        if not 0.0 <= self.sh_margin < 1.0:
            raise ValueError(f"model.sh_margin={self.sh_margin}: must be in [0, 1)")
        if self.action_weight_cap < 1:
            raise ValueError(f"model.action_weight_cap={self.action_weight_cap}: must be >= 1")
        for key, allowed in (
            ("omega", OMEGAS), ("memory", MEMORIES), ("loop", LOOPS), ("action_weighting", ACTION_WEIGHTINGS),
            ("weighted_actions", WEIGHTED_ACTIONS), ("decisions", DECISIONS), ("sh_target", SH_TARGETS),
        ):  # fmt: skip
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"model.{key} must be {' or '.join(map(repr, allowed))}, got {getattr(self, key)!r}"
                )

    @property
    def fused(self) -> bool:
        """The fused teacher-forced loop (``fused.py``) runs: it needs the decomposed memory."""
        return self.loop == "fused" and self.memory == "decomposed"
