"""Words -> subwords under the encoder's cap: mention-preserving splits (spec A2) and prediction windows.

``max_subwords`` counts CLS and SEP, so a row holds at most ``max_subwords - 2`` content subwords (the
budget). A longer sentence is split greedily at word boundaries into chunks within the budget, never
inside a mention (nested or overlapping mentions included): :func:`split_long_sentence`. What cannot be
split that way is cut at word boundaries ignoring mentions (:func:`hard_split`); a single word longer than
the budget is truncated to it (:func:`chunk_ids`). Prediction cuts unannotated sentences the same way
(:func:`window_rows`, used by ``inference/tagger.py``).

Empty words. A word that the tokenizer turns into nothing (e.g. ``"\\u200b"``, a soft hyphen) would
silently shift every later word; :func:`subwords` gives it the tokenizer's unk token (one subword).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from datamodules.sentence import Sentence
from errors import BionerError

MAX_SUBWORDS = 405
TOKENIZER_BATCH = 1024  # sentences per tokenizer call


def special_ids(tokenizer: Any) -> tuple[int, int, int]:
    """The tokenizer's CLS (or BOS), SEP (or EOS) and unk ids."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    unk_id = tokenizer.unk_token_id
    if cls_id is None or sep_id is None or unk_id is None:
        raise BionerError(f"tokenizer {type(tokenizer).__name__} lacks a CLS/BOS, SEP/EOS or unk token")
    return int(cls_id), int(sep_id), int(unk_id)


def subwords(tokenizer: Any, sentences: Sequence[Sentence]) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Per sentence, in order: content subword ids (T,), their word index (T,), and the number of empty
    words (given one unk subword each). Tokenizes ``TOKENIZER_BATCH`` sentences per call."""
    if not getattr(tokenizer, "is_fast", False):
        raise BionerError(f"a fast tokenizer (with word_ids()) is needed, got {type(tokenizer).__name__}")
    _, _, unk_id = special_ids(tokenizer)
    return _subword_batches(tokenizer, sentences, unk_id)


def _subword_batches(
    tokenizer: Any, sentences: Sequence[Sentence], unk_id: int
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    for b in range(0, len(sentences), TOKENIZER_BATCH):
        batch = sentences[b : b + TOKENIZER_BATCH]
        words = [list(s.tokens) for s in batch]
        nonempty = [i for i, w in enumerate(words) if w]
        enc = (
            tokenizer([words[i] for i in nonempty], is_split_into_words=True, add_special_tokens=False)
            if nonempty
            else None
        )
        encoded: dict[int, int] = {i: j for j, i in enumerate(nonempty)}
        for i, w in enumerate(words):
            if i not in encoded:
                yield np.zeros(0, np.int64), np.zeros(0, np.int64), 0
                continue
            j = encoded[i]
            ids = np.asarray(enc["input_ids"][j], dtype=np.int64)
            wids = np.asarray(enc.word_ids(j), dtype=np.int64)
            counts = np.bincount(wids, minlength=len(w))
            empty = np.flatnonzero(counts == 0)
            if len(empty):  # give each empty word one unk subword at its place
                pos = np.concatenate([[0], np.cumsum(counts)])[empty]
                ids = np.insert(ids, pos, unk_id)
                wids = np.insert(wids, pos, empty)
            yield ids, wids, len(empty)


def _bounds(span: Any) -> tuple[int, int]:
    if hasattr(span, "start"):
        return int(span.start), int(span.end)
    return int(span[0]), int(span[1])


def split_long_sentence(
    sentence_word_lengths: Sequence[int], spans: Sequence[Any], max_content_tokens: int
) -> list[tuple[int, int]] | None:
    """Chunks ``[(word_start, word_end), ...]`` (end exclusive) covering every word, each of at most
    ``max_content_tokens`` subwords, such that no span crosses a chunk boundary; None if impossible.

    ``spans`` are ``Span`` objects or ``(start, end, ...)`` tuples over words. A cut between words
    ``b-1`` and ``b`` is allowed iff no span has ``start < b < end``; overlapping and nested mentions thus
    form one unbreakable block (their union). Blocks are packed greedily, which gives the fewest chunks.
    """
    n = len(sentence_word_lengths)
    if n == 0:
        return [(0, 0)]
    lengths = np.asarray(sentence_word_lengths, dtype=np.int64)
    if lengths.sum() <= max_content_tokens:
        return [(0, n)]
    # covered[b] > 0 iff some span has start < b < end (cut before word b forbidden), b in 0..n
    diff = np.zeros(n + 2, dtype=np.int64)
    for span in spans:
        s, e = _bounds(span)
        if e - s >= 2:
            diff[s + 1] += 1
            diff[e] -= 1
    covered = np.cumsum(diff)[: n + 1]
    cuts = np.flatnonzero(covered[1:n] == 0) + 1  # allowed cut positions, 1..n-1
    block_bounds = np.concatenate([[0], cuts, [n]])  # (nb+1,)
    csum = np.concatenate([[0], np.cumsum(lengths)])
    block_len = csum[block_bounds[1:]] - csum[block_bounds[:-1]]  # (nb,)
    if (block_len > max_content_tokens).any():
        return None
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for b, length in enumerate(block_len.tolist()):
        if used + length > max_content_tokens:
            end = int(block_bounds[b])
            chunks.append((start, end))
            start, used = end, 0
        used += length
    chunks.append((start, n))
    return chunks


def hard_split(lengths: np.ndarray, max_content_tokens: int) -> list[tuple[int, int]]:
    """Greedy word-boundary split ignoring mentions; a word longer than the cap gets a chunk of its own."""
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for w, length in enumerate(lengths.tolist()):
        if used + length > max_content_tokens and w > start:
            chunks.append((start, w))
            start, used = w, 0
        used += length
    chunks.append((start, len(lengths)))
    return chunks


def chunk_ids(
    ids: np.ndarray,
    wids: np.ndarray,
    word_start: np.ndarray,
    cs: int,
    ce: int,
    budget: int,
    cls_id: int,
    sep_id: int,
) -> tuple[list[int], list[int], bool]:
    """Words ``[cs, ce)`` of a sentence as one row: subword ids with CLS and SEP, each subword's word
    index within the row (-1 for CLS/SEP), and whether a single over-long word was truncated to ``budget``."""
    lo, hi = int(word_start[cs]), int(word_start[ce])
    truncated = hi - lo > budget  # one word longer than the cap (hard split only)
    hi = lo + budget if truncated else hi
    return [cls_id, *ids[lo:hi].tolist(), sep_id], [-1, *(wids[lo:hi] - cs).tolist(), -1], truncated


def window_rows(
    sentences: Sequence[Sentence], tokenizer: Any, max_subwords: int = MAX_SUBWORDS
) -> list[dict[str, Any]]:
    """Unannotated sentences (prediction) as rows: each cut at word boundaries into windows of at most
    ``max_subwords`` (CLS and SEP included), as evaluation hard-splits. A row has ``input_ids``,
    ``word_ids``, ``num_words``, ``sentence_index`` and ``first_word`` (its first word in the sentence)."""
    cls_id, sep_id, _ = special_ids(tokenizer)
    budget = max_subwords - 2
    rows = []
    for index, (sentence, (ids, wids, _)) in enumerate(zip(sentences, subwords(tokenizer, sentences))):
        lengths = np.bincount(wids, minlength=len(sentence.tokens))
        word_start = np.concatenate([[0], np.cumsum(lengths)])
        for cs, ce in hard_split(lengths, budget):  # one window when the sentence fits
            input_ids, word_ids, _ = chunk_ids(ids, wids, word_start, cs, ce, budget, cls_id, sep_id)
            rows.append(
                {"input_ids": input_ids, "word_ids": word_ids, "num_words": ce - cs, "sentence_index": index,
                 "first_word": cs}
            )  # fmt: skip
    return rows
