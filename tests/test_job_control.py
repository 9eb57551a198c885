"""Multi-process jobs end by one agreed protocol (``training/agreed_stop.py``): SLURM's requeue
signal, an exception on one rank, and SIGTERM during validation, each under 2-process DDP (CPU, gloo).

Every run trains the configuration of ``test_job_survival`` (12 optimiser steps, validation and
``last.ckpt`` at each epoch end, a periodic ``last.ckpt`` every 3 steps) on two processes started the
way ``srun`` starts them (SLURM variables, a stand-in ``scontrol`` on PATH that records its arguments), or
by Lightning itself. Test events (a signal, an exception) are fired at exact points by the
``job_events/sitecustomize.py`` hook. Each interrupted job is resumed with the same command line
(``resume=auto``) and must end bit-for-bit where the uninterrupted job ends.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from resume_runs import STEPS, assert_same_training_state, last_checkpoint, resume_args
from train_runner import ROOT, clean_env, free_port, tiny_encoder_dir

JOB_EVENTS = Path(__file__).resolve().parent / "job_events"
JOB_ID = "4242"
DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "data.samples_per_epoch=64"]
COLLECTIVE_TIMEOUT_S = 20
JOB_TIMEOUT_S = float(os.environ.get("BIONER_TEST_JOB_TIMEOUT_S", 600))  # lower it to try old code quickly


def _srun(
    args: list[str],
    cwd: Path,
    bin_dir: Path,
    *,
    events: list[dict] | None = None,
    timeout: float = JOB_TIMEOUT_S,
) -> tuple[list[int], list[str], list[str], float]:
    """``srun --ntasks-per-node=2 python train.py ARGS``: both ranks' exit codes, stdouts, stderrs and the
    seconds until the last one exited."""
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = {
            "SLURM_JOB_ID": JOB_ID, "SLURM_JOB_NAME": "train", "SLURM_NTASKS": "2",
            "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_NODELIST": "127.0.0.1",
            "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0",
            "MASTER_PORT": port, "OMP_NUM_THREADS": "1", "PATH": f"{bin_dir}:{clean_env(cwd)['PATH']}",
        }  # fmt: skip
        if events:
            env.update(PYTHONPATH=str(JOB_EVENTS), BIONER_TEST_JOB_EVENTS=json.dumps(events))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "train.py"), *args],
                cwd=cwd,
                env=clean_env(cwd, env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    start = time.monotonic()
    try:
        outputs = [p.communicate(timeout=max(1.0, timeout - (time.monotonic() - start))) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        tails = [p.communicate()[1][-2000:] for p in procs]
        pytest.fail(f"the job still ran after {timeout:.0f} s (killed); stderr tails: {tails}")
    elapsed = time.monotonic() - start
    return [p.returncode for p in procs], [o for o, _ in outputs], [e for _, e in outputs], elapsed


def _scontrol(bin_dir: Path) -> Path:
    """A stand-in ``scontrol`` that appends its arguments to ``bin_dir/scontrol.calls``."""
    bin_dir.mkdir(exist_ok=True)
    calls = bin_dir / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    return calls


def _stop_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "stop agreed" in line]


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    """The uninterrupted 2-process job."""
    tmp_path = tmp_path_factory.mktemp("job-control")
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    bin_dir = tmp_path / "bin"
    _scontrol(bin_dir)
    run_dir = tmp_path / "reference"
    codes, _, errs, _ = _srun([*resume_args(tmp_path, run_dir, encoder), *DDP], tmp_path, bin_dir)
    assert codes == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    return tmp_path, encoder, bin_dir, last_checkpoint(run_dir)


@pytest.mark.slow
def test_slurm_requeue_signal_at_different_moments_stops_both_ranks_requeues_once_and_resumes_exactly(
    ddp_reference,
):
    tmp_path, encoder, _, expected = ddp_reference
    bin_dir = tmp_path / "bin-requeue"
    calls = _scontrol(bin_dir)
    run_dir = tmp_path / "requeue"
    args = [*resume_args(tmp_path, run_dir, encoder), *DDP]
    # SLURM delivers USR1 to every task, here one step apart (rank 1 during step 3, rank 0 during step 4)
    events = [
        {"rank": 1, "at": "train", "step": 2, "do": "SIGUSR1"},
        {"rank": 0, "at": "train", "step": 3, "do": "SIGUSR1"},
    ]
    codes, outs, errs, _ = _srun(args, tmp_path, bin_dir, events=events)
    assert all(code != 0 for code in codes), codes
    stops = [_stop_lines(err) for err in errs]
    assert [len(s) for s in stops] == [1, 1], errs[0][-3000:] + errs[1][-3000:]
    steps = [re.search(r"step (\d+)", s[0]).group(1) for s in stops]
    assert steps[0] == steps[1] and 2 < int(steps[0]) < STEPS, stops  # the same step on both ranks
    assert "SLURM requeue" in stops[0][0] and "SLURM requeue" in stops[1][0]
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"]  # once, by rank 0
    assert f"Requeued SLURM job {JOB_ID}" in outs[0]
    assert last_checkpoint(run_dir)["global_step"] == int(steps[0])
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt"))  # Lightning's in-handler save is off

    # the requeued job: the same command line
    codes, _, errs, _ = _srun(args, tmp_path, bin_dir)
    assert codes == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert_same_training_state(expected, last_checkpoint(run_dir))
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"]


@pytest.mark.slow
def test_an_exception_on_one_rank_ends_both_within_the_timeout_and_the_last_good_checkpoint_resumes(
    ddp_reference,
):
    tmp_path, encoder, bin_dir, expected = ddp_reference
    run_dir = tmp_path / "failure"
    args = [
        *resume_args(tmp_path, run_dir, encoder),
        *DDP,
        f"trainer.collective_timeout_s={COLLECTIVE_TIMEOUT_S}",
    ]
    # rank 1 raises at the start of step 6 (after the step-4 validation and the step-5 batch); rank 0 goes
    # on into that step's gradient all-reduce
    events = [{"rank": 1, "at": "train", "step": 5, "do": "raise"}]
    codes, _, errs, elapsed = _srun(args, tmp_path, bin_dir, events=events)
    assert all(code != 0 for code in codes), codes
    assert "injected failure on rank 1" in errs[1]
    assert "no checkpoint is written" in errs[1]
    assert elapsed < COLLECTIVE_TIMEOUT_S + 60, elapsed
    newest = last_checkpoint(run_dir)
    assert newest["global_step"] < 6  # no checkpoint of the failed step; the one on disk is good
    assert not list((run_dir / "checkpoints").glob(".*.tmp-*"))

    codes, _, errs, _ = _srun(args, tmp_path, bin_dir)  # resume=auto
    assert codes == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert_same_training_state(expected, last_checkpoint(run_dir))


@pytest.mark.slow
def test_sigterm_during_validation_stops_before_it_ends_and_resumes_exactly(ddp_reference):
    tmp_path, encoder, bin_dir, expected = ddp_reference
    run_dir = tmp_path / "validation"
    args = [*resume_args(tmp_path, run_dir, encoder), *DDP]
    # rank 1 is signalled at its first dev batch of the first validation; rank 0 hears of it only
    # through the job's store
    events = [{"rank": 1, "at": "validation", "step": None, "do": "SIGTERM"}]
    codes, _, errs, _ = _srun(args, tmp_path, bin_dir, events=events)
    assert all(code != 0 for code in codes), codes
    stops = [_stop_lines(err) for err in errs]
    assert [len(s) for s in stops] == [1, 1], errs[0][-3000:] + errs[1][-3000:]
    assert all("during the validation" in s[0] for s in stops), stops
    step = last_checkpoint(run_dir)["global_step"]
    assert all(f"after optimizer step {step}" in s[0] for s in stops), (stops, step)
    # the validation never ended: it would have written best.ckpt, and logged its scores
    assert not (run_dir / "checkpoints" / "best.ckpt").exists()

    codes, _, errs, _ = _srun(args, tmp_path, bin_dir)  # resume=auto
    assert codes == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert_same_training_state(expected, last_checkpoint(run_dir))
