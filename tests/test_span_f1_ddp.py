"""SpanF1 under 2-process CPU DDP gives exactly the single-process counts (no doubling, no loss)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ddp_metric_script import BATCH_SIZE, LABEL_SPACE, NUM_SENTENCES, make_sentences

from metrics.span_f1 import SpanF1

SCRIPT = Path(__file__).with_name("ddp_metric_script.py")
REPO = Path(__file__).resolve().parents[1]
DIST_VARS = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "LOCAL_RANK",
    "NODE_RANK",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GLOBAL_RANK",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(devices: int, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS and not k.startswith("PL_")}
    env.update(MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--devices", str(devices), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"devices={devices} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


def _metric_over(sentences: list) -> SpanF1:
    metric = SpanF1(LABEL_SPACE)
    for i in range(0, len(sentences), BATCH_SIZE):
        batch = sentences[i : i + BATCH_SIZE]
        metric.update([s[0] for s in batch], [s[1] for s in batch], [s[2] for s in batch])
    return metric


@pytest.mark.slow
def test_ddp_counts_equal_single_process(tmp_path: Path) -> None:
    assert NUM_SENTENCES % (2 * BATCH_SIZE) == 0
    sentences = make_sentences()
    reference = _metric_over(sentences)
    ref_counts, ref_scores = reference.counts(), {k: float(v) for k, v in reference.compute().items()}
    # DistributedSampler(shuffle=False) gives rank r the indices r::2; most counters must be non-zero on
    # both ranks, or a wrong reduction (max, or rank 0 only) could still match the reference
    rank0, rank1 = _metric_over(sentences[0::2]).counts(), _metric_over(sentences[1::2]).counts()
    assert sum(1 for k in ref_counts if rank0[k] > 0 and rank1[k] > 0) > len(ref_counts) // 2
    # the fixture data exercises both views and cross-corpus predictions
    for view in ("disjoint", "merged"):
        for c in ("tp", "fp", "fn"):
            assert sum(v for k, v in ref_counts.items() if k.startswith(view) and k.endswith("/" + c)) > 0
    assert any(
        ref_counts[k] != ref_counts["disjoint" + k[len("merged") :]] for k in ref_counts if "merged" in k
    )
    assert sum(v for k, v in ref_counts.items() if k.startswith("other_preds/")) > 0
    assert sum(v for k, v in ref_counts.items() if k.startswith("sentences/")) == NUM_SENTENCES

    single = _run(1, tmp_path / "single.json")
    double = _run(2, tmp_path / "ddp.json")

    assert single["world_size"] == 1 and single["local_sentences"] == [NUM_SENTENCES]
    assert double["world_size"] == 2 and double["local_sentences"] == [NUM_SENTENCES // 2] * 2
    assert single["counts"] == ref_counts
    assert double["counts"] == ref_counts
    assert single["scores"] == pytest.approx(ref_scores)
    assert double["scores"] == pytest.approx(ref_scores)
