"""A run directory is never lost or shared by accident (issue 29, "Nothing lost"): a second live run on it
is refused, a stale lock is taken over with a warning, checkpoints already there are refused without
``resume=`` (``start_over=true`` deletes them), and a run that fails its checks leaves no directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from train_runner import tiny_encoder_dir, tiny_run_args

import train
from training.resume import resume_command
from training.run_dir import RunDir
from training.run_lock import LOCK_FILE


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return tiny_encoder_dir(tmp_path_factory.mktemp("tiny") / "tiny")


def _args(tmp_path: Path, run_dir: Path, encoder: Path, *extra: str) -> list[str]:
    return [
        *tiny_run_args(tmp_path, run_dir, encoder),
        "model=baseline",
        "data.samples_per_epoch=16",
        "trainer.max_steps=1",
        "test_after_fit=false",
        *extra,
    ]


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and not any("Traceback" in line for line in lines), lines
    return lines[-1]


def _lock(run_dir: Path, pid: int) -> bytes:
    run_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"host": socket.gethostname(), "pid": pid, "job": None}).encode()
    (run_dir / LOCK_FILE).write_bytes(data)
    return data


def test_a_second_run_on_a_live_run_directory_is_refused(tmp_path, encoder, capsys):
    run_dir = tmp_path / "run"
    lock = _lock(run_dir, os.getpid())  # this process lives: the directory is in use
    assert train.main(_args(tmp_path, run_dir, encoder)) == 2
    line = _error_line(capsys)
    assert f"run_dir={run_dir} is in use" in line and f"pid {os.getpid()} on {socket.gethostname()}" in line
    assert (run_dir / LOCK_FILE).read_bytes() == lock  # the live run's lock stays
    assert not (run_dir / "checkpoints").exists()


@pytest.mark.slow
def test_a_stale_lock_is_named_and_taken_over_and_released_at_the_end(tmp_path, encoder, capsys):
    ended = subprocess.Popen(["true"])
    ended.wait()
    run_dir = tmp_path / "run"
    _lock(run_dir, ended.pid)
    assert train.main(_args(tmp_path, run_dir, encoder)) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert any(f"pid {ended.pid} on {socket.gethostname()}" in w and "taking over" in w for w in warnings)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / LOCK_FILE).exists()


@pytest.mark.slow
def test_checkpoints_are_refused_without_resume_and_start_over_starts_again(tmp_path, encoder, capsys):
    run_dir = tmp_path / "run"
    assert train.main(_args(tmp_path, run_dir, encoder)) == 0
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    capsys.readouterr()

    assert train.main(_args(tmp_path, run_dir, encoder)) == 2
    line = _error_line(capsys)
    assert f"run_dir={run_dir} already holds checkpoints" in line
    assert "resume=auto" in line and "start_over=true" in line
    assert last.read_bytes() == before and not (run_dir / LOCK_FILE).exists()

    assert train.main(_args(tmp_path, run_dir, encoder, "start_over=true", "resume=auto")) == 2
    assert "not both" in _error_line(capsys)

    assert train.main(_args(tmp_path, run_dir, encoder, "start_over=true", "seed=7")) == 0
    assert "start_over=true: deleted the 2 checkpoints of the earlier run" in capsys.readouterr().out
    assert last.read_bytes() != before and not (run_dir / LOCK_FILE).exists()


def test_the_resume_command_continues_a_run_started_over():
    command = resume_command(["start_over=true", "seed=7"], RunDir("r", Path("out/r"), True))
    assert command == "python train.py seed=7 run_dir=out/r resume=auto"


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["resume=/nonexistent/x.ckpt"], "no such checkpoint file"),  # the checkpoint to resume
        (["data.root=/nonexistent-bioner", "data.corpora=[NCBI-disease]"], "NCBI-disease"),  # a corpus
        (["trainer.accelerator=tpux"], "invalid accelerator name"),  # found once the Trainer is built
    ],
)
def test_a_run_that_fails_its_checks_leaves_no_directory(tmp_path, encoder, capsys, extra, expected):
    run_dir = tmp_path / "outputs" / "run"
    args = [a for a in _args(tmp_path, run_dir, encoder) if not a.startswith("data.corpora=")]
    assert train.main([*args, "data.corpora=[BC5CDR]", *extra]) == 2
    assert expected in _error_line(capsys)
    assert not (tmp_path / "outputs").exists()
