"""Exact-span, mention-level P/R/F1 over corpus-qualified types, in the disjoint and the merged view.

A sentence from corpus D is scored only against D's annotation guidelines (spec A6/A8, paper §3.5):

- **disjoint** view: only D's own qualified types count (``BC5CDR/Chemical`` on a BC5CDR sentence);
  predictions of other corpora's types are ignored. Gold and predictions are sets of
  ``(start, end, type_id)``, so duplicates count once.
- **merged** view: every gold and predicted type is mapped to its merged type (corpus prefix dropped) and
  duplicates collapse; a prediction counts iff its merged type is one of D's merged types
  (``BC4CHEMD/Chemical`` on a BC5CDR sentence counts as ``Chemical``). Counts are booked on D's qualified
  type with that merged name, so both views share the ``(num_types,)`` indexing of ``LabelSpace.types``.

P, R and F1 come from summed counts, in percent, 0 where undefined. Per-corpus scores are micro over the
corpus's types; ``<view>/macro_f1`` is the unweighted mean of the per-corpus F1 over the corpora seen in
``update`` (at least one sentence); the merged macro F1 is the selection metric (spec Part 1, item 9).
All states are sum-reduced, so the metric is correct under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchmetrics
from torch import Tensor

from datamodules.label_space import LabelSpace

VIEWS = ("disjoint", "merged")
COUNTS = ("tp", "fp", "fn")
SCORES = ("precision", "recall", "f1")

# a mention: (start, end, type_id) over the words of a sentence, exclusive end, global type id
SpanTuple = tuple[int, int, int]
Spans = Tensor | Sequence[Sequence[int]]  # one sentence's spans: a (S, 3) tensor or SpanTuple-like rows


def _state_name(view: str, count: str) -> str:
    return f"{view}_{count}"


def _spans(x: Spans) -> set[SpanTuple]:
    rows = x.tolist() if isinstance(x, Tensor) else x
    return {(int(r[0]), int(r[1]), int(r[2])) for r in rows}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 in percent from counts; 0 where a denominator is 0."""
    p = 100.0 * tp / (tp + fp) if tp + fp else 0.0
    r = 100.0 * tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


class SpanF1(torchmetrics.Metric):
    """Summed per-type TP/FP/FN in the disjoint and merged views; see the module docstring."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, label_space: LabelSpace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label_space = label_space
        n_types, n_corpora = len(label_space), len(label_space.corpora)
        for view in VIEWS:
            for count in COUNTS:
                self.add_state(
                    _state_name(view, count), torch.zeros(n_types, dtype=torch.long), dist_reduce_fx="sum"
                )
        # sentences seen per corpus (decides which corpora enter the macro average)
        self.add_state("sentences", torch.zeros(n_corpora, dtype=torch.long), dist_reduce_fx="sum")
        # distinct predictions of other corpora's types, per source corpus (logged, never scored)
        self.add_state("other_preds", torch.zeros(n_corpora, dtype=torch.long), dist_reduce_fx="sum")

        # plain-Python lookup tables for the per-span set work in update()
        self._n_types = n_types
        self._merged_of: list[int] = label_space.merged_id_per_type()
        corpus_of = label_space.corpus_id_per_type()
        self._own: list[frozenset[int]] = [
            frozenset(t for t in range(n_types) if corpus_of[t] == c) for c in range(n_corpora)
        ]
        # per corpus: merged type id -> the corpus's own qualified type id with that merged name
        self._merged_to_own: list[dict[int, int]] = [
            {self._merged_of[t]: t for t in own} for own in self._own
        ]

    def update(
        self,
        corpus_ids: Sequence[int] | Tensor,
        gold: Sequence[Spans],
        pred: Sequence[Spans],
        unreachable: Sequence[Sequence[int] | Tensor] | None = None,
    ) -> None:
        """Add a batch: per sentence its corpus id and ``(S, 3)`` ``(start, end, type_id)`` gold and pred.

        ``unreachable``: per sentence, the type ids of gold mentions no prediction can match (cut by a
        hard split of an over-long sentence); each is a false negative in both views.
        """
        cids = corpus_ids.tolist() if isinstance(corpus_ids, Tensor) else list(corpus_ids)
        if not len(cids) == len(gold) == len(pred):
            raise ValueError(
                f"batch sizes differ: {len(cids)} corpus ids, {len(gold)} gold, {len(pred)} pred"
            )
        n_corpora = len(self._own)
        booked: dict[str, list[int]] = {_state_name(v, c): [] for v in VIEWS for c in COUNTS}
        sentences = [0] * n_corpora
        other = [0] * n_corpora
        merged_of = self._merged_of
        for cid, g, p in zip(cids, gold, pred):
            if not 0 <= cid < n_corpora:
                raise ValueError(f"corpus id {cid} outside 0..{n_corpora - 1}")
            gold_set, pred_set = _spans(g), _spans(p)
            for _, _, t in gold_set | pred_set:
                if not 0 <= t < self._n_types:
                    raise ValueError(f"type id {t} outside 0..{self._n_types - 1}")
            own, to_own = self._own[cid], self._merged_to_own[cid]
            sentences[cid] += 1
            other[cid] += sum(1 for s in pred_set if s[2] not in own)

            g_dis = {s for s in gold_set if s[2] in own}
            p_dis = {s for s in pred_set if s[2] in own}
            booked["disjoint_tp"] += [s[2] for s in g_dis & p_dis]
            booked["disjoint_fp"] += [s[2] for s in p_dis - g_dis]
            booked["disjoint_fn"] += [s[2] for s in g_dis - p_dis]

            g_mer = {(a, b, merged_of[t]) for a, b, t in gold_set if merged_of[t] in to_own}
            p_mer = {(a, b, merged_of[t]) for a, b, t in pred_set if merged_of[t] in to_own}
            booked["merged_tp"] += [to_own[s[2]] for s in g_mer & p_mer]
            booked["merged_fp"] += [to_own[s[2]] for s in p_mer - g_mer]
            booked["merged_fn"] += [to_own[s[2]] for s in g_mer - p_mer]

        for cid, types in zip(cids, unreachable or ()):
            types = types.tolist() if isinstance(types, Tensor) else list(types)
            own, to_own = self._own[cid], self._merged_to_own[cid]
            booked["disjoint_fn"] += [t for t in types if t in own]
            booked["merged_fn"] += [to_own[merged_of[t]] for t in types if merged_of[t] in to_own]

        book_counts(self, booked, self._n_types)
        device = self.sentences.device
        self.sentences += torch.as_tensor(sentences, dtype=torch.long, device=device)
        self.other_preds += torch.as_tensor(other, dtype=torch.long, device=device)

    # --- results ---------------------------------------------------------------------------------
    def _local_counts(self) -> dict[str, int]:
        ls = self.label_space
        out: dict[str, int] = {}
        for view in VIEWS:
            values = {c: getattr(self, _state_name(view, c)).tolist() for c in COUNTS}
            for i, qualified in enumerate(ls.types):
                for c in COUNTS:
                    out[f"{view}/{qualified}/{c}"] = int(values[c][i])
        for name in ("sentences", "other_preds"):
            for corpus, v in zip(ls.corpora, getattr(self, name).tolist()):
                out[f"{name}/{corpus}"] = int(v)
        return out

    def counts(self) -> dict[str, int]:
        """Summed counts (synchronised across processes, like ``compute``).

        Keys: ``<view>/<corpus>/<type>/{tp,fp,fn}`` for view in (disjoint, merged),
        ``sentences/<corpus>`` and ``other_preds/<corpus>`` (distinct predictions of other corpora's types
        on that corpus's sentences).
        """
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn,
            should_sync=self._to_sync and not self._is_synced,
            should_unsync=self._should_unsync,
        ):
            return self._local_counts()

    def compute(self) -> dict[str, Tensor]:
        """Scores in percent as float tensors; see :func:`score_counts` for the keys."""
        scores = score_counts(self._local_counts(), self.label_space)
        return {k: torch.tensor(v, dtype=torch.float32) for k, v in scores.items()}


def book_counts(metric: torchmetrics.Metric, booked: dict[str, list[int]], size: int) -> None:
    """Add the per-id occurrence counts of ``booked[state]`` to each ``(size,)`` count state of ``metric``."""
    for name, ids in booked.items():
        if ids:
            counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=size)
            getattr(metric, name).add_(torch.as_tensor(counts, device=getattr(metric, name).device))


def score_counts(counts: dict[str, int], label_space: LabelSpace) -> dict[str, float]:
    """P/R/F1 (percent) from :meth:`SpanF1.counts`-style counts.

    Keys, for view in (disjoint, merged): ``<view>/<corpus>/<type>/{precision,recall,f1}``,
    ``<view>/<corpus>/{precision,recall,f1}`` (micro over the corpus's types), ``<view>/micro_f1`` (micro
    over all types) and ``<view>/macro_f1`` (mean of per-corpus F1 over corpora with ≥ 1 sentence seen).
    """
    out: dict[str, float] = {}
    seen = [c for c in label_space.corpora if counts.get(f"sentences/{c}", 0) > 0]
    for view in VIEWS:
        total = dict.fromkeys(COUNTS, 0)
        corpus_f1: dict[str, float] = {}
        for corpus in label_space.corpora:
            summed = dict.fromkeys(COUNTS, 0)
            for t in label_space.corpus_types[corpus]:
                key = f"{view}/{corpus}/{t}"
                tp, fp, fn = (counts[f"{key}/{c}"] for c in COUNTS)
                for c, v in zip(COUNTS, (tp, fp, fn)):
                    summed[c] += v
                out.update(zip((f"{key}/{s}" for s in SCORES), prf(tp, fp, fn)))
            scores = prf(summed["tp"], summed["fp"], summed["fn"])
            out.update(zip((f"{view}/{corpus}/{s}" for s in SCORES), scores))
            corpus_f1[corpus] = scores[2]
            for c in COUNTS:
                total[c] += summed[c]
        out[f"{view}/micro_f1"] = prf(total["tp"], total["fp"], total["fn"])[2]
        out[f"{view}/macro_f1"] = sum(corpus_f1[c] for c in seen) / len(seen) if seen else 0.0
    return out


__all__ = ["SpanF1", "book_counts", "prf", "score_counts"]
