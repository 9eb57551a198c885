"""``bench/step_ops.py`` counts the operations that would launch a GPU kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from step_ops import count  # noqa: E402


def test_count_keeps_leaf_operations_and_drops_views_and_allocations():
    x = torch.randn(4, 4)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        y = torch.ones(4, 4)  # aten::ones -> empty (no kernel) + fill_ (a kernel)
        z = (x * y).view(16)  # mul (a kernel), view (none)
        z.to(torch.float32)  # same dtype: a no-op
    leaves, launching, ops = count(prof)
    assert {"aten::fill_", "aten::mul", "aten::view", "aten::empty"} <= set(ops)
    assert "aten::ones" not in ops  # it calls other operations: not a leaf
    assert launching == ops["aten::fill_"] + ops["aten::mul"] == 2
    assert leaves == sum(ops.values()) > launching
