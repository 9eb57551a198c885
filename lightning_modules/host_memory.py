"""Keep freed host memory in the process instead of handing it back to the OS after every step (glibc).

PyTorch allocates CPU tensors with plain ``malloc``. glibc serves large blocks (>= 128 KB, adaptively more)
with ``mmap`` and trims the heap top on ``free``, so a training step on CPU gets most of its activations
as fresh pages from the kernel and pays a page fault per 4 KB to touch them, every step. On the 2-core
benchmark machine that is ~10 % of a MiniLM step (``bench/train_step.py``: 1.11 -> 1.02 s for the
baseline). The usual cure is a caching allocator (jemalloc, tcmalloc via ``LD_PRELOAD``); this does the
same with glibc's own knobs, at run time: no ``mmap`` for blocks, no trimming. The process then keeps its
peak heap (which it needs again at the next step anyway).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@functools.cache
def keep_freed_memory() -> bool:
    """Switch glibc to keeping freed memory for reuse; False (and nothing changed) without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave the allocator alone
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
