"""scripts/two_stage.py end to end on the bundled samples with a tiny encoder: stage 1 on two corpora,
stage 2 fine-tuned from stage 1's best checkpoint on one, both scored on its test split side by side."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from train_runner import ROOT, clean_env, tiny_encoder_dir


@pytest.mark.slow
def test_two_stages_run_and_are_scored_side_by_side(tmp_path):
    encoder = tiny_encoder_dir(tmp_path / "enc")
    common = [f"data.cache_dir={tmp_path / 'cache'}", "data.val_subsample=8", "thresholds.dev_sentences=8",
              "logger=none", "callbacks.rich_progress=false", "trainer.enable_progress_bar=false",
              "data.samples_per_epoch=32"]  # fmt: skip
    out = tmp_path / "two"
    command = [
        sys.executable, str(ROOT / "scripts" / "two_stage.py"), "--target", "NCBI-disease", "--out", str(out),
        "--stage1", f"encoder.name={encoder}", "data.corpora=[BC5CDR,NCBI-disease]", "trainer.max_steps=4",
        *common,
        "--stage2", "trainer.max_steps=2", "trainer.accelerator=cpu", *common,
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, (
        proc.stdout[-2000:],
        proc.stderr[-2000:],
        (out / "two_stage.log").read_text()[-3000:],
    )
    card = (out / "stage2" / "README.md").read_text()
    best1 = json.loads((out / "stage1" / "metrics.json").read_text())["best_checkpoint"]
    assert f"Started from `{best1}` (`init_map=qualified`)." in card
    assert "- kept (1): NCBI-disease/Disease" in card and "- dropped, in the source only (2)" in card
    lines = (out / "two_stage.md").read_text().splitlines()
    assert lines[2].startswith("| stage | steps | wall | F1 disjoint | F1 merged | strict (merged) |")
    assert lines[4].startswith("| 1: ") and "| 4 |" in lines[4]
    assert lines[5].startswith("| 2: finetune on NCBI-disease | 2 |")
    stage1_eval = json.loads((out / "eval-stage1" / "metrics.json").read_text())
    assert lines[4].split(" | ")[3] == f"{stage1_eval['test/disjoint/NCBI-disease/f1']:.2f}"
    # again: every stage has finished, nothing is trained or evaluated twice
    again = subprocess.run(
        command, cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "+ " not in again.stdout and again.stdout.splitlines()[2:] == lines[2:]
