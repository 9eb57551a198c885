"""Relation extraction P/R/F1 in the two settings of the joint NER+RE literature (spec B7), per relation type.

- **RE** (boundaries): a predicted relation is correct iff its type and the word spans of its head and
  its tail equal a gold relation's (entity types ignored).
- **RE+** (strict): the entity types of head and tail must match as well.

Direction always matters. Gold and predictions are sets per sentence (duplicates count once). Counts are
booked on the relation type, summed over ranks (DDP-safe). ``<setting>/micro_f1`` pools the counts of every
relation type of the corpora seen; ``<setting>/macro_f1`` is the unweighted mean of their per-type F1 (the
ADE convention). The entity side of the task (NER) is the span metric (``metrics.span_f1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchmetrics
from torch import Tensor

from datamodules.label_space import LabelSpace, split_qualified
from metrics.span_f1 import COUNTS, SCORES, book_counts, prf

SETTINGS = ("re", "re_plus")

# a predicted relation: (head start, head end, head type id, tail start, tail end, tail type id, relation id)
RelationTuple = tuple[int, int, int, int, int, int, int]


def gold_relation_tuples(spans: Tensor | Sequence, relations: Tensor | Sequence) -> set[RelationTuple]:
    """``(S, 3)`` gold spans and ``(R, 3)`` (head index, tail index, relation id) -> relation tuples."""
    spans = spans.tolist() if isinstance(spans, Tensor) else [list(s) for s in spans]
    relations = relations.tolist() if isinstance(relations, Tensor) else [list(r) for r in relations]
    return {(*spans[h], *spans[t], r) for h, t, r in relations}


class RelationF1(torchmetrics.Metric):
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, label_space: LabelSpace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label_space = label_space
        n = len(label_space.relation_types)
        for setting in SETTINGS:
            for count in COUNTS:
                self.add_state(f"{setting}_{count}", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state(
            "sentences", torch.zeros(len(label_space.corpora), dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(
        self,
        corpus_ids: Sequence[int] | Tensor,
        gold: Sequence[set[RelationTuple]],
        pred: Sequence[Sequence[RelationTuple]],
    ) -> None:
        """Per sentence: its corpus id, its gold relation tuples and its predicted ones."""
        cids = corpus_ids.tolist() if isinstance(corpus_ids, Tensor) else list(corpus_ids)
        booked: dict[str, list[int]] = {f"{s}_{c}": [] for s in SETTINGS for c in COUNTS}
        sentences = [0] * len(self.label_space.corpora)
        for cid, g, p in zip(cids, gold, pred, strict=True):
            sentences[cid] += 1
            g_strict, p_strict = set(g), {tuple(x) for x in p}
            for setting, g_set, p_set in (
                ("re_plus", g_strict, p_strict),
                ("re", {_boundaries(x) for x in g_strict}, {_boundaries(x) for x in p_strict}),
            ):
                booked[f"{setting}_tp"] += [x[-1] for x in g_set & p_set]
                booked[f"{setting}_fp"] += [x[-1] for x in p_set - g_set]
                booked[f"{setting}_fn"] += [x[-1] for x in g_set - p_set]
        book_counts(self, booked, len(self.label_space.relation_types))
        self.sentences += torch.as_tensor(sentences, dtype=torch.long, device=self.sentences.device)

    def compute(self) -> dict[str, Tensor]:
        """Percent scores: ``<setting>/<corpus>/<relation>/{precision,recall,f1}``, ``<setting>/{precision,
        recall,micro_f1,macro_f1}`` for setting in (re, re_plus)."""
        ls = self.label_space
        seen = {c for c, k in zip(ls.corpora, self.sentences.tolist()) if k > 0}
        out: dict[str, float] = {}
        for setting in SETTINGS:
            tp, fp, fn = (getattr(self, f"{setting}_{c}").tolist() for c in COUNTS)
            f1s, total = [], [0, 0, 0]
            for i, qualified in enumerate(ls.relation_types):
                if split_qualified(qualified)[0] not in seen:
                    continue
                scores = prf(tp[i], fp[i], fn[i])
                out.update(zip((f"{setting}/{qualified}/{s}" for s in SCORES), scores))
                f1s.append(scores[2])
                total = [a + b for a, b in zip(total, (tp[i], fp[i], fn[i]))]
            precision, recall, micro = prf(*total)
            out.update({f"{setting}/precision": precision, f"{setting}/recall": recall})
            out[f"{setting}/micro_f1"] = micro
            out[f"{setting}/macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
        return {k: torch.tensor(v, dtype=torch.float32) for k, v in out.items()}


def _boundaries(x: RelationTuple) -> tuple[int, int, int, int, int]:
    hs, he, _, ts, te, _, r = x
    return hs, he, ts, te, r
