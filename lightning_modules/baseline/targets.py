"""Collate-time targets of the per-corpus tagger: BIO tags and each sentence's head columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from datamodules.label_space import LabelSpace
from lightning_modules.baseline.codec import BIOLayout, encode_tags


class BIOTargetEncoder:
    """Adds ``tags`` (B, N) local BIO tags (padding -100), ``head_columns`` (B, L) and ``head_valid``
    (B, L): the stacked-output columns of each sentence's own corpus head. Picklable (loader workers)."""

    def __init__(self, label_space: LabelSpace | Mapping[str, Sequence[str]]):
        self.layout = BIOLayout(LabelSpace.coerce(label_space))
        self.columns = torch.from_numpy(self.layout.columns)
        self.valid = torch.from_numpy(self.layout.valid)

    def __call__(self, batch: dict) -> dict:
        spans = [[tuple(s) for s in sentence.tolist()] for sentence in batch["spans"]]
        tags, _ = encode_tags(spans, batch["num_words"].tolist(), self.layout)
        batch["tags"] = torch.from_numpy(tags)
        batch["head_columns"] = self.columns[batch["corpus_id"]]
        batch["head_valid"] = self.valid[batch["corpus_id"]]
        return batch
