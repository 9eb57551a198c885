"""Every crafted input of ``fuzz_cases`` is one ``error:`` line (issue 29, item 6).

Each case runs in-process in its own temporary directory (the working directory too): exit 2 (or a
``BionerError`` from ``inference.load``), exactly one stderr line and it starts with ``error: ``, under 400
characters, no traceback, no payload marker, nothing new in the repository, within ``SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
from fuzz_cases import MARKER, ROOT, Case, Models, all_cases, make_models

import evaluate
import export
import predict
import train
from errors import BionerError
from inference import load

SECONDS = 20
ENTRIES = {"predict": predict.main, "evaluate": evaluate.main, "export": export.main, "train": train.main}
CASES = all_cases()
XFAIL: dict[str, str] = {}  # case id: why (a bug a case found and that is not fixed yet); none now


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    return make_models(tmp_path_factory.mktemp("fuzz_models"))


def _feed(fifo: Path) -> threading.Thread:
    """A writer on the FIFO: code that opened it would read instead of blocking the suite forever."""

    def write() -> None:
        with contextlib.suppress(BrokenPipeError):  # the reader refused the FIFO and closed it
            fifo.write_text("x\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def _repo_state() -> set[str]:
    """The repository root's visible entries (hidden caches such as ``.pytest_cache`` come and go with
    the other test processes)."""
    return {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[case.id])] if case.id in XFAIL else []
        yield pytest.param(case, id=case.id, marks=marks)


def test_there_are_at_least_100_cases_over_all_five_entry_points():
    per_entry = {entry: sum(c.entry == entry for c in CASES) for entry in ENTRIES | {"load": None}}
    assert len(CASES) >= 100 and all(per_entry.values()), per_entry
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", _params())
def test_a_crafted_input_is_one_error_line(case: Case, models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = _repo_state()
    built = case.build(tmp_path, models)
    capsys.readouterr()
    writer = _feed(tmp_path / case.fifo) if case.fifo else None
    started = time.monotonic()
    try:
        if case.entry == "load":
            with pytest.raises(BionerError) as err:
                load(built, device="cpu")
            code, out, stderr = 2, "", f"error: {err.value}\n"
        else:
            code = ENTRIES[case.entry](built)
            out, stderr = capsys.readouterr()
    finally:
        seconds = time.monotonic() - started
        if writer is not None:
            os.close(os.open(tmp_path / case.fifo, os.O_RDONLY | os.O_NONBLOCK))  # a waiting writer ends
            writer.join(timeout=5)
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr[-3000:])
    assert "Traceback" not in stderr + out, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert len(lines[0]) < 400, lines[0][:500]
    assert not (tmp_path / MARKER).exists(), "the payload ran"
    assert seconds < SECONDS, f"{seconds:.1f} s"
    assert _repo_state() == before, _repo_state() ^ before
    if case.entry == "train" and not any(str(a).startswith("run_dir=") for a in built):
        assert not (tmp_path / "outputs").exists(), "a refused run left its directory"
