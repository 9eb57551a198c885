"""Test hook, active only when ``BIONER_TEST_STOP_AFTER_STEP=N`` is set (put this directory on
PYTHONPATH): the process stops itself (SIGSTOP), once, right after it has written ``last.ckpt`` of
optimiser step N, so a test can kill or signal it at exactly that point instead of racing a poller."""

import os

if os.environ.get("BIONER_TEST_STOP_AFTER_STEP"):
    import signal
    from pathlib import Path

    from training import checkpointing as checkpoint_io

    _save = checkpoint_io.AtomicCheckpointIO.save_checkpoint
    _step = int(os.environ["BIONER_TEST_STOP_AFTER_STEP"])

    _stopped = []

    def _save_then_stop(self, checkpoint, path, storage_options=None):
        _save(self, checkpoint, path, storage_options)
        if Path(path).name == "last.ckpt" and checkpoint.get("global_step") == _step and not _stopped:
            _stopped.append(True)  # once: the checkpoint written on the signal has the same step
            os.kill(os.getpid(), signal.SIGSTOP)

    checkpoint_io.AtomicCheckpointIO.save_checkpoint = _save_then_stop
