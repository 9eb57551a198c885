"""``SpanNERModule``: the model contract, and the training logic every span-NER model here shares.

A model is a plain network (an ``nn.Module`` built, tested and benchmarked without Lightning, holding the
shared ``WordEncoder`` as ``network.encoder``) inside a ``SpanNERModule`` subclass. It is created by one
call, ``registry.build_module(cfg, label_space)`` (``Model.build(...)`` when the class is at hand): the
parts of the run config the model reads are cut out as typed ``ModuleSettings`` (its own section, the
encoder's and the optimiser's, the precision, the schedule's length when it trains), the encoder is built,
then the subclass's ``build_network(config, label_space, encoder)`` builds the network, and the module
receives it with the settings (``Model(network, settings, label_space, run_config=cfg)``; the run config
itself is only recorded, in the checkpoint). A checkpoint is rebuilt the same way from its
``hyper_parameters`` (``registry.load_module``).

The subclass supplies (abstract methods; see "How to add a model" in ``docs/design.md``):

- ``build_network(config, label_space, encoder)`` (a classmethod): its plain network;
- ``target_encoder()``: a picklable collate-time transform that adds the model's targets to a batch
  (it runs in the loader workers);
- ``loss_terms(batch)``: the loss of a training batch as a ``LossTerms(total, count)``
  (``lightning_modules.outputs``): the loss summed over the batch's units (words, action rows, sentences)
  and the number of units, so that the training step can normalise over the global batch (below);
  ``training_loss(batch)`` = ``total / count`` is the single-process mean (tests and ``bench/`` call it);
- ``predict(batch)``: a ``Prediction`` (``lightning_modules.outputs``) on the host: per sentence the
  ``(start, end, type_id)`` spans, and where the model has them relations and span scores, from one
  decode function per model.

and may declare ``uses_training_rows = True`` and implement ``learn_from_training_rows(rows_by_corpus)``
when it needs something counted over the training split (TabERT-CNN's class weights): the orchestrating
code calls it with the data module's training rows before fitting; what it learns lives in buffers, so
checkpoints carry it.

Everything else is here: moving only the network's inputs to the device, validation/test scores through
``metrics.scorer.Scorer`` (the one scoring path, ``evaluate.py``'s too) and their logging, ``predict_step``,
one AdamW with an encoder and a head parameter group, and per-group linear warmup + linear (or cosine) decay
in optimiser steps, whose length the job hands over when it builds the model (``training/schedule.py``: the
same on any number of processes, ``data.batch_size`` being the global batch).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from datamodules.label_space import LabelSpace
from lightning_modules.decisions import DEFAULT_THRESHOLD
from lightning_modules.encoder import WordEncoder
from lightning_modules.model_config import ModelConfig
from lightning_modules.optimisation import Schedule, cosine_warmup_decay, linear_warmup_decay
from lightning_modules.outputs import LossTerms, Prediction
from lightning_modules.precision import activation_bytes
from lightning_modules.settings import ModuleSettings
from metrics import names
from metrics.scorer import Scorer

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class SpanNERModule(pl.LightningModule, abc.ABC):
    """Base LightningModule around ``network`` (built by ``build_network``). ``settings`` are the typed parts
    of the run config the model reads (``ModuleSettings``); ``run_config``, the whole plain-dict run config,
    is recorded in the checkpoint for the tools that rebuild a run's data (``evaluate.py``) or describe it
    (model cards), and the model reads nothing from it. ``label_space`` is a ``LabelSpace`` (or its
    ``to_dict()`` form, as checkpoints hold it).

    ``encoder_config`` (a transformers config dict) builds the encoder without weights, for tests and for
    reloading a checkpoint whose weights come from the checkpoint itself; it is only recorded here.

    The loss is normalised over the global batch (``data.batch_size`` sentences per optimiser step over
    all processes and accumulation micro-batches; ``docs/global_batch.md``). A training step takes the
    model's ``loss_terms`` (sum ``S_r`` and count ``N_r`` on rank ``r``), sums the counts over the ``W``
    ranks with one asynchronous ``all_reduce`` (no host synchronisation) and returns
    ``S_r * W / sum_r N_r``: DDP averages the gradients over the ranks, so the gradient is that of
    ``sum_r S_r / sum_r N_r``, the mean over the micro-batch's global units, whatever each rank holds. So
    ``W`` processes of ``B / W`` sentences compute the gradient of one process of ``B`` sentences.
    ``train/loss`` logs that global mean, ``sum_r S_r / sum_r N_r``.

    Gradient accumulation (``A = trainer.accumulate_grad_batches``): some counts are known only after
    the forward pass (SRU-NER's kept action rows, which grow when a SHIFT is displaced; the baseline's
    tagged words), so each micro-batch is normalised by its own cross-rank count and Lightning divides the
    loss by ``A``: the accumulated gradient is the **mean of the ``A`` micro-batch means**. It equals the
    mean over the whole global batch exactly when every micro-batch has the same count: TabERT-CNN
    (normalised per sentence) with full micro-batches; for the baseline (words) and SRU-NER (rows, or
    sentences with kept rows) it weighs each micro-batch equally rather than by its count.
    ``tests/test_global_batch.py`` checks both rules against runs of 1 and 2 processes and of each
    micro-batch alone.
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # batch keys the network reads; everything else (spans, ids, lengths) stays on the host
    input_keys: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "word_index", "word_mask")
    # True: call learn_from_training_rows(datamodule's training rows) before fitting
    uses_training_rows: ClassVar[bool] = False

    @classmethod
    def build(
        cls,
        cfg: Mapping[str, Any],
        label_space: LabelSpace | Mapping[str, Any],
        encoder_config: Mapping[str, Any] | None = None,
        *,
        schedule: Schedule | None = None,
    ) -> Self:
        """The model of the plain run config ``cfg``: encoder, then network (this order fixes the initial
        weights), then the module. ``schedule``: the learning-rate schedule's length, for a model that
        will train (``training.schedule.schedule_of``). ``cls.build(**checkpoint["hyper_parameters"])``
        rebuilds a checkpoint's model."""
        label_space = LabelSpace.coerce(label_space)
        settings = ModuleSettings.of(cls.config_class, cfg, schedule)
        encoder = _build_encoder(settings.encoder.name, encoder_config)
        network = cls.build_network(settings.model, label_space, encoder)
        return cls(network, settings, label_space, run_config=cfg, encoder_config=encoder_config)

    def __init__(
        self,
        network: nn.Module,
        settings: ModuleSettings,
        label_space: LabelSpace | Mapping[str, Any],
        *,
        run_config: Mapping[str, Any],
        encoder_config: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.label_space = LabelSpace.coerce(label_space)
        # checkpoints hold plain data only (torch's weights_only loading refuses custom classes)
        self.save_hyperparameters(
            {"cfg": run_config, "label_space": self.label_space.to_dict(), "encoder_config": encoder_config}
        )
        self.run_config = run_config
        self.settings = settings
        self.model_cfg = settings.model
        self.network = network
        self.val_scorer = Scorer(self.label_space)
        self.test_scorer = Scorer(self.label_space)
        self.test_results: dict[str, float] = {}
        # model state that checkpoints written before it existed lack (register_model_state)
        self._state_defaults: list[str] = []
        self.register_load_state_dict_pre_hook(_keep_missing_model_state)

    def register_model_state(self, name: str, value: torch.Tensor) -> None:
        """A buffer that checkpoints and exports carry (loss weights, decision thresholds) and that
        checkpoints written before it existed lack: loading one of those keeps the buffer's current value
        (its initial value, or what ``learn_from_training_rows`` set before a resume)."""
        self.register_buffer(name, value)
        self._state_defaults.append(name)

    @property
    def optional_state_keys(self) -> frozenset[str]:
        """State-dict keys an older checkpoint may lack (``register_model_state``)."""
        return frozenset(self._state_defaults)

    # --- decisions (lightning_modules/decisions.py) -------------------------------------------------
    def tunes_thresholds(self) -> bool:
        """Whether this model decides its mentions by per-type thresholds (``type_thresholds``, tuned
        on dev by ``training/thresholds.py``): then it implements ``decision_scores`` and
        ``decode_decisions``, and ``predict`` is the two with the stored thresholds."""
        return False

    def decision_scores(self, batch: dict, lowest_threshold: float) -> Any:
        """What one forward pass leaves for ``decode_decisions`` to decide on, on the host, holding at
        least every candidate whose probability is above ``lowest_threshold``."""
        raise NotImplementedError(f"{type(self).__name__} has no decision thresholds")

    def decode_decisions(self, scores: Any, thresholds: np.ndarray) -> Prediction:
        """The prediction of ``decision_scores``' batch under ``(M,)`` per-type thresholds."""
        raise NotImplementedError(f"{type(self).__name__} has no decision thresholds")

    @property
    def default_threshold(self) -> float:
        """The threshold of every type before tuning."""
        return DEFAULT_THRESHOLD

    def thresholds(self) -> np.ndarray:
        """The stored per-type thresholds, ``(M,)`` float64."""
        return self.type_thresholds.detach().double().cpu().numpy()

    @classmethod
    def type_rows(
        cls, model_config: ModelConfig, label_space: LabelSpace
    ) -> dict[str, list[tuple[str, ...]]] | None:
        """For a warm start (``init_from``, ``training/warm_start.py``): every state-dict key
        whose first dimension runs over entity types, corpora or relation types, with one row key per
        row. None: this model does not know how its parameters map across label spaces."""
        return None

    @classmethod
    def label_space_problem(cls, model_config: ModelConfig, label_space: LabelSpace) -> str | None:
        """Why this model, so configured, cannot train on these corpora (None: it can). Checked with the
        run config, before anything is loaded."""
        return None

    # --- what a model supplies --------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def build_network(cls, config: ModelConfig, label_space: LabelSpace, encoder: WordEncoder) -> nn.Module:
        """The plain network; it must keep the encoder as ``.encoder`` (its own optimiser group)."""

    @abc.abstractmethod
    def target_encoder(self) -> Callable[[dict], dict]:
        """A picklable ``batch -> batch`` transform adding the training targets (runs in loader workers)."""

    @abc.abstractmethod
    def loss_terms(self, batch: dict) -> LossTerms:
        """The loss of a training batch (its targets added by ``target_encoder``) as its sum over the
        batch's units and their count; no host synchronisation (no ``.item()``)."""

    def training_loss(self, batch: dict) -> torch.Tensor:
        """The scalar loss of a training batch in one process: ``total / count`` of ``loss_terms``."""
        return mean_loss(self.loss_terms(batch))

    @abc.abstractmethod
    def predict(self, batch: dict) -> Prediction:
        """Per sentence, the predicted spans (global type ids), and relations and span scores where the
        model has them, computed with one device-to-host copy."""

    def eval_batch_bytes(
        self, sentences: int, words: int, subwords: int, element_bytes: int | None = None
    ) -> int:
        """Estimated activation memory of ``predict`` on one padded batch of ``sentences`` sentences of at
        most ``words`` words and ``subwords`` subwords (weights excluded): the encoder's peak, or the
        head's next to the encoder's output, whichever is larger (``datamodules.eval_batches`` cuts
        evaluation batches by it). ``element_bytes``: per activation element; default: as training
        runs in ``trainer.precision``."""
        size = element_bytes or activation_bytes(self.settings.precision)
        encoder = self.network.encoder
        slots = sentences * (words + 2) * encoder.hidden_size * size
        head = self.head_eval_bytes(sentences, words, size)
        return max(encoder.eval_activation_bytes(sentences, subwords, size), slots + head)

    def head_eval_bytes(self, sentences: int, words: int, element_bytes: int) -> int:
        """The head's part of ``eval_batch_bytes``: what the head holds at its peak. Small next to the
        encoder for the per-word heads (0 here); TabERT-CNN's n x n table overrides it."""
        return 0

    def learn_from_training_rows(self, rows_by_corpus: Mapping[str, Any]) -> None:
        """Take what the model needs from the training split before fitting (only called when the class
        sets ``uses_training_rows``). ``rows_by_corpus``: corpus -> its training rows (columns
        ``num_words``, ``spans``, ``relations``, ...). Keep the result in buffers: checkpoints carry it."""

    # --- steps ------------------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        """Only the network's inputs go to the device; spans, ids and lengths stay on the host for
        decoding and metrics, so an eval batch costs one device-to-host transfer (the predictions)."""
        keys = self.input_keys
        return {k: v.to(device, non_blocking=True) if k in keys else v for k, v in batch.items()}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """The loss normalised over the global batch (see the class docstring); one ``all_reduce`` of the
        (sum, count) pair over the default process group when there are several processes."""
        terms = self.loss_terms(batch)
        world = _world_size()
        if world == 1:
            loss = mean = mean_loss(terms)
        else:
            count = terms.count
            if not isinstance(count, torch.Tensor):
                count = terms.total.new_full((), float(count))
            sums = torch.stack([terms.total.detach().float(), count.detach().float()])  # (2,)
            torch.distributed.all_reduce(sums)  # sum over ranks; asynchronous on GPU (no host sync)
            global_count = sums[1].clamp(min=1.0)
            loss = terms.total * world / global_count  # DDP averages gradients over the ranks
            mean = sums[0] / global_count  # the global batch's mean loss, the same on every rank
        # not on the progress bar: it would read the loss on the host after every batch
        self.log(names.TRAIN_LOSS, mean, on_step=True, on_epoch=False, batch_size=len(batch["num_words"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> Prediction:
        predicted = self.predict(batch)
        self.val_scorer.update(batch, predicted)
        return predicted

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.test_scorer.update(batch, self.predict(batch))

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> Prediction:
        return self.predict(batch)

    def _log_results(self, stage: str, scorer: Scorer) -> dict[str, float]:
        results = scorer.compute()
        scorer.reset()
        logged = {
            names.logged(stage, k): v for k, v in results.items() if not k.endswith(names.COUNT_SUFFIXES)
        }
        # already summed over ranks by the metric: no second reduction
        self.log_dict(logged, sync_dist=False, rank_zero_only=False, add_dataloader_idx=False)
        return results

    def on_validation_epoch_end(self) -> None:
        self._log_results("val", self.val_scorer)

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_results("test", self.test_scorer)

    # --- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        enc, head, optim = self.settings.encoder, self.model_cfg, self.settings.optim
        schedule = self.settings.schedule
        if schedule is None:
            raise RuntimeError(
                f"{type(self).__name__} was built without a schedule: a model that trains is built with "
                "schedule=training.schedule.schedule_of(...)"
            )
        encoder_params = list(self.network.encoder.parameters())
        in_encoder = {id(p) for p in encoder_params}
        head_params = [p for p in self.network.parameters() if p.requires_grad and id(p) not in in_encoder]
        groups = [
            {"params": encoder_params, "lr": enc.lr, "weight_decay": enc.weight_decay},
            {"params": head_params, "lr": head.lr, "weight_decay": head.weight_decay},
        ]
        optimizer = torch.optim.AdamW(groups, betas=tuple(optim.betas), eps=optim.eps)
        per_epoch, total = schedule.steps_per_epoch, schedule.total_steps
        warmups = [round(enc.warmup_epochs * per_epoch), round(head.warmup_epochs * per_epoch)]
        decay = cosine_warmup_decay if optim.schedule == "cosine" else linear_warmup_decay
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [decay(w, total) for w in warmups])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _keep_missing_model_state(module: SpanNERModule, state_dict: dict, prefix: str, *args: Any) -> None:
    """Load-state-dict pre-hook: a ``register_model_state`` buffer the checkpoint lacks keeps its value."""
    for name in module._state_defaults:
        state_dict.setdefault(prefix + name, getattr(module, name).detach().clone())


def mean_loss(terms: LossTerms) -> torch.Tensor:
    """``total / count`` (a count below 1, an empty batch, counts as 1)."""
    if isinstance(terms.count, torch.Tensor):
        return terms.total / terms.count.clamp(min=1.0)
    return terms.total / max(terms.count, 1)


def _world_size() -> int:
    """Processes in the default process group (1 without one)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _build_encoder(name: str, encoder_config: Mapping[str, Any] | None) -> WordEncoder:
    if encoder_config is None:
        return WordEncoder(name)
    from transformers import AutoConfig

    config = dict(encoder_config)
    return WordEncoder(config=AutoConfig.for_model(config.pop("model_type"), **config))
