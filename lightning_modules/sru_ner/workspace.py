"""The buffer pool of the fused training loop: buffers kept from one training step to the next."""

from __future__ import annotations

import math
import weakref

import torch


class Workspace:
    """Buffers kept from one training step to the next (CPU).

    One step of the loop fills ~50 MB of buffers (batch 16, 45 words); fresh allocations of that size
    come back as new pages from the OS every step. A workspace is lent to one forward at a time and
    returned by its backward, at once when no backward can come, when the forward fails, or when the
    graph that borrowed it is freed without a backward; a forward that finds it lent allocates normally.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._used: dict[tuple, int] = {}  # bytes touched per buffer (the rest is room to grow)
        self._borrower: weakref.ref | None = None
        self.lent = False

    def lend(self) -> bool:
        if self.lent and (self._borrower is None or self._borrower() is not None):
            return False
        self.lent, self._borrower = True, None
        return True

    def borrowed_by(self, ctx) -> None:
        self._borrower = weakref.ref(ctx)

    def give_back(self) -> None:
        self.lent, self._borrower = False, None

    def used_nbytes(self) -> int:
        return sum(self._used.values())

    def get(self, name: str, shape: tuple, like: torch.Tensor, dtype: torch.dtype | None = None):
        dtype = dtype or like.dtype
        numel = math.prod(shape)
        key = (name, dtype, like.device)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = torch.empty(numel + numel // 4, dtype=dtype, device=like.device)  # room to grow
            self._buffers[key] = buffer
        self._used[key] = max(self._used.get(key, 0), numel * buffer.element_size())
        return buffer[:numel].view(shape)


def allocator(workspace: Workspace | None, like: torch.Tensor):
    """new(name, *shape, dtype=None) from the workspace when one is lent, else fresh."""

    def new(name: str, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        if workspace is None:
            return torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
        return workspace.get(name, shape, like, dtype)

    return new
