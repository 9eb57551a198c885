"""The learning-rate schedule's length of a run, which ``train.py`` hands to the model when it builds it."""

from __future__ import annotations

from typing import Any

from lightning_modules.optimisation import Schedule


def schedule_of(datamodule: Any, trainer: Any, total_steps: int | None) -> Schedule:
    """Optimiser steps per epoch, from the data module (the only owner of the epoch's size; the same on any
    number of processes), and in all: ``optim.total_steps`` (``total_steps``), else ``trainer.max_steps``,
    else epochs x steps per epoch. Never ``trainer.estimated_stepping_batches``: it silently breaks exact
    resume."""
    steps_per_epoch = datamodule.train_steps_per_epoch(trainer.world_size, trainer.accumulate_grad_batches)
    if total_steps:
        return Schedule(steps_per_epoch, int(total_steps))
    if trainer.max_steps and trainer.max_steps > 0:
        return Schedule(steps_per_epoch, trainer.max_steps)
    return Schedule(steps_per_epoch, steps_per_epoch * (trainer.max_epochs or 1))
