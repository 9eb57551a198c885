"""SIGTERM under DDP: the handler only records it; the ranks agree through a CPU all-reduce and stop at
the same step, whichever rank was signalled and whatever collective the others were in."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_modules.callbacks import AgreedSigterm  # noqa: E402

SIGNALLED_RANK, SIGNALLED_AT, STEPS = 1, 2, 6


def _fake_trainer(rank: int, world_size: int) -> SimpleNamespace:
    return SimpleNamespace(
        world_size=world_size,
        global_rank=rank,
        strategy=SimpleNamespace(launcher=None),
        _signal_connector=SimpleNamespace(received_sigterm=False),
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_broadcast_sigterm_tensor=None)),
    )


def _rank(rank: int, world_size: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    trainer = _fake_trainer(rank, world_size)
    callback = AgreedSigterm()
    callback.setup(trainer, None, "fit")
    callback.on_train_start(trainer, None)
    stopped_at = None
    for step in range(STEPS):
        if rank == SIGNALLED_RANK and step == SIGNALLED_AT:
            os.kill(os.getpid(), signal.SIGTERM)
            assert callback.received and not trainer._signal_connector.received_sigterm
        dist.barrier()  # the other rank sits in a collective of its own meanwhile
        callback.on_train_batch_end(trainer, None, None, None, step)
        if stopped_at is None and trainer._signal_connector.received_sigterm:
            stopped_at = step
    callback.on_train_end(trainer, None)
    lightning_broadcast = trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor()  # now a no-op
    Path(out, f"rank{rank}").write_text(f"{stopped_at} {lightning_broadcast}")
    dist.destroy_process_group()


def test_sigterm_on_one_rank_stops_every_rank_at_the_same_later_step(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    # signalled during step 2; its flag is reduced after step 2 and read after step 3 on both ranks
    assert [(tmp_path / f"rank{r}").read_text() for r in range(2)] == ["3 None", "3 None"]


def test_single_process_stops_after_the_current_step():
    trainer = _fake_trainer(0, 1)
    callback = AgreedSigterm()
    callback.setup(trainer, None, "fit")
    previous = signal.getsignal(signal.SIGTERM)
    try:
        callback.on_train_start(trainer, None)
        os.kill(os.getpid(), signal.SIGTERM)
        assert trainer._signal_connector.received_sigterm
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor is None  # left alone without DDP
