"""``Prediction``: what every model's ``predict(batch)`` returns, per sentence of the batch.

The tuples it holds are defined by the metrics that score them (``metrics.span_f1.SpanTuple``,
``metrics.relation_f1.RelationTuple``), a lower layer than the models.
"""

from __future__ import annotations

from typing import NamedTuple

from metrics.relation_f1 import RelationTuple
from metrics.span_f1 import SpanTuple


class Prediction(NamedTuple):
    """Per sentence of a batch: the predicted spans, (models that extract them) the predicted relations,
    and (models that report one) each span's confidence in [0, 1], aligned with ``spans``. Callers that
    need no scores ignore them; ``None`` means the model reports none."""

    spans: list[list[SpanTuple]]
    relations: list[list[RelationTuple]] | None = None
    scores: list[list[float]] | None = None
