"""The offline ``.wandb`` reader: framing on synthetic bytes, and a real offline run read back exactly."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2 as pb
from wandb_offline import (
    BLOCK_LEN,
    WandbFileError,
    config,
    history_rows,
    read_wandb_records,
    summary,
    wait_for_run_file,
)

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)


def _write_log(payloads: list[bytes]) -> bytes:
    """A minimal LevelDB-log writer (the framing the reader must undo), blocks counted from offset 0."""
    out = bytearray(HEADER)
    for payload in payloads:
        first, rest = True, payload
        while True:
            left = BLOCK_LEN - len(out) % BLOCK_LEN
            if left < 7:
                out += b"\0" * left
                left = BLOCK_LEN
            chunk, rest = rest[: left - 7], rest[left - 7 :]
            last = not rest
            kind = (1 if last else 2) if first else (4 if last else 3)
            out += struct.pack("<IHB", zlib.crc32(bytes([kind]) + chunk), len(chunk), kind) + chunk
            first = False
            if last:
                break
    return bytes(out)


def _history_record(num: int, **values: str) -> pb.Record:
    record = pb.Record(num=num)
    for key, value_json in values.items():
        record.history.item.add(key=key, value_json=value_json)
    return record


def _sized_record(size: int) -> pb.Record:
    """A history record whose serialisation is exactly ``size`` bytes."""
    for n in range(size, 0, -1):
        record = _history_record(0, text=f'"{"x" * n}"')
        if record.ByteSize() == size:
            return record
    raise AssertionError(size)


def test_framing_across_blocks(tmp_path: Path) -> None:
    # record 0 leaves 3 bytes in block 0 (zero padding); then FULL, FIRST/MIDDLE/LAST across 3 blocks, FULL
    first = _sized_record(BLOCK_LEN - 7 - 7 - 3)
    records = [first] + [_history_record(i, text=f'"{"x" * n}"') for i, n in [(1, 10), (2, 70_000), (3, 5)]]
    data = _write_log([r.SerializeToString() for r in records])
    assert data[BLOCK_LEN - 3 : BLOCK_LEN] == b"\0\0\0"
    path = tmp_path / "run-synthetic.wandb"
    path.write_bytes(data)
    assert [r.num for r in read_wandb_records(path)] == [0, 1, 2, 3]
    assert [len(row["text"]) for row in history_rows(path)][1:] == [10, 70_000, 5]

    path.write_bytes(data.replace(b"x" * 10, b"x" * 9 + b"y", 1))
    with pytest.raises(WandbFileError, match="crc"):
        read_wandb_records(path)
    assert len(read_wandb_records(path, verify_crc=False)) == 4
    path.write_bytes(b":W&B\x00\x00\x00" + data[7:])
    with pytest.raises(WandbFileError, match="header"):
        read_wandb_records(path)


def test_real_offline_run_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    for key in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))

    logged = [
        {"train/loss": 0.5, "trainer/global_step": 0},
        {"train/loss": 0.25, "trainer/global_step": 1, "note": "ok", "val": {"f1": 71.5}},
        {"val/merged/macro_f1": 80.0, "flag": True, "items": [1, 2, 3]},
    ]
    cfg = {"seed": 42, "model": {"name": "tiny", "layers": 2}, "corpora": ["BC5CDR", "NCBI-disease"]}
    run = wandb.init(
        dir=str(tmp_path), project="bioner-test", config=cfg, settings=wandb.Settings(console="off")
    )
    for row in logged:
        wandb.log(row)
    run.summary["val/f1_best"] = 81.25
    wandb.finish()

    path = wait_for_run_file(tmp_path)  # finish() may return before wandb-core flushed the file
    assert path.read_bytes()[:7] == b":W&B\xe1\xbe\x00"
    kinds = [r.WhichOneof("record_type") for r in read_wandb_records(path)]
    assert kinds[0] == "header" and "run" in kinds and kinds[-1] == "exit"

    assert history_rows(path) == logged
    steps = [row["_step"] for row in history_rows(path, internal=True)]
    assert steps == [0, 1, 2]
    assert summary(path) == {
        "train/loss": 0.25,
        "trainer/global_step": 1,
        "note": "ok",
        "val": {"f1": 71.5},
        "val/merged/macro_f1": 80.0,
        "flag": True,
        "items": [1, 2, 3],
        "val/f1_best": 81.25,
    }
    assert config(path) == cfg
