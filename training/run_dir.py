"""A run's directory: its name (the same on every rank and across requeues of one cluster job), its path,
the checks that it can be written and holds no other run's checkpoints before anything is trained, and
its creation and lock once every check has passed (a run that fails a check leaves no directory)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from configs.compose import ConfigError
from training.run_lock import owns_the_lock, run_lock

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
    """The run directory of ``cfg`` (``run_dir=``, else ``outputs/<experiment>/<run_name>``), checked but not
    created (``claimed_run_dir`` creates it): it can be written, and it holds no checkpoints unless
    ``resume=`` continues them or ``start_over=true`` discards them. Its name is exported to the DDP
    processes this one starts."""
    name = cfg.run_name or default_run_name(cfg.model.name)
    os.environ[RUN_NAME_VARIABLE] = name
    run = RunDir(
        name, Path(cfg.run_dir or Path("outputs") / cfg.experiment / name), bool(cfg.run_dir or cfg.run_name)
    )
    _check_writable(run)
    if cfg.start_over and cfg.resume:
        raise ConfigError(
            f"resume={cfg.resume} and start_over=true: continue the run or start over, not both"
        )
    held = checkpoints_in(run)
    if held and not cfg.resume and not cfg.start_over:
        names = ", ".join(str(p.relative_to(run.path)) for p in held[:3]) + (", ..." if len(held) > 3 else "")
        raise ConfigError(
            f"run_dir={run.path} already holds checkpoints ({names}): add resume=auto to continue that run, "
            "or start_over=true to delete them and start again"
        )
    return run


def checkpoints_in(run: RunDir) -> list[Path]:
    """The checkpoints ``run`` holds: ``checkpoints/*.ckpt`` and SLURM's ``hpc_ckpt_*.ckpt`` (the other
    files of a run directory, its config or W&B files, are no run's state)."""
    return sorted([*run.path.glob("checkpoints/*.ckpt"), *run.path.glob("hpc_ckpt_*.ckpt")])


@contextlib.contextmanager
def claimed_run_dir(run: RunDir, *, start_over: bool = False) -> Iterator[RunDir]:
    """Create ``run``'s directory and hold its lock (``training/run_lock.py``) for the block; with
    ``start_over`` the lock's owner first deletes the checkpoints of the earlier run, so that no
    ``resume=auto`` finds them later. When the block fails, the directories created here are removed
    again if still empty: a run that fails before it writes anything leaves nothing behind."""
    created = [p for p in (run.checkpoints, *run.checkpoints.parents) if not p.exists()]
    succeeded = False
    try:
        _create(run)
        with run_lock(run.path, job=cluster_job_id()):
            if start_over and owns_the_lock():
                _delete_checkpoints(run)
            yield run
        succeeded = True
    finally:
        if not succeeded:
            for directory in created:
                with contextlib.suppress(OSError):
                    directory.rmdir()


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
    existing = run.path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"run_dir={run.path}: cannot write there (Not a directory: {existing})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run_dir={run.path}: cannot write there (Permission denied: {existing})")


def _create(run: RunDir) -> None:
    probe = run.path / f".write-test-{os.getpid()}"
    try:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"run_dir={run.path}: cannot write there ({err.strerror}: {err.filename})"
        ) from None


def _delete_checkpoints(run: RunDir) -> None:
    held = checkpoints_in(run)
    for path in held:
        path.unlink(missing_ok=True)
    if held:
        print(
            f"start_over=true: deleted the {len(held)} checkpoints of the earlier run in {run.path}",
            flush=True,
        )
