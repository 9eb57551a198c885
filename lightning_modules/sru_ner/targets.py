"""Collate-time target encoding for SRU-NER: spans -> multi-hot gold action rows (runs in loader workers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.sru_ner.codec import (
    ActionVocabulary,
    dense_batch,
    gold_action_rows,
    other_corpus_masks,
)


class SRUTargetEncoder:
    """Adds ``gold_rows`` (B, T_gold, A) and, with several corpora, ``other_mask`` (B, A) to a batch.

    A plain picklable object, so a data loader can call it in its workers.
    """

    def __init__(self, label_space: LabelSpace | Mapping[str, Sequence[str]]):
        space = LabelSpace.coerce(label_space)
        self.vocab = ActionVocabulary(len(space))
        self.other_masks = torch.from_numpy(other_corpus_masks(space))  # (K, A) bool
        self.multitask = len(space.corpora) > 1

    def __call__(self, batch: dict) -> dict:
        num_words = batch["num_words"].tolist()
        items = [
            gold_action_rows(spans.tolist(), n, self.vocab) for spans, n in zip(batch["spans"], num_words)
        ]
        batch["gold_rows"] = torch.from_numpy(dense_batch(items, self.vocab.size))
        batch["gold_len"] = torch.from_numpy(np.array([n for _, _, n in items], dtype=np.int64))
        if self.multitask:
            batch["other_mask"] = self.other_masks[batch["corpus_id"]]
        return batch


def action_counts(
    rows_by_corpus: Mapping[str, Any], label_space: LabelSpace
) -> tuple[np.ndarray, np.ndarray]:
    """Per action column, its gold cells over the training rows: ``(A,)`` positives (1 in the gold
    rows) and negatives (0), counting only the cells the loss supervises with a hard target: on a
    sentence of corpus D, SHIFT, EOA and D's own TR/RE columns on every row, and the other corpora's
    TR/RE columns on the EOA row alone (the dynamic target's soft cells are left out)."""
    vocab = ActionVocabulary(len(label_space))
    other = other_corpus_masks(label_space)  # (K, A) bool
    positives = np.zeros(vocab.size, dtype=np.int64)
    negatives = np.zeros(vocab.size, dtype=np.int64)
    for corpus, rows in rows_by_corpus.items():
        others = other[label_space.corpus_index[corpus]]
        own = ~others
        for spans, num_words in zip(rows["spans"], rows["num_words"]):
            flat = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
            _, cols, num_rows = gold_action_rows([tuple(s) for s in flat.tolist()], int(num_words), vocab)
            cells = np.bincount(cols, minlength=vocab.size)
            positives += cells
            negatives[own] += num_rows - cells[own]
            negatives[others] += 1  # the EOA row
    return positives, negatives
