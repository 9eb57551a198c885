"""``Prediction``: what every model's ``predict(batch)`` returns, per sentence of the batch; ``LossTerms``:
what its ``loss_terms(batch)`` returns for a training batch.

The tuples it holds are defined by the metrics that score them (``metrics.span_f1.SpanTuple``,
``metrics.relation_f1.RelationTuple``), a lower layer than the models.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from metrics.relation_f1 import RelationTuple
from metrics.span_f1 import SpanTuple


class Prediction(NamedTuple):
    """Per sentence of a batch: the predicted spans, (models that extract them) the predicted relations,
    and (models that report one) each span's confidence in [0, 1], aligned with ``spans``. Callers that
    need no scores ignore them; ``None`` means the model reports none."""

    spans: list[list[SpanTuple]]
    relations: list[list[RelationTuple]] | None = None
    scores: list[list[float]] | None = None


class LossTerms(NamedTuple):
    """A training batch's loss as a sum and the count it is the mean over: the loss is ``total / count``.

    ``total``: the scalar loss summed over the batch's units (words, action rows, sentences), with its
    autograd graph. ``count``: the number of those units in the batch, a tensor on ``total``'s device
    when it is computed there (SRU-NER's kept rows, the baseline's tagged words: no host read) or a
    Python number when the host knows it (TabERT-CNN's sentences). ``SpanNERModule.training_step`` sums
    the counts over ranks before dividing, so the loss is the mean over the global batch."""

    total: torch.Tensor
    count: torch.Tensor | int | float
