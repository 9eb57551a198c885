"""``bench/step_ops.py`` counts the operations that would launch a GPU kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from step_ops import count  # noqa: E402


def test_count_keeps_kernels_and_drops_views_allocations_and_no_ops():
    x, w = torch.randn(4, 4), torch.randn(4, 4)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        y = torch.ones(4, 4)  # aten::ones -> empty (no kernel) + fill_ (a kernel)
        z = (x * y).view(16)  # mul (a kernel), view (none)
        z.to(torch.float32)  # same dtype: a no-op
        x @ w  # matmul -> mm (the kernel) -> resolve_conj (a no-op on real tensors)
        x.softmax(-1)  # softmax -> _softmax (the kernel)
    total, launching, ops = count(prof)
    assert dict(ops) == {"aten::fill_": 1, "aten::mul": 1, "aten::mm": 1, "aten::_softmax": 1}
    assert launching == 4 and total > 10  # ones, empty, view, to, matmul, resolve_conj, ... are not
