"""The precision a model was trained in: autocast for predictions outside training (``evaluate.py``,
``Tagger``), so that their scores and spans are the ones validation reported, and the activation size
that memory estimates (``SpanNERModule.eval_batch_bytes``) count with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def training_autocast(precision: Any, device: torch.device) -> torch.autocast:
    """Training's mixed precision (``trainer.precision``: ``bf16-mixed``, ``16-mixed``, ...) on a GPU;
    full precision on the CPU (where training ran in fp32) and for ``32``/``64`` runs."""
    text = str(precision)
    dtype = torch.bfloat16 if text.startswith("bf16") else torch.float16 if text.startswith("16") else None
    enabled = device.type == "cuda" and dtype is not None
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)


def activation_bytes(precision: Any, device: torch.device | None = None) -> int:
    """Bytes per activation element of a forward in ``precision``: 2 under 16-bit autocast, 8 for ``64``,
    else 4. With ``device`` given, as ``training_autocast`` runs there (no autocast on the CPU); without,
    as training runs (Lightning's autocast on any device)."""
    text = str(precision)
    if text.startswith("64"):
        return 8
    half = text.startswith(("bf16", "16"))
    return 2 if half and (device is None or device.type == "cuda") else 4


@contextlib.contextmanager
def ieee_fp32_matmuls(device: torch.device) -> Iterator[None]:
    """On CUDA, fp32 matmuls in full precision (no TF32) inside the block, whatever ``train.py``'s
    ``set_float32_matmul_precision("high")`` says outside it; elsewhere nothing changes. It goes through
    the same API as ``train.py``: PyTorch 2.13 refuses to read a precision set through both the legacy
    and the per-backend API. A user who mixed them keeps their own settings."""
    if device.type != "cuda":
        yield
        return
    try:
        previous = torch.get_float32_matmul_precision()
    except RuntimeError:  # the legacy and per-backend APIs were mixed: leave them alone
        previous = "highest"
    if previous == "highest":
        yield
        return
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
