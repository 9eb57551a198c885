"""The names metrics are logged under, defined once.

A logged name is ``<stage>/<result>``: ``stage`` is ``train``, ``val`` or ``test``; ``result`` is a key of
``SpanF1.compute()`` (``<view>/macro_f1``, ``<view>/<corpus>/f1``, ...), of ``RelationF1.compute()``
(``re_plus/micro_f1``, ...) or of ``ner_scores`` (``ner/macro_f1``). The run's selection metric is
``callbacks.monitor`` (default :data:`DEFAULT_MONITOR`); checkpoint selection, early stopping, the W&B
best-value summaries and ``metrics.json`` all follow it.
"""

from __future__ import annotations

MERGED_MACRO_F1 = "merged/macro_f1"
DISJOINT_MACRO_F1 = "disjoint/macro_f1"
TRAIN_LOSS = "train/loss"
COUNT_SUFFIXES = ("/tp", "/fp", "/fn")  # summed counts behind the scores: computed, never logged


def logged(stage: str, result: str) -> str:
    """The name ``result`` (a metric's own key) is logged under in ``stage``."""
    return f"{stage}/{result}"


DEFAULT_MONITOR = logged("val", MERGED_MACRO_F1)
# names runs used before the selection metric was logged once, under its own key
RENAMED = {"val/f1_merged_macro": DEFAULT_MONITOR, "val/f1_disjoint_macro": logged("val", DISJOINT_MACRO_F1)}


def best_value_summaries(monitor: str) -> dict[str, str]:
    """W&B best-value summaries (name -> ``max``/``min``): the run's monitor, both macro F1 views on dev and
    the training loss."""
    summaries = {
        monitor: "max",
        logged("val", MERGED_MACRO_F1): "max",
        logged("val", DISJOINT_MACRO_F1): "max",
    }
    return {**summaries, TRAIN_LOSS: "min"}
