"""The learning-rate schedule a run hands its model (``training/schedule.py``,
``lightning_modules/optimisation.py``): its length in hand-counted cases, and a model built without one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lightning_modules.optimisation import Schedule, cosine_warmup_decay, linear_warmup_decay
from training.schedule import schedule_of


class _Data:
    """A data module whose epoch is ``per_process_batches / accumulation`` optimiser steps."""

    def __init__(self, steps: int):
        self.steps, self.asked = steps, []

    def train_steps_per_epoch(self, world_size: int, accumulate: int) -> int:
        self.asked.append((world_size, accumulate))
        return self.steps


def _trainer(max_steps: int = -1, max_epochs: int | None = 3, world: int = 2, accumulate: int = 4):
    return SimpleNamespace(
        world_size=world, accumulate_grad_batches=accumulate, max_steps=max_steps, max_epochs=max_epochs
    )


def test_the_schedule_length_is_total_steps_else_max_steps_else_epochs_times_the_epoch():
    data = _Data(7)
    assert schedule_of(data, _trainer(), None) == Schedule(7, 21)  # 3 epochs x 7
    assert schedule_of(data, _trainer(max_epochs=None), None) == Schedule(7, 7)  # no epoch limit: one epoch
    assert schedule_of(data, _trainer(max_steps=50), None) == Schedule(7, 50)
    assert schedule_of(data, _trainer(max_steps=50), 13) == Schedule(7, 13)  # optim.total_steps wins
    assert data.asked == [(2, 4)] * 4  # the epoch is sized for the Trainer's processes and accumulation


def test_warmup_then_linear_or_cosine_decay():
    linear = linear_warmup_decay(4, 12)
    assert [linear(s) for s in (0, 2, 4, 8, 12, 20)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    assert linear_warmup_decay(0, 10)(0) == 1.0
    cosine = cosine_warmup_decay(2, 10)
    assert [cosine(s) for s in (1, 2, 6, 10)] == pytest.approx([0.5, 1.0, 0.5, 0.0])


def _baseline(schedule: Schedule | None):
    from tiny_models import tiny_bert_config

    from datamodules.corpora import label_space_of
    from lightning_modules.registry import build_module

    cfg = {
        "encoder": {"name": "tiny", "lr": 1e-4, "warmup_epochs": 1.0},
        "model": {"name": "baseline", "lr": 1e-3, "warmup_epochs": 0.5},
        "optim": {"schedule": "cosine"},
    }
    return build_module(cfg, label_space_of(["BC5CDR"]), tiny_bert_config().to_dict(), schedule=schedule)


def test_the_handed_schedule_sizes_each_groups_warmup_and_decay():
    optimizers = _baseline(Schedule(steps_per_epoch=10, total_steps=40)).configure_optimizers()
    scheduler = optimizers["lr_scheduler"]["scheduler"]
    encoder, head = scheduler.lr_lambdas
    assert type(encoder) is type(head) is cosine_warmup_decay  # optim.schedule=cosine
    assert (encoder.warmup, encoder.total) == (10, 40)  # encoder.warmup_epochs=1 x 10 steps
    assert (head.warmup, head.total) == (5, 40)  # model.warmup_epochs=0.5 x 10 steps
    assert [g["initial_lr"] for g in optimizers["optimizer"].param_groups] == [1e-4, 1e-3]


def test_a_model_built_without_a_schedule_says_how_to_give_it_one():
    with pytest.raises(RuntimeError, match=r"built without a schedule.*schedule_of"):
        _baseline(None).configure_optimizers()
