"""What ``resume=`` means: the checkpoint a run continues from, the model a resumed run rebuilds, and the
command that resumes an interrupted run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from configs.compose import ConfigError
from errors import CheckpointError
from lightning_modules.checkpoints import checkpoint_model_name, read_checkpoint
from training.checkpointing import newest_good_checkpoint
from training.run_dir import RunDir, cluster_job_id
from untrusted import regular_file

MAX_RUN_CONFIG_BYTES = 1 << 20  # a run's config.yaml is a few kB


def resume_checkpoint(resume: str | None, run: RunDir, *, trust: bool = False) -> str | None:
    """The checkpoint ``resume`` names: ``last`` (``checkpoints/last.ckpt``), ``auto`` (the newest good
    checkpoint of the run directory), a path, or None. ``last`` and ``auto`` start fresh when there is none
    yet, so the same command line serves the first start and every requeue. The checkpoint is read (plain
    data only unless ``trust``): one the restricted loader refuses fails here, before anything is built."""
    if resume is None:
        return None
    if resume in ("last", "auto"):
        if not run.explicit and not cluster_job_id():
            raise ConfigError(
                f"resume={resume} needs the run to continue: add run_dir=outputs/<experiment>/<run name>"
            )
        if resume == "auto":
            found = newest_good_checkpoint(run.path, trust=trust)
            if found is None:
                print(f"resume=auto: no checkpoint in {run.path} yet, starting from scratch", flush=True)
            else:
                _check_resumable(found, trust)
            return found
        last = run.checkpoints / "last.ckpt"
        if last.is_file():
            _check_resumable(last, trust)
            return str(last)
        print(f"resume=last: no {last} yet, starting from scratch", flush=True)
        return None
    if not Path(resume).exists():
        raise ConfigError(f"resume={resume}: no such checkpoint file")
    _check_resumable(resume, trust)
    return resume


def _check_resumable(path: str | Path, trust: bool) -> None:
    """A checkpoint of train.py: readable (plain data only unless ``trust``), with its model's name,
    ``hyper_parameters`` and ``state_dict`` mappings; a ``CheckpointError`` naming it otherwise, before
    the data or the model is built."""
    checkpoint = read_checkpoint(path, trust=trust)
    for key in ("hyper_parameters", "state_dict"):
        value = checkpoint.get(key)
        if not isinstance(value, Mapping):
            kind = "missing" if value is None else f"a {type(value).__name__}"
            raise CheckpointError(path, f"{key} is {kind}, not a mapping (not a checkpoint of train.py?)")
    if checkpoint_model_name(checkpoint) is None:
        raise CheckpointError(path, "no model name in its hyper_parameters (not a checkpoint of train.py?)")


def with_checkpoint_model(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``model=NAME`` of the checkpoint it resumes, when it resumes one and names no model:
    a resumed run rebuilds the model it was trained with, whatever the default."""
    argv = list(argv)
    if any(a.startswith("model=") for a in argv):
        return argv
    values = dict(a.split("=", 1) for a in argv if "=" in a)
    resume, run_dir = values.get("resume"), values.get("run_dir")
    if not run_dir and values.get("run_name"):
        run_dir = str(Path("outputs") / values.get("experiment", "default") / values["run_name"])
    if resume in ("last", "auto") and run_dir:
        config = Path(run_dir) / "config.yaml"  # written by the run at its start
        if not config.exists():
            return argv
        name = _recorded_model(config)
        return [f"model={name}", *argv] if name else argv
    if not resume or not Path(resume).is_file():
        return argv  # nothing to resume (yet), or an error that train.py reports later
    trust = values.get("trust_checkpoint", "false").strip().lower() in ("true", "yes", "on", "1")
    try:
        checkpoint = read_checkpoint(resume, trust=trust)
    except CheckpointError:  # unreadable or refused: resume_checkpoint names it once the run is composed
        return argv
    name = checkpoint_model_name(checkpoint)
    return [f"model={name}", *argv] if name else argv


def _recorded_model(config: Path) -> str | None:
    """The ``model.name`` a run directory's ``config.yaml`` records; the file may come from anyone, so it
    is read as plain YAML (no tags), only when it is a regular file of a sane size, and anything else is one
    ``ConfigError`` naming it."""
    regular_file(config, lambda path, problem: ConfigError(f"{path}: {problem}"))
    if config.stat().st_size > MAX_RUN_CONFIG_BYTES:
        raise ConfigError(
            f"{config}: {config.stat().st_size} bytes, not a run's config.yaml; remove it or pass model="
        )
    try:
        name = OmegaConf.select(OmegaConf.load(config), "model.name")
    except Exception as err:  # yaml errors of every kind, a tag, a deep nesting (RecursionError)
        problem = " ".join(str(err).split())[:120]
        raise ConfigError(
            f"{config}: not a readable run config ({type(err).__name__}: {problem}); "
            "fix or remove it, or pass model="
        ) from None
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{config}: model.name is not a name; fix it, or pass model=")
    return name


def resume_command(argv: Sequence[str], run: RunDir) -> str:
    """The command line that continues ``run``: the same arguments (less ``start_over=``: the run is
    continued, not started again), its directory and ``resume=auto``."""
    kept = [a for a in argv if not a.startswith(("run_dir=", "resume=", "start_over="))]
    return " ".join(["python train.py", *kept, f"run_dir={run.path}", "resume=auto"])


def checkpoint_hyper_parameters(path: str | None, *, trust: bool = False) -> dict:
    """What the model of a resumed checkpoint was built from (``cfg``, ``encoder_config``: a warm start
    from an export directory builds its encoder from a config); empty without a checkpoint."""
    if path is None:
        return {}
    return read_checkpoint(path, trust=trust).get("hyper_parameters") or {}
