"""Read an offline W&B run file (``run-<id>.wandb``) back, for tests that assert what was logged.

wandb 0.31 ships no public reader. Layout (checked against files written by wandb 0.31.0):

- a 7-byte file header: ``b":W&B"``, the magic ``0xBEE1`` (little-endian ``e1 be``), a version byte (0);
- LevelDB-log framing: 32 KiB blocks counted from the start of the file (the file header sits in block 0),
  each chunk a 7-byte header ``crc32 (uint32 LE) | length (uint16 LE) | type (uint8)`` followed by
  ``length`` payload bytes; types FULL=1, FIRST=2, MIDDLE=3, LAST=4; a block tail shorter than 7 bytes is
  zero padding. The crc is the IEEE CRC-32 of the type byte followed by the payload (not LevelDB's masked
  CRC-32C);
- every reassembled record is a serialised ``wandb.proto.wandb_internal_pb2.Record``.

Keys: history/summary/config items carry either ``key`` or ``nested_key`` (a path). Nested paths are
rebuilt into nested dicts, so ``wandb.log({"d": {"e": 3}})`` reads back as ``{"d": {"e": 3}}`` and a flat
``"val/f1"`` stays a flat key. Values are JSON-decoded from ``value_json`` (or the typed ``value`` oneof
when ``value_json`` is empty). Keys starting with ``_`` (``_step``, ``_runtime``, ``_timestamp``,
``_wandb``) are W&B's own and are dropped unless ``internal=True``.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from wandb.proto.wandb_internal_pb2 import Record

FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
FILE_VERSION = 0
FILE_HEADER_LEN = 7
BLOCK_LEN = 32 * 1024
CHUNK_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

__all__ = [
    "Record",
    "config",
    "find_run_file",
    "history_rows",
    "read_wandb_records",
    "summary",
    "wait_for_run_file",
]


class WandbFileError(ValueError):
    """The file is not a well-formed offline W&B run file."""


def find_run_file(root: str | Path) -> Path:
    """The single ``run-*.wandb`` file under ``root`` (searched recursively)."""
    found = sorted(Path(root).rglob("run-*.wandb"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb under {root}, found {[str(f) for f in found]}")
    return found[0]


def wait_for_run_file(root: str | Path, timeout: float = 30.0) -> Path:
    """The run file under ``root`` once wandb-core has flushed it completely.

    ``wandb.finish()`` can return before the file is written: observed with wandb 0.31 under pytest, the
    file held only its 7-byte header right after ``finish()`` and all records ~50 ms later. Poll until
    the file holds an ``exit`` record and its size has stopped changing.
    """
    deadline = time.monotonic() + timeout
    last_size = -1
    while True:
        try:
            path = find_run_file(root)
            size = path.stat().st_size
            done = size == last_size and any(
                r.WhichOneof("record_type") == "exit" for r in read_wandb_records(path)
            )
            if done:
                return path
            last_size = size
        except (FileNotFoundError, WandbFileError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete run-*.wandb under {root} after {timeout} s")
        time.sleep(0.05)


def _payloads(data: bytes, verify_crc: bool) -> list[bytes]:
    if len(data) < FILE_HEADER_LEN:
        raise WandbFileError("file shorter than the W&B header")
    ident, magic, version = struct.unpack("<4sHB", data[:FILE_HEADER_LEN])
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise WandbFileError(f"bad header {data[:FILE_HEADER_LEN]!r}")
    if version != FILE_VERSION:
        raise WandbFileError(f"unsupported W&B file version {version}")

    out: list[bytes] = []
    pending: list[bytes] | None = None
    pos = FILE_HEADER_LEN
    while pos < len(data):
        left_in_block = BLOCK_LEN - pos % BLOCK_LEN
        if left_in_block < CHUNK_HEADER_LEN:  # trailer padding
            pos += left_in_block
            continue
        if pos + CHUNK_HEADER_LEN > len(data):
            break  # truncated tail (file still being written)
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER_LEN])
        if kind == 0 and length == 0:  # zero-filled (pre-allocated) rest of the block
            pos += left_in_block
            continue
        start = pos + CHUNK_HEADER_LEN
        if length > left_in_block - CHUNK_HEADER_LEN:
            raise WandbFileError(f"chunk at offset {pos} crosses a block boundary")
        if start + length > len(data):
            break  # truncated tail
        payload = data[start : start + length]
        if verify_crc and zlib.crc32(bytes([kind]) + payload) != crc:
            raise WandbFileError(f"crc mismatch at offset {pos}")
        pos = start + length
        if kind == FULL:
            if pending is not None:
                raise WandbFileError(f"FULL chunk inside a fragmented record at offset {pos}")
            out.append(payload)
        elif kind == FIRST:
            if pending is not None:
                raise WandbFileError(f"FIRST chunk inside a fragmented record at offset {pos}")
            pending = [payload]
        elif kind in (MIDDLE, LAST):
            if pending is None:
                raise WandbFileError(f"{'MIDDLE' if kind == MIDDLE else 'LAST'} chunk without FIRST")
            pending.append(payload)
            if kind == LAST:
                out.append(b"".join(pending))
                pending = None
        else:
            raise WandbFileError(f"unknown chunk type {kind} at offset {pos}")
    return out


def read_wandb_records(path: str | Path, verify_crc: bool = True) -> list[Record]:
    """Every record of an offline ``.wandb`` file, in file order."""
    records = []
    for payload in _payloads(Path(path).read_bytes(), verify_crc):
        record = Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _value(item: Any) -> Any:
    if item.value_json:
        return json.loads(item.value_json)
    which = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if which is None or which == "none":
        return None
    if which == "json":
        return json.loads(item.json)
    return getattr(item, which)


def _path(item: Any) -> tuple[str, ...]:
    return tuple(item.nested_key) if item.nested_key else (item.key,)


def _set(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value


def _remove(target: dict[str, Any], path: tuple[str, ...]) -> None:
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _public(d: dict[str, Any], internal: bool) -> dict[str, Any]:
    return d if internal else {k: v for k, v in d.items() if not k.startswith("_")}


def history_rows(path: str | Path, internal: bool = False) -> list[dict[str, object]]:
    """One dict per ``wandb.log`` step, in order (``_step``/``_runtime``/... only with ``internal``)."""
    rows = []
    for record in read_wandb_records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        row: dict[str, Any] = {}
        for item in record.history.item:
            _set(row, _path(item), _value(item))
        rows.append(_public(row, internal))
    return rows


def summary(path: str | Path, internal: bool = False) -> dict[str, Any]:
    """The final run summary: every summary record's updates and removals applied in order."""
    out: dict[str, Any] = {}
    for record in read_wandb_records(path):
        if record.WhichOneof("record_type") != "summary":
            continue
        for item in record.summary.update:
            _set(out, _path(item), _value(item))
        for item in record.summary.remove:
            _remove(out, _path(item))
    return _public(out, internal)


def config(path: str | Path, internal: bool = False) -> dict[str, Any]:
    """The run config: the run record's initial config, then every config record applied in order."""
    out: dict[str, Any] = {}
    for record in read_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            updates, removals = record.run.config.update, record.run.config.remove
        elif kind == "config":
            updates, removals = record.config.update, record.config.remove
        else:
            continue
        for item in updates:
            _set(out, _path(item), _value(item))
        for item in removals:
            _remove(out, _path(item))
    return _public(out, internal)
