"""The per-corpus tagging baseline as a ``SpanNERModule`` (``model=baseline``)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.base import SpanNERModule
from lightning_modules.baseline.codec import BIOLayout, decode_tags
from lightning_modules.baseline.config import BaselineConfig
from lightning_modules.baseline.network import PerCorpusTaggerNetwork
from lightning_modules.baseline.targets import BIOTargetEncoder
from lightning_modules.encoder import WordEncoder
from lightning_modules.outputs import LossTerms, Prediction
from lightning_modules.registry import register_model
from lightning_modules.row_keys import CORPUS, TYPE, RowKey


@register_model(
    "baseline",
    description="shared encoder + one BIO tagging head per corpus; flat mentions, the yardstick",
)
class PerCorpusTaggerModule(SpanNERModule):
    config_class = BaselineConfig
    input_keys = (
        "input_ids", "attention_mask", "word_index", "word_mask", "tags", "head_columns", "head_valid",
    )  # fmt: skip

    @classmethod
    def build_network(
        cls, config: BaselineConfig, label_space: LabelSpace, encoder: WordEncoder
    ) -> PerCorpusTaggerNetwork:
        return PerCorpusTaggerNetwork(
            encoder, BIOLayout(label_space), dropout=config.dropout, pooling=config.pooling
        )

    @classmethod
    def type_rows(cls, model_config: BaselineConfig, label_space: LabelSpace) -> dict[str, list[RowKey]]:
        """The stacked heads' columns: per corpus its ``O``, then ``B`` and ``I`` of each of its types."""
        tags: list[RowKey] = []
        for corpus in label_space.corpora:
            tags.append(("O", CORPUS, corpus))
            for type_id in label_space.type_ids_of(corpus):
                tags += [("B", TYPE, label_space.types[type_id]), ("I", TYPE, label_space.types[type_id])]
        return {"network.heads.weight": tags, "network.heads.bias": tags}

    @functools.cached_property
    def layout(self) -> BIOLayout:
        return BIOLayout(self.label_space)

    def target_encoder(self) -> BIOTargetEncoder:
        return BIOTargetEncoder(self.label_space)

    def loss_terms(self, batch: dict) -> LossTerms:
        """The cross-entropy summed over the batch's tagged words, and their number."""
        return LossTerms(*self.network.loss_terms(batch))

    def predict(self, batch: dict) -> Prediction:
        """Spans of every head; a span's score is the lowest probability of its words' tags."""
        tags, probs = self.network.predict_tags_with_probs(batch)
        tags, probs = torch.stack([tags.to(probs.dtype), probs]).detach().cpu().numpy()  # one host transfer
        spans = decode_tags(tags.astype(np.int64), batch["num_words"], self.layout)
        head = self.label_space.corpus_id_per_type()  # head k tags corpus k
        scores = [[float(probs[b, s:e, head[t]].min()) for s, e, t in found] for b, found in enumerate(spans)]
        return Prediction(spans, scores=scores)
