"""What ``--out-dir`` keeps per input file so that a rerun (a requeued job) redoes only what is not done.

Each input ``NAME[.EXT][.gz]`` has one output ``DIR/NAME.<out ext>``, written atomically, and then a
completion record ``DIR/NAME.<out ext>.done.json``: the input (path, bytes, mtime), the model's identity,
the settings that shape the output, what was found (documents, mentions, deleted PMIDs), the seconds it
took and the output's size. A file is done when its record matches the input, model and settings of now
and its output is there at the recorded size; anything less (no record, a kill between the output's
rename and the record, a changed input or model) is tagged again from scratch. A file that failed has
``DIR/NAME.<out ext>.failed.json`` (the reason) until it succeeds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atomic_output import atomic_output
from errors import BionerError
from inference.mention_rows import ModelIdentity

OUT_SUFFIXES = {"jsonl": ".jsonl", "pubtator": ".pubtator", "parquet": ".parquet"}
MAX_RECORD_BYTES = 2**20 * 64  # a record lists the deleted PMIDs of a file: tens of thousands at most


@dataclass(frozen=True)
class Target:
    """Where one input file's output and records go."""

    input: Path
    output: Path

    @property
    def done(self) -> Path:
        return self.output.with_name(self.output.name + ".done.json")

    @property
    def failed(self) -> Path:
        return self.output.with_name(self.output.name + ".failed.json")

    def names(self) -> tuple[str, str, str]:
        return self.output.name, self.done.name, self.failed.name


def output_name(path: str | Path, out_format: str) -> str:
    """``pubmed24n0001.xml.gz`` -> ``pubmed24n0001.jsonl``: the input's name less ``.gz`` and its last
    suffix, and the output format's (BioC: ``.json`` for a ``.json`` input, else ``.xml``)."""
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem, suffix = os.path.splitext(name)
    stem = stem or name
    if out_format == "bioc":
        return stem + (".json" if suffix.lower() == ".json" else ".xml")
    return stem + OUT_SUFFIXES[out_format]


def targets(files: list[str], out_dir: Path, out_format: str) -> list[Target]:
    """One target per file; two inputs that would write one output are refused."""
    result, seen = [], {}
    for file in files:
        if file == "-":
            raise BionerError("--out-dir: stdin (-) has no name to write it under; give files")
        name = output_name(file, out_format)
        if name in seen:
            raise BionerError(f"--out-dir: {seen[name]} and {file} would both be written to {name}")
        seen[name] = file
        result.append(Target(Path(file), out_dir / name))
    return result


def input_stat(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns}


def is_done(target: Target, identity: ModelIdentity, settings: dict[str, Any]) -> bool:
    """Whether ``target`` has a completion record for its input as it is now, this model and these
    settings, and its output at the recorded size."""
    try:
        if target.done.stat().st_size > MAX_RECORD_BYTES:
            return False
        record = json.loads(target.done.read_text(encoding="utf-8"))
        output_bytes = target.output.stat().st_size
        stat = input_stat(target.input)
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("input_bytes") == stat["input_bytes"]
        and record.get("input_mtime_ns") == stat["input_mtime_ns"]
        and record.get("model") == identity.name
        and record.get("model_sha256") == identity.sha256
        and record.get("model_revision", "") == identity.revision
        and record.get("settings") == settings
        and record.get("output_bytes") == output_bytes
    )


def write_record(path: Path, record: dict[str, Any]) -> None:
    """``record`` as JSON at ``path``, atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def remove_leftovers(out_dir: Path, mine: list[Target]) -> list[str]:
    """Remove the temporaries a killed run left for these targets (no other process writes them: each
    file belongs to one shard); the names removed."""
    names = {name for target in mine for name in target.names()}
    removed = []
    for entry in os.scandir(out_dir):
        name = entry.name
        if name.startswith(".") and ".tmp-" in name and name[1 : name.rindex(".tmp-")] in names:
            Path(entry.path).unlink(missing_ok=True)
            removed.append(name)
    return removed
