"""One live run per run directory: ``<run_dir>/run.lock`` names the run that owns it (host, pid, cluster
job).

Two runs on one directory would overwrite each other's checkpoints and scores. The lock refuses a second
run while the first lives. A lock whose run is gone (killed, power loss: no ``finally`` ran) would block
the directory for ever, so one left on this host by a process that no longer exists, or by an earlier
start of the same cluster job (a SLURM requeue after a hard kill, maybe on another node), is named in a
warning and taken over. A lock from another host is refused: this host cannot tell whether that run
lives, and the message says how to free it.

Only the launching process (global rank 0, or a process before any rank is known) owns the lock. The
other ranks of a DDP job are started by it or beside it (Lightning's launcher, torchrun, srun) and run
inside the same lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from atomic_output import temporary_path
from errors import ConfigError
from training.lightning_internals import process_rank

LOCK_FILE = "run.lock"


def owns_the_lock() -> bool:
    """Whether this process is the one of its job that locks the run directory (rank 0 or no rank yet)."""
    return process_rank() in (None, 0)


@contextlib.contextmanager
def run_lock(run_dir: Path, *, job: str | None = None) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (released on return, exception, Ctrl-C or an agreed stop);
    raise ``ConfigError`` naming the owner when another live run holds it. ``job``: the cluster job id,
    the same across the job's requeues."""
    if not owns_the_lock():
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid(), "job": job}
    if not _create(path, me):
        owner = _owner(path)
        if owner is not None:
            if not _gone(owner, me):
                raise ConfigError(_in_use(run_dir, path, owner, me))
            print(
                f"warning: run_dir={run_dir}: taking over the lock of a run that ended without releasing "
                f"it (pid {owner['pid']} on {owner['host'][:80]}, {path})",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if not _create(path, me):  # another run took it first
            raise ConfigError(_in_use(run_dir, path, _owner(path) or {"pid": "?", "host": "?"}, me))
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ConfigError):
            if _owner(path) == me:
                path.unlink()


def _create(path: Path, me: dict) -> bool:
    """Create the lock holding ``me`` in one step (written aside, then hard-linked: never seen half
    written); False when a lock is there."""
    temporary = temporary_path(path)
    try:
        temporary.write_text(json.dumps(me) + "\n")
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _owner(path: Path) -> dict | None:
    """What the lock at ``path`` says (None: there is none any more)."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8", errors="replace")[:1000])
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        owner = None
    pid = owner.get("pid") if isinstance(owner, dict) else None
    if type(pid) is not int or pid <= 0 or not isinstance(owner.get("host"), str):
        raise ConfigError(f"{path}: not a lock file of train.py; delete it if no run uses {path.parent}")
    return owner


def _gone(owner: dict, me: dict) -> bool:
    """Whether the run that wrote ``owner`` has certainly ended: on this host, its process is gone; on
    another, it was an earlier start of this very cluster job (requeued only once it ended)."""
    if owner["host"] == me["host"]:
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's live process
            return False
        except OverflowError:  # a pid no system has
            return True
        return False
    return me["job"] is not None and owner.get("job") == me["job"]


def _in_use(run_dir: Path, path: Path, owner: dict, me: dict) -> str:
    where = f"pid {owner['pid']} on {owner['host'][:80]}"
    if owner["host"] != me["host"]:
        return (
            f"run_dir={run_dir} is locked by a run on another host ({where}, {path}); if that run has "
            "ended, delete the lock file; else choose another run_dir"
        )
    return (
        f"run_dir={run_dir} is in use by a live run ({where}, {path}); wait for it to end, or choose "
        "another run_dir"
    )
