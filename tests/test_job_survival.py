"""Jobs survive: SIGTERM, SIGKILL and Ctrl-C, then the same command line with ``resume=auto``, end with the
weights and optimiser state of a run that was never interrupted; a truncated newest checkpoint is skipped.

One configuration for every scenario: 4 optimiser steps per epoch, validation (and ``last.ckpt``) at each
epoch end, a periodic ``last.ckpt`` every 3 steps, 12 steps in all. The reference run is uninterrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from resume_runs import STEPS, assert_same_training_state, last_checkpoint, resume_args
from train_runner import ROOT, clean_env, run_train, tiny_encoder_dir

from lightning_modules.checkpoints import read_checkpoint
from metrics.history import read_history


def _rerun_and_compare(
    args: list[str],
    cwd: Path,
    run_dir: Path,
    expected: dict,
    reference: str = "reference",
    validated_at: tuple[int, ...] = (4, 8, 12),
    **kwargs,
) -> None:
    """Run the same command line again (``resume=auto``): it must end in the uninterrupted run's state."""
    proc = run_train(args, cwd, timeout=600, **kwargs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_training_state(expected, last_checkpoint(run_dir))
    # the validation history too: the lines before the interruption are kept, none is repeated
    uninterrupted, resumed = read_history(run_dir.parent / reference), read_history(run_dir)
    assert [h["step"] for h in resumed] == [h["step"] for h in uninterrupted] == list(validated_at)
    assert [h["metrics"] for h in resumed] == [h["metrics"] for h in uninterrupted]
    walls = [h["wall_s"] for h in resumed]
    assert walls[0] > 0 and all(a < b for a, b in zip(walls, walls[1:]))


STOP_HOOK = Path(__file__).resolve().parent / "stop_after_checkpoint"


def _start(
    args: list[str], cwd: Path, *, stop_after: int | None, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``train.py ARGS`` in the background; it stops itself (SIGSTOP) once ``last.ckpt`` of step
    ``stop_after`` is written (``stop_after_checkpoint/sitecustomize.py``), and this waits for that.
    ``stop_after=None``: no stop; this returns once the first ``last.ckpt`` exists."""
    hook = {"PYTHONPATH": str(STOP_HOOK), "BIONER_TEST_STOP_AFTER_STEP": str(stop_after)}
    if stop_after is None:
        hook = {}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=clean_env(cwd, {**(extra_env or {}), **hook}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a job started in the background of a non-interactive shell (CI) inherits an ignored SIGINT,
        # and Python then never raises KeyboardInterrupt: give the trainer a terminal's default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    first = Path(args[0].partition("=")[2]) / "checkpoints" / "last.ckpt"  # args[0] is run_dir=...
    while not (first.is_file() if stop_after is None else _stopped(proc.pid)):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"train.py did not reach step {stop_after} within 300 s"
        time.sleep(0.01)
    return proc


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _signal_stopped(proc: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    """Deliver ``signum`` to the stopped process, let it run on; its exit status and output."""
    os.kill(proc.pid, signum)
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp_path = tmp_path_factory.mktemp("survival")
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    proc = run_train(resume_args(tmp_path, tmp_path / "reference", encoder), tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # no test after fit: the model card and the chart (dev scores) are there all the same
    assert (tmp_path / "reference" / "f1_per_corpus.png").read_bytes()[:4] == b"\x89PNG"
    assert "No test scores yet" in (tmp_path / "reference" / "README.md").read_text()
    return tmp_path, encoder, last_checkpoint(tmp_path / "reference")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [4, 6],  # 4: the checkpoint written at the epoch-end validation; 6: a periodic one, mid-epoch
)
def test_sigkill_after_a_checkpoint_then_resume_auto_equals_the_uninterrupted_run(reference, kill_at):
    tmp_path, encoder, expected = reference
    run_dir = tmp_path / f"killed-{kill_at}"
    args = resume_args(tmp_path, run_dir, encoder)
    proc = _start(args, tmp_path, stop_after=kill_at)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last_checkpoint(run_dir)["global_step"] == kill_at
    _rerun_and_compare(args, tmp_path, run_dir, expected)


@pytest.mark.slow
def test_sigterm_mid_epoch_exits_nonzero_and_the_same_command_resumes_exactly(reference):
    tmp_path, encoder, expected = reference
    run_dir = tmp_path / "sigterm"
    args = resume_args(tmp_path, run_dir, encoder)
    code, out, err = _signal_stopped(_start(args, tmp_path, stop_after=3), signal.SIGTERM)
    assert code == 1, err[-3000:]
    assert "resume=auto" in out and f"run_dir={run_dir}" in out
    assert last_checkpoint(run_dir)["global_step"] == 3  # mid-epoch: epochs end at steps 4, 8 and 12
    _rerun_and_compare(args, tmp_path, run_dir, expected)


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_and_exits_nonzero(reference):
    tmp_path, encoder, _ = reference
    run_dir = tmp_path / "ctrl-c"
    code, out, err = _signal_stopped(
        _start(resume_args(tmp_path, run_dir, encoder), tmp_path, stop_after=3), signal.SIGINT
    )
    assert code == 1, err[-3000:]
    assert "Resume with:" in out
    command = out.split("Resume with:")[1].strip().splitlines()[0]
    assert command.startswith("python train.py ") and command.endswith(f"run_dir={run_dir} resume=auto")


@pytest.mark.slow
def test_a_truncated_newest_checkpoint_is_named_and_the_previous_good_one_resumed(reference):
    tmp_path, encoder, _ = reference
    run_dir = tmp_path / "truncated"
    args = resume_args(tmp_path, run_dir, encoder)
    proc = run_train([*args, "trainer.max_steps=4"], tmp_path, timeout=600)  # best.ckpt and last.ckpt at 4
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_train([*args, "trainer.max_steps=6"], tmp_path, timeout=600)  # last.ckpt at 6, best at 4
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])

    proc = run_train([*args, "trainer.max_steps=8"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = next(line for line in proc.stderr.splitlines() if line.startswith("warning: resume=auto"))
    assert str(last) in warning and "not a readable checkpoint" in warning
    assert warning.endswith(f"resuming from {run_dir / 'checkpoints' / 'best.ckpt'}")
    assert last_checkpoint(run_dir)["global_step"] == 8


@pytest.mark.slow
def test_ddp_sigterm_then_resume_auto_equals_the_uninterrupted_ddp_run(reference):
    tmp_path, encoder, _ = reference
    ddp = [
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "data.samples_per_epoch=128",  # 8 steps of the global batch of 16: one validation, at step 8
    ]
    env = {"OMP_NUM_THREADS": "1"}
    proc = run_train(
        resume_args(tmp_path, tmp_path / "ddp-ref", encoder, *ddp), tmp_path, timeout=600, extra_env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    run_dir = tmp_path / "ddp-term"
    args = resume_args(tmp_path, run_dir, encoder, *ddp)
    # Rank 0 stops right after writing the step-3 checkpoint, while rank 1 waits in the save's barrier:
    # where Lightning's own handler (a broadcast inside the signal handler) deadlocked the two ranks.
    code, _, err = _signal_stopped(_start(args, tmp_path, stop_after=3, extra_env=env), signal.SIGTERM)
    assert code == 1, err[-3000:]
    assert 3 < last_checkpoint(run_dir)["global_step"] < STEPS  # both ranks finished the same later step
    ddp_ref = last_checkpoint(tmp_path / "ddp-ref")
    _rerun_and_compare(args, tmp_path, run_dir, ddp_ref, "ddp-ref", validated_at=(8,), extra_env=env)
    assert len(last_checkpoint(run_dir)["rng_states"]) == 2


@pytest.mark.slow
def test_slurm_requeue_signal_stops_writes_a_restricted_last_ckpt_and_requeues(reference):
    """SLURM's requeue signal (SIGUSR1) on a one-process job: the stop after the current step writes
    ``last.ckpt`` (plain data, no ``hpc_ckpt``: Lightning's in-handler save is off), then ``train.py``
    asks ``scontrol`` to requeue the job and exits 1."""
    tmp_path, encoder, _ = reference
    run_dir = tmp_path / "slurm"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = bin_dir / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}  # fmt: skip
    slurm["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    args = resume_args(tmp_path, run_dir, encoder)
    code, out, err = _signal_stopped(_start(args, tmp_path, stop_after=3, extra_env=slurm), signal.SIGUSR1)
    assert code == 1, err[-3000:]
    assert "stop agreed (SIGUSR1: SLURM requeue): after optimizer step 3" in err, err[-3000:]
    assert calls.read_text().splitlines() == ["requeue 4242"]
    assert "Requeued SLURM job 4242" in out
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt"))
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []
    checkpoint = read_checkpoint(last)
    assert checkpoint["global_step"] == 3 and len(checkpoint["rng_states"]) == 1


def test_resume_auto_picks_the_readable_checkpoint_with_most_steps(tmp_path, capsys):
    from training.checkpointing import newest_good_checkpoint

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    assert newest_good_checkpoint(run_dir) is None

    def save(path: Path, step: int, mtime: int) -> None:
        torch.save({"state_dict": {}, "global_step": step}, path)
        os.utime(path, (mtime, mtime))

    save(run_dir / "checkpoints" / "best.ckpt", 40, 1_000)
    save(run_dir / "checkpoints" / "last.ckpt", 60, 2_000)
    save(run_dir / "hpc_ckpt_1.ckpt", 75, 3_000)  # SLURM's pre-emption checkpoint
    assert newest_good_checkpoint(run_dir) == str(run_dir / "hpc_ckpt_1.ckpt")
    (run_dir / "hpc_ckpt_2.ckpt").write_bytes(b"PK\x03\x04 cut short")
    os.utime(run_dir / "hpc_ckpt_2.ckpt", (4_000, 4_000))
    assert newest_good_checkpoint(run_dir) == str(run_dir / "hpc_ckpt_1.ckpt")
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"warning: resume=auto skips {run_dir / 'hpc_ckpt_2.ckpt'}: not a readable")
    assert "\n" not in warning
