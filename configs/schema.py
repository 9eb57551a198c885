"""The structured config schema: every key a run accepts, with its type and default.

``TrainerCfg`` is generated from ``lightning.pytorch.Trainer.__init__`` so that every Trainer argument
is reachable as ``trainer.<arg>=...`` with its type checked (arguments that take objects, such as
callbacks and loggers, are built by ``train.py`` and are not config keys), plus
``trainer.collective_timeout_s``, the process-group timeout (``training/trainer.py``).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from lightning.pytorch import Trainer

from datamodules.catalog import BIOMEDICAL
from datamodules.eval_batches import DEFAULT_EVAL_MEMORY_MB
from lightning_modules.optimisation import EncoderCfg, OptimCfg
from metrics.names import DEFAULT_MONITOR

_TRAINER_MANAGED = {"self", "logger", "callbacks", "plugins", "use_distributed_sampler", "default_root_dir"}
_SIMPLE = {int, float, bool, str}


def _config_type(annotation: Any) -> Any:
    if annotation in _SIMPLE:
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1 and args[0] in _SIMPLE:
        return Optional[args[0]]  # noqa: UP045 - OmegaConf needs typing.Optional at run time
    return Any


def _trainer_fields() -> list[tuple[str, Any, Any]]:
    overrides = {
        "precision": (Any, "32-true"),
        "max_epochs": (Optional[int], 100),  # noqa: UP045
        "gradient_clip_val": (Any, 1.0),
    }
    fields = []
    for name, param in inspect.signature(Trainer.__init__).parameters.items():
        if name in _TRAINER_MANAGED:
            continue
        typ, default = overrides.get(name, (_config_type(param.annotation), param.default))
        fields.append((name, typ, field(default=default)))
    # ours, not the Trainer's: the process-group timeout, so that a rank waiting in a collective for a
    # dead peer ends the job in minutes (torch's default is 30 min; training/agreed_stop.py)
    fields.append(("collective_timeout_s", int, field(default=300)))
    return fields


TrainerCfg = make_dataclass("TrainerCfg", _trainer_fields())


@dataclass
class DataCfg:
    root: str = "${oc.env:BIONER_DATA_DIR,data}"
    corpora: list[str] = field(default_factory=lambda: list(BIOMEDICAL))
    reading: str = "full"  # "full" (correct gold) or "paper" (the reference converter's drops, Table 8)
    max_subwords: int = 405
    batch_size: int = 16  # global: sentences per optimiser step over all ranks and micro-batches
    eval_batch_size: int = 32  # at most this many sentences per evaluation/prediction batch ...
    # ... and at most this much activation memory by the model's estimate (``eval_batch_bytes``), so that
    # long sentences come in smaller batches instead of running out of memory; null: sentences alone
    eval_memory_mb: float | None = DEFAULT_EVAL_MEMORY_MB
    num_workers: int = 0
    samples_per_epoch: int | None = None  # None: the mean train size
    weighting: str = "inverse_size"  # or "proportional"
    cache_dir: str = "${oc.env:BIONER_CACHE_DIR,.cache/bioner}"
    val_subsample: int | None = None  # a fixed, seeded subsample of each dev split for validation
    fold: int | None = None  # cross-validation fold of the corpora that have folds (ADE: 0..9)


@dataclass
class CallbacksCfg:
    monitor: str = DEFAULT_MONITOR  # any val/... name a run logs (metrics.names); selects best.ckpt
    early_stopping_patience: int | None = 30  # validation rounds; None disables early stopping
    rich_progress: bool = True
    # last.ckpt is rewritten after every validation; set this to also rewrite it every N optimizer steps
    last_every_n_steps: int | None = None
    # a JSON file of gold mentions a corpus leaves unannotated (scripts/synthetic_halves.py writes one):
    # their recall is logged at every validation (training/unannotated_recall.py)
    hidden_gold: str | None = None


@dataclass
class WandbCfg:
    project: str = "bioner-mtl"
    entity: str | None = None
    mode: str | None = None  # online | offline | disabled; None: offline when no API key is found
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    # the model as a W&B artifact when the run ends (training/artifacts.py): "best" (the best checkpoint's
    # export directory), "all" (and the last checkpoint's) or "none"
    log_model: str = "best"
    init_timeout: float = 30.0  # seconds to reach the server before falling back to offline logging


@dataclass
class ThresholdsCfg:
    # per-type decision thresholds tuned on dev after fit (training/thresholds.py), for the models that
    # decide by thresholds (SRU-NER, TabERT-CNN span mode); stored in best.ckpt, used by test and predict
    tune: bool = True
    dev_sentences: int | None = 2000  # a seeded subsample of each larger dev split; null: all of it
    granularity: str = "auto"  # auto (per type where it adds min_gain F1 points), corpus or type
    min_gain: float = 0.5


@dataclass
class RunCfg:
    experiment: str = "default"
    run_name: str | None = None  # default: <model>-<timestamp>, the same on every rank
    run_dir: str | None = None  # default: outputs/<experiment>/<run_name>
    seed: int = 42
    logger: str = "wandb"  # wandb | csv | none
    resume: str | None = None  # "last" (the run dir's newest resumable checkpoint) or a .ckpt path
    # a run directory that holds checkpoints is refused without resume=; start_over=true deletes them and
    # starts a new run there instead (training/run_dir.py)
    start_over: bool = False
    # load the resumed checkpoint unrestricted (it may run code): only for a file one trusts, e.g. one's own
    # checkpoint that the restricted loader refuses (lightning_modules/checkpoints.py)
    trust_checkpoint: bool = False
    # a warm start: the network weights of a trained model (a checkpoint or an export.py directory) for a
    # new run with its own corpora, optimiser and schedule (training/warm_start.py); types map by their
    # qualified name (init_map=qualified) or by merged name (init_map=merged)
    init_from: str | None = None
    init_map: str = "qualified"
    test_after_fit: bool = True
    compile: bool = False
    data: DataCfg = field(default_factory=DataCfg)
    encoder: EncoderCfg = field(default_factory=EncoderCfg)
    # the chosen model's own config dataclass (``model=NAME``; see lightning_modules/registry.py)
    model: Any = None
    optim: OptimCfg = field(default_factory=OptimCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)  # type: ignore[valid-type]
    callbacks: CallbacksCfg = field(default_factory=CallbacksCfg)
    wandb: WandbCfg = field(default_factory=WandbCfg)
    thresholds: ThresholdsCfg = field(default_factory=ThresholdsCfg)
