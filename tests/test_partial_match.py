"""Partial-match scores (``metrics/partial_match.py``): a hand-built sentence with the counts of each
SemEval-2013 schema worked out by hand, in both views and with a cut gold mention; agreement with
nervaluate called directly on 200 random span sets; ``evaluate.py --match`` parsing."""

from __future__ import annotations

import random

import pytest
from nervaluate import Evaluator

import evaluate
from datamodules.label_space import LabelSpace
from errors import BionerError
from metrics.partial_match import PartialMatch, is_match_key, render_match

LS = LabelSpace({"C1": ["X", "Y"], "C2": ["X"]})  # type ids: 0 C1/X, 1 C1/Y, 2 C2/X
X, Y, OTHER_X = 0, 1, 2


def _counts(scores: dict, prefix: str) -> tuple:
    return tuple(
        int(scores[f"{prefix}/{c}"]) for c in ("correct", "incorrect", "partial", "missed", "spurious")
    )


def test_each_schema_counts_a_hand_built_sentence_as_worked_out_by_hand():
    gold = [(0, 2, X), (3, 4, Y), (5, 7, X), (8, 9, Y)]
    predicted = [
        (0, 2, X),  # the same mention
        (3, 4, X),  # the boundaries of (3, 4, Y), the wrong type
        (5, 6, X),  # overlaps (5, 7, X), the right type
        (10, 11, Y),  # overlaps nothing
        (12, 13, OTHER_X),  # another corpus's type: ignored (disjoint), a spurious X (merged)
    ]  # (8, 9, Y) is missed; one more Y was cut by a hard split: missed in every schema
    match = PartialMatch(LS)
    match.update("C1", [gold], [predicted], unreachable=[[Y]])
    scores = match.compute()
    # (correct, incorrect, partial, missed, spurious) per schema; P = (correct + partial / 2) / actual for
    # partial and type, correct / actual otherwise; actual = all predictions, possible = all gold (5)
    want = {
        "strict": ((1, 2, 0, 2, 1), 25.0, 20.0),
        "exact": ((2, 1, 0, 2, 1), 50.0, 40.0),
        "partial": ((2, 0, 1, 2, 1), 62.5, 50.0),
        "type": ((2, 1, 0, 2, 1), 50.0, 40.0),
    }
    for schema, (counts, precision, recall) in want.items():
        prefix = f"disjoint/{schema}/C1"
        assert _counts(scores, prefix) == counts, schema
        assert scores[f"{prefix}/precision"] == pytest.approx(precision)
        assert scores[f"{prefix}/recall"] == pytest.approx(recall)
        f1 = 2 * precision * recall / (precision + recall)
        assert scores[f"{prefix}/f1"] == pytest.approx(f1)
        merged = f"merged/{schema}/C1"  # one more spurious: 5 predictions
        spurious_one_more = (*counts[:4], counts[4] + 1)
        assert _counts(scores, merged) == spurious_one_more, schema
        assert scores[f"{merged}/precision"] == pytest.approx(precision * 4 / 5)
    # per type (nervaluate scores each type on its own mentions): X has gold (0,2) (5,7), predictions
    # (0,2) (3,4) (5,6): strict 1 correct, (5,6) incorrect against (5,7), (3,4) spurious
    assert _counts(scores, "disjoint/strict/C1/X") == (1, 1, 0, 0, 1)
    assert scores["disjoint/strict/macro_f1"] == pytest.approx(scores["disjoint/strict/C1/f1"])


def _random_sentence(rng: random.Random) -> tuple[list, list]:
    def spans(k: int) -> list:
        out = []
        for _ in range(k):
            a = rng.randrange(12)
            out.append((a, a + rng.randint(1, 4), rng.choice([X, Y, OTHER_X])))
        return out

    return spans(rng.randint(0, 5)), spans(rng.randint(0, 5))


def test_agrees_with_nervaluate_on_200_random_span_sets():
    rng = random.Random(7)
    for trial in range(200):
        sentences = [_random_sentence(rng) for _ in range(rng.randint(1, 4))]
        match = PartialMatch(LS)
        gold_c1 = [[(a, b, t) for a, b, t in g if t != OTHER_X] for g, _ in sentences]  # C1's own gold
        match.update("C1", gold_c1, [p for _, p in sentences])
        ours = match.compute()
        names = {X: "X", Y: "Y", OTHER_X: "X"}
        for view in ("disjoint", "merged"):
            true, pred = [], []
            for gold, (_, predicted) in zip(gold_c1, sentences):
                if view == "disjoint":
                    kept = {p for p in predicted if p[2] != OTHER_X}
                    key = {X: "C1/X", Y: "C1/Y"}
                else:
                    kept, key = {(a, b, names[t]) for a, b, t in predicted}, {"X": "X", "Y": "Y"}
                    gold = {(a, b, names[t]) for a, b, t in gold}
                true.append([{"label": key[t], "start": a, "end": b - 1} for a, b, t in sorted(set(gold))])
                pred.append([{"label": key[t], "start": a, "end": b - 1} for a, b, t in sorted(kept)])
            tags = ["C1/X", "C1/Y"] if view == "disjoint" else ["X", "Y"]
            theirs = Evaluator(true, pred, tags=tags, loader="dict").evaluate()
            for schema, name in (
                ("strict", "strict"),
                ("exact", "exact"),
                ("partial", "partial"),
                ("type", "ent_type"),
            ):
                result = theirs["overall"][name]
                assert ours[f"{view}/{schema}/C1/f1"] == pytest.approx(100 * result.f1), (trial, view, schema)
                assert ours[f"{view}/{schema}/C1/precision"] == pytest.approx(100 * result.precision)
                assert int(ours[f"{view}/{schema}/C1/missed"]) == result.missed
                for tag in tags:
                    per_type = theirs["entities"].get(tag, {}).get(name)
                    short = tag.split("/")[-1]
                    got = ours[f"{view}/{schema}/C1/{short}/f1"]
                    assert got == pytest.approx(100 * per_type.f1 if per_type else 0.0), (trial, view, tag)


def test_match_keys_stay_out_of_the_exact_tables_and_render():
    match = PartialMatch(LS)
    match.update("C1", [[(0, 2, X)]], [[(0, 1, X)]])
    scores = {f"test/{k}": v for k, v in match.compute(["partial"]).items()}
    assert all(is_match_key(k) for k in scores)
    assert not is_match_key("test/disjoint/C1/X/f1") and not is_match_key("test/merged/macro_f1")
    text = render_match(scores, "test", ["partial"])
    assert "| C1 | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 |" in text


def test_evaluate_match_option_is_a_subset_of_the_schemas_or_none():
    assert evaluate.match_schemas("strict,partial") == ["strict", "partial"]
    assert evaluate.match_schemas("none") == []
    with pytest.raises(BionerError, match="--match boundary: use a comma-separated subset of strict,exact"):
        evaluate.match_schemas("boundary")
