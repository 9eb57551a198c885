"""Collate-time target encoding for SRU-NER: spans -> multi-hot gold action rows (runs in loader workers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.sru_ner.actions import (
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
