"""Run train.py as a user would (a subprocess in a clean environment), and a tiny encoder to run it with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from tiny_models import tiny_bert_config, tiny_tokenizer
from transformers import BertModel

ROOT = Path(__file__).resolve().parents[1]
DIST_VARS = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(cwd: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user's fresh shell: no W&B key or settings, no leaked DDP variables, own HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in DIST_VARS and not k.startswith(("WANDB_", "BIONER_", "PL_"))
    }
    env.update(
        HOME=str(cwd / "home"),
        NETRC=str(cwd / "no-netrc"),
        PYTHONUNBUFFERED="1",
        MASTER_PORT=str(free_port()),
    )
    env.update(extra_env or {})
    return env


def run_train(
    args: list[str], cwd: Path, *, timeout: int = 900, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` in ``cwd`` with ``clean_env``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=clean_env(cwd, extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_encoder_dir(directory: Path, *, hidden: int = 64, layers: int = 2) -> Path:
    """A 2-layer BERT with its tokenizer saved like a hub model, for ``encoder.name=<directory>``."""
    tiny_tokenizer(directory)
    torch.manual_seed(0)
    BertModel(tiny_bert_config(hidden=hidden, layers=layers)).save_pretrained(str(directory))
    return directory


def tiny_run_args(tmp_path: Path, run_dir: Path, encoder: Path, corpora: str = "BC5CDR") -> list[str]:
    """The arguments of a short, quiet train.py run on the bundled samples with a tiny encoder."""
    return [
        f"run_dir={run_dir}",
        f"encoder.name={encoder}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"data.corpora=[{corpora}]",
        "data.val_subsample=8",
        "thresholds.dev_sentences=8",  # the validation sentences (the tiny encoder has 128 positions)
        "logger=none",
        "callbacks.rich_progress=false",
        "trainer.enable_progress_bar=false",
    ]
