"""``scripts/gpu_acceptance.sh``: its dry run checks every command without a GPU, and the summary reads
the results the parts write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_acceptance_summary as summary  # noqa: E402


@pytest.mark.slow
def test_dry_run_checks_every_part_without_a_gpu() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "scripts/gpu_acceptance.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parts = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("== ")]
    assert parts == [
        "cuda_tests", "train_step_sru_ner_minilm", "train_step_sru_ner_bert_large",
        "train_step_tabert_cnn_minilm", "train_step_tabert_cnn_bert_large", "step_ops", "mt6_run",
        "baseline_run", "predict_sru_ner", "predict_baseline",
    ]  # fmt: skip
    assert "!!" not in done.stdout and "every command checked" in done.stdout


def test_summary_reads_the_parts_results(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    step = {"baseline_step_s": 0.02, "sru_ner_step_s": 0.05, "decoder_overhead": 1.5}
    (tmp_path / "train_step-cuda.json").write_text(json.dumps(step))
    large = {"baseline_step_s": 0.1, "sru_ner_step_s": 0.16, "decoder_overhead": 0.6}
    (tmp_path / "train_step-bert-large-cuda.json").write_text(json.dumps(large))
    status = tmp_path / "status.txt"
    status.write_text("cuda_tests 0 31\nmt6_run 124 165\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,train/loss,val/merged/macro_f1\n249,0.5,\n299,,0.25\n299,0.4,\n")
    assert summary.main(["--status", str(status), "--run-dir", str(run)]) == 0
    result = json.loads((tmp_path / "gpu_acceptance-cuda.json").read_text())
    assert result["parts"] == {"cuda_tests": {"rc": 0, "seconds": 31}, "mt6_run": {"rc": 124, "seconds": 165}}
    assert result["train_step"]["sru_ner/minilm"] == {
        "baseline_ms": 20.0, "model_ms": 50.0, "decoder_overhead": 1.5, "target": 2.0,
    }  # fmt: skip
    assert result["mt6_300_steps_dev_f1"] == 0.25
    text = (tmp_path / "gpu_acceptance-cuda.md").read_text()
    assert "| sru_ner/minilm | 20.0 ms | 50.0 ms | 1.50 | ≤ 2.0 met |" in text
    assert "| sru_ner/bert_large | 100.0 ms | 160.0 ms | 0.60 | ≤ 0.5 NOT met |" in text
