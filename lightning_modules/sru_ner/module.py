"""SRU-NER as a ``SpanNERModule``: the network, its action-row targets, its loss and its span decoding."""

from __future__ import annotations

import functools

from datamodules.label_space import LabelSpace
from lightning_modules.base import SpanNERModule
from lightning_modules.encoder import WordEncoder
from lightning_modules.outputs import LossTerms, Prediction
from lightning_modules.registry import register_model
from lightning_modules.sru_ner.actions import ActionVocabulary, decode_batch
from lightning_modules.sru_ner.config import SRUNERConfig
from lightning_modules.sru_ner.network import SRUNERNetwork
from lightning_modules.sru_ner.targets import SRUTargetEncoder
from losses import multi_hot_bce_terms


@register_model(
    "sru_ner",
    description="transition-based action generator with a slot memory; nested mentions (Ruano et al. 2025)",
)
class SRUNERModule(SpanNERModule):
    config_class = SRUNERConfig
    input_keys = ("input_ids", "attention_mask", "word_index", "word_mask", "gold_rows", "other_mask")

    @classmethod
    def build_network(
        cls, config: SRUNERConfig, label_space: LabelSpace, encoder: WordEncoder
    ) -> SRUNERNetwork:
        num_actions = ActionVocabulary(len(label_space)).size
        return SRUNERNetwork(encoder, config, num_actions)

    @functools.cached_property
    def vocab(self) -> ActionVocabulary:
        return ActionVocabulary(len(self.label_space))

    def target_encoder(self) -> SRUTargetEncoder:
        return SRUTargetEncoder(self.label_space)

    def loss_terms(self, batch: dict) -> LossTerms:
        """The summed BCE of the kept action rows (``model.loss_normalization=rows``) or of the
        per-sentence means (``sentences``), and the count of those rows (sentences), known only after
        the forward pass (a displaced SHIFT adds a row)."""
        out = self.network(batch)
        return LossTerms(
            *multi_hot_bce_terms(
                out.logits, out.targets, out.row_mask, normalization=self.model_cfg.loss_normalization
            )
        )

    def predict(self, batch: dict) -> Prediction:
        """Spans with scores: the lower of the probabilities of the span's TR and RE actions."""
        probs = self.network.generate(batch).cpu()  # the one host transfer per batch
        spans, scores = decode_batch(probs, batch["num_words"], self.vocab)
        return Prediction(spans, scores=scores)
