"""SRU-NER LightningModule: training/validation/test steps, metrics and the optimiser."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.encoder import WordEncoder
from lightning_modules.sru_ner.actions import ActionVocabulary, decode_batch
from lightning_modules.sru_ner.network import SRUHeadConfig, SRUNERNetwork
from lightning_modules.sru_ner.targets import SRUTargetEncoder
from losses import multi_hot_bce
from metrics.span_f1 import SpanF1

DEVICE_KEYS = ("input_ids", "attention_mask", "word_index", "word_mask", "gold_rows", "other_mask")
HEAD_KEYS = tuple(f for f in SRUHeadConfig.__dataclass_fields__ if f not in ("num_actions", "hidden"))


class SRUNERModule(pl.LightningModule):
    """``cfg`` is the plain-dict run config (``encoder``, ``model``, ``optim``, ``data`` sections).

    ``encoder_config`` (a transformers config dict) builds the encoder without weights, for tests and for
    reloading a checkpoint whose weights come from the checkpoint itself.
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        label_space: Mapping[str, Sequence[str]],
        encoder_config: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = cfg
        self.label_space = LabelSpace.from_dict(label_space)
        self.vocab = ActionVocabulary(len(self.label_space))
        if encoder_config is not None:
            from transformers import AutoConfig

            config = dict(encoder_config)
            encoder = WordEncoder(config=AutoConfig.for_model(config.pop("model_type"), **config))
        else:
            encoder = WordEncoder(cfg["encoder"]["name"])
        model_cfg = cfg["model"]
        head_cfg = SRUHeadConfig(
            num_actions=self.vocab.size,
            hidden=encoder.hidden_size,
            **{k: model_cfg[k] for k in HEAD_KEYS if k in model_cfg},
        )
        self.network = SRUNERNetwork(encoder, head_cfg)
        self.val_metric = SpanF1(self.label_space)
        self.test_metric = SpanF1(self.label_space)
        self.test_results: dict[str, float] = {}

    def target_encoder(self) -> SRUTargetEncoder:
        return SRUTargetEncoder(self.label_space.to_dict())

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        """Only the network's inputs go to the device; spans, ids and lengths stay on the host for
        decoding and metrics, so an eval batch costs one device-to-host transfer (the probabilities)."""
        return {k: v.to(device, non_blocking=True) if k in DEVICE_KEYS else v for k, v in batch.items()}

    # --- steps ------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.network(batch)
        loss = multi_hot_bce(
            out.logits, out.targets, out.row_mask, normalization=self.cfg["model"]["loss_normalization"]
        )
        # not on the progress bar: it would read the loss on the host after every batch
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=len(out.logits))
        return loss

    def _evaluate(self, batch: dict, metric: SpanF1) -> list[list[tuple[int, int, int]]]:
        probs = self.network.generate(batch).cpu()  # the one host transfer per batch
        predicted = decode_batch(probs, batch["num_words"], self.vocab)
        metric.update(batch["corpus_id"], batch["spans"], predicted, batch.get("unreachable"))
        return predicted

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, self.val_metric)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, self.test_metric)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list:
        probs = self.network.generate(batch).cpu()
        return decode_batch(probs, batch["num_words"], self.vocab)

    def _log_results(self, stage: str, metric: SpanF1) -> dict[str, float]:
        results = {k: float(v) for k, v in metric.compute().items()}
        metric.reset()
        logged = {f"{stage}/{k}": v for k, v in results.items() if not k.endswith(("/tp", "/fp", "/fn"))}
        logged[f"{stage}/f1_merged_macro"] = results["merged/macro_f1"]
        logged[f"{stage}/f1_disjoint_macro"] = results["disjoint/macro_f1"]
        # already summed over ranks by the metric: no second reduction
        self.log_dict(logged, sync_dist=False, rank_zero_only=False, add_dataloader_idx=False)
        return results

    def on_validation_epoch_end(self) -> None:
        self._log_results("val", self.val_metric)

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_results("test", self.test_metric)

    # --- optimisation -------------------------------------------------------------------------------
    def schedule_lengths(self) -> tuple[int, int]:
        """(steps per epoch, total optimiser steps), from the config and the data module's epoch size.

        Not ``trainer.estimated_stepping_batches``: reading it here silently breaks exact resume.
        """
        trainer, data = self.trainer, self.cfg["data"]
        datamodule = trainer.datamodule
        epoch_size = datamodule.samples_per_epoch
        if epoch_size is None:  # the sampler's default: the mean train size
            sizes = [len(rows) for rows in datamodule.datasets["train"].values()]
            epoch_size = sum(sizes) // len(sizes)
        per_rank = math.ceil(epoch_size / trainer.world_size)
        batches = math.ceil(per_rank / data["batch_size"])
        steps_per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
        if self.cfg["optim"].get("total_steps"):
            return steps_per_epoch, int(self.cfg["optim"]["total_steps"])
        if trainer.max_steps and trainer.max_steps > 0:
            return steps_per_epoch, trainer.max_steps
        return steps_per_epoch, steps_per_epoch * (trainer.max_epochs or 1)

    def configure_optimizers(self):
        enc, head, optim = self.cfg["encoder"], self.cfg["model"], self.cfg["optim"]
        groups = [
            {
                "params": list(self.network.encoder.parameters()),
                "lr": enc["lr"],
                "weight_decay": enc["weight_decay"],
            },
            {
                "params": [p for p in self.network.head.parameters() if p.requires_grad],
                "lr": head["lr"],
                "weight_decay": head["weight_decay"],
            },
        ]
        optimizer = torch.optim.AdamW(groups, betas=tuple(optim["betas"]), eps=optim["eps"])
        steps_per_epoch, total = self.schedule_lengths()
        warmups = [
            round(enc["warmup_epochs"] * steps_per_epoch),
            round(head["warmup_epochs"] * steps_per_epoch),
        ]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, [linear_warmup_decay(w, total) for w in warmups]
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class linear_warmup_decay:  # noqa: N801 - a picklable function object
    """Multiplier: step / warmup during warmup, then linear decay to 0 at ``total``."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = max(0, warmup), max(1, total)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / self.warmup
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))
