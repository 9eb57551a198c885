"""Class weights against label imbalance (WeLT, seed 002), off by default.

The rule, over **all** C classes of a classifier including the majority class (``None``/``O``): with
``n_c`` the count of class ``c`` among the training targets (per cell, not per relation instance) and
``N = sum_c n_c``::

    w_c = C * softmax_c(1 - n_c / N)

``softmax(1 - n_c / N)`` is WeLT's rule; the factor C makes the weights average 1, so switching weighting on
re-balances classes *within* a loss term without shrinking the term against the other ones (the reference
variant counts no ``None`` cells and keeps the softmax's sum of 1, which mostly scales the whole relation
loss down by about C; spec B10). A class never seen gets ``n_c = 0`` and hence the largest weight.

For a sigmoid output (one binary classifier per type) the same rule runs per type over its two classes
(cells that are not / are a mention of that type), giving a negative and a positive weight per type.
"""

from __future__ import annotations

import torch


def welt_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """``(C,)`` counts (every class, the majority one included) -> ``(C,)`` float32 weights averaging 1."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() < 2:
        raise ValueError(
            f"class counts must be a vector of at least 2 classes, got shape {tuple(counts.shape)}"
        )
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("class counts must be >= 0 with a positive total")
    weights = torch.softmax(1.0 - counts / counts.sum(), dim=0) * counts.numel()
    return weights.float()


def welt_binary_weights(
    positives: torch.Tensor, negatives: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per type ``k``: the WeLT weights of its two classes from ``(K,)`` positive and negative cell counts.

    Returns ``(pos_weight, neg_weight)``, each ``(K,)``, with ``pos_weight + neg_weight == 2``.
    """
    stacked = torch.stack([torch.as_tensor(negatives), torch.as_tensor(positives)], dim=-1).double()  # (K, 2)
    if (stacked < 0).any() or (stacked.sum(-1) <= 0).any():
        raise ValueError("per-type cell counts must be >= 0 with a positive total for every type")
    weights = torch.softmax(1.0 - stacked / stacked.sum(-1, keepdim=True), dim=-1) * 2
    return weights[:, 1].float(), weights[:, 0].float()


def balanced_binary_weights(
    positives: torch.Tensor, negatives: torch.Tensor, cap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column ``k``: a positive weight of ``negatives / positives`` clamped to ``[1 / cap, cap]`` (``cap``
    for a column never positive) and a negative weight of 1, so each column's positives weigh about as
    much as its negatives, within the cap.

    Returns ``(pos_weight, neg_weight)``, each ``(K,)`` float32.
    """
    pos = torch.as_tensor(positives, dtype=torch.float64)
    neg = torch.as_tensor(negatives, dtype=torch.float64)
    if (pos < 0).any() or (neg < 0).any() or cap < 1:
        raise ValueError("counts must be >= 0 and the cap >= 1")
    ratio = torch.where(pos > 0, neg / pos.clamp(min=1), torch.full_like(pos, cap))
    return ratio.clamp(1 / cap, cap).float(), torch.ones_like(ratio).float()
