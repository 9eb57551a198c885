"""Evaluation and prediction batches bounded by the model's estimated activation memory.

A fixed sentence count is the wrong cap for a model whose memory grows with the square of the sentence
(TabERT-CNN's n x n table): 64 sentences of 300 words need ~20 GB where 64 of 30 words need 0.2 GB. So
the batches are cut greedily along the (length-sorted) row order: a batch takes rows while it has fewer
than ``max_sentences`` and the model's estimate for the padded batch, ``cost(sentences, words, subwords)``
in bytes, stays within ``budget_bytes``. A row that exceeds the budget alone is a batch of its own (it
cannot be split further; the budget is then exceeded, and said once).

The data module knows nothing of models: the cost function comes from the model
(``SpanNERModule.eval_batch_bytes``), and without one the batches are cut by ``max_sentences`` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_EVAL_MEMORY_MB = 4096.0  # data.eval_memory_mb, also for run configs written before it existed
BatchCost = Callable[[int, int, int], float]  # (sentences, max words, max subwords) -> bytes


def budget_batches(
    order: Sequence[int],
    words: np.ndarray,
    subwords: np.ndarray,
    *,
    max_sentences: int,
    cost: BatchCost | None = None,
    budget_bytes: float | None = None,
) -> list[list[int]]:
    """Consecutive runs of ``order`` (row indices into ``words``/``subwords``, the rows' word and subword
    counts) as batches; see the module docstring."""
    order = [int(i) for i in order]
    if cost is None or budget_bytes is None:
        return [order[i : i + max_sentences] for i in range(0, len(order), max_sentences)]
    batches: list[list[int]] = []
    batch: list[int] = []
    most_words = most_subwords = 0
    over = 0
    for row in order:
        n, s = max(most_words, int(words[row])), max(most_subwords, int(subwords[row]))
        if batch and (len(batch) == max_sentences or cost(len(batch) + 1, n, s) > budget_bytes):
            batches.append(batch)
            batch, n, s = [], int(words[row]), int(subwords[row])
        if not batch and cost(1, n, s) > budget_bytes:
            over += 1
        batch.append(row)
        most_words, most_subwords = n, s
    if batch:
        batches.append(batch)
    if over:
        log.warning(
            "%d sentence(s) exceed the evaluation memory budget (%.0f MB) alone; each runs as a batch "
            "of one. Raise data.eval_memory_mb if that runs out of memory.",
            over,
            budget_bytes / 2**20,
        )
    return batches
