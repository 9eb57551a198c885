"""``python -m metrics.compare`` and the validation history it reads (``history.jsonl``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from metrics import compare
from metrics.history import read_history
from training.validation_history import ValidationHistory


def _history(run_dir, lines):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "history.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _line(step, macro, bc5=None, wall=10.0):
    metrics = {"val/merged/macro_f1": macro, "val/disjoint/macro_f1": macro}
    if bc5 is not None:
        metrics |= {"val/merged/BC5CDR/f1": bc5, "val/disjoint/BC5CDR/f1": bc5}
    return {"step": step, "epoch": 0, "wall_s": wall, "metrics": metrics}


def test_table_and_chart_of_a_finished_and_an_unfinished_run(tmp_path, capsys):
    done, running = tmp_path / "sru-1", tmp_path / "base-1"
    _history(done, [_line(200, 40.0, 41.0, 60.0), _line(400, 52.5, 50.0, 125.0)])
    (done / "config.yaml").write_text("model:\n  name: sru_ner\n")
    (done / "metrics.json").write_text(json.dumps({
        "val/merged/macro_f1": 52.5, "test/disjoint/macro_f1": 48.25, "test/merged/macro_f1": 47.5,
        "test/disjoint/BC5CDR/f1": 61.0, "test/merged/BC5CDR/f1": 60.0,
    }))  # fmt: skip
    _history(running, [_line(200, 45.0, 44.0, 30.0), _line(400, 43.0, 47.0, 66.0)])
    (running / "config.yaml").write_text("model:\n  name: baseline\n")
    assert compare.main([str(done), str(running), "-o", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out.md").read_text().splitlines()
    assert table[0] == "| run | model | steps | best dev | test macro (disjoint / merged) | BC5CDR | wall |"
    assert table[2] == "| sru-1 | sru_ner | 400 | 52.50 | 48.25 / 47.50 | 61.00 | 2.1 min |"
    assert table[3] == "| base-1 | baseline | 400 | 45.00 | – | – | 1.1 min |"  # best of its history
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert "| sru-1 |" in capsys.readouterr().out
    # any other history key as one more panel
    assert compare.main([str(done), "-o", str(tmp_path / "more"), "--metric", "val/disjoint/macro_f1"]) == 0

    def width(path):  # a PNG's IHDR: the width is bytes 16-19, big-endian
        return int.from_bytes(path.read_bytes()[16:20], "big")

    # macro and BC5CDR, then the extra panel: three columns instead of two
    assert width(tmp_path / "more.png") == width(tmp_path / "out.png") * 3 // 2


def test_a_directory_without_history_or_metrics_is_one_error_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert compare.main([str(tmp_path / "empty"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "empty" in err and err.count("\n") == 1
    assert compare.main([str(tmp_path / "nowhere")]) == 2


def _trainer(step, *, zero=True, fn="fit", metrics=None):
    return SimpleNamespace(
        is_global_zero=zero, global_step=step, current_epoch=1, sanity_checking=False,
        state=SimpleNamespace(fn=fn), callback_metrics=metrics or {},
    )  # fmt: skip


def test_a_resume_drops_the_lines_past_its_step_and_continues_the_wall_time(tmp_path):
    _history(tmp_path, [_line(100, 1.0, wall=50.0), _line(200, 2.0, wall=100.0), _line(300, 3.0, wall=150.0)])
    with (tmp_path / "history.jsonl").open("a") as f:
        f.write('{"step": 400, "ep')  # torn by a kill
    history = ValidationHistory(tmp_path)
    history.on_train_start(_trainer(200), None)  # resumed from the step-200 checkpoint
    assert [h["step"] for h in read_history(tmp_path)] == [100, 200]
    history.on_validation_end(_trainer(300, metrics={"val/merged/macro_f1": 4.0, "train/loss": 0.5}), None)
    history.on_validation_end(_trainer(300, fn="validate"), None)  # not a training validation: skipped
    history.on_validation_end(_trainer(300, zero=False), None)  # other ranks write nothing
    lines = read_history(tmp_path)
    assert [h["step"] for h in lines] == [100, 200, 300]
    assert lines[-1]["metrics"] == {"val/merged/macro_f1": 4.0}
    assert lines[-1]["wall_s"] == pytest.approx(100.0, abs=1.0)  # 100 s before + this segment's ~0 s
