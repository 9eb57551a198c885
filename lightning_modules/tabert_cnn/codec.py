"""Word-pair tables of TabERT-CNN: gold labels from spans and relations, and spans and relations back.

Two label layouts over an ``n x n`` word table (spec ``tabert-cnn.md`` Part 1 items 1-2):

**Paper mode** (joint NER + RE, ``BILOULayout``):

- the diagonal holds one BILOU label per word over the label space's entity types ``t``
  (global type id): ``0`` = O, ``1 + 4t`` = B, ``2 + 4t`` = I, ``3 + 4t`` = L, ``4 + 4t`` = U;
- cell ``(a, b)`` holds a directional relation label over relation types ``k`` (global relation id):
  ``0`` = None, ``1 + 2k`` = R-k (the row word's entity is the head, the column word's the tail),
  ``2 + 2k`` = L-k (the column's entity is the head). A relation (H -> T, k) labels every word pair:
  ``(a, b) = R-k`` and ``(b, a) = L-k`` for a in H, b in T. Only the strict upper triangle is trained
  and read; a later relation on the same cells overwrites an earlier one (as in the reference, B4).
- BILOU cannot hold overlapping entities (ADE has some): the target keeps a non-overlapping subset
  (longest first, then leftmost, then lowest type id), and relations with a left-out entity are left
  out of the target. Evaluation always scores against the full gold (a left-out entity is a miss).

Decoding (Part 1 item 1, replacing the reference's end-driven shortcut and single-cell relations):

- entities are the well-formed label runs only: ``U-x`` alone, or ``B-x I-x* L-x`` of one type; any
  other fragment (an ``I`` without ``B``, a ``B`` without ``L``, a type change) yields nothing;
- for every ordered pair of predicted entities E1 before E2, the block of upper-triangle cells (rows of
  E1, columns of E2) votes with its argmax labels; the most frequent label wins (ties go to the lower
  label index, None first). ``R-k`` gives (E1 -> E2, k), ``L-k`` gives (E2 -> E1, k).

**Span mode** (multi-corpus NER, ``span_cells`` / ``decode_span_table``): cell ``(i, j)``, ``i <= j``,
holds one sigmoid per corpus-qualified type, "words i..j form a mention of that type". A cell is a
mention when its probability exceeds the threshold (0.5); among mentions of one type that cross (overlap
without nesting) the higher-scoring one wins. Nested mentions and mentions of different types are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metrics.relation_f1 import RelationTuple
from metrics.span_f1 import SpanTuple

IGNORE = -100  # cross-entropy ignore_index: padding, the diagonal and the lower triangle of the RE table
TAGS = "BILU"


# --- paper mode --------------------------------------------------------------------------------
class BILOULayout:
    """Label counts and index arithmetic of paper mode (see the module docstring). Picklable."""

    def __init__(self, num_types: int, num_relation_types: int):
        self.num_types = int(num_types)
        self.num_relation_types = int(num_relation_types)
        self.num_entity_labels = 1 + 4 * self.num_types  # E
        self.num_relation_labels = 1 + 2 * self.num_relation_types  # R

    @staticmethod
    def entity_label(tag: str, type_id: int) -> int:
        return 1 + 4 * type_id + TAGS.index(tag)


def non_overlapping(spans: Sequence[SpanTuple]) -> tuple[list[int], list[int]]:
    """Indices of a non-overlapping subset of ``spans`` (longest, leftmost, lowest type first) and of the
    rest. Identical duplicates count as overlapping."""
    order = sorted(range(len(spans)), key=lambda k: (spans[k][0] - spans[k][1], spans[k][0], spans[k][2]))
    taken = np.zeros(max((s[1] for s in spans), default=0), dtype=bool)
    kept, dropped = [], []
    for k in order:
        start, end, _ = spans[k]
        if taken[start:end].any():
            dropped.append(k)
        else:
            taken[start:end] = True
            kept.append(k)
    return sorted(kept), sorted(dropped)


def encode_paper_targets(
    spans: Sequence[SpanTuple], relations: Sequence[tuple[int, int, int]], num_words: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(n,)`` BILOU labels, ``(n, n)`` relation labels (both triangles, see the docstring) and the
    number of entities left out of the target because they overlap a kept one."""
    kept, dropped = non_overlapping(spans)
    ner = np.zeros(num_words, dtype=np.int64)
    for k in kept:
        start, end, t = spans[k]
        if end - start == 1:
            ner[start] = 1 + 4 * t + 3  # U
        else:
            ner[start] = 1 + 4 * t  # B
            ner[start + 1 : end - 1] = 2 + 4 * t  # I
            ner[end - 1] = 3 + 4 * t  # L
    rel = np.zeros((num_words, num_words), dtype=np.int64)
    kept_set = set(kept)
    for head, tail, r in relations:
        if head not in kept_set or tail not in kept_set:
            continue
        hs, he, _ = spans[head]
        ts, te, _ = spans[tail]
        rel[hs:he, ts:te] = 1 + 2 * r
        rel[ts:te, hs:he] = 2 + 2 * r
    return ner, rel, len(dropped)


def decode_bilou(labels: np.ndarray, num_words: np.ndarray) -> list[list[SpanTuple]]:
    """``(B, N)`` argmax BILOU labels -> per sentence the well-formed entities ``(start, end, type)``.

    Vectorised over the batch: a word continues a chain when it is I/L and its left neighbour (same
    sentence) is B/I of the same type; a chain that starts at a B and ends at an L is an entity.
    """
    b, n = labels.shape
    valid = np.arange(n)[None, :] < num_words[:, None]  # (B, N)
    lab = np.where(valid, labels, 0)
    tag = np.where(lab > 0, (lab - 1) % 4, -1)  # 0 B, 1 I, 2 L, 3 U, -1 O
    typ = np.where(lab > 0, (lab - 1) // 4, -1)
    cont = np.zeros((b, n), dtype=bool)
    cont[:, 1:] = np.isin(tag[:, 1:], (1, 2)) & np.isin(tag[:, :-1], (0, 1)) & (typ[:, 1:] == typ[:, :-1])
    idx = np.broadcast_to(np.arange(n), (b, n))
    chain_start = np.maximum.accumulate(np.where(cont, 0, idx), axis=1)  # (B, N)
    start_tag = np.take_along_axis(tag, chain_start, axis=1)
    ends = (tag == 2) & cont & (start_tag == 0)
    singles = tag == 3
    out: list[list[SpanTuple]] = [[] for _ in range(b)]
    for s, i in zip(*np.nonzero(ends | singles)):
        start = int(chain_start[s, i]) if ends[s, i] else int(i)
        out[s].append((start, int(i) + 1, int(typ[s, i])))
    return out


def decode_relations(
    rel_labels: np.ndarray, entities: Sequence[Sequence[SpanTuple]], num_relation_labels: int
) -> list[list[RelationTuple]]:
    """``(B, N, N)`` argmax relation labels + predicted entities -> per sentence the relations, by a
    majority vote of the upper-triangle block between each pair of entities (see the module docstring)."""
    out: list[list[RelationTuple]] = []
    for b, ents in enumerate(entities):
        ordered = sorted(ents)
        found: list[RelationTuple] = []
        for x, e1 in enumerate(ordered):
            for e2 in ordered[x + 1 :]:
                if e2[0] < e1[1]:  # overlapping entities have no upper-triangle block of their own
                    continue
                block = rel_labels[b, e1[0] : e1[1], e2[0] : e2[1]]
                label = int(np.bincount(block.ravel(), minlength=num_relation_labels).argmax())
                if label == 0:
                    continue
                k = (label - 1) // 2
                head, tail = (e1, e2) if label % 2 == 1 else (e2, e1)
                found.append((*head, *tail, k))
        out.append(found)
    return out


# --- span mode ---------------------------------------------------------------------------------
def span_cells(spans: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-sentence ``(S, 3)`` spans -> ``(M, 4)`` long ``(sentence, i, j, type)`` positive cells
    (``j = end - 1``); duplicates are harmless (set to 1 twice)."""
    rows = [
        torch.cat([torch.full((len(s), 1), b, dtype=torch.long), s[:, :1], s[:, 1:2] - 1, s[:, 2:3]], dim=1)
        for b, s in enumerate(spans)
        if len(s)
    ]
    return torch.cat(rows) if rows else torch.zeros(0, 4, dtype=torch.long)


def decode_span_table(
    cells: np.ndarray, scores: np.ndarray, batch_size: int
) -> tuple[list[list[SpanTuple]], list[list[float]]]:
    """Candidate cells ``(M, 4)`` ``(sentence, i, j, type)`` above the threshold with their ``(M,)``
    scores -> per sentence the mentions, same-type crossing candidates resolved greedily by score, and
    aligned with them their cells' probabilities."""
    out: list[list[SpanTuple]] = [[] for _ in range(batch_size)]
    score_of: dict[tuple[int, SpanTuple], float] = {}
    order = np.lexsort((-scores, cells[:, 3], cells[:, 0]))  # by sentence, type, then best first
    kept: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for m in order.tolist():
        b, i, j, t = (int(v) for v in cells[m])
        same = kept.setdefault((b, t), [])
        if any(i < ks <= j < ke or ks < i <= ke < j for ks, ke in same):  # crossing, not nested
            continue
        same.append((i, j))
        out[b].append((i, j + 1, t))
        score_of[(b, (i, j + 1, t))] = float(scores[m])
    spans = [sorted(s) for s in out]
    return spans, [[score_of[(b, span)] for span in found] for b, found in enumerate(spans)]


@dataclass
class SpanCells:
    """Span mode's candidate cells of one batch: ``(M, 4)`` (sentence, i, j, type) and their ``(M,)``
    calibrated probabilities."""

    batch_size: int
    cells: np.ndarray
    probs: np.ndarray
