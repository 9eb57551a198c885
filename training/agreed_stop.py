"""One agreed stop for every way a training job ends early: SIGTERM, SLURM's requeue signal (SIGUSR1),
Ctrl-C, and an exception on any rank. ``docs/design.md`` ("How a job ends") has the whole protocol and
the test that proves each case.

Signals. A handler only records why the job should stop; it never saves or communicates, because it runs
wherever the main thread happens to be (Lightning's own handlers broadcast, and under SLURM save a
checkpoint, from inside the handler, so ranks caught in different collectives deadlock). The ranks then
agree on a side group of their own (gloo, on the CPU: no GPU synchronisation is added):

- after every training batch each rank puts its reason into an asynchronous MAX all-reduce, read one
  batch later (by then complete), so all ranks see the same value after the same batch, and the stop
  takes effect at the next optimizer-step boundary (never inside an accumulation window, whose gradients
  a checkpoint would not hold);
- during validation, whose batch counts differ between ranks, a rank that has a reason posts it to the
  job's key-value store (rank 0's ``TCPStore``), which every rank polls after each validation batch; a
  rank that sees one, and every rank that finishes its validation batches, takes part in exactly one
  blocking all-reduce per validation, before the metric synchronisation: a stop then ends that validation
  on every rank.

The stop raises Lightning's ``SIGTERMException`` on every rank at the same point; the ``last``
``ModelCheckpoint`` (``save_on_exception``) then writes one consistent checkpoint with all ranks taking
part, and ``train.py`` exits 1 (after asking SLURM to requeue the job, for SIGUSR1).

Failures. Under DDP a rank that raised cannot take part in a checkpoint (its peers wait in the step's
gradient all-reduce, or anywhere else), and it must never enter a collective alone: it writes no
checkpoint (the newest one on disk stays the last good one), posts the failure to the store and arms a
hard exit. Every rank watches the store from a thread while a stage runs: when a peer failed, or the
store is gone with rank 0, it gives its main thread ``EXIT_GRACE_S`` to fail on its own (gloo notices a
closed connection) and then exits with status 1, so no process outlives a dead peer by more than that,
whatever collective it is stuck in (NCCL would wait there until the process-group timeout,
``trainer.collective_timeout_s``). A single process keeps Lightning's on-exception checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
import threading
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from training.lightning_internals import (
    drop_sigterm_broadcast,
    ends_optimizer_step,
    original_sigterm_handler,
    request_stop,
)

# why a job stops, by precedence: the all-reduce keeps the largest, so a requeue asked by SLURM on any
# rank wins over a plain SIGTERM elsewhere
INTERRUPT, TERMINATE, REQUEUE = 1, 2, 3
REASONS = {INTERRUPT: "Ctrl-C", TERMINATE: "SIGTERM", REQUEUE: "SIGUSR1: SLURM requeue"}
EXIT_GRACE_S = 15.0  # a rank whose peer failed: time for its own error to surface before it exits
FAILED_RANK_EXIT_S = 60.0  # a rank that raised: time to finish its own error path (loggers) before it exits
_STOP_KEY, _FAILED_KEY = "bioner/stop", "bioner/failed"


class AgreedStop(pl.Callback):
    """Stop every rank at the same step, whichever rank got the signal or raised (see the module docs).

    ``requeue_signal``: the signal that means "stop, then requeue" (SLURM's SIGUSR1; ``None`` outside
    SLURM, where SIGUSR1 keeps its default). ``timeout_s``: the side group's collective timeout.
    """

    def __init__(self, *, requeue_signal: int | None = None, timeout_s: float = 300.0) -> None:
        self.requeue_signal = requeue_signal
        self.timeout_s = float(timeout_s)
        self.local = 0  # this rank's reason (set by a signal handler)
        self.agreed = 0  # the reason all ranks agreed on (0: none)
        self.during_validation = False  # the agreed stop ended a validation
        self.stopped_at_step: int | None = None
        self._interrupts = 0
        self._group: Any = None
        self._store: Any = None
        self._posted = False
        self._pending: tuple[torch.Tensor, Any] | None = None
        self._validation_agreed = False
        self._distributed = False
        self._watch: _PeerWatch | None = None

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._distributed = trainer.world_size > 1 and dist.is_available() and dist.is_initialized()
        if self._distributed and self._group is None:
            timeout = datetime.timedelta(seconds=self.timeout_s)
            self._group = dist.new_group(backend="gloo", timeout=timeout)  # its own queue of collectives
            self._store = dist.distributed_c10d._get_default_store()
        if self._distributed:
            self._watch = _PeerWatch(self._store, trainer.global_rank)
            self._watch.start()
        self.local = self.agreed = 0
        self.during_validation = False
        self.stopped_at_step = None
        self._interrupts = 0
        self._posted = False
        self._pending = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install(trainer)

    def _install(self, trainer: pl.Trainer) -> None:
        # Lightning installs its handlers just before the stage runs and restores the earlier ones when
        # it tears down (on an exception too); these replace them for the run.
        original = original_sigterm_handler(trainer)
        signal.signal(signal.SIGTERM, self._handler(trainer, TERMINATE, original))
        signal.signal(signal.SIGINT, self._handler(trainer, INTERRUPT))
        if self.requeue_signal is not None:
            signal.signal(self.requeue_signal, self._handler(trainer, REQUEUE))
        if self._distributed:  # Lightning's per-batch broadcast of its own flag: replaced by the above
            drop_sigterm_broadcast(trainer)

    def _handler(self, trainer: pl.Trainer, reason: int, original: Any = None):
        def handler(signum: int, frame: Any) -> None:
            if callable(original):  # a handler installed before training (a user's, a launcher's)
                original(signum, frame)
            if reason == INTERRUPT:
                self._interrupts += 1
                if self._interrupts > 1:  # the user insists: stop now, without a checkpoint
                    raise KeyboardInterrupt
            if not self.local:
                hint = " (Ctrl-C again: stop at once, without a checkpoint)" if reason == INTERRUPT else ""
                print(f"[rank {trainer.global_rank}] {REASONS[reason]}: stopping{hint}", file=sys.stderr)
                launcher = trainer.strategy.launcher
                if reason == TERMINATE and launcher is not None:  # a locally launched job: pass it on
                    launcher.kill(signum)
            self.local = max(self.local, reason)
            if not self._distributed and trainer.accumulate_grad_batches == 1:
                # one process, every batch ends a step: stop at the end of this one, even when the signal
                # comes during its checkpoint (after this callback's own batch-end hook)
                self.agreed = self.local
                request_stop(trainer)

        return handler

    # --- agreement after training batches -------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._distributed:
            self.agreed = max(self.agreed, self.local)
        else:
            if self._pending is not None:
                flag, work = self._pending
                work.wait()
                self.agreed = max(self.agreed, int(flag.item()))
            flag = torch.tensor([self.local], dtype=torch.int32)
            work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
            self._pending = (flag, work)
        at_step_boundary = ends_optimizer_step(trainer)
        if self.agreed and at_step_boundary and self.stopped_at_step is None:
            self._announce(trainer, f"after optimizer step {trainer.global_step}")
            request_stop(trainer)  # Lightning raises at the end of this batch

    # --- agreement during validation ----------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_agreed = False

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking:
            return
        self._stop_if_agreed(trainer)
        if self._validation_agreed:
            return
        posted = self._distributed and not self.local and self._store.check([_STOP_KEY])
        if self.local or posted:
            self._agree_in_validation(trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # callbacks run this hook before the module's, i.e. before its metrics synchronise across ranks
        if trainer.sanity_checking:
            return
        self._stop_if_agreed(trainer)
        if not self._validation_agreed:
            self._agree_in_validation(trainer)

    def _agree_in_validation(self, trainer: pl.Trainer) -> None:
        """This rank's one blocking agreement of this validation; raises the stop when one is agreed."""
        self._validation_agreed = True
        if self._distributed:
            if self.local and not self._posted:
                self._store.set(_STOP_KEY, str(self.local))
                self._posted = True
            posted = int(self._store.get(_STOP_KEY)) if self._store.check([_STOP_KEY]) else 0
            flag = torch.tensor([max(self.local, posted)], dtype=torch.int32)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
            self.agreed = max(self.agreed, int(flag.item()))
        else:
            self.agreed = max(self.agreed, self.local)
        self._stop_if_agreed(trainer)

    def _stop_if_agreed(self, trainer: pl.Trainer) -> None:
        """End this validation when a stop is agreed: one agreed in it, or after the training batch that
        preceded it (every rank knows that one already: no collective)."""
        if not self.agreed:
            return
        if self.stopped_at_step is None:  # not announced after a training batch already
            self.during_validation = True
            self._announce(trainer, f"during the validation after optimizer step {trainer.global_step}")
        request_stop(trainer)
        raise SIGTERMException

    def _announce(self, trainer: pl.Trainer, when: str) -> None:
        self.stopped_at_step = trainer.global_step
        print(f"[rank {trainer.global_rank}] stop agreed ({REASONS[self.agreed]}): {when}", file=sys.stderr)

    # --- the end ------------------------------------------------------------------------------------
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._settle()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.agreed and isinstance(exception, SIGTERMException):
            if self.stopped_at_step is None:  # a one-process stop set by the handler
                self._announce(trainer, f"after optimizer step {trainer.global_step}")
            self._settle()  # every rank issued the same reductions: they complete; the checkpoint follows
            return
        if not self._distributed:
            return  # one process: Lightning's on-exception checkpoint is consistent
        # this rank failed on its own: no checkpoint (its peers cannot take part), tell them, and go
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                callback.save_on_exception = False
        what = f"rank {trainer.global_rank}: {type(exception).__name__}: {exception}".splitlines()[0][:300]
        print(f"[rank {trainer.global_rank}] failed ({what}); no checkpoint is written", file=sys.stderr)
        if self._watch is not None:
            self._watch.stop()
        with contextlib.suppress(Exception):  # the store went with rank 0: the peers notice that anyway
            self._store.set(_FAILED_KEY, what)
        _exit_after(FAILED_RANK_EXIT_S, f"[rank {trainer.global_rank}] still running after its failure")

    def _settle(self) -> None:
        """Wait for the last reduction (issued by every rank at the same step, so it completes)."""
        if self._pending is not None:
            self._pending[1].wait()
            self._pending = None


class _PeerWatch:
    """A daemon thread that ends this process when a peer failed or the job's store is gone (rank 0
    died), after giving the main thread ``EXIT_GRACE_S`` to fail by itself."""

    def __init__(self, store: Any, rank: int, poll_s: float = 1.0) -> None:
        self.store, self.rank, self.poll_s = store, rank, poll_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bioner-peer-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.poll_s):
            try:
                if not self.store.check([_FAILED_KEY]):
                    continue
                problem = f"{self.store.get(_FAILED_KEY).decode()} failed"
            except Exception as err:  # noqa: BLE001 - any store error means rank 0's store is gone
                problem = f"the job's store is unreachable ({type(err).__name__}: rank 0 gone?)"
            if self._stopped.wait(EXIT_GRACE_S):
                return  # the stage ended meanwhile (this rank failed too, or finished)
            print(f"error: [rank {self.rank}] {problem}; this rank stops", file=sys.stderr, flush=True)
            os._exit(1)


def _exit_after(seconds: float, message: str) -> None:
    """Exit the process with status 1 in ``seconds`` unless it has exited by then."""

    def hard_exit() -> None:
        print(f"error: {message}; exiting (status 1)", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()
