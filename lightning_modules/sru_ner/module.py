"""SRU-NER as a ``SpanNERModule``: the network, its action-row targets, its loss and its span decoding."""

from __future__ import annotations

import dataclasses

import torch

from lightning_modules.base import Prediction, SpanNERModule, SpanTuple
from lightning_modules.encoder import WordEncoder
from lightning_modules.registry import register_model
from lightning_modules.sru_ner.actions import ActionVocabulary, decode_batch, decode_batch_scored
from lightning_modules.sru_ner.config import HEAD_KEYS, SRUNERConfig
from lightning_modules.sru_ner.network import SRUHeadConfig, SRUNERNetwork
from lightning_modules.sru_ner.targets import SRUTargetEncoder
from losses import multi_hot_bce


@register_model(
    "sru_ner",
    description="transition-based action generator with a slot memory; nested mentions (Ruano et al. 2025)",
)
class SRUNERModule(SpanNERModule):
    config_class = SRUNERConfig
    input_keys = ("input_ids", "attention_mask", "word_index", "word_mask", "gold_rows", "other_mask")

    def build_network(self, encoder: WordEncoder) -> SRUNERNetwork:
        self.vocab = ActionVocabulary(len(self.label_space))
        settings = dataclasses.asdict(self.model_cfg)
        head = SRUHeadConfig(
            num_actions=self.vocab.size, hidden=encoder.hidden_size, **{k: settings[k] for k in HEAD_KEYS}
        )
        return SRUNERNetwork(encoder, head)

    def target_encoder(self) -> SRUTargetEncoder:
        return SRUTargetEncoder(self.label_space)

    def training_loss(self, batch: dict) -> torch.Tensor:
        out = self.network(batch)
        return multi_hot_bce(
            out.logits, out.targets, out.row_mask, normalization=self.model_cfg.loss_normalization
        )

    def predict_spans(self, batch: dict) -> list[list[SpanTuple]]:
        probs = self.network.generate(batch).cpu()  # the one host transfer per batch
        return decode_batch(probs, batch["num_words"], self.vocab)

    def predict(self, batch: dict) -> Prediction:
        """Spans with scores: the lower of the probabilities of the span's TR and RE actions."""
        probs = self.network.generate(batch).cpu()
        spans, scores = decode_batch_scored(probs, batch["num_words"], self.vocab)
        return Prediction(spans, scores=scores)
