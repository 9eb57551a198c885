"""BIO tagging over per-corpus label sets: the column layout, span -> tag encoding, tag -> span decoding.

Each corpus ``c`` (index ``k`` in ``LabelSpace.corpora``) has its own tag set over its own types
``t_0 .. t_{M-1}`` (``LabelSpace.corpus_types[c]`` order): local tag ``0`` = O, ``1 + 2j`` = B-t_j,
``2 + 2j`` = I-t_j, so ``L_c = 2 M + 1`` tags. The network computes every corpus's tags from one stacked
linear layer; corpus ``c``'s head owns the output columns ``offset_c .. offset_c + L_c - 1``.

Encoding (training targets). BIO cannot hold overlapping mentions: the longest span is kept first (then
the leftmost, then the lowest type id) and any span that overlaps an already kept one is left out of
the target (counted in ``dropped``); the corpora shipped here are flat IOB files, so this only matters
for nested user data. Evaluation always scores against the full gold.

Decoding (conlleval-style repair). A mention starts at every B-X, and at an I-X that does not continue a
mention of type X (after O, at the sentence start, or after another type); it continues over the
following I-X. Vectorised over the batch and every corpus head: no Python loop over tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from metrics.span_f1 import SpanTuple

IGNORE = -100  # cross-entropy ignore index for padding words


class BIOLayout:
    """Per-corpus BIO tag sets and where their columns sit in the stacked output. Picklable."""

    def __init__(self, label_space: LabelSpace):
        self.num_corpora = len(label_space.corpora)
        sizes = [1 + 2 * len(label_space.corpus_types[c]) for c in label_space.corpora]
        self.num_tags = np.asarray(sizes, dtype=np.int64)  # (K,) L_c
        self.offsets = np.cumsum(self.num_tags) - self.num_tags  # (K,)
        self.total = int(self.num_tags.sum())  # columns of the stacked output
        self.width = int(self.num_tags.max())  # L_max
        local = np.arange(self.width)
        self.valid = local[None, :] < self.num_tags[:, None]  # (K, L_max) bool
        self.columns = np.where(self.valid, self.offsets[:, None] + local[None, :], 0)  # (K, L_max)
        # per (corpus, local tag): global type id (-1 for O and padding) and whether it is an I- tag
        self.tag_type = np.full((self.num_corpora, self.width), -1, dtype=np.int64)
        self.tag_inside = np.zeros((self.num_corpora, self.width), dtype=bool)
        # per global type id: its B- tag (the I- tag is B + 1) in its corpus's local tag set
        self.begin_tag = np.zeros(len(label_space), dtype=np.int64)
        for k, corpus in enumerate(label_space.corpora):
            for j, type_id in enumerate(label_space.type_ids_of(corpus)):
                self.tag_type[k, 1 + 2 * j] = self.tag_type[k, 2 + 2 * j] = type_id
                self.tag_inside[k, 2 + 2 * j] = True
                self.begin_tag[type_id] = 1 + 2 * j


def flat_spans(spans: Sequence[SpanTuple]) -> tuple[list[SpanTuple], int]:
    """A non-overlapping subset (longest, then leftmost, then lowest type id first): (kept, dropped)."""
    kept: list[SpanTuple] = []
    taken: set[int] = set()
    for start, end, type_id in sorted(set(spans), key=lambda s: (s[0] - s[1], s[0], s[2])):
        words = range(start, end)
        if taken.isdisjoint(words):
            kept.append((start, end, type_id))
            taken.update(words)
    return sorted(kept), len(set(spans)) - len(kept)


def encode_tags(
    spans: Sequence[Sequence[SpanTuple]], num_words: Sequence[int], layout: BIOLayout
) -> tuple[np.ndarray, int]:
    """``(B, N_max)`` local BIO tags (padding ``IGNORE``) and the number of overlapping spans left out."""
    width = max(num_words, default=0)
    tags = np.full((len(num_words), width), IGNORE, dtype=np.int64)
    dropped = 0
    for b, (sentence_spans, n) in enumerate(zip(spans, num_words)):
        tags[b, :n] = 0
        kept, lost = flat_spans(sentence_spans)
        dropped += lost
        for start, end, type_id in kept:
            begin = layout.begin_tag[type_id]
            tags[b, start] = begin
            tags[b, start + 1 : end] = begin + 1
    return tags, dropped


def decode_tags(
    tags: np.ndarray | torch.Tensor, num_words: Sequence[int] | np.ndarray | torch.Tensor, layout: BIOLayout
) -> list[list[SpanTuple]]:
    """Spans of every corpus head: ``tags`` is ``(B, N, K)`` local tags (head k in corpus k's tag set).

    Returns per sentence the sorted ``(start, end, type_id)`` spans of all heads (global type ids).
    """
    tags = tags.numpy() if isinstance(tags, torch.Tensor) else np.asarray(tags)
    lengths = num_words.numpy() if isinstance(num_words, torch.Tensor) else np.asarray(num_words)
    batch, width, heads = tags.shape
    head = np.arange(heads)[None, None, :]
    types = layout.tag_type[head, tags]  # (B, N, K) global type id, -1 for O
    inside = layout.tag_inside[head, tags]  # (B, N, K)
    types = np.where(np.arange(width)[None, :, None] < lengths[:, None, None], types, -1)
    types = types.transpose(0, 2, 1).reshape(batch * heads, width)  # one row per (sentence, head)
    inside = inside.transpose(0, 2, 1).reshape(batch * heads, width)
    previous = np.concatenate([np.full((batch * heads, 1), -1), types[:, :-1]], axis=1)
    tagged = types >= 0
    continues = tagged & inside & (previous == types)
    begins = tagged & ~continues
    following = np.concatenate([continues[:, 1:], np.zeros((batch * heads, 1), dtype=bool)], axis=1)
    ends = tagged & ~following
    rows, starts = np.nonzero(begins)  # row-major: the k-th begin and the k-th end are one mention
    _, last = np.nonzero(ends)
    span_types = types[rows, starts]
    out: list[list[SpanTuple]] = [[] for _ in range(batch)]
    for row, start, end, type_id in zip(
        (rows // heads).tolist(), starts.tolist(), (last + 1).tolist(), span_types.tolist()
    ):
        out[row].append((start, end, type_id))
    return [sorted(spans, key=lambda s: (s[0], -s[1], s[2])) for spans in out]
