"""A run's directory: its name (the same on every rank and across requeues of one cluster job), its path,
and the check that it can be written before anything is trained."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from configs.compose import ConfigError

if TYPE_CHECKING:
    from configs.schema import RunCfg

RUN_NAME_VARIABLE = "BIONER_RUN_NAME"  # DDP re-executes train.py per rank: every rank reads rank 0's name


@dataclass(frozen=True)
class RunDir:
    name: str
    path: Path
    explicit: bool  # named by run_dir= or run_name=, so a later command can find it again

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"


def resolve_run_dir(cfg: RunCfg) -> RunDir:
    """The run directory of ``cfg`` (``run_dir=``, else ``outputs/<experiment>/<run_name>``), created and
    checked writable; its name is exported to the DDP processes this one starts."""
    name = cfg.run_name or default_run_name(cfg.model.name)
    os.environ[RUN_NAME_VARIABLE] = name
    run = RunDir(
        name, Path(cfg.run_dir or Path("outputs") / cfg.experiment / name), bool(cfg.run_dir or cfg.run_name)
    )
    _check_writable(run)
    return run


def default_run_name(model: str) -> str:
    """``<model>-<cluster job id>`` under SLURM or torchrun (stable across requeues), else a timestamp."""
    job = cluster_job_id()
    if job:
        return f"{model}-{job}"
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get(RUN_NAME_VARIABLE):
        return os.environ[RUN_NAME_VARIABLE]  # a DDP child process started by rank 0
    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def cluster_job_id() -> str | None:
    for variable in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"):
        value = os.environ.get(variable)
        if value and value != "none":
            return value
    return None


def _check_writable(run: RunDir) -> None:
    probe = run.path / f".write-test-{os.getpid()}"
    try:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"run_dir={run.path}: cannot write there ({err.strerror}: {err.filename})"
        ) from None
