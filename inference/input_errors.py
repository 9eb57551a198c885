"""``InputFormatError``: a malformed input document, in one line whatever the document holds.

Values from the file that a message quotes (a document id, a field) are cut to ``QUOTE_CHARS``: a
malformed 5 MB line must not become a 5 MB error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from errors import BionerError

QUOTE_CHARS = 80


def cut(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``str(value)``, cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InputFormatError(BionerError):
    """A malformed input document: ``file:line: document ID: what is wrong``."""

    def __init__(self, path: str | Path, line: int | None, doc_id: str | None, problem: str):
        where = f"{path}:{line}" if line is not None else str(path)
        document = f" document {cut(doc_id)}:" if doc_id is not None else ""
        super().__init__(f"{where}:{document} {problem}")
