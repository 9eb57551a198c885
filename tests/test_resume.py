"""Resuming from last.ckpt mid-epoch gives bit-for-bit the run that was never interrupted.

Three train.py runs with a tiny encoder (dropout on in the SRU head): A trains 8 steps; B trains 4 steps
(mid-epoch: an epoch is 8 steps, validation every 4) and B' resumes it with ``resume=last`` to step 8.
Model weights and AdamW state must be equal, which needs the sampler position, the LR schedule and the
RNG states all restored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_runner import run_train, tiny_encoder_dir

from lightning_modules.checkpoints import read_checkpoint


def _run(tmp_path: Path, run_dir: Path, encoder: Path, *extra: str) -> None:
    args = [
        f"run_dir={run_dir}",
        f"encoder.name={encoder}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.corpora=[BC5CDR,NCBI-disease]",
        "data.samples_per_epoch=128",  # 8 steps of 16
        "data.val_subsample=8",
        "thresholds.dev_sentences=8",
        "trainer.val_check_interval=4",
        "optim.total_steps=8",
        "test_after_fit=false",
        "logger=none",
        "callbacks.rich_progress=false",
        "trainer.enable_progress_bar=false",
        *extra,
    ]
    proc = run_train(args, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _load(run_dir: Path) -> dict:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_resume_mid_epoch_equals_uninterrupted_run(tmp_path):
    encoder = tiny_encoder_dir(tmp_path / "tiny")

    _run(tmp_path, tmp_path / "a", encoder, "trainer.max_steps=8")
    _run(tmp_path, tmp_path / "b", encoder, "trainer.max_steps=4")
    assert _load(tmp_path / "b")["global_step"] == 4
    _run(tmp_path, tmp_path / "b", encoder, "trainer.max_steps=8", "resume=last")

    a, b = _load(tmp_path / "a"), _load(tmp_path / "b")
    assert a["global_step"] == b["global_step"] == 8
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
    state_a, state_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert state_a.keys() == state_b.keys()
    for index in state_a:
        for key, value in state_a[index].items():
            assert torch.equal(value, state_b[index][key]), (index, key)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"] == 8
