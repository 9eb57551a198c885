"""TabERT-CNN as a ``SpanNERModule`` (``model=tabert_cnn``), in two modes (spec ``tabert-cnn.md`` Part 1):

- ``paper``: joint NER + RE on one relation corpus (CoNLL04, ADE): BILOU labels on the diagonal through a
  linear map of the diagonal's relation logits, directional relation labels on the strict upper triangle,
  loss = sum of both cross-entropies, per sentence (divided by the sentences of the global batch).
- ``span``: NER over any corpora with disjoint label spaces: one sigmoid per corpus-qualified type on each
  cell ``(i, j)``, ``i <= j``, trained with the dynamic multi-hot target (``losses.dynamic_type_target``);
  loss = the summed BCE over valid cells and types, per sentence (the same division).

``mode=auto`` picks ``paper`` for a single corpus with relation types and ``span`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.label_space import LabelSpace
from lightning_modules.base import SpanNERModule
from lightning_modules.decisions import binary_offset, class_offset
from lightning_modules.encoder import WordEncoder
from lightning_modules.outputs import LossTerms, Prediction
from lightning_modules.registry import register_model
from lightning_modules.row_keys import RELATION, TYPE, RowKey, type_keys
from lightning_modules.settings import ModuleSettings
from lightning_modules.tabert_cnn.codec import (
    IGNORE,
    TAGS,
    BILOULayout,
    SpanCells,
    decode_bilou,
    decode_relations,
    decode_span_table,
)
from lightning_modules.tabert_cnn.config import TabERTCNNConfig
from lightning_modules.tabert_cnn.network import TabERTCNNNetwork
from lightning_modules.tabert_cnn.targets import (
    PaperTargetEncoder,
    SpanTargetEncoder,
    class_counts_paper,
    class_counts_span,
)
from losses import dynamic_type_bce_sum, welt_binary_weights, welt_class_weights

SPAN_PRIOR = 0.01  # initial mention probability of every span cell (the output bias), so decoding an
# untrained model does not face n^2 K candidates at p = 0.5


@register_model(
    "tabert_cnn",
    description="word-pair table + 2D CNN: joint entities + relations, or multi-corpus nested NER",
)
class TabERTCNNModule(SpanNERModule):
    config_class = TabERTCNNConfig
    input_keys = (
        "input_ids", "attention_mask", "word_index", "word_mask",
        "ner_labels", "rel_labels", "span_cells", "supervised_types",
    )  # fmt: skip

    uses_training_rows = True  # WeLT class weights (model.class_weighting=welt) count the training cells

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def label_space_problem(cls, model_config: TabERTCNNConfig, label_space: LabelSpace) -> str | None:
        single_relation_corpus = len(label_space.corpora) == 1 and bool(label_space.relation_types)
        if model_config.mode == "paper" and not single_relation_corpus:
            return (
                f"model.mode=paper needs exactly one corpus with relations (CoNLL04 or ADE), not "
                f"{', '.join(label_space.corpora)}: use model.mode=span (NER) for these corpora"
            )
        return None

    @classmethod
    def resolved_mode(cls, config: TabERTCNNConfig, label_space: LabelSpace) -> str:
        problem = cls.label_space_problem(config, label_space)
        if problem:
            raise ValueError(problem)
        if config.mode == "auto":
            single_relation_corpus = len(label_space.corpora) == 1 and bool(label_space.relation_types)
            return "paper" if single_relation_corpus else "span"
        return config.mode

    @classmethod
    def type_rows(cls, model_config: TabERTCNNConfig, label_space: LabelSpace) -> dict[str, list[RowKey]]:
        """Span mode: the last convolution's channel of each type. Paper mode: the entity head's ``O``
        and ``B I L U`` of each type, the last convolution's ``None`` and ``R`` / ``L`` of each relation
        type (``codec.py``)."""
        last = f"network.table.convs.{model_config.layers - 1}."
        if cls.resolved_mode(model_config, label_space) == "span":
            types = type_keys("span", label_space)
            return {f"{last}weight": types, f"{last}bias": types}
        entity: list[RowKey] = [("O",)]
        for qualified in label_space.types:
            entity += [(tag, TYPE, qualified) for tag in TAGS]
        relation: list[RowKey] = [("None",)]
        for qualified in label_space.relation_types:
            relation += [("R", RELATION, qualified), ("L", RELATION, qualified)]
        return {"network.entity_head.weight": entity, "network.entity_head.bias": entity,
                f"{last}weight": relation, f"{last}bias": relation}  # fmt: skip

    @classmethod
    def build_network(
        cls, config: TabERTCNNConfig, label_space: LabelSpace, encoder: WordEncoder
    ) -> TabERTCNNNetwork:
        if cls.resolved_mode(config, label_space) == "paper":
            layout = BILOULayout(len(label_space), len(label_space.relation_types))
            return TabERTCNNNetwork(
                encoder, config, layout.num_relation_labels, num_entity_labels=layout.num_entity_labels
            )
        network = TabERTCNNNetwork(encoder, config, len(label_space))
        with torch.no_grad():
            network.table.convs[-1].bias.fill_(-math.log((1 - SPAN_PRIOR) / SPAN_PRIOR))
        return network

    def __init__(
        self,
        network: TabERTCNNNetwork,
        settings: ModuleSettings,
        label_space: LabelSpace | Mapping[str, Any],
        *,
        run_config: Mapping[str, Any],
        encoder_config: Mapping[str, Any] | None = None,
    ):
        super().__init__(network, settings, label_space, run_config=run_config, encoder_config=encoder_config)
        ls = self.label_space
        self.mode = self.resolved_mode(self.model_cfg, ls)
        # class weights: ones until learn_from_training_rows (WeLT); buffers, so checkpoints carry them
        if self.mode == "paper":
            self.layout = BILOULayout(len(ls), len(ls.relation_types))
            self.register_buffer("entity_class_weights", torch.ones(self.layout.num_entity_labels))
            self.register_buffer("relation_class_weights", torch.ones(self.layout.num_relation_labels))
        else:
            self.register_buffer("span_pos_weight", torch.ones(len(ls)))
            self.register_buffer("span_neg_weight", torch.ones(len(ls)))
            # per-type cell thresholds, model.threshold until tuned on dev (training/thresholds.py)
            self.register_model_state("type_thresholds", torch.full((len(ls),), self.model_cfg.threshold))

    def target_encoder(self) -> PaperTargetEncoder | SpanTargetEncoder:
        if self.mode == "paper":
            return PaperTargetEncoder()
        return SpanTargetEncoder(self.label_space.corpus_id_per_type())

    def learn_from_training_rows(self, rows_by_corpus: Mapping[str, Any]) -> None:
        """With ``model.class_weighting=welt``: WeLT weights (``losses.class_weights``) from the training
        rows of every corpus; otherwise nothing."""
        if self.model_cfg.class_weighting != "welt":
            return
        if self.mode == "paper":
            ner, rel = class_counts_paper(rows_by_corpus, self.layout)
            self.entity_class_weights.copy_(welt_class_weights(ner))
            self.relation_class_weights.copy_(welt_class_weights(rel))
        else:
            pos, neg = class_counts_span(rows_by_corpus, self.label_space)
            w_pos, w_neg = welt_binary_weights(pos, neg)
            self.span_pos_weight.copy_(w_pos)
            self.span_neg_weight.copy_(w_neg)

    # --- training ----------------------------------------------------------------------------------
    def loss_terms(self, batch: dict) -> LossTerms:
        """The summed losses of the batch's sentences and their number (known on the host)."""
        logits, entity_logits = self.network(batch)
        batch_size = logits.shape[0]
        if self.mode == "paper":
            # over flat (cells, classes) rows: a 3-D or 4-D input would go through nll_loss2d, which has
            # no deterministic CUDA kernel (trainer.deterministic=true would fail)
            ner = F.cross_entropy(
                entity_logits.float().reshape(-1, entity_logits.shape[-1]),  # (B n, E)
                batch["ner_labels"].reshape(-1),
                weight=self.entity_class_weights,
                ignore_index=IGNORE,
                reduction="sum",
            )
            rel = F.cross_entropy(
                logits.float().permute(0, 2, 3, 1).reshape(-1, logits.shape[1]),  # (B n n, R)
                batch["rel_labels"].reshape(-1),
                weight=self.relation_class_weights,
                ignore_index=IGNORE,
                reduction="sum",
            )
            return LossTerms(ner + rel, batch_size)
        return LossTerms(self.span_loss(logits, batch), batch_size)

    def span_loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Summed BCE of the valid upper-triangle cells under the dynamic multi-hot target."""
        cells = logits.permute(0, 2, 3, 1)  # (B, n, n, K)
        gold = torch.zeros_like(cells, dtype=torch.float32)
        index = batch["span_cells"]  # (M, 4)
        gold[index[:, 0], index[:, 1], index[:, 2], index[:, 3]] = 1.0
        supervised = batch["supervised_types"][:, None, None, :]  # (B, 1, 1, K)
        return dynamic_type_bce_sum(
            cells, gold, supervised, self.cell_mask(batch), coeff=self.model_cfg.project_coeff,
            pos_weight=self.span_pos_weight, neg_weight=self.span_neg_weight,
        )  # fmt: skip

    @staticmethod
    def cell_mask(batch: dict) -> torch.Tensor:
        """``(B, n, n)`` bool: cells ``(i, j)`` with ``i <= j`` over real words."""
        words = batch["word_mask"][:, 2:]  # (B, n)
        n = words.shape[1]
        upper = torch.ones(n, n, dtype=torch.bool, device=words.device).triu()
        return words[:, :, None] & words[:, None, :] & upper

    # --- prediction --------------------------------------------------------------------------------
    @torch.no_grad()
    def head_eval_bytes(self, sentences: int, words: int, element_bytes: int) -> int:
        table = self.network.table.eval_activation_bytes(sentences, words, element_bytes)
        decode = sentences * words * words * self.network.table.out_channels * 4 * 2  # fp32 probs
        return max(table, decode)

    def _calibrated(self) -> bool:
        """Span mode's thresholds are calibrated unless ``raw``; paper mode's argmax only when
        ``calibrated``."""
        modes = ("calibrated", "thresholds") if self.mode == "span" else ("calibrated",)
        return self.model_cfg.decisions in modes and self.model_cfg.class_weighting != "none"

    def tunes_thresholds(self) -> bool:
        return self.mode == "span"

    @property
    def default_threshold(self) -> float:
        return self.model_cfg.threshold

    def decision_scores(self, batch: dict, lowest_threshold: float) -> SpanCells:
        """Span mode: the cells whose calibrated probability ``sigmoid(u - log(w+/w-))`` is above
        ``lowest_threshold``, with those probabilities (one host transfer)."""
        logits, _ = self.network(batch)
        decisions = logits.float().permute(0, 2, 3, 1)  # (B, n, n, K)
        if self._calibrated():
            decisions = decisions - binary_offset(self.span_pos_weight, self.span_neg_weight)
        probs = torch.sigmoid(decisions) * self.cell_mask(batch)[..., None]
        cells = torch.nonzero(probs > lowest_threshold)  # (M, 4)
        scores = probs[cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3]]
        return SpanCells(len(batch["num_words"]), cells.cpu().numpy(), scores.detach().double().cpu().numpy())

    def decode_decisions(self, scores: SpanCells, thresholds: np.ndarray) -> Prediction:
        keep = scores.probs > np.asarray(thresholds, dtype=np.float64)[scores.cells[:, 3]]
        spans, span_scores = decode_span_table(scores.cells[keep], scores.probs[keep], scores.batch_size)
        return Prediction(spans, scores=span_scores)

    def predict(self, batch: dict) -> Prediction:
        if self.mode == "span":
            thresholds = self.thresholds()
            return self.decode_decisions(self.decision_scores(batch, float(thresholds.min())), thresholds)
        logits, entity_logits = self.network(batch)
        num_words = batch["num_words"].numpy()
        logits, entity_logits = logits.float(), entity_logits.float()
        if self._calibrated():  # a weighted cross-entropy's optimum is log p_c + log w_c (+ a constant)
            logits = logits - class_offset(self.relation_class_weights)[None, :, None, None]
            entity_logits = entity_logits - class_offset(self.entity_class_weights)
        table = logits.argmax(1)  # (B, n, n) relation labels
        word_probs, word_labels = entity_logits.softmax(-1).max(-1)  # (B, n)
        table.diagonal(dim1=1, dim2=2).copy_(word_labels)  # entity labels on the diagonal
        table, word_probs = table.to(torch.int16).cpu().numpy(), word_probs.detach().cpu().numpy()
        entities = decode_bilou(np.diagonal(table, axis1=1, axis2=2), num_words)
        relations = decode_relations(table, entities, self.layout.num_relation_labels)
        # an entity's score: the lowest probability of its words' BILOU labels
        scores = [[float(word_probs[b, s:e].min()) for s, e, _ in found] for b, found in enumerate(entities)]
        return Prediction(entities, relations, scores)
