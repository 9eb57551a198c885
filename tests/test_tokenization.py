"""Tokenization: the subword cap, splitting long sentences without cutting a mention, empty words."""

from __future__ import annotations

import logging
import random

from tiny_corpora import CLS, ID, SEP, UNK, sent

from datamodules.corpora import label_space_of
from datamodules.rows import tokenize_corpus
from datamodules.sentence import Sentence, Span
from datamodules.splitting import split_long_sentence


def _check_chunks(lengths, spans, cap, chunks):
    assert chunks[0][0] == 0 and chunks[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    assert all(sum(lengths[s:e]) <= cap for s, e in chunks)
    for s, e in spans:
        assert any(cs <= s and e <= ce for cs, ce in chunks), (s, e, chunks)


def test_split_long_sentence_hand_examples():
    assert split_long_sentence([1, 2, 3], [], 6) == [(0, 3)]  # fits
    # a 4-subword mention over words 1-2 is never cut: the chunk ends before it
    assert split_long_sentence([2, 2, 2, 2, 2], [(1, 3)], 5) == [(0, 1), (1, 3), (3, 5)]
    # overlapping mentions (0,2) and (1,4) form one block; greedy fills the rest
    assert split_long_sentence([1] * 6, [(0, 2), (1, 4)], 4) == [(0, 4), (4, 6)]
    # a mention starting inside another and ending later: no cut inside the union (0,3)
    assert split_long_sentence([1, 1, 1, 1, 1], [(0, 2), (1, 3)], 3) == [(0, 3), (3, 5)]
    assert split_long_sentence([3, 3], [(0, 2)], 5) is None  # the mention alone exceeds the budget
    assert split_long_sentence([6, 1], [], 5) is None  # one word exceeds the budget
    assert split_long_sentence([2, 2, 2, 2], [Span(2, 4, "X")], 4) == [(0, 2), (2, 4)]  # Span objects


def _fewest_chunks(lengths, spans, cap) -> int | None:
    """Brute-force oracle: the fewest chunks under ``cap`` with no mention cut (None if impossible)."""
    n = len(lengths)
    allowed = [b for b in range(n + 1) if not any(s < b < e for s, e in spans)]
    best = {0: 0}
    for b in allowed[1:]:
        options = [best[a] + 1 for a in best if a < b and sum(lengths[a:b]) <= cap]
        if options:
            best[b] = min(options)
    return best.get(n)


def test_split_long_sentence_random_cases_never_cut_a_mention():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 20)
        lengths = [rng.randint(1, 3) for _ in range(n)]
        spans = []
        for _ in range(rng.randint(0, 5)):
            s = rng.randrange(n)
            spans.append((s, rng.randint(s + 1, min(n, s + 4))))
        cap = rng.randint(3, 12)
        chunks = split_long_sentence(lengths, spans, cap)
        fewest = _fewest_chunks(lengths, spans, cap)
        if chunks is None:
            assert fewest is None
        else:
            _check_chunks(lengths, spans, cap, chunks)
            assert len(chunks) == fewest  # greedy packing of unbreakable blocks is optimal


def test_long_sentence_split_rebases_spans(tokenizer):
    ls = label_space_of(["BC5CDR"])
    # 8 words, 10 subwords: "aspirin" and "hypertension" have 2 each; cap 9 -> budget 7
    s = sent(
        "the aspirin in the patients with the hypertension",
        [(1, 2, "Chemical"), (6, 8, "Disease")],
    )
    rows, report = tokenize_corpus([s], tokenizer, ls, "BC5CDR", max_subwords=9)
    assert report.split_sentences == 1 and report.rows == 2 and not report.unsplittable
    assert rows["chunk"] == [0, 1] and rows["sentence_index"] == [0, 0]
    assert rows["tokens"] == [["the", "aspirin", "in", "the", "patients", "with"], ["the", "hypertension"]]
    assert rows["spans"] == [[1, 2, 0], [0, 2, 1]]  # the Disease mention starts at word 6: not cut
    assert rows["word_ids"][1] == [-1, 0, 1, 1, -1]
    assert all(len(x) <= 9 for x in rows["input_ids"])


def test_unsplittable_sentence_is_reported_not_lost(tokenizer, caplog):
    ls = label_space_of(["BC5CDR"])
    sentences = [
        sent("the cancer", [(1, 2, "Disease")]),
        # one 6-subword mention does not fit a budget of 5 (cap 7)
        sent("aspirin hypertension cisplatin and the", [(0, 3, "Chemical"), (4, 5, "Chemical")]),
    ]
    with caplog.at_level(logging.WARNING, logger="datamodules.rows"):
        rows, report = tokenize_corpus(sentences, tokenizer, ls, "BC5CDR", max_subwords=7, split="train")
    assert rows["sentence_index"] == [0]  # left out of training...
    assert len(report.dropped) == 1  # ...but counted: index, words, subwords
    u = report.dropped[0]
    assert (u.index, u.num_words, u.num_subwords, u.kept) == (1, 5, 8, False)
    assert "LEFT OUT" in caplog.text and "BC5CDR/train" in caplog.text

    rows, report = tokenize_corpus(sentences, tokenizer, ls, "BC5CDR", max_subwords=7, split="test")
    assert not report.dropped and len(report.unsplittable) == 1 and report.unsplittable[0].kept
    assert report.cut_mentions == 1  # the long mention crosses the hard split (a false negative)
    assert rows["sentence_index"] == [0, 1, 1]
    assert sum(rows["num_words"][1:]) == 5  # every word kept
    assert rows["tokens"][1:] == [["aspirin", "hypertension"], ["cisplatin", "and", "the"]]
    assert rows["spans"][1:] == [[], [2, 3, 0]]  # the short mention survives, rebased
    assert rows["unreachable"] == [[], [0], []]  # the cut one is carried (type id 0) to be scored as a miss
    assert all(len(x) <= 7 for x in rows["input_ids"])


def test_word_that_tokenizes_to_nothing_gets_unk(tokenizer):
    ls = label_space_of(["BC5CDR"])
    s = Sentence(("the", "\u200b", "cancer", "\u200b"), (Span(2, 3, "Disease"),), "BC5CDR")
    assert tokenizer(["\u200b"], is_split_into_words=True, add_special_tokens=False)["input_ids"] == []
    rows, report = tokenize_corpus([s], tokenizer, ls, "BC5CDR")
    assert report.empty_words == 2
    assert rows[0]["input_ids"] == [CLS, ID["the"], UNK, ID["cancer"], UNK, SEP]
    assert rows[0]["word_ids"] == [-1, 0, 1, 2, 3, -1]  # every word keeps its own slot
    assert rows[0]["tokens"] == ["the", "\u200b", "cancer", "\u200b"]
