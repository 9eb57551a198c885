"""SRU-NER action vocabulary, oracle rows (spec A1) and decoder (spec A5, end bound <= N)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.sru_ner.codec import (
    EOA,
    SHIFT,
    ActionVocabulary,
    decode_batch,
    dense_batch,
    dense_rows,
    gold_action_rows,
    gold_action_sequence,
    other_corpus_mask,
    other_corpus_masks,
)

DNA, PROTEIN = 0, 1
V2 = ActionVocabulary(2)  # TR(DNA)=2 RE(DNA)=3 TR(Protein)=4 RE(Protein)=5


def as_logits(probs) -> torch.Tensor:
    """Probabilities -> the logits ``decode_batch`` reads (0 and 1 become -inf and inf)."""
    return torch.logit(torch.as_tensor(probs, dtype=torch.float64))


def decode_actions(probs, num_words: int, vocab: ActionVocabulary, threshold: float = 0.5) -> list:
    """One sentence's ``(T, A)`` action probabilities through ``decode_batch``: its spans."""
    assert probs.ndim == 2
    return decode_batch(as_logits(probs[None]), [num_words], vocab, threshold)[0][0]


def test_vocabulary_indices() -> None:
    v = ActionVocabulary(3)
    assert (v.EOA, v.SHIFT, v.size, len(v)) == (0, 1, 8, 8)
    assert [v.transition(k) for k in range(3)] == [2, 4, 6]
    assert [v.reduce(k) for k in range(3)] == [3, 5, 7]
    assert v.transition_cols.tolist() == [2, 4, 6] and v.reduce_cols.tolist() == [3, 5, 7]
    assert [v.is_transition(a) for a in range(8)] == [False, False, True, False, True, False, True, False]
    assert [v.is_reduce(a) for a in range(8)] == [False, False, False, True, False, True, False, True]
    assert [v.type_of(a) for a in range(2, 8)] == [0, 0, 1, 1, 2, 2]
    for bad in (EOA, SHIFT, 8):
        with pytest.raises(ValueError):
            v.type_of(bad)
    assert v.name(4, ["A", "B", "C"]) == "TR(B)" and v.name(7) == "RE(2)" and v.name(1) == "SH"


def test_other_corpus_mask() -> None:
    ls = LabelSpace({"BC5CDR": ["Chemical", "Disease"], "JNLPBA": ["DNA"], "NCBI": ["Disease"]})
    # types: BC5CDR/Chemical 0, BC5CDR/Disease 1, JNLPBA/DNA 2, NCBI/Disease 3 -> A = 10
    m = other_corpus_mask(ls, "JNLPBA")
    assert m.tolist() == [False, False, True, True, True, True, False, False, True, True]
    assert other_corpus_mask(ls, "BC5CDR").tolist() == [False] * 6 + [True] * 4
    table = other_corpus_masks(ls)
    assert table.shape == (3, 10)
    assert table[ls.corpus_index["NCBI"]].tolist() == [False, False] + [True] * 6 + [False, False]
    single = LabelSpace({"BC5CDR": ["Chemical", "Disease"]})
    assert not other_corpus_mask(single, "BC5CDR").any()


# --- the worked example of spec A1 ---------------------------------------------------------------
WORDS = ["a", "defective", "NF", "-", "chi", "B", "site", "was"]
EXAMPLE = [(2, 7, DNA), (2, 6, PROTEIN), (4, 6, DNA)]


def test_worked_example_sequence() -> None:
    seq = gold_action_sequence(EXAMPLE, len(WORDS), V2)
    names = " ".join(V2.name(a, ["DNA", "Protein"]) for a in seq)
    assert names == "SH SH TR(DNA) TR(Protein) SH SH TR(DNA) SH SH RE(DNA) RE(Protein) SH RE(DNA) SH EOA"


def test_worked_example_rows() -> None:
    rows, cols, num_rows = gold_action_rows(EXAMPLE, len(WORDS), V2)
    # By hand: SH, SH, {TR DNA, TR Prot}, SH, SH, {TR DNA}, SH, SH, {RE DNA, RE Prot}, SH, {RE DNA}, SH, EOA
    expected = np.zeros((13, 6), dtype=np.float32)
    for r in (0, 1, 3, 4, 6, 7, 9, 11):
        expected[r, SHIFT] = 1
    expected[2, [2, 4]] = 1
    expected[5, 2] = 1
    expected[8, [3, 5]] = 1
    expected[10, 3] = 1
    expected[12, EOA] = 1
    assert num_rows == 13 == len(WORDS) + 1 + 4
    np.testing.assert_array_equal(dense_rows(rows, cols, num_rows, V2.size), expected)
    assert decode_actions(expected, len(WORDS), V2) == [(2, 7, DNA), (2, 6, PROTEIN), (4, 6, DNA)]
    assert decode_actions(torch.from_numpy(expected), len(WORDS), V2) == sorted(
        EXAMPLE, key=lambda s: (s[0], -s[1], s[2])
    )


def test_rows_sharing_and_splitting() -> None:
    v = ActionVocabulary(2)  # A: TR 2 / RE 3, B: TR 4 / RE 5
    # Adjacent same type: {RE(A), TR(A)} share a row. Two A opening at 0: TR(A) repeats -> two rows.
    rows, cols, n = gold_action_rows([(0, 2, 0), (2, 3, 0), (0, 3, 0)], 3, v)
    dense = dense_rows(rows, cols, n, v.size)
    assert gold_action_sequence([(0, 2, 0), (2, 3, 0), (0, 3, 0)], 3, v) == [2, 2, 1, 1, 3, 2, 1, 3, 3, 0]
    expected = np.zeros((9, 4 + 2), dtype=np.float32)
    expected[0, 2] = expected[1, 2] = 1  # TR(A)[0,3), TR(A)[0,2)
    expected[[2, 3, 5], SHIFT] = 1
    expected[4, [3, 2]] = 1  # RE(A)[0,2) + TR(A)[2,3)
    expected[6, 3] = expected[7, 3] = 1  # RE(A)[2,3), RE(A)[0,3)
    expected[8, EOA] = 1
    np.testing.assert_array_equal(dense, expected)
    # A sentence without spans: N SH rows then EOA; an empty sentence: EOA only.
    rows, cols, n = gold_action_rows([], 3, v)
    assert n == 4 and rows.tolist() == [0, 1, 2, 3] and cols.tolist() == [1, 1, 1, 0]
    assert gold_action_rows([], 0, v)[2] == 1 and decode_actions(np.eye(6)[[0]], 0, v) == []


def test_duplicates_are_deduplicated_by_the_oracle() -> None:
    spans = [(1, 3, 0), (1, 3, 0), (0, 1, 1)]
    assert gold_action_sequence(spans, 3, V2) == gold_action_sequence(spans[1:], 3, V2)
    r1, c1, n1 = gold_action_rows(spans, 3, V2)
    r2, c2, n2 = gold_action_rows(spans[1:], 3, V2)
    assert n1 == n2 and r1.tolist() == r2.tolist() and c1.tolist() == c2.tolist()


def test_invalid_spans_raise() -> None:
    for bad in [(2, 2, 0), (3, 5, 0), (-1, 1, 0), (0, 1, 2)]:
        with pytest.raises(ValueError):
            gold_action_rows([bad], 4, V2)


def test_crossing_same_type_spans_are_repaired_into_nesting() -> None:
    # The documented exception: per-type stacks pair the most recent open start with the first end.
    v = ActionVocabulary(1)
    spans = [(0, 3, 0), (1, 4, 0)]
    assert gold_action_sequence(spans, 5, v) == [2, 1, 2, 1, 1, 3, 1, 3, 1, 0]
    rows, cols, n = gold_action_rows(spans, 5, v)
    assert decode_actions(dense_rows(rows, cols, n, v.size), 5, v) == [(0, 4, 0), (1, 3, 0)]
    # Crossing spans of *different* types round-trip.
    spans2 = [(0, 3, 0), (1, 4, 1)]
    rows, cols, n = gold_action_rows(spans2, 5, V2)
    assert decode_actions(dense_rows(rows, cols, n, V2.size), 5, V2) == spans2


# --- decoder behaviour on model-like probabilities ---------------------------------------------
def _probs(rows: list[dict[int, float]], a: int, floor: float = 0.05) -> np.ndarray:
    p = np.full((len(rows), a), floor, dtype=np.float32)
    for t, row in enumerate(rows):
        for col, val in row.items():
            p[t, col] = val
    return p


def test_decoder_rules() -> None:
    v = ActionVocabulary(2)
    n = 2
    rows = [
        {2: 0.9, 4: 0.7},  # TR(A) argmax; TR(B) above threshold too -> both open at 0
        {SHIFT: 0.8, 3: 0.6},  # SH argmax: RE(A) ignored
        {5: 0.9, 3: 0.4},  # RE(B) closes B[0,1); RE(A) below threshold
        {SHIFT: 0.9},
        {3: 0.95, 5: 0.6},  # RE(A) -> A[0,2) (ends at the last word: kept, the <= N fix); RE(B) stack empty
        {2: 0.9},  # TR(A) at wc = 2, left open -> dropped
        {EOA: 0.9, 3: 0.6},  # stop
        {3: 0.99},  # after EOA: ignored
    ]
    p = _probs(rows, v.size)
    assert decode_actions(p, n, v) == [(0, 2, 0), (0, 1, 1)]
    # Threshold is strict and configurable.
    assert decode_actions(p, n, v, threshold=0.7) == [(0, 2, 0)]
    # A span whose end lies beyond N (too many SHs) is dropped.
    assert decode_actions(p, 1, v) == [(0, 1, 1)]


def test_decoder_dedupes_and_without_eoa_runs_to_the_end() -> None:
    v = ActionVocabulary(1)
    rows = [{2: 0.9}, {2: 0.9}, {SHIFT: 0.9}, {3: 0.9}, {3: 0.9}]  # two identical A[0,1) spans
    assert decode_actions(_probs(rows, v.size), 1, v) == [(0, 1, 0)]


def test_decode_batch_matches_per_sentence_and_pads() -> None:
    rng = random.Random(7)
    v = ActionVocabulary(3)
    items, nwords, golds = [], [], []
    for _ in range(20):
        n = rng.randint(1, 9)
        spans = _random_laminar_spans(rng, n, v.num_types)
        items.append(gold_action_rows(spans, n, v))
        nwords.append(n)
        golds.append(sorted(set(spans), key=lambda s: (s[0], -s[1], s[2])))
    batch = dense_batch(items, v.size, pad_to=40)
    assert batch.shape[:2] == (20, 40)
    # Padding rows after EOA hold junk that must be ignored.
    junk = np.random.default_rng(0).random(batch.shape).astype(np.float32)
    for b, (_, _, nr) in enumerate(items):
        batch[b, nr:] = junk[b, nr:]
    out, scores = decode_batch(as_logits(batch), torch.tensor(nwords), v)
    assert out == golds
    assert [len(s) for s in scores] == [len(s) for s in out]
    assert out == [decode_actions(batch[b], nwords[b], v) for b in range(20)]


# --- property test ------------------------------------------------------------------------------
def _crosses(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return a[2] == b[2] and (a[0] < b[0] < a[1] < b[1] or b[0] < a[0] < b[1] < a[1])


def _random_laminar_spans(rng: random.Random, n: int, num_types: int) -> list[tuple[int, int, int]]:
    """Random spans biased towards shared boundaries; crossing same-type pairs are rejected (the one class
    that cannot round-trip by construction; see the module docstring and the crossing test above)."""
    spans: list[tuple[int, int, int]] = []
    for _ in range(rng.randint(0, 7)):
        k = rng.randrange(num_types)
        mode = rng.random()
        if spans and mode < 0.5:
            s0, e0, _ = rng.choice(spans)
            choice = rng.randrange(5)
            if choice == 0:  # same start
                s, e = s0, rng.randint(s0 + 1, n)
            elif choice == 1:  # same end
                s, e = rng.randint(0, e0 - 1), e0
            elif choice == 2 and e0 < n:  # adjacent after
                s, e = e0, rng.randint(e0 + 1, n)
            elif choice == 3 and s0 > 0:  # adjacent before
                s, e = rng.randint(0, s0 - 1), s0
            else:  # identical boundaries (duplicate when the type matches)
                s, e = s0, e0
        else:
            s = rng.randrange(n)
            e = rng.randint(s + 1, min(n, s + 1 + rng.choice([1, 2, 3, n])))
        cand = (s, e, k)
        if not any(_crosses(cand, other) for other in spans):
            spans.append(cand)
    return spans


def _reference_rows(seq: list[int], num_actions: int) -> np.ndarray:
    """Literal A1 walk over the flat sequence (independent of the sparse implementation)."""
    rows: list[np.ndarray] = []
    prev = None
    for a in seq:
        if a in (SHIFT, EOA) or prev == SHIFT or not rows or rows[-1][a] == 1:
            rows.append(np.zeros(num_actions, dtype=np.float32))
        rows[-1][a] = 1
        prev = a
    return np.stack(rows)


def test_property_round_trip() -> None:
    rng = random.Random(12345)
    seen: Counter[str] = Counter()
    cases = 0
    for _ in range(3000):
        num_types = rng.randint(1, 3)
        v = ActionVocabulary(num_types)
        n = 1 if rng.random() < 0.1 else rng.randint(1, 12)
        spans = _random_laminar_spans(rng, n, num_types)
        uniq = sorted(set(spans), key=lambda s: (s[0], -s[1], s[2]))
        rows, cols, num_rows = gold_action_rows(spans, n, v)
        dense = dense_rows(rows, cols, num_rows, v.size)
        seq = gold_action_sequence(spans, n, v)

        # Rows = the literal walk of spec A1; counts and invariants.
        np.testing.assert_array_equal(dense, _reference_rows(seq, v.size))
        assert len({(r, c) for r, c in zip(rows.tolist(), cols.tolist())}) == len(rows)
        assert (dense.sum(1) >= 1).all()
        assert dense[:, SHIFT].sum() == n and dense[-1, EOA] == 1 and dense[:, EOA].sum() == 1
        assert (dense[dense[:, SHIFT] == 1].sum(1) == 1).all()
        assert seq.count(SHIFT) == n and seq[-1] == EOA and len(seq) == 2 * len(uniq) + n + 1

        # Round trip, one-hot/multi-hot probabilities and soft ones.
        assert decode_actions(dense, n, v) == uniq
        soft = np.where(dense > 0, 0.9, 0.1).astype(np.float32)
        assert decode_actions(soft, n, v) == uniq
        cases += 1

        # Coverage bookkeeping.
        seen["single_word"] += n == 1
        seen["ends_at_last_word"] += any(e == n for _, e, _ in uniq)
        seen["duplicate"] += len(uniq) < len(spans)
        for i, a in enumerate(uniq):
            for b in uniq[i + 1 :]:
                nested = a[0] <= b[0] and b[1] <= a[1]
                seen["nested"] += nested
                seen["same_type_nested"] += nested and a[2] == b[2]
                seen["same_start"] += a[0] == b[0]
                seen["same_end"] += a[1] == b[1]
                seen["adjacent"] += a[1] == b[0] or b[1] == a[0]
                seen["adjacent_same_type"] += (a[1] == b[0] or b[1] == a[0]) and a[2] == b[2]
                seen["same_type_same_start"] += a[0] == b[0] and a[2] == b[2]
                seen["same_type_same_end"] += a[1] == b[1] and a[2] == b[2]
                seen["crossing_other_types"] += a[0] < b[0] < a[1] < b[1] and a[2] != b[2]
                seen["same_boundaries_other_types"] += a[:2] == b[:2]
    assert cases >= 1000
    for key in (
        "single_word",
        "ends_at_last_word",
        "duplicate",
        "nested",
        "same_type_nested",
        "same_start",
        "same_end",
        "adjacent",
        "adjacent_same_type",
        "same_type_same_start",
        "same_type_same_end",
        "crossing_other_types",
        "same_boundaries_other_types",
    ):
        assert seen[key] >= 20, (key, seen)
