"""SRU-NER action vocabulary, gold oracle (multi-hot rows) and greedy span decoder.

Specification: ``shared/spec/sru-ner.md`` Part 1 items 1 and 8, Part 2 A1 (oracle, rows) and A5 (decoder).

Action vocabulary (no ``OUT`` action; the reference's default ``change_out_to_shift=True``)::

    EOA = 0, SHIFT = 1, TR(k) = 2 + 2k, RE(k) = 3 + 2k        for type ids k = 0..M-1,  |A| = 2M + 2

Type ids are the positions in ``LabelSpace.types`` (corpus-qualified, hence disjoint across corpora).

Oracle (A1). Spans are ``(start, end, type_id)`` over words with an exclusive end, ``0 <= start < end <= N``.
The canonical flat sequence visits the boundaries ``i = 0..N``; boundary ``i`` emits

    [RE of the spans ending at i, shortest first] [TR of the spans starting at i, longest first] SH

with no SH at ``i = N`` (the REs of spans ending at the last word follow the last SH), then ``EOA``.
Ties (spans with the same start *and* end, necessarily of different types) follow the reference's stable
longest-first sort over spans listed by ascending type id: TRs in ascending type id, REs (inserted at the
front of their boundary list) in descending type id. The tie order never changes the rows nor the decoded
spans (different types use different stacks and columns).

Multi-hot rows G (``num_rows x A``): walk the flat sequence; SH and EOA always start a row of their own;
TR/RE join the current row when the previous action was not SH and their column is still unset in the row,
otherwise they start a new row. So everything between two SHs shares one row unless a column repeats, and
``num_rows = N + 1 + #TR/RE rows``. Rows are returned sparsely, ``(rows, cols)`` index pairs; the SH rows are
computed with one ``cumsum`` over the per-boundary extra-row counts, and Python loops only over boundaries
that carry spans.

Decoder (A5, with the end bound fixed to ``start < wc <= N``), on the decision logits ``z_t`` that
generation advanced on (the raw logits, or the calibrated ``u - c`` of ``lightning_modules.decisions``).
Per row ``t``: ``a* = argmax z_t``; stop at the first row whose argmax is EOA; an SH argmax advances the
word counter ``wc`` (TR/RE above the threshold on that row are ignored); otherwise apply every RE with
``sigmoid(z) > threshold`` (ascending index; each pops the most recent open start of its type and emits
``[s, wc)`` when ``s < wc <= N``), then every TR above the threshold (push ``wc`` on the stack of its
type). The threshold is per type (tuned on dev). Spans left open are dropped. Output is a deduplicated
list sorted by ``(start, -end, type)``.

Round trip ``decode(oracle(spans)) == sorted(set(spans))`` and its exact exceptions:

* **Identical duplicates** (same start, end and type) are *deduplicated by the oracle* (a mention annotated
  twice is one mention; the metrics count sets). Without the dedupe the oracle would emit TR(k) twice and
  RE(k) twice in separate rows and the decoder, which dedupes its output, would return the span once.
* **Crossing spans of the same type** (``s1 < s2 < e1 < e2``, same ``k``) cannot round-trip by
  construction: with one stack per type, a RE closes the *most recent* open span of its type. For
  ``A[0,3), A[1,4)`` the oracle emits ``TR(A)@0, TR(A)@1, RE(A)@3, RE(A)@4``; the decoder pops start 1 at
  wc = 3 and start 0 at wc = 4, giving ``A[0,4), A[1,3)``: the same multiset of starts and ends per type,
  re-paired as a nested pair. In general the decoder returns, per type, the bracket matching of the starts
  and ends (a laminar family). Crossing spans of *different* types are fine.
* Everything else round-trips: per type, a laminar family written with opens longest-first, closes
  shortest-first and closes before opens at a shared boundary is a well-formed bracket sequence, so the
  per-type stack matches every RE with its own TR. This covers nesting with a shared start or end,
  adjacent spans of one type (``RE(A), TR(A)`` share a row; REs are applied first), spans ending at the
  last word and one-word sentences. ``tests/test_sru_actions.py`` checks it on random span sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from lightning_modules.decisions import sigmoid, threshold_logits
from metrics.span_f1 import SpanTuple

if TYPE_CHECKING:
    from datamodules.label_space import LabelSpace

EOA = 0
SHIFT = 1
FIRST_TYPED = 2


class ActionVocabulary:
    """Fixed action indices: ``EOA=0``, ``SHIFT=1``, ``TR(k)=2+2k``, ``RE(k)=3+2k``; ``size = 2M+2``."""

    EOA: int = EOA
    SHIFT: int = SHIFT

    def __init__(self, num_types: int):
        if num_types < 1:
            raise ValueError("an action vocabulary needs at least one entity type")
        self.num_types = int(num_types)
        self.size = 2 * self.num_types + 2
        # (M,) int64: TR and RE column of each type id.
        self.transition_cols = np.arange(self.num_types, dtype=np.int64) * 2 + 2
        self.reduce_cols = self.transition_cols + 1

    @classmethod
    def from_label_space(cls, label_space: LabelSpace) -> ActionVocabulary:
        return cls(len(label_space))

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionVocabulary) and other.num_types == self.num_types

    def __hash__(self) -> int:
        return hash(self.num_types)

    def __repr__(self) -> str:
        return f"ActionVocabulary(num_types={self.num_types}, size={self.size})"

    # --- scalar helpers ------------------------------------------------------------------------
    def transition(self, type_id: int) -> int:
        self._check_type(type_id)
        return 2 + 2 * type_id

    def reduce(self, type_id: int) -> int:
        self._check_type(type_id)
        return 3 + 2 * type_id

    def is_typed(self, action: int) -> bool:
        return FIRST_TYPED <= action < self.size

    def is_transition(self, action: int) -> bool:
        return self.is_typed(action) and action % 2 == 0

    def is_reduce(self, action: int) -> bool:
        return self.is_typed(action) and action % 2 == 1

    def type_of(self, action: int) -> int:
        """Type id of a TR/RE action; ``ValueError`` for EOA/SHIFT or out-of-range indices."""
        if not self.is_typed(action):
            raise ValueError(f"action {action} is not a TR/RE action of a {self.size}-action vocabulary")
        return (action - FIRST_TYPED) // 2

    def name(self, action: int, type_names: Sequence[str] | None = None) -> str:
        """Readable name, e.g. ``TR(DNA)``; ``type_names[k]`` defaults to the type id."""
        if action == EOA:
            return "EOA"
        if action == SHIFT:
            return "SH"
        k = self.type_of(action)
        label = type_names[k] if type_names is not None else str(k)
        return f"{'TR' if self.is_transition(action) else 'RE'}({label})"

    # --- vectorised helpers --------------------------------------------------------------------
    def typed_mask(self, type_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(A,)`` bool: the TR and RE columns of the given type ids."""
        mask = np.zeros(self.size, dtype=bool)
        ids = np.asarray(type_ids, dtype=np.int64)
        mask[self.transition_cols[ids]] = True
        mask[self.reduce_cols[ids]] = True
        return mask

    def _check_type(self, type_id: int) -> None:
        if not 0 <= type_id < self.num_types:
            raise ValueError(f"type id {type_id} outside [0, {self.num_types})")


def other_corpus_mask(label_space: LabelSpace, corpus: str) -> np.ndarray:
    """``(A,)`` bool: TR/RE columns of the types that do *not* belong to ``corpus`` (spec A4 ``Mo``).

    EOA, SHIFT and the corpus's own TR/RE columns are False.
    """
    vocab = ActionVocabulary.from_label_space(label_space)
    own = vocab.typed_mask(label_space.type_ids_of(corpus))
    other = vocab.typed_mask(np.arange(vocab.num_types))
    return other & ~own


def other_corpus_masks(label_space: LabelSpace) -> np.ndarray:
    """``(K, A)`` bool, row ``label_space.corpus_index[c]`` = ``other_corpus_mask(label_space, c)``.

    Index it with a ``(B,)`` corpus-id tensor to get the per-sentence ``(B, A)`` mask in one gather.
    """
    return np.stack([other_corpus_mask(label_space, c) for c in label_space.corpora])


# --- oracle ------------------------------------------------------------------------------------
def _canonical_spans(spans: Sequence[SpanTuple], num_words: int, num_types: int) -> list[SpanTuple]:
    """Validate, deduplicate and sort spans by ``(start, -end, type)``."""
    if num_words < 0:
        raise ValueError(f"num_words must be >= 0, got {num_words}")
    unique = {(int(s), int(e), int(k)) for s, e, k in spans}
    for s, e, k in unique:
        if not 0 <= s < e <= num_words:
            raise ValueError(f"span ({s}, {e}, {k}) outside a {num_words}-word sentence or empty")
        if not 0 <= k < num_types:
            raise ValueError(f"span ({s}, {e}, {k}): type id outside [0, {num_types})")
    return sorted(unique, key=lambda x: (x[0], -x[1], x[2]))


def _boundary_actions(
    spans: Sequence[SpanTuple], num_words: int, vocab: ActionVocabulary
) -> dict[int, list[int]]:
    """Per boundary ``i`` that carries spans: its TR/RE actions in canonical order (spec A1)."""
    canon = _canonical_spans(spans, num_words, vocab.num_types)
    # Reference: stable sort longest-first over spans listed by ascending type id; TRs appended (ties in
    # ascending type id), REs inserted at the front (shortest first, ties in descending type id).
    ends: dict[int, list[SpanTuple]] = {}
    starts: dict[int, list[SpanTuple]] = {}
    for span in canon:
        starts.setdefault(span[0], []).append(span)
        ends.setdefault(span[1], []).append(span)
    out: dict[int, list[int]] = {}
    for i in sorted(starts.keys() | ends.keys()):
        closing = sorted(ends.get(i, ()), key=lambda x: (x[1] - x[0], -x[2]))
        opening = sorted(starts.get(i, ()), key=lambda x: (-(x[1] - x[0]), x[2]))
        out[i] = [3 + 2 * k for _, _, k in closing] + [2 + 2 * k for _, _, k in opening]
    return out


def gold_action_sequence(spans: Sequence[SpanTuple], num_words: int, vocab: ActionVocabulary) -> list[int]:
    """Flat canonical action sequence (spec A1), ending with EOA. Duplicate spans are deduplicated."""
    groups = _boundary_actions(spans, num_words, vocab)
    seq: list[int] = []
    for i in range(num_words + 1):
        seq.extend(groups.get(i, ()))
        if i < num_words:
            seq.append(SHIFT)
    seq.append(EOA)
    return seq


def gold_action_rows(
    spans: Sequence[SpanTuple], num_words: int, vocab: ActionVocabulary
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sparse multi-hot gold matrix G of one sentence (spec A1).

    Args:
        spans: ``(start, end, type_id)`` with ``0 <= start < end <= num_words``; duplicates are dropped.
        num_words: N, the number of words.
        vocab: the action vocabulary (``type_id < vocab.num_types``).

    Returns:
        rows: ``(R,)`` int64 row index of each set cell, sorted by (row, col).
        cols: ``(R,)`` int64 action column of each set cell.
        num_rows: ``T_gold = N + 1 + #TR/RE rows``; ``G[rows, cols] = 1`` on a ``(num_rows, A)`` zero matrix.
    """
    groups = _boundary_actions(spans, num_words, vocab)
    # Rows of each boundary group, greedy: a repeated column starts a new row (the first action after an
    # SH, or the first of the sentence, always opens a row).
    extra = np.zeros(num_words + 1, dtype=np.int64)  # (N+1,) TR/RE rows emitted at boundary i
    g_local: list[tuple[int, int, int]] = []  # (boundary, row within the group, col)
    for i, actions in groups.items():
        row, seen = 0, set()
        for col in actions:
            if col in seen:
                row, seen = row + 1, set()
            seen.add(col)
            g_local.append((i, row, col))
        extra[i] = row + 1
    cum = np.cumsum(extra)  # (N+1,) TR/RE rows up to and including boundary i
    # Boundary i's group starts after the SHs of words 0..i-1 and the groups of boundaries < i.
    group_start = np.arange(num_words + 1, dtype=np.int64) + cum - extra  # (N+1,)
    sh_rows = np.arange(num_words, dtype=np.int64) + cum[:num_words]  # (N,) SH(i) follows group i
    num_rows = int(num_words + cum[-1]) + 1
    if g_local:
        loc = np.asarray(g_local, dtype=np.int64)  # (G, 3)
        typed_rows = group_start[loc[:, 0]] + loc[:, 1]
        typed_cols = loc[:, 2]
    else:
        typed_rows = typed_cols = np.zeros(0, dtype=np.int64)
    rows = np.concatenate([typed_rows, sh_rows, np.array([num_rows - 1], dtype=np.int64)])
    cols = np.concatenate(
        [typed_cols, np.full(num_words, SHIFT, dtype=np.int64), np.array([EOA], dtype=np.int64)]
    )
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], num_rows


def dense_rows(rows: np.ndarray, cols: np.ndarray, num_rows: int, num_actions: int) -> np.ndarray:
    """``(num_rows, A)`` float32 0/1 matrix from the sparse ``gold_action_rows`` output."""
    dense = np.zeros((num_rows, num_actions), dtype=np.float32)
    dense[rows, cols] = 1.0
    return dense


def dense_batch(
    items: Sequence[tuple[np.ndarray, np.ndarray, int]], num_actions: int, pad_to: int | None = None
) -> np.ndarray:
    """``(B, T_max, A)`` float32 zero-padded gold rows of a batch of ``gold_action_rows`` outputs."""
    t_max = max([n for _, _, n in items], default=0)
    t_max = max(t_max, pad_to or 0)
    out = np.zeros((len(items), t_max, num_actions), dtype=np.float32)
    if items:
        b = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, (r, _, _) in enumerate(items)])
        out[b, np.concatenate([r for r, _, _ in items]), np.concatenate([c for _, c, _ in items])] = 1.0
    return out


# --- decoder -----------------------------------------------------------------------------------
@dataclass
class TypedCells:
    """The TR/RE cells a decoder can fire, from one generation pass: every typed cell of every row whose
    argmax is a TR/RE action, before the sentence's first EOA argmax, with a decision logit above
    ``floor``. Sorted per row with REs (ascending column) before TRs (ascending column), the order in
    which the decoder applies them. Which cells fire is then one comparison per threshold, so one pass
    serves every candidate threshold (``training/thresholds.py``)."""

    batch_size: int
    num_words: list[int]
    sentence: np.ndarray  # (C,) int64
    column: np.ndarray  # (C,) int64 action column
    word_counter: np.ndarray  # (C,) int64 wc on the cell's row
    logit: np.ndarray  # (C,) float64 decision logit

    @property
    def type_id(self) -> np.ndarray:
        return (self.column - FIRST_TYPED) >> 1


def _to_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach()
        if values.dtype not in (torch.float32, torch.float64):
            values = values.float()
        return values.cpu().numpy()
    return np.asarray(values)


def typed_cells(
    logits: np.ndarray | torch.Tensor,
    num_words: Sequence[int] | np.ndarray | torch.Tensor,
    vocab: ActionVocabulary,
    floor: float = -np.inf,
    cell_offset: np.ndarray | None = None,
) -> TypedCells:
    """Spec A5's row decisions on a ``(B, T, A)`` batch of decision logits (generation's own, so the
    row argmax is the one generation advanced on): per row ``a* = argmax``; stop at the first EOA argmax;
    an SH argmax advances the word counter; a TR/RE argmax makes the row's TR/RE cells candidates. A
    cell's logit, which its threshold reads, is the row's minus ``cell_offset[a]`` (``(A,)``; None: 0)."""
    z = _to_numpy(logits)
    n = np.asarray(_to_numpy(num_words) if isinstance(num_words, torch.Tensor) else num_words, dtype=np.int64)
    if z.ndim != 3 or z.shape[-1] != vocab.size or len(n) != z.shape[0]:
        raise ValueError(
            f"expected (B, T, {vocab.size}) decision logits and B word counts, got {z.shape}, {len(n)}"
        )
    bsz, steps, _ = z.shape
    if steps == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TypedCells(bsz, n.tolist(), empty, empty, empty, np.zeros(0))
    best = z.argmax(-1)  # (B, T); the first maximum on ties, as torch.argmax in generation
    is_eoa = best == EOA
    cut = np.where(is_eoa.any(1), is_eoa.argmax(1), steps)  # (B,) first EOA-argmax row, else T
    live = np.arange(steps)[None, :] < cut[:, None]  # (B, T) rows before the first EOA argmax
    word_counter = np.cumsum((best == SHIFT) & live, axis=1)  # (B, T) #SH rows so far (== wc on TR/RE rows)
    typed_row = live & (best >= FIRST_TYPED)  # (B, T)
    cells = z[:, :, FIRST_TYPED:].astype(np.float64)  # (B, T, A-2)
    if cell_offset is not None:
        cells = cells - np.asarray(cell_offset, dtype=np.float64)[FIRST_TYPED:]
    candidate = (cells > floor) & typed_row[:, :, None]  # (B, T, A-2)
    b_idx, t_idx, a_idx = np.nonzero(candidate)
    order = np.lexsort((a_idx, a_idx % 2 == 0, t_idx, b_idx))  # per row: REs (ascending) before TRs
    b_idx, t_idx, a_idx = b_idx[order], t_idx[order], a_idx[order]
    logit = cells[b_idx, t_idx, a_idx]
    return TypedCells(bsz, n.tolist(), b_idx, a_idx + FIRST_TYPED, word_counter[b_idx, t_idx], logit)


def decode_cells(
    cells: TypedCells, thresholds: float | np.ndarray | torch.Tensor
) -> tuple[list[list[SpanTuple]], list[list[float]]]:
    """Spec A5's stacks on the cells whose calibrated probability is above their type's threshold (a
    float, or ``(M,)`` per type id): every RE pops the most recent open start of its type and emits
    ``[s, wc)`` when ``s < wc <= N``; every TR pushes ``wc``. Per sentence its spans, sorted by
    ``(start, -end, type)``, and aligned with them each span's score, min(p TR, p RE). A type's spans
    depend on its own threshold only."""
    bounds = threshold_logits(thresholds)
    limit = bounds[cells.type_id] if bounds.ndim else bounds
    fire = cells.logit > limit
    probs = sigmoid(cells.logit[fire]).tolist()
    found: list[dict[SpanTuple, float]] = [{} for _ in range(cells.batch_size)]  # span -> min(p TR, p RE)
    stacks: dict[tuple[int, int], list[tuple[int, float]]] = {}
    rows = zip(cells.sentence[fire].tolist(), cells.column[fire].tolist(), cells.word_counter[fire].tolist())
    n_list = cells.num_words
    for (b, a, wc), p in zip(rows, probs):
        k = (a - FIRST_TYPED) >> 1
        if a % 2 == 0:  # TR
            stacks.setdefault((b, k), []).append((wc, p))
            continue
        stack = stacks.get((b, k))
        if stack:
            start, p_open = stack.pop()
            if start < wc <= n_list[b]:
                span = (start, wc, k)
                found[b][span] = max(found[b].get(span, 0.0), min(p_open, p))
    spans = [sorted(f, key=lambda x: (x[0], -x[1], x[2])) for f in found]
    return spans, [[f[s] for s in ordered] for f, ordered in zip(found, spans)]


def decode_batch(
    logits: np.ndarray | torch.Tensor,
    num_words: Sequence[int] | np.ndarray | torch.Tensor,
    vocab: ActionVocabulary,
    thresholds: float | np.ndarray | torch.Tensor = 0.5,
) -> tuple[list[list[SpanTuple]], list[list[float]]]:
    """Decode a ``(B, T, A)`` batch of decision logits (CPU tensor or array; one host transfer per
    batch): per sentence its spans, and aligned with them each span's score, min(p TR, p RE), ``p`` the
    sigmoid of the decision logit. A TR/RE fires when its probability is above ``thresholds`` (one
    value, or ``(M,)`` per type id).

    It reads logits, not probabilities: fp32 sigmoids tie at 1.0 from a logit of about 16.7 on, where
    the argmax of the probabilities could pick another row type than generation, which advances on the
    argmax of the logits. Rows after a sentence's own sequence may hold anything: decoding stops at its
    first EOA argmax.
    """
    bounds = threshold_logits(thresholds)
    return decode_cells(typed_cells(logits, num_words, vocab, floor=float(bounds.min())), thresholds)
