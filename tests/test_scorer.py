"""The one scoring path (``metrics/scorer.py``): hand-computed scores of own and foreign corpora, and for
each model, ``evaluate.py`` through the scorer reproduces every test key of the training run's
``metrics.json``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from train_runner import run_train, tiny_encoder_dir, tiny_run_args

from datamodules.label_space import LabelSpace
from metrics.scorer import Scorer

MODEL = LabelSpace({"BC5CDR": ["Chemical", "Disease"]})
EVAL = LabelSpace({"BC5CDR": ["Chemical", "Disease"], "NCBI-disease": ["Disease"]})


def _batch(corpus_id: int, gold: list[list[tuple[int, int, int]]]) -> dict:
    return {
        "corpus_id": torch.full((len(gold),), corpus_id),
        "spans": [torch.tensor(g, dtype=torch.long).reshape(-1, 3) for g in gold],
        "unreachable": [torch.zeros(0, dtype=torch.long) for _ in gold],
    }


def test_own_and_foreign_corpora_by_hand():
    scorer = Scorer(MODEL, EVAL)
    chemical, disease = MODEL.type_id("BC5CDR", "Chemical"), MODEL.type_id("BC5CDR", "Disease")
    # BC5CDR (own): gold Chemical (0, 1) and Disease (2, 4); predicted Chemical (0, 1) and Disease (5, 6)
    scorer.update(
        _batch(EVAL.corpus_index["BC5CDR"], [[(0, 1, chemical), (2, 4, disease)]]),
        SimpleNamespace(spans=[[(0, 1, chemical), (5, 6, disease)]], relations=None),
    )
    # NCBI-disease (foreign): gold Disease (1, 3), (4, 5); predicted BC5CDR/Disease (1, 3), which counts as
    # Disease, and BC5CDR/Chemical (6, 7), which NCBI-disease has no type for: ignored
    ncbi = EVAL.type_id("NCBI-disease", "Disease")
    scorer.update(
        _batch(EVAL.corpus_index["NCBI-disease"], [[(1, 3, ncbi), (4, 5, ncbi)]]),
        SimpleNamespace(spans=[[(1, 3, disease), (6, 7, chemical)]], relations=None),
    )
    scores = scorer.compute()
    # BC5CDR: tp 1, fp 1, fn 1 -> P = R = F1 = 50; NCBI-disease: tp 1, fp 0, fn 1 -> P 100, R 50, F1 66.67
    assert scores["disjoint/BC5CDR/f1"] == pytest.approx(50.0)
    assert scores["disjoint/NCBI-disease/precision"] == pytest.approx(100.0)
    assert scores["disjoint/NCBI-disease/recall"] == pytest.approx(50.0)
    assert scores["disjoint/macro_f1"] == pytest.approx((50.0 + 200 / 3) / 2)
    assert "disjoint/micro_f1" not in scores  # not defined across two label spaces
    scorer.reset()
    assert scorer.spans.counts()["disjoint/BC5CDR/Chemical/tp"] == 0


# each model, a short tiny-encoder run on the bundled samples; TabERT-CNN's paper mode scores relations
RUNS = {
    "sru_ner": ["model=sru_ner"],
    "baseline": ["model=baseline"],
    "tabert_cnn": ["model=tabert_cnn", "model.channels=16", "model.pair_dim=8"],
    "tabert_cnn_relations": [
        "model=tabert_cnn", "model.channels=16", "model.pair_dim=8", "data.corpora=[CoNLL04]",
        "data.num_workers=0",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_evaluate_through_the_scorer_equals_the_runs_metrics_json(
    name, tmp_path, monkeypatch, conll04_root, easy_corpus
):
    import evaluate

    relations = name == "tabert_cnn_relations"
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    args = [
        *tiny_run_args(tmp_path, run_dir, encoder),
        "data.samples_per_epoch=320", "trainer.max_steps=20", "data.val_subsample=16", "model.lr=1e-2",
        "encoder.lr=1e-3",
        *RUNS[name],
        *([f"data.root={conll04_root}"] if relations else [f"data.corpora=[{easy_corpus}]"]),
    ]  # fmt: skip
    proc = run_train(args, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    monkeypatch.chdir(tmp_path)
    scores, _ = evaluate.evaluate(metrics["best_checkpoint"], device="cpu", data_root=None)
    test_keys = sorted(k for k in metrics if k.startswith("test/"))
    assert len(test_keys) > 10
    assert {k: scores[k] for k in test_keys} == {k: metrics[k] for k in test_keys}
    assert sorted(scores) == test_keys  # nothing more, nothing less
    if not relations:  # the easy corpus is learnt: the counts behind the scores were compared, not zeros
        assert any(scores[k] > 0 for k in test_keys if k.endswith("/f1"))
    if relations:  # (two sentences: the scores stay 0 at this budget)
        assert "test/re_plus/micro_f1" in scores and "test/ner/macro_f1" in scores
