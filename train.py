"""Train a model: compose config -> seed -> data + model + Trainer -> fit -> test the best checkpoint.

    python train.py                                   # the embedded default (bundled samples, MiniLM, CPU)
    python train.py experiment=mt6 trainer.devices=4  # the paper's multi-task run on 4 GPUs
    python train.py trainer.max_steps=20 logger=none  # any config key as key=value
    python train.py model=baseline                    # any registered model (listed below)

Outputs go to ``outputs/<experiment>/<run_name>`` (``run_dir=...``): ``checkpoints/{best,last}.ckpt``,
``metrics.json``, ``config.yaml`` and the W&B files. Exit status: 0 done, 1 interrupted (SIGTERM, SLURM's
pre-emption signal or Ctrl-C: a resumable checkpoint was written and the resume command printed; the same
command line with ``resume=auto`` continues it), 2 a user error (bad config, missing corpus, bad checkpoint),
found before training starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        from configs.compose import available, default_group
        from lightning_modules.registry import available_models

        print(USAGE)
        print(f"models (model=NAME; the default is {default_group('model')}):")
        for name, entry in available_models().items():
            print(f"  {name:<12} {entry.description}")
        print("experiments:", ", ".join(available("experiment")))
        print("trainer groups:", ", ".join(available("trainer")))
        return 0
    from errors import BionerError, report_user_error

    try:
        from configs.compose import compose

        return run(compose(_with_checkpoint_model(argv)), argv)
    except BionerError as err:
        return report_user_error(err)
    except Exception as err:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        if not isinstance(err, MisconfigurationException):  # a bad trainer.* value; anything else is a bug
            raise
        return report_user_error(err)


def run(cfg: Any, argv: list[str] | None = None) -> int:
    """Train (and test) one run of the composed config ``cfg``; ``argv`` is only used to print the resume
    command of an interrupted run."""
    import warnings

    import lightning.pytorch as pl

    # by design: SpanNERModule.transfer_batch_to_device moves only the network's inputs
    warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device`.*")
    import torch
    from omegaconf import OmegaConf

    from configs.compose import ConfigError
    from configs.validation import check_config
    from datamodules.label_space import LabelSpace
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import build_module
    from metrics.report import render

    # every check that can fail does so here, before anything is trained: config values, run directory,
    # corpus files, encoder and tokenizer, trainer arguments, the checkpoint to resume
    check_config(cfg)
    if cfg.trainer.deterministic:  # cuBLAS needs this before CUDA starts to pick deterministic kernels
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    run_name = cfg.run_name or _default_run_name(cfg.model.name)
    os.environ["BIONER_RUN_NAME"] = run_name  # DDP re-executes this script per rank: same name everywhere
    run_dir = Path(cfg.run_dir or Path("outputs") / cfg.experiment / run_name)
    checkpoint_dir = run_dir / "checkpoints"
    _check_writable(run_dir)
    ckpt_path = _resume_path(cfg.resume, run_dir, explicit_dir=bool(cfg.run_dir or cfg.run_name))
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.update(run_name=run_name, run_dir=str(run_dir))

    pl.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    label_space = LabelSpace.from_corpora(cfg.data.corpora)
    datamodule = MultiCorpusDataModule.from_config(cfg, label_space=label_space)
    datamodule.check_files()
    try:
        model = build_module(plain, label_space)
        datamodule.tokenizer  # noqa: B018 - load it now: a bad encoder.name fails here, not in fit
    except (OSError, ValueError) as err:  # unknown hub name, no network, a directory without a model
        raise ConfigError(f"encoder.name={cfg.encoder.name}: cannot load the encoder ({err})") from None
    datamodule.batch_transform = model.target_encoder()
    if ckpt_path is not None:
        from lightning_modules.checkpoints import check_checkpoint

        check_checkpoint(ckpt_path, model, label_space.to_dict())
    if cfg.compile:
        model = torch.compile(model)

    trainer = _trainer(cfg, plain, checkpoint_dir, run_dir, run_name, label_space, ckpt_path is not None)
    given_argv = sys.argv[1:] if argv is None else list(argv)
    if trainer.is_global_zero:
        from inference.model_card import write_model_card

        OmegaConf.save(OmegaConf.create(plain), run_dir / "config.yaml")
        write_model_card(run_dir, plain, label_space, given_argv)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:  # SIGTERM (Lightning raises SIGTERMException) or Ctrl-C (Lightning calls exit(1))
        if not trainer.interrupted:
            raise
    if trainer.interrupted:
        if trainer.is_global_zero:
            kept = [a for a in given_argv if not a.startswith(("run_dir=", "resume="))]
            command = " ".join(["python train.py", *kept, f"run_dir={run_dir}", "resume=auto"])
            print(f"Training was interrupted; {checkpoint_dir} holds its state. Resume with:", flush=True)
            print(f"  {command}", flush=True)
        return 1
    if not cfg.test_after_fit:
        return 0

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    if trainer.is_global_zero:
        score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        metrics = {
            cfg.callbacks.monitor: float(score) if score is not None else None,
            "best_checkpoint": best,
        }
        metrics.update({f"test/{k}": v for k, v in model.test_results.items()})
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        if model.test_results:  # none with trainer.limit_test_batches=0
            _publish_test_scores(trainer, metrics, run_dir, run_name)
            print(render(metrics, types=True))
        from inference.model_card import write_model_card

        write_model_card(run_dir, plain, label_space, given_argv, metrics)
        print(f"metrics: {run_dir / 'metrics.json'}")
    return 0


def _publish_test_scores(trainer: Any, metrics: dict, run_dir: Path, run_name: str) -> None:
    """The per-corpus F1 chart as ``f1_per_corpus.png`` in the run directory, and with the per-type table
    in W&B."""
    from lightning.pytorch.loggers import WandbLogger

    from metrics.charts import f1_bar_chart, f1_table_rows

    chart = f1_bar_chart(metrics, "test", run_dir / "f1_per_corpus.png", title=f"{run_name}: test F1")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image("test/f1_per_corpus", [str(chart)])
            columns, rows = f1_table_rows(metrics, "test")
            logger.log_table("test/f1_per_type", columns=columns, data=rows)


def _trainer(
    cfg: Any,
    plain: dict,
    checkpoint_dir: Path,
    run_dir: Path,
    run_name: str,
    label_space: Any,
    resuming: bool,
) -> Any:
    import lightning.pytorch as pl

    from configs.compose import ConfigError
    from lightning_modules.checkpoint_io import AtomicCheckpointIO

    try:
        return pl.Trainer(
            **plain["trainer"],
            callbacks=_callbacks(cfg, checkpoint_dir, with_logger=cfg.logger != "none"),
            logger=_logger(cfg, plain, run_dir, run_name, label_space, resuming=resuming),
            plugins=[AtomicCheckpointIO()],
            default_root_dir=str(run_dir),
            use_distributed_sampler=False,  # the sampler is rank-aware itself
        )
    except ValueError as err:  # e.g. trainer.accelerator=tpux, trainer.precision=bogus
        if cfg.logger == "wandb":
            import wandb

            if wandb.run is not None:  # an online run was already started: close it as failed
                wandb.finish(exit_code=2)
        raise ConfigError(f"trainer: {err}") from None


def _check_writable(run_dir: Path) -> None:
    from configs.compose import ConfigError

    probe = run_dir / f".write-test-{os.getpid()}"
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"run_dir={run_dir}: cannot write there ({err.strerror}: {err.filename})") from None


def _with_checkpoint_model(argv: list[str]) -> list[str]:
    """``argv`` with ``model=NAME`` of the checkpoint it resumes, when it resumes one and names no model:
    a resumed run rebuilds the model it was trained with, whatever the default."""
    if any(a.startswith("model=") for a in argv):
        return argv
    values = dict(a.split("=", 1) for a in argv if "=" in a)
    resume = values.get("resume")
    run_dir = values.get("run_dir")
    if not run_dir and values.get("run_name"):
        run_dir = str(Path("outputs") / values.get("experiment", "default") / values["run_name"])
    if resume in ("last", "auto") and run_dir:
        config = Path(run_dir) / "config.yaml"  # written by the run at its start
        if not config.is_file():
            return argv
        from omegaconf import OmegaConf

        name = OmegaConf.select(OmegaConf.load(config), "model.name")
        return [f"model={name}", *argv] if name else argv
    if not resume or not Path(resume).is_file():
        return argv  # nothing to resume (yet), or an error that train.py reports later
    from errors import CheckpointError
    from lightning_modules.checkpoints import checkpoint_model_name, read_checkpoint

    try:
        checkpoint = read_checkpoint(resume)
    except CheckpointError:  # unreadable: check_checkpoint names the problem once the run is composed
        return argv
    name = checkpoint_model_name(checkpoint)
    return [f"model={name}", *argv] if name else argv


def _callbacks(cfg: Any, checkpoint_dir: Path, *, with_logger: bool) -> list:
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
        RichProgressBar,
    )

    monitor = cfg.callbacks.monitor
    # Lightning's save_last only refreshes last.ckpt when the monitored score improves, which would make
    # a resume restart from the best step, not the latest; a second, unmonitored checkpoint is the
    # latest state. It is also written when training stops on an exception, SIGTERM or Ctrl-C.
    # Both save when validation ends, never in on_train_epoch_end: Lightning restores an epoch-end
    # checkpoint as an unfinished epoch and then counts that epoch twice when it trains by max_steps
    # (the sampler would run one epoch ahead of an uninterrupted run).
    callbacks = [
        ModelCheckpoint(
            dirpath=str(checkpoint_dir),
            filename="best",
            monitor=monitor,
            mode="max",
            save_top_k=1,
            save_on_train_epoch_end=False,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        ModelCheckpoint(
            dirpath=str(checkpoint_dir),
            filename="last",
            save_top_k=1,
            save_on_exception=True,
            save_on_train_epoch_end=False,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
    ]
    if cfg.callbacks.last_every_n_steps:  # in addition: every_n_train_steps disables the save at validation
        callbacks.append(
            ModelCheckpoint(
                dirpath=str(checkpoint_dir),
                filename="last",
                save_top_k=1,
                every_n_train_steps=cfg.callbacks.last_every_n_steps,
                enable_version_counter=False,
                auto_insert_metric_name=False,
            )
        )
    from lightning_modules.callbacks import AgreedSigterm, F1Chart, FinalCheckpoint, RNGStateCheckpoint

    callbacks += [FinalCheckpoint(callbacks[1]), RNGStateCheckpoint(), AgreedSigterm()]
    callbacks.append(F1Chart(str(checkpoint_dir.parent), checkpoint_dir.parent.name))
    if with_logger:
        from lightning_modules.callbacks import WandbPredictions, WandbSummaries

        callbacks += [LearningRateMonitor(logging_interval="step"), WandbSummaries(), WandbPredictions()]
    if cfg.callbacks.early_stopping_patience is not None:
        callbacks.append(
            EarlyStopping(monitor=monitor, mode="max", patience=cfg.callbacks.early_stopping_patience)
        )
    if cfg.callbacks.rich_progress and cfg.trainer.enable_progress_bar is not False:
        callbacks.append(RichProgressBar(refresh_rate=max(1, cfg.trainer.log_every_n_steps or 1)))
    return callbacks


def _default_run_name(model: str) -> str:
    """The same on every rank and stable across requeues of one cluster job; else a timestamp."""
    job = _cluster_job_id()
    if job:
        return f"{model}-{job}"
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get("BIONER_RUN_NAME"):
        return os.environ["BIONER_RUN_NAME"]  # a DDP child process started by rank 0
    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def _resume_path(resume: str | None, run_dir: Path, *, explicit_dir: bool) -> str | None:
    """The checkpoint ``resume`` names: ``last`` (``checkpoints/last.ckpt``), ``auto`` (the newest good
    checkpoint of the run directory, else a fresh start) or a path."""
    from configs.compose import ConfigError

    if resume is None:
        return None
    if resume in ("last", "auto"):
        if not explicit_dir and not _cluster_job_id():
            raise ConfigError(
                f"resume={resume} needs the run to continue: add run_dir=outputs/<experiment>/<run name>"
            )
        if resume == "auto":
            found = newest_good_checkpoint(run_dir)
            if found is None:
                print(f"resume=auto: no checkpoint in {run_dir} yet, starting from scratch", flush=True)
            return found
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            return str(last)
        print(f"resume=last: no {last} yet, starting from scratch", flush=True)
        return None
    if not Path(resume).is_file():
        raise ConfigError(f"resume={resume}: no such checkpoint file")
    return resume


def newest_good_checkpoint(run_dir: Path) -> str | None:
    """The readable checkpoint of ``run_dir`` with the most optimiser steps (ties: the newest file).

    Candidates: ``checkpoints/*.ckpt`` and SLURM's ``hpc_ckpt_*.ckpt``. An unreadable checkpoint newer
    than the chosen one gets a one-line warning that names it.
    """
    from errors import CheckpointError
    from lightning_modules.checkpoints import read_checkpoint

    candidates = [*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    good: list[tuple[int, float, Path]] = []
    bad: list[tuple[float, str]] = []
    for path in candidates:
        mtime = path.stat().st_mtime
        try:
            good.append((int(read_checkpoint(path).get("global_step", 0)), mtime, path))
        except CheckpointError as err:
            bad.append((mtime, str(err)))
    chosen = max(good, default=None)
    for mtime, problem in sorted(bad, reverse=True):
        if chosen is None or mtime >= chosen[1]:
            fallback = f"resuming from {chosen[2]}" if chosen else "starting from scratch"
            print(f"warning: resume=auto skips {problem}; {fallback}", file=sys.stderr, flush=True)
    return str(chosen[2]) if chosen else None


def _cluster_job_id() -> str | None:
    for variable in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"):
        value = os.environ.get(variable)
        if value and value != "none":
            return value
    return None


WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def _is_first_process() -> bool:
    """Global rank 0, before the Trainer exists: Lightning's launcher, torchrun (``RANK``) and srun
    (``SLURM_PROCID``) each say so in their own variable."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return _get_rank() in (None, 0) and os.environ.get("NODE_RANK", "0") == "0"


def _wandb_api_key() -> str | None:
    """The API key wandb itself would use for ``WANDB_BASE_URL``: ``WANDB_API_KEY``, else the netrc entry of
    that host (self-hosted servers included)."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    host = os.environ.get("WANDB_BASE_URL", WANDB_DEFAULT_HOST)
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        return read_netrc_auth(host=host)
    except ImportError:  # another wandb layout: read the netrc entry of the host ourselves
        import netrc
        from urllib.parse import urlparse

        try:
            entry = netrc.netrc(os.environ.get("NETRC")).authenticators(urlparse(host).hostname or host)
        except (OSError, netrc.NetrcParseError):
            return None
        return entry[2] if entry else None
    except Exception:  # a malformed netrc entry counts as no key: the run logs offline and says so
        return None


def _wandb_online_problem(key: str, timeout: float) -> str | None:
    """Why an online W&B run cannot start (malformed key, unreachable server), or None."""
    import urllib.error
    import urllib.request

    try:
        from wandb.sdk.lib.wbauth import check_api_key

        malformed = check_api_key(key)
    except ImportError:
        malformed = None
    if malformed:
        return malformed.rstrip(".")
    host = os.environ.get("WANDB_BASE_URL", WANDB_DEFAULT_HOST).rstrip("/")
    try:
        urllib.request.urlopen(f"{host}/healthz", timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # the server answered
    except (OSError, ValueError) as err:
        return f"{host} is unreachable ({getattr(err, 'reason', err)})"
    return None


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _logger(cfg: Any, plain: dict, run_dir: Path, run_name: str, label_space: Any, *, resuming: bool):
    if cfg.logger == "none":
        return False
    if cfg.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(str(run_dir), name="", version="")
    if cfg.logger != "wandb":
        from configs.compose import ConfigError

        raise ConfigError(f"logger={cfg.logger!r}: use wandb, csv or none")
    from lightning.pytorch.loggers import WandbLogger

    first_process = _is_first_process()
    chosen = cfg.wandb.mode or os.environ.get("WANDB_MODE")
    key = _wandb_api_key()
    mode = chosen or ("online" if key else "offline")
    reason = "offline mode requested" if chosen else "no API key found"
    if mode == "online" and first_process:
        problem = _wandb_online_problem(key or "", cfg.wandb.init_timeout)
        if problem:
            mode, reason = "offline", f"cannot log online: {problem}"
    os.environ["WANDB_MODE"] = mode
    id_file = run_dir / "wandb_id.txt"  # the same W&B run continues when training resumes
    if resuming and id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        import secrets

        run_id = secrets.token_hex(4)  # only rank 0 opens the W&B run
    run_dir.mkdir(parents=True, exist_ok=True)
    if first_process:
        id_file.write_text(run_id)
    init = dict(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        name=cfg.wandb.name or run_name,
        id=run_id,
        dir=str(run_dir),
        group=cfg.experiment,
        job_type="train",
        tags=[*label_space.corpora, cfg.model.name, f"seed={cfg.seed}", *cfg.wandb.tags],
        notes=cfg.wandb.notes,
        config={**plain, "git_sha": _git_sha(), "label_space": label_space.to_dict()},
        resume="allow",
    )
    experiment = None
    if first_process and mode == "online":  # start it here, so that a rejected key or a timeout is survivable
        import wandb

        try:
            experiment = wandb.init(**init, settings=wandb.Settings(init_timeout=cfg.wandb.init_timeout))
        except Exception as err:  # wandb raises several types (CommError, AuthenticationError, UsageError)
            mode, reason = "offline", f"cannot log online: {' '.join(str(err).split())[:200]}"
            os.environ["WANDB_MODE"] = mode
            wandb.teardown()  # the failed start keeps the run id and the online session settings
    if mode == "offline" and first_process:
        print(f"W&B: {reason}, logging offline under {run_dir / 'wandb'}; upload later with `wandb sync`.")
    save_dir = init.pop("dir")
    return WandbLogger(save_dir=save_dir, experiment=experiment, log_model=cfg.wandb.log_model, **init)


if __name__ == "__main__":
    sys.exit(main())
