"""The agreed stop under DDP, with its Lightning surroundings faked: a handler only records the signal; the
ranks agree through a CPU all-reduce (after training batches) or the job's store (during validation, whose
batch counts differ between ranks), and stop at the same point, whichever rank was signalled and whatever
collective the others were in."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.utilities.exceptions import SIGTERMException

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.agreed_stop import REQUEUE, TERMINATE, AgreedStop  # noqa: E402

SIGNALLED_RANK, SIGNALLED_AT, STEPS = 1, 2, 6


def _fake_trainer(rank: int, world_size: int, accumulate: int = 1) -> SimpleNamespace:
    trainer = SimpleNamespace(
        world_size=world_size,
        global_rank=rank,
        global_step=0,
        accumulate_grad_batches=accumulate,
        sanity_checking=False,
        strategy=SimpleNamespace(launcher=None),
        _signal_connector=SimpleNamespace(received_sigterm=False),
        checkpoint_callbacks=[],
    )
    batches = SimpleNamespace(seen=0)

    def should_accumulate() -> bool:  # Lightning's: this batch does not end an accumulation window
        return batches.seen % accumulate != 0

    trainer.fit_loop = SimpleNamespace(
        epoch_loop=SimpleNamespace(_broadcast_sigterm_tensor=None, _should_accumulate=should_accumulate)
    )
    trainer.batches = batches
    return trainer


def _train_batch(callback: AgreedStop, trainer: SimpleNamespace, batch: int) -> None:
    trainer.batches.seen += 1
    if not trainer.fit_loop.epoch_loop._should_accumulate():
        trainer.global_step += 1  # the optimizer stepped in this batch, before its end hooks
    callback.on_train_batch_end(trainer, None, None, None, batch)


def _rank(rank: int, world_size: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    trainer = _fake_trainer(rank, world_size)
    callback = AgreedStop()
    callback.setup(trainer, None, "fit")
    callback.on_train_start(trainer, None)
    stopped_at = None
    for step in range(STEPS):
        if rank == SIGNALLED_RANK and step == SIGNALLED_AT:
            os.kill(os.getpid(), signal.SIGTERM)
            assert callback.local == TERMINATE and not trainer._signal_connector.received_sigterm
        dist.barrier()  # the other rank sits in a collective of its own meanwhile
        _train_batch(callback, trainer, step)
        if stopped_at is None and trainer._signal_connector.received_sigterm:
            stopped_at = step
    callback.on_train_end(trainer, None)
    callback.teardown(trainer, None, "fit")
    lightning_broadcast = trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor()  # now a no-op
    Path(out, f"rank{rank}").write_text(f"{stopped_at} {lightning_broadcast}")
    dist.destroy_process_group()


def test_sigterm_on_one_rank_stops_every_rank_at_the_same_later_step(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    # signalled during step 2; its flag is reduced after step 2 and read after step 3 on both ranks
    assert [(tmp_path / f"rank{r}").read_text() for r in range(2)] == ["3 None", "3 None"]


VALIDATION_BATCHES = {0: 5, 1: 2}  # rows r::2 of a dev split: the ranks' batch counts differ


def _validating_rank(rank: int, world_size: int, store: str, out: str, signal_at: int) -> None:
    """One validation in which rank 0 gets SIGUSR1 at its batch ``signal_at``; then the metric sync."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    trainer = _fake_trainer(rank, world_size)
    callback = AgreedStop(requeue_signal=signal.SIGUSR1)
    callback.setup(trainer, None, "fit")
    callback.on_train_start(trainer, None)
    _train_batch(callback, trainer, 0)
    callback.on_validation_epoch_start(trainer, None)
    where = "finished"
    try:
        for batch in range(VALIDATION_BATCHES[rank]):
            if rank == 0 and batch == signal_at:
                os.kill(os.getpid(), signal.SIGUSR1)
            callback.on_validation_batch_end(trainer, None, None, None, batch)
        callback.on_validation_epoch_end(trainer, None)
        dist.all_reduce(torch.zeros(1))  # the module's metric sync: both ranks or neither
    except SIGTERMException:
        where = f"stopped {callback.agreed}"
    callback.on_exception(trainer, None, SIGTERMException())
    callback.teardown(trainer, None, "fit")
    Path(out, f"rank{rank}").write_text(where)
    dist.destroy_process_group()


@pytest.mark.parametrize("signal_at", [0, 4])  # 4: after rank 1 has finished its two batches
def test_a_signal_during_validation_ends_it_on_every_rank_whatever_their_batch_counts(tmp_path, signal_at):
    args = (2, str(tmp_path / "store"), str(tmp_path), signal_at)
    mp.spawn(_validating_rank, args=args, nprocs=2, join=True)
    assert [(tmp_path / f"rank{r}").read_text() for r in range(2)] == [f"stopped {REQUEUE}"] * 2


@pytest.fixture()
def restore_signals():
    """The test installs the callback's handlers in this process: put pytest's back afterwards."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_single_process_stops_after_the_current_step(restore_signals):
    """One process, one batch per step: the handler itself asks Lightning to stop at the end of the
    current batch, so a signal that comes during the step's checkpoint (which runs after this callback's
    batch-end hook) still stops after that step."""
    trainer = _fake_trainer(0, 1)
    callback = AgreedStop()
    callback.setup(trainer, None, "fit")
    callback.on_train_start(trainer, None)
    _train_batch(callback, trainer, 0)
    assert not trainer._signal_connector.received_sigterm
    os.kill(os.getpid(), signal.SIGTERM)  # after this callback's hook of step 1, during its checkpoint
    assert trainer._signal_connector.received_sigterm  # Lightning raises at the end of step 1
    callback.on_exception(trainer, None, SIGTERMException())
    assert callback.stopped_at_step == 1 and callback.agreed == TERMINATE
    assert trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor is None  # left alone without DDP


def test_the_stop_waits_for_the_end_of_an_accumulation_window(restore_signals):
    trainer = _fake_trainer(0, 1, accumulate=4)
    callback = AgreedStop()
    callback.setup(trainer, None, "fit")
    stopped = []
    callback.on_train_start(trainer, None)
    os.kill(os.getpid(), signal.SIGTERM)  # during the first micro-batch
    for batch in range(8):
        _train_batch(callback, trainer, batch)
        stopped.append(trainer._signal_connector.received_sigterm)
    assert stopped == [False, False, False, True, True, True, True, True]  # after micro-batch 4: step 1
    assert callback.stopped_at_step == 1  # after the window's last micro-batch: optimizer step 1


def test_a_second_ctrl_c_stops_at_once(restore_signals):
    trainer = _fake_trainer(0, 1)
    callback = AgreedStop()
    callback.setup(trainer, None, "fit")
    callback.on_train_start(trainer, None)
    os.kill(os.getpid(), signal.SIGINT)  # the first only asks for a stop after this step
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
