"""scripts/finetune_study.py: each arm's first stage composes to the corpora and steps it claims (equal
total steps across arms), and the table sums both stages' wall time and reads each schema's F1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import finetune_study  # noqa: E402

from configs.compose import compose  # noqa: E402


def test_each_arm_trains_the_corpora_it_names_for_its_share_of_the_steps():
    want = {
        "single": (["NCBI-disease"], 1000, True),
        "single+finetune": (["NCBI-disease"], 500, False),
        "mt6+finetune": (["BC2GM", "BC4CHEMD", "BC5CDR", "JNLPBA", "Linnaeus", "NCBI-disease"], 500, False),
        "conll+finetune": (["NCBI-disease", "CoNLL2003"], 500, False),
    }
    for arm, (corpora, steps, tested) in want.items():
        cfg = compose(finetune_study.stage1_args(arm, "NCBI-disease", "baseline", steps, "data"))
        assert sorted(cfg.data.corpora) == sorted(corpora), arm
        assert cfg.trainer.max_steps == steps and cfg.model.name == "baseline", arm
        assert bool(cfg.test_after_fit) is tested, arm


def test_table_sums_both_stages_and_reads_every_schema(tmp_path):
    def run_dir(name: str, steps: int, wall: float) -> Path:
        path = tmp_path / name
        path.mkdir()
        line = {"step": steps, "epoch": 0, "wall_s": wall, "metrics": {}}
        (path / "history.jsonl").write_text(json.dumps(line) + "\n")
        return path

    metrics = {"test/merged/T/f1": 70.0, "test/merged/T/precision": 65.5, "test/merged/T/recall": 75.836}
    metrics.update(
        {f"test/merged/{s}/T/f1": f for s, f in zip(finetune_study.two_stage.SCHEMAS, (1, 2, 3, 4))}
    )
    rows = [
        ("single", {"stages": [run_dir("s", 1000, 600.0)], "metrics": metrics}),
        (
            "mt6+finetune",
            {"stages": [run_dir("a", 500, 420.0), run_dir("b", 500, 180.0)], "metrics": metrics},
        ),
    ]
    lines = finetune_study.table(rows, "T").splitlines()
    assert lines[0] == "| arm | steps | wall | F1 (P / R) | strict F1 | exact F1 | partial F1 | type F1 |"
    assert lines[2] == "| single | 1000 | 10.0 min | 70.00 (65.50 / 75.84) | 1.00 | 2.00 | 3.00 | 4.00 |"
    assert lines[3].startswith("| mt6+finetune | 500 + 500 | 10.0 min | 70.00 ")
