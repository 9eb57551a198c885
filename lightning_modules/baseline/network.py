"""The per-corpus tagger as a plain ``nn.Module``: shared encoder -> word vectors -> one BIO head per corpus.

The heads are stored stacked in one ``nn.Linear`` (``BIOLayout`` says which columns are whose): one
matrix product computes every head, and a corpus's head only receives gradient from the loss of its own
sentences, because the loss reads only the sentence corpus's columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.baseline.codec import IGNORE, BIOLayout
from lightning_modules.encoder import WordEncoder


class PerCorpusTaggerNetwork(nn.Module):
    def __init__(self, encoder: WordEncoder, layout: BIOLayout, dropout: float = 0.1, pooling: str = "max"):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling  # of a word's subwords (``WordEncoder.forward``)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.Linear(encoder.hidden_size, layout.total)  # every corpus's tags, stacked
        self.register_buffer("columns", torch.from_numpy(layout.columns), persistent=False)  # (K, L)
        self.register_buffer("valid", torch.from_numpy(layout.valid), persistent=False)  # (K, L)

    def tag_logits(self, batch: dict) -> torch.Tensor:  # (B, N, total) over the words of each sentence
        num_slots = batch["word_mask"].shape[1]  # Q = N + 2: CLS, the words, SEP
        slots = self.encoder(
            batch["input_ids"], batch["attention_mask"], batch["word_index"], num_slots, pooling=self.pooling
        )
        words = slots[:, 1 : num_slots - 1]  # (B, N, d)
        return self.heads(self.dropout(words))

    def forward(self, batch: dict) -> torch.Tensor:
        """Mean cross-entropy over the words of the batch, each sentence under its own corpus's head."""
        total, count = self.loss_terms(batch)
        return total / count.clamp(min=1)

    def loss_terms(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-entropy summed over the tagged words of the batch (each sentence under its own
        corpus's head) and the number of those words: ``(sum, count)``, scalars on the device."""
        logits = self.tag_logits(batch).float()  # (B, N, total)
        columns, valid = batch["head_columns"], batch["head_valid"]  # (B, L) each
        own = logits.gather(-1, columns[:, None, :].expand(-1, logits.shape[1], -1))  # (B, N, L)
        own = own.masked_fill(~valid[:, None, :], float("-inf"))
        tags = batch["tags"].flatten()
        total = F.cross_entropy(own.flatten(0, 1), tags, ignore_index=IGNORE, reduction="sum")
        return total, (tags != IGNORE).sum()

    @torch.no_grad()
    def predict_tags(self, batch: dict) -> torch.Tensor:
        """``(B, N, K)`` argmax local tag of every corpus head for every word."""
        logits = self.tag_logits(batch)  # (B, N, total)
        per_head = logits[..., self.columns]  # (B, N, K, L)
        return per_head.masked_fill(~self.valid, float("-inf")).argmax(-1)

    def predict_tags_with_probs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, K)`` argmax local tags of every head and their softmax probabilities."""
        logits = self.tag_logits(batch)[..., self.columns].masked_fill(~self.valid, float("-inf"))
        probs, tags = logits.float().softmax(-1).max(-1)
        return tags, probs
