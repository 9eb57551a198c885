"""Every private part of Lightning the project relies on, in one place.

Lightning has no public API for these; each function says what it needs and why. They were written and
tested against Lightning ``TESTED_WITH`` (``pyproject.toml`` pins that minor version). To move the pin:
raise it in ``pyproject.toml`` and ``TESTED_WITH``, run ``make test`` (``tests/test_agreed_stop.py``,
``tests/test_job_control.py``, ``tests/test_job_survival.py`` and ``tests/test_checkpoints.py`` exercise
every function here), and fix this module where an attribute moved; nothing else reaches inside
Lightning (``tests/test_architecture.py`` checks it).
"""

from __future__ import annotations

import datetime
import signal
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.rank_zero import _get_rank

TESTED_WITH = "2.6"


def original_sigterm_handler(trainer: pl.Trainer) -> Any:
    """The SIGTERM handler installed before Lightning's own (a user's, a launcher's), or None."""
    return getattr(trainer._signal_connector, "_original_handlers", {}).get(signal.SIGTERM)


def drop_sigterm_broadcast(trainer: pl.Trainer) -> None:
    """Stop Lightning broadcasting its SIGTERM flag after every batch (a host sync on GPU): the agreed stop
    replaces it."""
    epoch_loop = trainer.fit_loop.epoch_loop
    if hasattr(epoch_loop, "_broadcast_sigterm_tensor"):
        epoch_loop._broadcast_sigterm_tensor = lambda: None


def request_stop(trainer: pl.Trainer) -> None:
    """Make Lightning raise its ``SIGTERMException`` at the end of the current batch."""
    trainer._signal_connector.received_sigterm = True


def ends_optimizer_step(trainer: pl.Trainer) -> bool:
    """Whether the batch that just ran ends an optimizer step (it is not inside an accumulation window)."""
    return not trainer.fit_loop.epoch_loop._should_accumulate()


def set_collective_timeout(trainer: pl.Trainer, timeout: datetime.timedelta) -> None:
    """The process group's timeout, for every DDP strategy (``auto`` resolved to one included)."""
    if hasattr(trainer.strategy, "_timeout"):
        trainer.strategy._timeout = timeout


def last_saved_step(checkpoint: pl.callbacks.ModelCheckpoint) -> int:
    """The global step of the checkpoint's latest save, or -1."""
    return getattr(checkpoint, "_last_global_step_saved", -1)


def process_rank() -> int | None:
    """This process's global rank as Lightning's launchers set it, None before any is known."""
    return _get_rank()
