"""Partial-match scores: the SemEval-2013 task 9.1 schemas ``strict``, ``exact``, ``partial`` and ``type``,
computed by the ``nervaluate`` package, per corpus and type, in the disjoint and the merged view.

The views select gold and predictions as the exact-span metric does (``metrics/span_f1.py``): on a
sentence of corpus D the **disjoint** view keeps D's own qualified types; the **merged** view maps every
type to its merged name and keeps the predictions whose merged name is one of D's. Duplicates collapse
in both. What the schemas count, per predicted and gold mention (nervaluate, greedy in span order):

- ``strict``: correct = same boundaries and type; ``exact``: same boundaries, any type;
- ``partial``: boundaries overlap (a half match scores 0.5), any type; ``type``: overlap and same type.

A gold mention a hard split cut (``unreachable``) is a gold mention nothing can overlap: missed in every
schema. Keys: ``<view>/<schema>/<corpus>/{precision,recall,f1}``, ``<view>/<schema>/<corpus>/<type>/...``
and ``<view>/<schema>/macro_f1`` (mean over corpora), in percent. Training's own metrics stay exact-span.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from datamodules.label_space import LabelSpace
from metrics.span_f1 import VIEWS

SCHEMAS = {
    "strict": "strict",
    "exact": "exact",
    "partial": "partial",
    "type": "ent_type",
}  # ours: nervaluate's
FAR = 1 << 40  # where a cut gold mention is put: past every word, so nothing overlaps it


class PartialMatch:
    """Accumulates sentences per corpus, then scores them with nervaluate (``compute``)."""

    def __init__(self, label_space: LabelSpace):
        self.label_space = label_space
        self.gold: dict[tuple[str, str], list[list[dict]]] = {}
        self.pred: dict[tuple[str, str], list[list[dict]]] = {}

    def reset(self) -> None:
        self.gold, self.pred = {}, {}

    def update(
        self,
        corpus: str,
        gold: Iterable[Sequence[Sequence[int]]],
        predicted: Iterable[Sequence[Sequence[int]]],
        unreachable: Iterable[Sequence[int]] | None = None,
    ) -> None:
        """Sentences of ``corpus``: per sentence its gold and predicted ``(start, end, type_id)`` (end
        exclusive, type ids of ``label_space``) and the type ids of its cut gold mentions."""
        ls = self.label_space
        own = set(ls.type_ids_of(corpus))
        own_merged = set(ls.corpus_types[corpus])
        cut_lists = list(unreachable) if unreachable is not None else None
        for k, (gold_spans, pred_spans) in enumerate(zip(gold, predicted, strict=True)):
            gold_set = {(int(a), int(b), int(t)) for a, b, t in _rows(gold_spans)}
            pred_set = {(int(a), int(b), int(t)) for a, b, t in _rows(pred_spans)}
            cut = [int(t) for t in _rows(cut_lists[k])] if cut_lists is not None else []
            disjoint_gold = sorted((a, b, ls.types[t]) for a, b, t in gold_set)
            disjoint_pred = sorted((a, b, ls.types[t]) for a, b, t in pred_set if t in own)
            merged_gold = sorted({(a, b, ls.merged_of(t)) for a, b, t in gold_set})
            merged_pred = sorted(
                {(a, b, ls.merged_of(t)) for a, b, t in pred_set if ls.merged_of(t) in own_merged}
            )
            far_disjoint = [(FAR + 2 * i, FAR + 2 * i + 1, ls.types[t]) for i, t in enumerate(cut)]
            far_merged = [(a, b, ls.merged_of(t)) for (a, b, _), t in zip(far_disjoint, cut)]
            for view, g, p in (
                ("disjoint", disjoint_gold + far_disjoint, disjoint_pred),
                ("merged", merged_gold + far_merged, merged_pred),
            ):
                self.gold.setdefault((view, corpus), []).append(_entities(g))
                self.pred.setdefault((view, corpus), []).append(_entities(p))

    def compute(self, schemas: Sequence[str] = tuple(SCHEMAS)) -> dict[str, float]:
        from nervaluate import Evaluator

        unknown = [s for s in schemas if s not in SCHEMAS]
        if unknown:
            raise ValueError(f"unknown match schema {', '.join(unknown)}: use {', '.join(SCHEMAS)}")
        ls, out = self.label_space, {}
        corpora = sorted({corpus for _, corpus in self.gold})
        for view in VIEWS:
            for corpus in corpora:
                if view == "disjoint":
                    tags = [ls.types[t] for t in ls.type_ids_of(corpus)]
                else:
                    tags = list(ls.corpus_types[corpus])
                results = Evaluator(
                    self.gold[view, corpus], self.pred[view, corpus], tags=tags, loader="dict"
                ).evaluate()
                for schema in schemas:
                    _put(out, f"{view}/{schema}/{corpus}", results["overall"][SCHEMAS[schema]])
                    for tag in tags:
                        name = tag.split("/", 1)[1] if view == "disjoint" else tag
                        found = results["entities"].get(tag, {}).get(SCHEMAS[schema])
                        if found is not None:
                            _put(out, f"{view}/{schema}/{corpus}/{name}", found)
                        else:  # neither gold nor predicted anywhere
                            out.update({f"{view}/{schema}/{corpus}/{name}/{m}": 0.0 for m in _METRICS})
            for schema in schemas:
                scores = [out[f"{view}/{schema}/{c}/f1"] for c in corpora]
                out[f"{view}/{schema}/macro_f1"] = sum(scores) / len(scores) if scores else 0.0
        return out


_METRICS = ("precision", "recall", "f1")


def is_match_key(key: str) -> bool:
    """``<stage>/<view>/<schema>/...``: a partial-match score (kept apart from the exact-span tables)."""
    parts = key.split("/")
    return len(parts) >= 4 and parts[1] in VIEWS and parts[2] in SCHEMAS


def render_match(metrics: dict, stage: str, schemas: Sequence[str], *, markdown: bool = True) -> str:
    """One table per schema: per corpus P / R / F1 in both views, then the macro F1."""
    corpora = sorted(
        {k.split("/")[3] for k in metrics if is_match_key(k) and k.count("/") == 4 and k.endswith("/f1")}
        - {"macro_f1"}
    )
    blocks = []
    for schema in schemas:
        head = ["corpus", *(f"{v} {m}" for v in VIEWS for m in ("P", "R", "F1"))]
        rows = []
        for corpus in corpora:
            cells = [f"{metrics[f'{stage}/{v}/{schema}/{corpus}/{m}']:.2f}" for v in VIEWS for m in _METRICS]
            rows.append([corpus, *cells])
        macro = [f"{metrics[f'{stage}/{v}/{schema}/macro_f1']:.2f}" for v in VIEWS]
        rows.append(["macro F1", "", "", macro[0], "", "", macro[1]])
        title = f"Partial match: {schema}" + (" (SemEval-2013; nervaluate)" if schema == schemas[0] else "")
        if markdown:
            table = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            table += ["| " + " | ".join(r) + " |" for r in rows]
            blocks.append(f"### {title}\n\n" + "\n".join(table) + "\n")
        else:
            width = max(len(r[0]) for r in [head, *rows])
            lines = [title, "  ".join([head[0].ljust(width), *(h.rjust(11) for h in head[1:])])]
            lines += ["  ".join([r[0].ljust(width), *(c.rjust(11) for c in r[1:])]) for r in rows]
            blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _put(out: dict[str, float], prefix: str, result) -> None:
    for metric in _METRICS:
        out[f"{prefix}/{metric}"] = 100.0 * float(getattr(result, metric))
    for count in ("correct", "incorrect", "partial", "missed", "spurious"):
        out[f"{prefix}/{count}"] = float(getattr(result, count))


def _rows(spans) -> list:
    return spans.tolist() if hasattr(spans, "tolist") else list(spans)


def _entities(spans: Sequence[tuple[int, int, str]]) -> list[dict]:
    """nervaluate's documents: inclusive ends."""
    return [{"label": label, "start": a, "end": b - 1} for a, b, label in spans]
