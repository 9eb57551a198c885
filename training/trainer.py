"""The Lightning ``Trainer`` of a run: the ``trainer.*`` section, the checkpoint callbacks and the job-control
callbacks (``callbacks.*``), atomic checkpoint writes and restricted checkpoint reads."""

from __future__ import annotations

import datetime
import signal
import warnings
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)
from omegaconf import OmegaConf

from configs.compose import ConfigError
from training.agreed_stop import AgreedStop
from training.checkpointing import AtomicCheckpointIO, FinalCheckpoint, RenamedMetrics, RNGStateCheckpoint
from training.f1_chart import F1Chart
from training.lightning_internals import set_collective_timeout
from training.run_dir import RunDir
from training.unannotated_recall import UnannotatedRecall
from training.validation_history import ValidationHistory
from training.wandb_callbacks import WandbPredictions, WandbSummaries

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

    from configs.schema import CallbacksCfg, TrainerCfg

# by design: SpanNERModule.transfer_batch_to_device moves only the network's inputs
warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device`.*")


def build_trainer(
    section: TrainerCfg,
    run: RunDir,
    callbacks: list[Callback],
    logger: Logger | bool,
    *,
    trust: bool,
) -> pl.Trainer:
    """The Trainer of the ``trainer`` config section (``build_callbacks``' callbacks, ``logger``);
    a ``trainer.*`` value Lightning refuses is a ``ConfigError``. ``trust``: the checkpoint
    reads are unrestricted (``trust_checkpoint=true``).

    Under SLURM, Lightning's auto-requeue (a checkpoint written inside the signal handler, on every rank
    wherever it is) is off: ``AgreedStop`` handles SLURM's signal like SIGTERM and ``train.py`` requeues.
    """
    arguments: dict[str, Any] = OmegaConf.to_container(section, resolve=True)  # type: ignore[assignment]
    timeout = datetime.timedelta(seconds=arguments.pop("collective_timeout_s"))
    plugins: list[Any] = [AtomicCheckpointIO(trust=trust)]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    try:
        trainer = pl.Trainer(
            **arguments,
            callbacks=callbacks,
            logger=logger,
            plugins=plugins,
            default_root_dir=str(run.path),
            use_distributed_sampler=False,  # the sampler is rank-aware itself
        )
    except ValueError as err:  # e.g. trainer.accelerator=tpux, trainer.precision=bogus
        raise ConfigError(f"trainer: {err}") from None
    set_collective_timeout(trainer, timeout)
    return trainer


def agreed_stop(trainer: pl.Trainer) -> AgreedStop:
    """The run's ``AgreedStop`` callback: why (and whether) the ranks agreed to stop."""
    return next(c for c in trainer.callbacks if isinstance(c, AgreedStop))


def build_callbacks(
    section: CallbacksCfg, trainer: TrainerCfg, run: RunDir, *, with_logger: bool
) -> list[Callback]:
    """The ``callbacks`` config section's callbacks: ``best.ckpt`` (the best ``callbacks.monitor``),
    ``last.ckpt`` (the latest state), the job-control callbacks, and what the logger and the progress bar
    need (``trainer``: the trainer section's collective timeout, progress bar and logging interval)."""
    monitor, checkpoints = section.monitor, str(run.checkpoints)
    # Lightning's save_last only refreshes last.ckpt when the monitored score improves, which would make
    # a resume restart from the best step, not the latest; a second, unmonitored checkpoint is the
    # latest state. It is also written when training stops on an exception, SIGTERM or Ctrl-C.
    # Both save when validation ends, never in on_train_epoch_end: Lightning restores an epoch-end
    # checkpoint as an unfinished epoch and then counts that epoch twice when it trains by max_steps
    # (the sampler would run one epoch ahead of an uninterrupted run).
    named = dict(
        dirpath=checkpoints, save_top_k=1, enable_version_counter=False, auto_insert_metric_name=False
    )
    best = ModelCheckpoint(
        filename="best", monitor=monitor, mode="max", save_on_train_epoch_end=False, **named
    )
    last = ModelCheckpoint(filename="last", save_on_exception=True, save_on_train_epoch_end=False, **named)
    callbacks: list[Callback] = [best, last]
    if section.last_every_n_steps:  # in addition: every_n_train_steps disables the save at validation
        callbacks.append(
            ModelCheckpoint(filename="last", every_n_train_steps=section.last_every_n_steps, **named)
        )
    requeue_signal = signal.SIGUSR1 if SLURMEnvironment.detect() else None  # sbatch --signal=USR1@90
    stop = AgreedStop(requeue_signal=requeue_signal, timeout_s=trainer.collective_timeout_s)
    callbacks += [RenamedMetrics(), FinalCheckpoint(last), RNGStateCheckpoint(), stop]
    callbacks.append(F1Chart(str(run.path), run.name))
    callbacks.append(ValidationHistory(run.path))
    if section.hidden_gold:
        callbacks.append(UnannotatedRecall(section.hidden_gold))
    if with_logger:
        callbacks += [
            LearningRateMonitor(logging_interval="step"),
            WandbSummaries(monitor),
            WandbPredictions(),
        ]
    if section.early_stopping_patience is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=section.early_stopping_patience))
    if section.rich_progress and trainer.enable_progress_bar is not False:
        callbacks.append(RichProgressBar(refresh_rate=max(1, trainer.log_every_n_steps or 1)))
    return callbacks
