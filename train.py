"""Train a model: compose config -> check -> build data, model and Trainer -> fit -> tune the best
checkpoint's decision thresholds on dev -> test it -> publish its scores.

    python train.py                                   # the embedded default (bundled samples, MiniLM, CPU)
    python train.py experiment=mt6 trainer.devices=4  # the paper's multi-task run on 4 GPUs
    python train.py trainer.max_steps=20 logger=none  # any config key as key=value
    python train.py model=baseline                    # any registered model (listed below)

Outputs go to ``outputs/<experiment>/<run_name>`` (``run_dir=...``; created once the run is checked, locked
while it runs): ``checkpoints/{best,last}.ckpt``, ``metrics.json``, ``config.yaml``, the W&B files. Exit
status: 0 done, 1 interrupted (SIGTERM, SLURM's requeue signal, then requeued, or Ctrl-C: every rank stopped
after the same step, wrote a resumable checkpoint and printed the resume command: the same command line with
``resume=auto``) or failed (an exception on any rank: the newest checkpoint is the last good one), 2 a user
error found before training (bad config, missing corpus, bad or refused checkpoint: ``trust_checkpoint=true``
for one's own; a run directory in use, or holding checkpoints without ``resume=`` or ``start_over=true``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import OmegaConf

from configs.compose import ConfigError, available, compose, default_group
from configs.validation import check_config
from datamodules.multi_corpus import MultiCorpusDataModule
from errors import BionerError, report_user_error
from lightning_modules.registry import available_models
from training.agreed_stop import REQUEUE
from training.artifacts import log_model_artifacts
from training.logger import build_logger, failed_logging_on_error
from training.publish import publish_run_start, publish_test_scores
from training.resume import (
    checkpoint_hyper_parameters,
    resume_checkpoint,
    resume_command,
    with_checkpoint_model,
)
from training.run_dir import claimed_run_dir, resolve_run_dir
from training.run_model import build_run_model
from training.slurm import requeue_slurm_job
from training.thresholds import tune_after_fit
from training.trainer import agreed_stop, build_callbacks, build_trainer
from training.warm_start import check_init, with_init_source

if TYPE_CHECKING:
    from configs.schema import RunCfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print(f"models (model=NAME; the default is {default_group('model')}):")
        for name, entry in available_models().items():
            print(f"  {name:<12} {entry.description}")
        print("experiments:", ", ".join(available("experiment")))
        print("trainer groups:", ", ".join(available("trainer")))
        return 0
    try:
        with contextlib.ExitStack() as held:  # the run directory, created and locked once checked
            return run(compose(with_init_source(with_checkpoint_model(argv))), argv, held)
    except (BionerError, MisconfigurationException) as err:  # a user's mistake (a bad trainer.* value too)
        return report_user_error(err)


def run(cfg: RunCfg, argv: list[str], held: contextlib.ExitStack) -> int:
    """Train (and test) one run of the composed config ``cfg``; ``argv`` is what the user typed, for the
    model card and the resume command; ``held`` keeps the run directory's claim until the caller ends."""
    # every check before anything is created or trained: config, run dir, corpora, encoder, resumed checkpoint
    specs = check_config(cfg)
    if cfg.trainer.deterministic:  # cuBLAS needs this before CUDA starts to pick deterministic kernels
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    run_dir = resolve_run_dir(cfg)
    ckpt_path = resume_checkpoint(cfg.resume, run_dir, trust=cfg.trust_checkpoint)
    source = check_init(cfg, resuming=ckpt_path is not None)
    resumed = checkpoint_hyper_parameters(ckpt_path, trust=cfg.trust_checkpoint)
    encoder_config = source.encoder_config if source is not None else resumed.get("encoder_config")
    plain = {
        **OmegaConf.to_container(cfg, resolve=True),
        "run_name": run_dir.name,
        "run_dir": str(run_dir.path),
    }
    if (resumed.get("cfg") or {}).get("warm_start"):  # the model card keeps saying where the run started
        plain["warm_start"] = resumed["cfg"]["warm_start"]

    pl.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    datamodule = MultiCorpusDataModule.from_config(cfg, specs=specs)
    datamodule.check_files()
    label_space = datamodule.label_space
    try:
        datamodule.tokenizer  # noqa: B018 - load it now: a bad encoder.name fails here, not in fit
    except (OSError, ValueError) as err:  # unknown hub name, no network, a directory without a model
        raise ConfigError(f"encoder.name={cfg.encoder.name}: cannot load the encoder ({err})") from None
    held.enter_context(claimed_run_dir(run_dir, start_over=cfg.start_over))
    logger = build_logger(cfg, plain, run_dir, label_space, resuming=ckpt_path is not None)
    with failed_logging_on_error():  # a user error from here on closes a started W&B run as failed
        callbacks = build_callbacks(cfg.callbacks, cfg.trainer, run_dir, with_logger=logger is not False)
        trainer = build_trainer(cfg.trainer, run_dir, callbacks, logger, trust=cfg.trust_checkpoint)
        datamodule.check_batch_split(trainer.world_size, trainer.accumulate_grad_batches)
        model, warm_start = build_run_model(
            cfg, plain, datamodule, trainer, source=source, encoder_config=encoder_config, ckpt_path=ckpt_path
        )
    if warm_start is not None:
        plain["warm_start"] = warm_start.to_dict()
    if cfg.compile:
        model = torch.compile(model)
    if trainer.is_global_zero:
        publish_run_start(run_dir, plain, label_space, argv)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:  # the agreed stop (Lightning's SIGTERMException) or a second Ctrl-C (exit(1))
        if not trainer.interrupted:
            raise
    stop = agreed_stop(trainer)
    if trainer.interrupted or stop.agreed:  # a stop agreed at the very last step ends fit normally
        if trainer.is_global_zero:
            print(
                f"Training was interrupted; {run_dir.checkpoints} holds its state. Resume with:", flush=True
            )
            print(f"  {resume_command(argv, run_dir)}", flush=True)
            if stop.agreed == REQUEUE:  # once, by rank 0, now that the checkpoint is on disk
                requeue_slurm_job()
        return 1
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    tuned = tune_after_fit(trainer, model, datamodule, best, cfg)
    if tuned is not None:
        plain["decision_thresholds"] = tuned
    if not cfg.test_after_fit:
        log_model_artifacts(trainer, run_dir, cfg)
        return 0

    trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    if trainer.is_global_zero:
        metrics = publish_test_scores(
            trainer, model.test_results, cfg.callbacks.monitor, run_dir, plain, label_space, argv
        )
        log_model_artifacts(trainer, run_dir, cfg, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
