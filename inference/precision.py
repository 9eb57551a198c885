"""The precision a model was trained in, for predictions outside training (``evaluate.py``,
``Tagger``): the scores and spans are then the ones validation reported."""

from __future__ import annotations

from typing import Any

import torch


def training_autocast(precision: Any, device: torch.device) -> torch.autocast:
    """Training's mixed precision (``trainer.precision``: ``bf16-mixed``, ``16-mixed``, ...) on a GPU;
    full precision on the CPU (where training ran in fp32) and for ``32``/``64`` runs."""
    text = str(precision)
    dtype = torch.bfloat16 if text.startswith("bf16") else torch.float16 if text.startswith("16") else None
    enabled = device.type == "cuda" and dtype is not None
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)
