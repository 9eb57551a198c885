"""A run's validation history, ``<run_dir>/history.jsonl``: one JSON line per validation,
``{"step", "epoch", "wall_s", "metrics": {"val/...": value}}`` (written by
``training.validation_history.ValidationHistory``, read by ``metrics.compare``)."""

from __future__ import annotations

import json
from pathlib import Path

HISTORY = "history.jsonl"


def read_history(run_dir: str | Path) -> list[dict]:
    """The lines of a run's ``history.jsonl`` (none when it has none); a torn last line is skipped."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines
