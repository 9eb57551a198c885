"""One scoring path: validation, the final test and ``evaluate.py`` all score through ``Scorer``.

A ``Scorer`` holds the span metric (``SpanF1``), the relation metric (``RelationF1``, when the model has
relation types and scores its own corpora) and, on request, the partial-match schemas
(``PartialMatch``). ``update(batch, prediction)`` takes an evaluation batch (``corpus_id``, ``spans``,
``unreachable``, ``relations``; one corpus per batch, as every evaluation loader gives) and the model's
``Prediction``; ``compute()`` returns the scores without the stage prefix (``disjoint/macro_f1``,
``re/micro_f1``, ``ner/macro_f1``, ``disjoint/partial/BC5CDR/f1``, ...) and ``reset()`` starts over.

The evaluated corpora (``eval_space``) may differ from the model's (``model_space``):

- a corpus the model knows is scored in the model's label space, exactly as in training (evaluating a
  subset of its corpora only leaves the others' per-corpus keys out);
- a corpus it does not know is scored through the merged types: on its sentences each predicted type
  whose merged name is one of the corpus's types counts as that type, other predictions are ignored.

With both kinds, the macro F1 is the mean over all evaluated corpora and no micro F1 is given. The span
and relation metrics are ``torchmetrics`` metrics (summed over the processes of a DDP job by
``compute``); the ``Scorer`` is an ``nn.Module`` so that they move with the model that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from datamodules.label_space import LabelSpace
from metrics.partial_match import PartialMatch
from metrics.relation_f1 import RelationF1, gold_relation_tuples
from metrics.span_f1 import SpanF1


class Scorer(nn.Module):
    def __init__(
        self,
        model_space: LabelSpace,
        eval_space: LabelSpace | None = None,
        match: Sequence[str] = (),
    ) -> None:
        super().__init__()
        eval_space = model_space if eval_space is None else eval_space
        self.model_space, self.eval_space, self.match = model_space, eval_space, list(match)
        self.own = [c for c in eval_space.corpora if c in model_space.corpora]
        self.foreign = [c for c in eval_space.corpora if c not in model_space.corpora]
        self.spans = SpanF1(model_space)
        self.foreign_spans = SpanF1(eval_space) if self.foreign else None
        self._same = eval_space == model_space  # the common case: no retyping per sentence
        self.relations = RelationF1(model_space) if self._same and model_space.relation_types else None
        self.partial = PartialMatch(model_space) if match and self.own else None
        self.foreign_partial = PartialMatch(eval_space) if match and self.foreign else None
        self._to_model = np.asarray([model_space.type_index.get(q, -1) for q in eval_space.types], np.int64)
        self._type_maps = foreign_type_maps(model_space, eval_space)

    def update(self, batch: Mapping[str, Any], prediction: Any) -> None:
        corpus = self.eval_space.corpora[int(batch["corpus_id"][0])]
        if self._same:
            corpus_ids, gold, unreachable = batch["corpus_id"], batch["spans"], batch.get("unreachable")
        elif corpus in self.own:
            corpus_ids = torch.full_like(batch["corpus_id"], self.model_space.corpus_index[corpus])
            gold = [torch.as_tensor(_retype(s.numpy(), self._to_model)) for s in batch["spans"]]
            unreachable = [torch.as_tensor(self._to_model[u.numpy()]) for u in batch["unreachable"]]
        else:
            table = self._type_maps[self.eval_space.corpus_index[corpus]]
            spans = [
                [(a, b, int(table[t])) for a, b, t in found if table[t] >= 0] for found in prediction.spans
            ]
            self.foreign_spans.update(batch["corpus_id"], batch["spans"], spans, batch.get("unreachable"))
            if self.foreign_partial is not None:
                self.foreign_partial.update(corpus, batch["spans"], spans, batch.get("unreachable"))
            return
        self.spans.update(corpus_ids, gold, prediction.spans, unreachable)
        if self.partial is not None:
            self.partial.update(corpus, gold, prediction.spans, unreachable)
        if self.relations is not None:
            pairs = [gold_relation_tuples(s, r) for s, r in zip(batch["spans"], batch["relations"])]
            self.relations.update(corpus_ids, pairs, prediction.relations or [[] for _ in pairs])

    def compute(self) -> dict[str, float]:
        results: dict[str, float] = {}
        if self.own:
            results.update(_scores(self.spans, self.own, self.model_space.corpora))
        if self.foreign:
            foreign = _scores(self.foreign_spans, self.foreign, self.eval_space.corpora)
            if self.own:
                for view in ("disjoint", "merged"):
                    corpora_f1 = [results[f"{view}/{c}/f1"] for c in self.own] + [
                        foreign[f"{view}/{c}/f1"] for c in self.foreign
                    ]
                    foreign[f"{view}/macro_f1"] = sum(corpora_f1) / len(corpora_f1)
                    results.pop(f"{view}/micro_f1", None)
                    foreign.pop(f"{view}/micro_f1", None)
            results.update(foreign)
        if self.relations is not None:
            results.update({k: float(v) for k, v in self.relations.compute().items()})
            results.update(ner_scores(results, self.model_space))
        if self.match:
            matched = {
                **(self.partial.compute(self.match) if self.partial is not None else {}),
                **(self.foreign_partial.compute(self.match) if self.foreign_partial is not None else {}),
            }
            if self.own and self.foreign:
                for key in [k for k in matched if k.endswith("/macro_f1")]:
                    view, schema = key.split("/")[:2]
                    per_corpus = [matched[f"{view}/{schema}/{c}/f1"] for c in (*self.own, *self.foreign)]
                    matched[key] = sum(per_corpus) / len(per_corpus)
            results.update(matched)
        return results

    def reset(self) -> None:
        for metric in (self.spans, self.foreign_spans, self.relations):
            if metric is not None:
                metric.reset()
        for partial in (self.partial, self.foreign_partial):
            if partial is not None:
                partial.reset()


def ner_scores(results: Mapping[str, float], label_space: LabelSpace) -> dict[str, float]:
    """NER in the joint-extraction convention: ``ner/micro_f1`` (pooled over entity types, the disjoint
    view) and ``ner/macro_f1`` (the mean per-type F1)."""
    per_type = [results[f"disjoint/{q}/f1"] for q in label_space.types]
    return {"ner/micro_f1": results["disjoint/micro_f1"], "ner/macro_f1": sum(per_type) / len(per_type)}


def foreign_type_maps(model_space: LabelSpace, eval_space: LabelSpace) -> dict[int, np.ndarray]:
    """Per corpus of ``eval_space`` the model does not know (by its ``eval_space`` index): model type id ->
    the corpus's type of the same merged name, or -1 (ignored on its sentences)."""
    maps = {}
    for corpus in eval_space.corpora:
        if corpus in model_space.corpora:
            continue
        table = np.full(len(model_space), -1, dtype=np.int64)
        for t in range(len(model_space)):
            merged = model_space.merged_of(t)
            if merged in eval_space.corpus_types[corpus]:
                table[t] = eval_space.type_id(corpus, merged)
        maps[eval_space.corpus_index[corpus]] = table
    return maps


def _scores(metric: SpanF1, keep: Sequence[str], all_corpora: Sequence[str]) -> dict[str, float]:
    """``metric``'s scores without the per-corpus keys of corpora not evaluated."""
    dropped = set(all_corpora) - set(keep)
    return {
        k: float(v)
        for k, v in metric.compute().items()
        if not (k.count("/") >= 2 and k.split("/")[1] in dropped)
    }


def _retype(spans: np.ndarray, to_model: np.ndarray) -> np.ndarray:
    """``(S, 3)`` spans with their type ids moved from the evaluation's label space to the model's."""
    out = spans.copy()
    out[:, 2] = to_model[spans[:, 2]]
    return out
