"""Requeue the SLURM job this process belongs to, once its state is on disk (``sbatch --requeue``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else the job id."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID")
    return job if job and re.fullmatch(r"[0-9_]+", job) else None


def requeue_slurm_job(timeout_s: float = 60.0) -> bool:
    """``scontrol requeue <job id>``; True when SLURM accepted it. Failures are reported, not raised: the
    checkpoint is written either way, and the same command with ``resume=auto`` continues the run."""
    job = slurm_job_id()
    if job is None:
        print("warning: SLURM asked for a requeue, but SLURM_JOB_ID is not set", file=sys.stderr)
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job], timeout=timeout_s, capture_output=True, text=True)
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"warning: scontrol requeue {job} failed ({err}); resubmit the job", file=sys.stderr)
        return False
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        print(f"warning: scontrol requeue {job} failed ({reason[0]}); resubmit the job", file=sys.stderr)
        return False
    print(f"Requeued SLURM job {job}: it continues from the checkpoint written now.", flush=True)
    return True
