"""Test hook, active only when ``BIONER_TEST_JOB_EVENTS`` is set (put this directory on PYTHONPATH): a JSON
list of events, each ``{"rank": R, "at": "train" | "validation", "step": K, "do": SIGNAL | "raise"}``,
fired once on rank R when its trainer reaches them: ``train``: the start of the training batch that
follows optimizer step K; ``validation``: the first batch of the first validation after step K (any step
when K is null). ``do`` names a signal the process sends itself (``SIGTERM``, ``SIGUSR1``, ``SIGINT``) or
``raise`` (a RuntimeError, as a CUDA OOM on one rank would)."""

import os

if os.environ.get("BIONER_TEST_JOB_EVENTS"):
    import json
    import signal
    import sys

    import lightning.pytorch as pl

    from training import trainer as trainer_module

    _events = json.loads(os.environ["BIONER_TEST_JOB_EVENTS"])

    class _JobEvents(pl.Callback):
        def __init__(self):
            self.fired = set()

        def _fire(self, trainer, at):
            for number, event in enumerate(_events):
                if number in self.fired or event["at"] != at or event["rank"] != trainer.global_rank:
                    continue
                step = event.get("step")
                if at == "train" and trainer.global_step != step:
                    continue
                if at == "validation" and step is not None and trainer.global_step < step:
                    continue
                self.fired.add(number)
                print(f"[rank {trainer.global_rank}] test event at step {trainer.global_step}: {event['do']}",
                      file=sys.stderr, flush=True)  # fmt: skip
                if event["do"] == "raise":
                    raise RuntimeError(f"injected failure on rank {trainer.global_rank}")
                os.kill(os.getpid(), getattr(signal, event["do"]))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._fire(trainer, "train")

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            if not trainer.sanity_checking and batch_idx == 0 and dataloader_idx == 0:
                self._fire(trainer, "validation")

    _build_callbacks = trainer_module.build_callbacks

    def _with_events(*args, **kwargs):
        return [*_build_callbacks(*args, **kwargs), _JobEvents()]

    trainer_module.build_callbacks = _with_events
