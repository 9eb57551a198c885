"""The run's logger: ``logger=none|csv|wandb``.

W&B runs online when wandb finds an API key for the server, else offline in ``<run_dir>/wandb``. A malformed
key, an unreachable server or a refused run start falls back to offline within ``wandb.init_timeout``
seconds and says why: W&B never stops training. A resumed run continues the same W&B run (its id is kept
in ``<run_dir>/wandb_id.txt``).
"""

from __future__ import annotations

import contextlib
import netrc
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import wandb
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from configs.compose import ConfigError
from datamodules.label_space import LabelSpace
from errors import BionerError
from training.lightning_internals import process_rank
from training.run_dir import RunDir

if TYPE_CHECKING:
    from configs.schema import RunCfg

WANDB_DEFAULT_HOST = "https://api.wandb.ai"


@contextlib.contextmanager
def failed_logging_on_error() -> Iterator[None]:
    """A user error raised inside closes the W&B run the logger started (rank 0, online) as failed."""
    try:
        yield
    except BionerError:
        if wandb.run is not None:
            wandb.finish(exit_code=2)
        raise


def build_logger(
    cfg: RunCfg, plain: dict, run: RunDir, label_space: LabelSpace, *, resuming: bool
) -> Logger | bool:
    """The logger ``cfg.logger`` names (``False`` for none)."""
    if cfg.logger == "none":
        return False
    if cfg.logger == "csv":
        return CSVLogger(str(run.path), name="", version="")
    if cfg.logger != "wandb":
        raise ConfigError(f"logger={cfg.logger!r}: use wandb, csv or none")
    return _wandb_logger(cfg, plain, run, label_space, resuming=resuming)


def _wandb_logger(
    cfg: RunCfg, plain: dict, run: RunDir, label_space: LabelSpace, *, resuming: bool
) -> WandbLogger:
    first_process = is_first_process()
    chosen = cfg.wandb.mode or os.environ.get("WANDB_MODE")
    key = wandb_api_key()
    mode = chosen or ("online" if key else "offline")
    reason = "offline mode requested" if chosen else "no API key found"
    if mode == "online" and first_process:
        problem = wandb_online_problem(key or "", cfg.wandb.init_timeout)
        if problem:
            mode, reason = "offline", f"cannot log online: {problem}"
    os.environ["WANDB_MODE"] = mode
    id_file = run.path / "wandb_id.txt"
    run_id = id_file.read_text().strip() if resuming and id_file.is_file() else secrets.token_hex(4)
    if first_process:  # only rank 0 opens the W&B run
        id_file.write_text(run_id)
    init = dict(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        name=cfg.wandb.name or run.name,
        id=run_id,
        group=cfg.experiment,
        job_type="train",
        tags=[*label_space.corpora, cfg.model.name, f"seed={cfg.seed}", *cfg.wandb.tags],
        notes=cfg.wandb.notes,
        config={**plain, "git_sha": git_sha(), "label_space": label_space.to_dict()},
        resume="allow",
    )
    experiment = None
    if first_process and mode == "online":  # start it here, so that a rejected key or a timeout is survivable
        try:
            settings = wandb.Settings(init_timeout=cfg.wandb.init_timeout)
            experiment = wandb.init(**init, dir=str(run.path), settings=settings)
        except Exception as err:  # wandb raises several types (CommError, AuthenticationError, UsageError)
            mode, reason = "offline", f"cannot log online: {' '.join(str(err).split())[:200]}"
            os.environ["WANDB_MODE"] = mode
            wandb.teardown()  # the failed start keeps the run id and the online session settings
    if mode == "offline" and first_process:
        print(f"W&B: {reason}, logging offline under {run.path / 'wandb'}; upload later with `wandb sync`.")
    # log_model=False: not Lightning's raw checkpoint uploads; training/artifacts.py logs export directories
    return WandbLogger(save_dir=str(run.path), experiment=experiment, log_model=False, **init)


def is_first_process() -> bool:
    """Global rank 0, before the Trainer exists: Lightning's launcher, torchrun (``RANK``) and srun
    (``SLURM_PROCID``) each say so in their own variable."""
    return process_rank() in (None, 0) and os.environ.get("NODE_RANK", "0") == "0"


def wandb_api_key() -> str | None:
    """The API key wandb itself would use for ``WANDB_BASE_URL``: ``WANDB_API_KEY``, else the netrc entry of
    that host (self-hosted servers included)."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    host = os.environ.get("WANDB_BASE_URL", WANDB_DEFAULT_HOST)
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth  # a private module of wandb: guarded
    except ImportError:  # another wandb layout: read the netrc entry of the host ourselves
        try:
            entry = netrc.netrc(os.environ.get("NETRC")).authenticators(urlparse(host).hostname or host)
        except (OSError, netrc.NetrcParseError):
            return None
        return entry[2] if entry else None
    try:
        return read_netrc_auth(host=host)
    except Exception:  # a malformed netrc entry counts as no key: the run logs offline and says so
        return None


def wandb_online_problem(key: str, timeout: float) -> str | None:
    """Why an online W&B run cannot start (malformed key, unreachable server), or None."""
    try:
        from wandb.sdk.lib.wbauth import check_api_key  # a private module of wandb: guarded

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


def git_sha() -> str | None:
    """The commit of this checkout (recorded in the W&B run config), or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
