"""scripts/mt6_study.py: every grid run composes to its settings on top of the study's start (the
pre-study defaults, whatever mt6_cpu's defaults are now), and the table marks each model's best dev run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import mt6_study  # noqa: E402

from configs.compose import compose  # noqa: E402


def test_grid_runs_compose_to_the_study_start_plus_their_own_settings():
    start = {
        "sru_ner": (5e-4, 5e-5, "none"),
        "baseline": (5e-4, 5e-5, None),
        "tabert_cnn": (1e-3, 5e-5, None),
    }
    for name, (model, experiment, overrides) in mt6_study.GRID.items():
        command = mt6_study.train_command(
            model, experiment, [*mt6_study.STUDY_START[model], *overrides], Path("/tmp/r"), "data"
        )
        cfg = compose(command[2:])
        want = dict(zip(("model.lr", "encoder.lr", "model.action_weighting"), start[model]))
        want.update(dict(o.split("=", 1) for o in overrides))
        assert cfg.model.name == model and float(cfg.model.lr) == float(want["model.lr"]), name
        assert float(cfg.encoder.lr) == float(want["encoder.lr"]), name
        if model == "sru_ner":
            assert cfg.model.action_weighting == want["model.action_weighting"], name


def test_table_marks_the_best_dev_run_of_each_model(tmp_path, monkeypatch):
    grid = {
        "a": ("sru_ner", "mt6_cpu", []),
        "b": ("sru_ner", "mt6_cpu", ["model.lr=1e-3"]),
        "c": ("baseline", "mt6_cpu", []),
    }
    monkeypatch.setattr(mt6_study, "GRID", grid)
    for name, merged in (("a", [10.0, 30.0]), ("b", [20.0, 25.0]), ("c", [5.0, 7.5])):
        run = tmp_path / "grid" / name
        run.mkdir(parents=True)
        lines = [
            {"step": 200 * (i + 1), "epoch": i, "wall_s": 60.0 * (i + 1),
             "metrics": {"val/merged/macro_f1": m, "val/disjoint/macro_f1": m / 2}}
            for i, m in enumerate(merged)
        ]  # fmt: skip
        (run / "history.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = mt6_study.table(tmp_path).splitlines()[2:]
    assert (
        rows[0] == "| a **(best)** | sru_ner | the start | 10.00 → 30.00 | 5.00 → 15.00 | 30.00 | 2.0 min |"
    )
    assert rows[1].startswith("| b | sru_ner | `model.lr=1e-3` | 20.00 → 25.00 |")
    assert rows[2].startswith("| c **(best)** | baseline |")
