"""An output is written whole or not at all: into a temporary next to it, renamed over it at the end.

A tool that truncates its output before the work is done loses the user's earlier file when the work
fails (a bad model, an exception half-way, a kill, a full disk). Every file or directory a tool writes
goes through ``atomic_output``: on failure the old one is left byte-identical and the temporary removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def temporary_path(path: str | Path) -> Path:
    """Where ``atomic_output(path)`` writes: the same directory (a rename there is atomic), a hidden name
    that says what it is and whose it is."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write instead of ``path`` (a file, or a directory the block creates).
    When the block ends normally the file is flushed to disk and renamed over ``path``; a directory's
    entries each replace their namesake in ``path`` (other files there stay). When it raises, ``path`` is
    untouched. Either way no temporary is left behind."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        if temporary.is_dir() and not temporary.is_symlink():
            if not path.is_dir():
                os.replace(temporary, path)
            else:
                for entry in sorted(temporary.iterdir()):
                    os.replace(entry, path / entry.name)
        else:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, path)
    finally:
        if temporary.is_dir() and not temporary.is_symlink():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
