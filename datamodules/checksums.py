"""sha256 digests (hex) of files and in-memory data: corpus verification and cache keys use these."""

from __future__ import annotations

import hashlib
import os


def sha256_bytes(data: bytes | str) -> str:
    """Hex sha256 of ``data`` (a ``str`` is hashed as UTF-8)."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
