"""Collate-time targets of TabERT-CNN (run in the loader workers; picklable), and the class counts over
the training rows that WeLT weights come from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.tabert_cnn.codec import IGNORE, BILOULayout, encode_paper_targets, span_cells


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


# --- class counts over the training rows (WeLT's class weights) ---------------------------------------
def class_counts_paper(
    rows_by_corpus: Mapping[str, Any], layout: BILOULayout
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of every entity label over words and every relation label over strict-upper cells."""
    ner = np.zeros(layout.num_entity_labels, dtype=np.int64)
    rel = np.zeros(layout.num_relation_labels, dtype=np.int64)
    for rows in rows_by_corpus.values():
        for n, spans, relations in zip(rows["num_words"], rows["spans"], rows["relations"]):
            spans = [tuple(spans[i : i + 3]) for i in range(0, len(spans), 3)]
            relations = [tuple(relations[i : i + 3]) for i in range(0, len(relations), 3)]
            tags, table, _ = encode_paper_targets(spans, relations, n)
            ner += np.bincount(tags, minlength=layout.num_entity_labels)
            rel += np.bincount(table[np.triu_indices(n, k=1)], minlength=layout.num_relation_labels)
    return ner, rel


def class_counts_span(
    rows_by_corpus: Mapping[str, Any], label_space: LabelSpace
) -> tuple[np.ndarray, np.ndarray]:
    """Per type: gold mention cells (positives) and the other valid cells of its corpus's sentences."""
    pos = np.zeros(len(label_space), dtype=np.int64)
    neg = np.zeros(len(label_space), dtype=np.int64)
    for corpus, rows in rows_by_corpus.items():
        num_words = np.asarray(rows["num_words"], dtype=np.int64)
        cells = int((num_words * (num_words + 1) // 2).sum())
        own = label_space.type_ids_of(corpus)
        flat = np.concatenate(
            [np.asarray(s, dtype=np.int64) for s in rows["spans"]] or [np.zeros(0, np.int64)]
        )
        counts = np.bincount(flat.reshape(-1, 3)[:, 2], minlength=len(label_space))
        pos[own] += counts[own]
        neg[own] += cells - counts[own]
    return pos, neg
