"""The run that the resume tests interrupt and compare: its arguments, its last checkpoint, and the check
that two checkpoints hold the same training state (weights, AdamW state, loop progress)."""

from __future__ import annotations

from pathlib import Path

import torch
from train_runner import tiny_run_args

from lightning_modules.checkpoints import read_checkpoint

STEPS = 12


def resume_args(tmp_path: Path, run_dir: Path, encoder: Path, *extra: str) -> list[str]:
    return [
        *tiny_run_args(tmp_path, run_dir, encoder, corpora="BC5CDR,NCBI-disease"),
        "data.samples_per_epoch=64",  # 4 steps of 16 per epoch, validation after each epoch
        f"trainer.max_steps={STEPS}",
        "callbacks.last_every_n_steps=3",
        "test_after_fit=false",
        "resume=auto",
        *extra,
    ]


def last_checkpoint(run_dir: Path) -> dict:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")


def training_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    """Every weight and every AdamW state tensor of a checkpoint, by a flat name."""
    flat = {f"weight {k}": v for k, v in checkpoint["state_dict"].items()}
    for index, state in checkpoint["optimizer_states"][0]["state"].items():
        flat.update({f"adamw {index} {k}": v for k, v in state.items()})
    return flat


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] == STEPS
    state_a, state_b = training_state(a), training_state(b)
    assert state_a.keys() == state_b.keys()
    assert [name for name, value in state_a.items() if not torch.equal(value, state_b[name])] == []
    fit_a, fit_b = a["loops"]["fit_loop"], b["loops"]["fit_loop"]
    assert fit_a["epoch_progress"] == fit_b["epoch_progress"]
