"""Errors a user can cause; CLIs print them as one line instead of a traceback."""

from __future__ import annotations

import sys
from pathlib import Path


class BionerError(Exception):
    """Base class for user-facing errors (bad data, bad config, bad checkpoint)."""


class ConfigError(BionerError):
    """A bad config value (``configs.compose`` re-exports it; lower layers raise it from here)."""


class CorpusFormatError(BionerError):
    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class MissingCorpusError(BionerError):
    pass


class CheckpointError(BionerError):
    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


def report_user_error(err: BaseException) -> int:
    """Print ``err`` as one ``error: ...`` line on stderr and return the CLIs' user-error status, 2."""
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
    return 2
