"""SRU-NER as a ``SpanNERModule``: the network, its action-row targets, its loss and its span decoding."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.base import SpanNERModule
from lightning_modules.decisions import DEFAULT_THRESHOLD, binary_offset, threshold_logits
from lightning_modules.encoder import WordEncoder
from lightning_modules.outputs import LossTerms, Prediction
from lightning_modules.registry import register_model
from lightning_modules.row_keys import POOL, TYPE, RowKey
from lightning_modules.settings import ModuleSettings
from lightning_modules.sru_ner.codec import (
    EOA,
    SHIFT,
    ActionVocabulary,
    TypedCells,
    decode_cells,
    typed_cells,
)
from lightning_modules.sru_ner.config import SRUNERConfig
from lightning_modules.sru_ner.network import SRUHead, SRUNERNetwork
from lightning_modules.sru_ner.targets import SRUTargetEncoder, action_counts
from losses import balanced_binary_weights, multi_hot_bce_terms, welt_binary_weights


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

    @classmethod
    def type_rows(cls, model_config: SRUNERConfig, label_space: LabelSpace) -> dict[str, list[RowKey]]:
        """The action rows: ``EOA``, ``SHIFT``, then ``TR`` and ``RE`` of each type (``ActionVocabulary``)."""
        actions: list[RowKey] = [("EOA",), ("SHIFT",)]
        for qualified in label_space.types:
            actions += [("TR", TYPE, qualified), ("RE", TYPE, qualified)]
        latents = [("latent", POOL, str(j)) for j in range(model_config.action_space_dim * len(actions))]
        rows = {f"network.head.{name}": actions for name in SRUHead.ACTION_ROWS}
        return rows | {f"network.head.{name}": latents for name in SRUHead.LATENT_ROWS}

    def __init__(
        self,
        network: SRUNERNetwork,
        settings: ModuleSettings,
        label_space: LabelSpace | Mapping[str, Any],
        *,
        run_config: Mapping[str, Any],
        encoder_config: Mapping[str, Any] | None = None,
    ):
        super().__init__(network, settings, label_space, run_config=run_config, encoder_config=encoder_config)
        # model.action_weighting's per-column weights: ones until learn_from_training_rows (which train.py
        # runs before every fit, resumes included); model state, so a loaded model decides as it trained
        size = self.vocab.size
        self.register_model_state("action_pos_weight", torch.ones(size))
        self.register_model_state("action_neg_weight", torch.ones(size))
        self.register_model_state("type_thresholds", torch.full((len(self.label_space),), DEFAULT_THRESHOLD))

    @property
    def uses_training_rows(self) -> bool:  # type: ignore[override]
        return self.model_cfg.action_weighting != "none"

    def learn_from_training_rows(self, rows_by_corpus: Mapping[str, Any]) -> None:
        """The per-column weights of ``model.action_weighting`` from the training rows' gold action cells
        (``targets.action_counts``): WeLT's pair per column, or the capped negative/positive ratio."""
        weighting = self.model_cfg.action_weighting
        if weighting == "none":
            return
        positives, negatives = (torch.from_numpy(c) for c in action_counts(rows_by_corpus, self.label_space))
        if weighting == "welt":
            pos, neg = welt_binary_weights(positives, negatives)
        else:
            pos, neg = balanced_binary_weights(positives, negatives, self.model_cfg.action_weight_cap)
        if self.model_cfg.weighted_actions == "typed":  # SH and EOA unweighted
            pos[[EOA, SHIFT]], neg[[EOA, SHIFT]] = 1.0, 1.0
        self.action_pos_weight.copy_(pos)
        self.action_neg_weight.copy_(neg)

    @property
    def decision_offset(self) -> torch.Tensor | None:
        """``(A,)`` ``log(w+ / w-)``, what generation's decisions (pointer, EOA stop, row argmax) and the
        SH test subtract from the logits (``model.decisions=calibrated`` with a weighting), else None."""
        if self.model_cfg.decisions != "calibrated" or self.model_cfg.action_weighting == "none":
            return None
        return binary_offset(self.action_pos_weight, self.action_neg_weight)

    @property
    def soft_sh_offset(self) -> torch.Tensor | None:
        """``(A,)`` ``log(w+ / w-)`` (0 unweighted), the calibration of the soft SH target's beliefs
        (``model.sh_target=soft``), else None."""
        if self.model_cfg.sh_target != "soft":
            return None
        return binary_offset(self.action_pos_weight, self.action_neg_weight)

    @property
    def threshold_offset(self) -> np.ndarray | None:
        """What the TR/RE thresholds subtract from generation's logits on top of ``decision_offset``:
        ``log(w+ / w-)`` with ``model.decisions=thresholds`` (and a weighting), else None."""
        if self.model_cfg.decisions != "thresholds" or self.model_cfg.action_weighting == "none":
            return None
        return binary_offset(self.action_pos_weight, self.action_neg_weight).double().cpu().numpy()

    @functools.cached_property
    def vocab(self) -> ActionVocabulary:
        return ActionVocabulary(len(self.label_space))

    def target_encoder(self) -> SRUTargetEncoder:
        return SRUTargetEncoder(self.label_space)

    def loss_terms(self, batch: dict) -> LossTerms:
        """The summed BCE of the kept action rows (``model.loss_normalization=rows``) or of the
        per-sentence means (``sentences``), and the count of those rows (sentences), known only after
        the forward pass (a displaced SHIFT adds a row)."""
        out = self.network(batch, self.decision_offset, self.soft_sh_offset)
        weighted = self.model_cfg.action_weighting != "none"
        trained_soft = None
        if weighted and self.model_cfg.sh_target == "soft":
            trained_soft = torch.arange(self.vocab.size, device=out.logits.device) == SHIFT
        return LossTerms(
            *multi_hot_bce_terms(
                out.logits,
                out.targets,
                out.row_mask,
                normalization=self.model_cfg.loss_normalization,
                pos_weight=self.action_pos_weight if weighted else None,
                neg_weight=self.action_neg_weight if weighted else None,
                trained_soft=trained_soft,
            )  # fmt: skip
        )

    def tunes_thresholds(self) -> bool:
        return True

    def decision_scores(self, batch: dict, lowest_threshold: float) -> TypedCells:
        """Generation's decision logits (one host transfer per batch), reduced to the TR/RE cells a
        threshold above ``lowest_threshold`` can fire."""
        logits = self.network.generate(batch, self.decision_offset).cpu()
        floor = float(threshold_logits(lowest_threshold))
        return typed_cells(
            logits, batch["num_words"], self.vocab, floor=floor, cell_offset=self.threshold_offset
        )

    def decode_decisions(self, scores: TypedCells, thresholds: np.ndarray) -> Prediction:
        spans, span_scores = decode_cells(scores, thresholds)
        return Prediction(spans, scores=span_scores)

    def predict(self, batch: dict) -> Prediction:
        """Spans with scores: the lower of the calibrated probabilities of the span's TR and RE actions,
        each above its type's threshold."""
        thresholds = self.thresholds()
        return self.decode_decisions(self.decision_scores(batch, float(thresholds.min())), thresholds)
