"""The dynamic multi-hot target for per-type sigmoid outputs (a span head over table cells).

Specification: ``shared/spec/tabert-cnn.md`` Part 1 item 2, the same rule as SRU-NER's action rows: a cell
of a sentence from corpus D is supervised on D's types (gold 0/1); for every other corpus's type the
target is the model's own detached probability, so with ``coeff = 1`` those cells have exactly zero BCE
gradient (``d BCE / d u = sigmoid(u) - target = 0``). ``coeff > 1`` self-trains them, ``< 1`` suppresses.
No host synchronisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dynamic_type_target(
    logits: torch.Tensor, gold: torch.Tensor, supervised: torch.Tensor, *, coeff: float = 1.0
) -> torch.Tensor:
    """Targets of per-type sigmoid outputs under disjoint label spaces.

    Args:
        logits: ``(..., K)`` logits (only their detached sigmoid is used).
        gold: ``(..., K)`` 0/1 gold of the sentence's own corpus's types (other columns are ignored).
        supervised: bool, broadcastable to ``(..., K)``: the types of the sentence's own corpus.
        coeff: scale of the soft targets of the other corpora's types, clipped at 1.

    Returns:
        ``(..., K)`` float32 targets without autograd history.
    """
    with torch.no_grad():
        soft = torch.clamp(coeff * torch.sigmoid(logits.detach().float()), max=1.0)
        return torch.where(supervised, gold.detach().float(), soft)


def masked_bce_sum(
    logits: torch.Tensor,
    targets: torch.Tensor,
    cell_mask: torch.Tensor,
    *,
    pos_weight: torch.Tensor | None = None,
    neg_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum of the per-(cell, type) BCE over the cells in ``cell_mask``.

    Args:
        logits, targets: ``(..., K)``; targets are constants in [0, 1].
        cell_mask: ``(...)`` bool, the cells that count.
        pos_weight, neg_weight: optional ``(K,)`` class weights of the positive and negative term of each
            type (``class_weights.welt_binary_weights``): ``-(w+ t log s + w- (1 - t) log(1 - s))``.
    """
    targets = targets.detach().float()
    logits = logits.float()
    if pos_weight is None and neg_weight is None:
        per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    else:
        w_pos = pos_weight if pos_weight is not None else torch.ones_like(neg_weight)
        w_neg = neg_weight if neg_weight is not None else torch.ones_like(pos_weight)
        per = -(w_pos * targets * F.logsigmoid(logits) + w_neg * (1 - targets) * F.logsigmoid(-logits))
    per = torch.where(cell_mask[..., None], per, torch.zeros_like(per))
    return per.sum()


def dynamic_type_bce_sum(
    logits: torch.Tensor,
    gold: torch.Tensor,
    supervised: torch.Tensor,
    cell_mask: torch.Tensor,
    *,
    coeff: float = 1.0,
    pos_weight: torch.Tensor | None = None,
    neg_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``masked_bce_sum`` against ``dynamic_type_target``. With ``coeff == 1`` the other corpora's cells
    have zero gradient in exact arithmetic; their logits enter detached, so it is exactly zero in floating
    point as well (the loss value is unchanged)."""
    target = dynamic_type_target(logits, gold, supervised, coeff=coeff)
    if coeff == 1.0:
        logits = torch.where(supervised, logits, logits.detach())
    return masked_bce_sum(logits, target, cell_mask, pos_weight=pos_weight, neg_weight=neg_weight)
