"""Collate-time targets of TabERT-CNN (run in the loader workers; picklable)."""

from __future__ import annotations

import numpy as np
import torch

from lightning_modules.tabert_cnn.tables import IGNORE, encode_paper_targets, span_cells


class PaperTargetEncoder:
    """Adds ``ner_labels`` (B, N) BILOU labels and ``rel_labels`` (B, N, N) relation labels of the strict
    upper triangle; padding, the diagonal and the lower triangle are ``IGNORE``."""

    def __call__(self, batch: dict) -> dict:
        num_words = batch["num_words"].tolist()
        b, n = len(num_words), max(num_words, default=0)
        ner = np.full((b, n), IGNORE, dtype=np.int64)
        rel = np.full((b, n, n), IGNORE, dtype=np.int64)
        upper = np.triu(np.ones((n, n), dtype=bool), k=1)
        for s, (spans, relations, m) in enumerate(zip(batch["spans"], batch["relations"], num_words)):
            tags, table, _ = encode_paper_targets(
                [tuple(x) for x in spans.tolist()], [tuple(r) for r in relations.tolist()], m
            )
            ner[s, :m] = tags
            rel[s, :m, :m] = np.where(upper[:m, :m], table, IGNORE)
        batch["ner_labels"] = torch.from_numpy(ner)
        batch["rel_labels"] = torch.from_numpy(rel)
        return batch


class SpanTargetEncoder:
    """Adds ``span_cells`` (M, 4): the ``(sentence, i, j, type)`` cells of the gold mentions, and
    ``supervised_types`` (B, K) bool: the types of each sentence's own corpus (the others get the dynamic
    target)."""

    def __init__(self, corpus_of_type: list[int]):
        self.corpus_of_type = torch.tensor(corpus_of_type, dtype=torch.long)  # (K,)

    def __call__(self, batch: dict) -> dict:
        batch["span_cells"] = span_cells(batch["spans"])
        batch["supervised_types"] = self.corpus_of_type[None, :] == batch["corpus_id"][:, None]
        return batch
