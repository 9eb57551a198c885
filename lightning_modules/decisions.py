"""What a model decides on: scores corrected for the weighting of its loss, and per-type thresholds.

A binary cross-entropy that weighs a column's positives by ``w+`` and its negatives by ``w-`` is
minimised at ``sigmoid(u) = w+ p / (w+ p + w- (1 - p))``: the loss-optimal logit moves from ``logit(p)``
to ``logit(p) + log(w+ / w-)``. A decision on the raw logit (``sigmoid(u) > 0.5``, an argmax over columns)
therefore fires at a calibrated probability of ``1 / (1 + w+ / w-)`` instead of 0.5: about 9 % at
``w+ / w- = 10``. ``model.decisions`` says which decisions read the corrected score ``u - c``,
``c = log(w+ / w-)`` per column (``binary_offset``; for a weighted softmax cross-entropy with class
weights ``w_c`` the optimum moves by ``log w_c``, ``class_offset``):

- ``thresholds`` (the default): the decisions that compare one type's probability with a threshold
  (SRU-NER's TR/RE cells, TabERT-CNN's cells). The competitions between columns stay raw (SRU-NER's row
  argmax, its pointer, the EOA stop and the displaced-SH test; paper mode's argmax): on ``mt6_cpu`` a
  calibrated row argmax turns true TR rows into SH rows, which no threshold can undo (docs/results.md,
  issue 33's study);
- ``calibrated``: every decision the weighting shifted;
- ``raw``: none, as before (for comparison).

Without weighting ``c = 0`` and all three agree.

The weights are model state (checkpoints and exports carry them), so a loaded model decides as it was
trained. So are the per-type decision thresholds, tuned on dev (``training/thresholds.py``): a type's
mention fires when its calibrated probability is above its threshold.
"""

from __future__ import annotations

import numpy as np
import torch

# calibrated: every decision the weighting shifted; thresholds: only the thresholds on a type's
# probability (SRU-NER's TR/RE cells, TabERT-CNN's span cells), not an argmax over columns or the SH
# test; raw: none
DECISIONS = ("calibrated", "thresholds", "raw")
DEFAULT_THRESHOLD = 0.5
GRANULARITIES = ("auto", "corpus", "type")  # thresholds.granularity: what a threshold is tuned per


def binary_offset(pos_weight: torch.Tensor, neg_weight: torch.Tensor) -> torch.Tensor:
    """``log(w+ / w-)`` per column: what a weighted BCE adds to each column's loss-optimal logit."""
    return (pos_weight.double().log() - neg_weight.double().log()).float()


def class_offset(class_weights: torch.Tensor) -> torch.Tensor:
    """``log w_c`` per class: what a weighted cross-entropy adds to each class's loss-optimal logit
    (up to a constant shared by the classes, which no argmax sees)."""
    return class_weights.double().log().float()


def threshold_logits(thresholds: float | np.ndarray | torch.Tensor) -> np.ndarray:
    """Probability thresholds in (0, 1) -> the logits they correspond to, float64:
    ``sigmoid(z) > t  <=>  z > logit(t)``."""
    t = np.asarray(thresholds.detach().cpu() if isinstance(thresholds, torch.Tensor) else thresholds)
    t = t.astype(np.float64)
    if ((t <= 0) | (t >= 1)).any():
        raise ValueError(f"decision thresholds must be in (0, 1), got {t.min():g} .. {t.max():g}")
    return np.log(t) - np.log1p(-t)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function on float64 (exact at +-inf)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def check_decisions(value: str, key: str = "model.decisions") -> None:
    if value not in DECISIONS:
        raise ValueError(f"{key}={value}: use one of {', '.join(DECISIONS)}")
