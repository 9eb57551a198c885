"""Decision thresholds tuned on dev (``training/thresholds.py``, issue 33): the choice on hand-built
counts, the counting on a hand-built model, and the end-of-fit tuning on a fixture's dev split (the test
split never read), stored in the best checkpoint and used by evaluate, export and inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_runner import tiny_encoder_dir, tiny_run_args

import train
from datamodules.corpora import label_space_of
from lightning_modules.outputs import Prediction
from training.thresholds import CANDIDATES, choose_thresholds, count_candidates

LS = label_space_of(["BC5CDR", "NCBI-disease"])  # BC5CDR/Chemical 0, BC5CDR/Disease 1, NCBI 2
G = [0.3, 0.5, 0.7]
NO_SPANS, NO_TYPES = torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long)


def _counts(per_type: dict[int, list[tuple[int, int, int]]]) -> np.ndarray:
    counts = np.zeros((len(G), len(LS), 3), dtype=np.int64)
    for t, rows in per_type.items():
        counts[:, t] = rows
    return counts


def test_per_corpus_threshold_maximises_the_corpus_micro_f1():
    """BC5CDR at 0.3: Chemical 8/4/2, Disease 2/0/8 -> TP 10 FP 4 FN 10, F1 58.8; at 0.5: 7/1/3 + 4/1/6 ->
    11/2/9, F1 66.7; at 0.7: 5/0/5 + 5/3/5 -> 10/3/10, F1 60.6. NCBI's best is 0.3 (9/1/1)."""
    counts = _counts({
        0: [(8, 4, 2), (7, 1, 3), (5, 0, 5)],
        1: [(2, 0, 8), (4, 1, 6), (5, 3, 5)],
        2: [(9, 1, 1), (6, 0, 4), (3, 0, 7)],
    })  # fmt: skip
    tuning = choose_thresholds(counts, G, LS, default=0.5, granularity="corpus")
    assert tuning.thresholds.tolist() == [0.5, 0.5, 0.3]
    assert tuning.default_f1["BC5CDR"] == pytest.approx(200 * 11 / (2 * 11 + 2 + 9))
    assert tuning.tuned_f1["NCBI-disease"] == pytest.approx(90.0)
    assert tuning.default_f1["NCBI-disease"] == pytest.approx(75.0)


def test_per_type_thresholds_only_where_they_pay():
    """BC5CDR at one threshold: 0.3 gives 10/4/10 (F1 58.8), 0.5 11/2/9 (66.7), 0.7 11/1/9 (68.75, the
    best). Per type: Chemical's best is 0.5 (7/1/3, F1 77.8), Disease's 0.7 (6/1/4, 70.6); together
    13/2/7, F1 74.3, 5.5 points over one threshold: per type under auto, not with min_gain 10."""
    counts = _counts({
        0: [(8, 4, 2), (7, 1, 3), (5, 0, 5)],
        1: [(2, 0, 8), (4, 1, 6), (6, 1, 4)],
        2: [(9, 1, 1), (6, 0, 4), (3, 0, 7)],
    })  # fmt: skip
    corpus_best = choose_thresholds(counts, G, LS, default=0.5, granularity="corpus")
    assert corpus_best.thresholds.tolist() == [0.7, 0.7, 0.3]
    assert corpus_best.tuned_f1["BC5CDR"] == pytest.approx(200 * 11 / (22 + 1 + 9))
    auto = choose_thresholds(counts, G, LS, default=0.5, granularity="auto", min_gain=0.5)
    assert auto.thresholds.tolist() == [0.5, 0.7, 0.3]
    assert auto.granularity == {"BC5CDR": "type", "NCBI-disease": "corpus"}
    assert auto.tuned_f1["BC5CDR"] == pytest.approx(200 * 13 / (26 + 2 + 7))
    strict = choose_thresholds(counts, G, LS, default=0.5, granularity="auto", min_gain=10.0)
    assert strict.thresholds.tolist() == [0.7, 0.7, 0.3] and strict.granularity["BC5CDR"] == "corpus"


def test_ties_go_to_the_default_and_an_empty_corpus_keeps_it():
    counts = _counts({0: [(1, 1, 1)] * 3, 1: [(1, 1, 1)] * 3})  # every candidate the same; NCBI empty
    tuning = choose_thresholds(counts, G, LS, default=0.5)
    assert tuning.thresholds.tolist() == [0.5, 0.5, 0.5]
    assert tuning.tuned_f1["NCBI-disease"] == 0.0
    with pytest.raises(ValueError, match="granularity"):
        choose_thresholds(counts, G, LS, default=0.5, granularity="word")


class ThresholdModel:
    """A stand-in model: every sentence has one candidate mention per type, (0, 1, t), whose probability
    is ``prob[t]``; a threshold decides it."""

    label_space = LS

    def __init__(self, prob: list[float]):
        self.prob = np.asarray(prob)
        self.lowest: list[float] = []

    def decision_scores(self, batch, lowest):
        self.lowest.append(lowest)
        return len(batch["num_words"])

    def decode_decisions(self, size, thresholds):
        found = [(0, 1, t) for t in range(len(LS)) if self.prob[t] > thresholds[t]]
        return Prediction([list(found) for _ in range(size)])


def test_counting_every_candidate_from_one_pass():
    """Two BC5CDR sentences (gold Chemical (0, 1) on the first) and one NCBI sentence (no gold, one
    unreachable Disease mention). Chemical at p .6: TP 1 FP 1 below .6, FN 1 above; Disease (BC5CDR) at
    p .4: FP 2 below .4; NCBI's Disease at .8: FP 1 below .8, and its unreachable mention is always FN;
    other corpora's types never count."""
    model = ThresholdModel([0.6, 0.4, 0.8])
    batch = {
        "corpus_id": torch.tensor([0, 0, 1]),
        "num_words": torch.tensor([2, 2, 2]),
        "spans": [torch.tensor([[0, 1, 0]]), NO_SPANS, NO_SPANS],
        "unreachable": [NO_TYPES, NO_TYPES, torch.tensor([2])],
    }  # fmt: skip
    candidates = [0.3, 0.5, 0.7, 0.9]
    counts = count_candidates(model, [(batch, batch)], candidates)
    assert model.lowest == [0.3]  # one pass, enough for the lowest candidate
    assert counts[:, 0].tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1]]
    assert counts[:, 1].tolist() == [[0, 2, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert counts[:, 2].tolist() == [[0, 1, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1]]


def test_candidates_span_the_unit_interval():
    assert CANDIDATES[0] == 0.05 and CANDIDATES[-1] == 0.95 and len(CANDIDATES) == 19


# --- end to end -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fit_tunes_on_dev_only_and_every_consumer_uses_the_thresholds(tmp_path, monkeypatch):
    """A tiny SRU-NER run: the thresholds are tuned on the dev split (no test row read while tuning), are
    in best.ckpt, metrics.json and the card, and evaluate.py, export + inference.load and the checkpoint
    decide with them."""
    import evaluate
    import training.thresholds as thresholds
    from datamodules.multi_corpus import MultiCorpusDataModule
    from inference.tagger import export, load
    from lightning_modules.checkpoints import read_checkpoint

    splits_read: list[tuple[bool, str]] = []  # (while tuning, split) of every rows request and setup
    tuning_now = {"on": False}
    original_rows, original_setup = MultiCorpusDataModule._rows, MultiCorpusDataModule.setup

    def spy_rows(self, split):
        splits_read.append((tuning_now["on"], split))
        return original_rows(self, split)

    def spy_setup(self, stage=None):
        splits_read.append((tuning_now["on"], {"fit": "train", "validate": "dev"}.get(stage, stage)))
        return original_setup(self, stage)

    def spy_tune(*args, **kwargs):
        tuning_now["on"] = True
        try:
            return thresholds.tune_after_fit(*args, **kwargs)
        finally:
            tuning_now["on"] = False

    monkeypatch.setattr(MultiCorpusDataModule, "_rows", spy_rows)
    monkeypatch.setattr(MultiCorpusDataModule, "setup", spy_setup)
    monkeypatch.setattr(train, "tune_after_fit", spy_tune)
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    args = [
        *tiny_run_args(tmp_path, run_dir, encoder, "BC5CDR,NCBI-disease"),
        *("trainer.max_steps=4", "data.samples_per_epoch=32", "model.action_weighting=balanced"),
    ]
    assert train.main(args) == 0
    assert {split for tuning, split in splits_read if tuning} == {"dev"}
    assert "test" in {split for _, split in splits_read}  # the test after fit did read it

    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = run_dir / "checkpoints" / "best.ckpt"
    checkpoint = read_checkpoint(best)
    record = checkpoint["decision_thresholds"]
    stored = checkpoint["state_dict"]["type_thresholds"].tolist()
    assert stored == pytest.approx([record["thresholds"][t] for t in LS.types])
    assert set(record["sentences"]) == {"BC5CDR", "NCBI-disease"} and record["dev_sentences"] == 8
    assert "## Decision thresholds" in (run_dir / "README.md").read_text()
    assert metrics["decision_thresholds"] == record

    # evaluate.py scores with the stored thresholds: metrics.json's test numbers again
    scores, module = evaluate.evaluate(best, device="cpu")
    assert module.thresholds().tolist() == pytest.approx(stored)
    for key in ("test/disjoint/macro_f1", "test/merged/macro_f1"):
        assert scores[key] == pytest.approx(metrics[key], abs=1e-4)

    # the export carries them; inference from the export and from the checkpoint agree
    out = export(best, tmp_path / "export")
    text = ["the acid binds to the receptor in patients with cancer .", "alpha kinase levels ."]
    from_export, from_checkpoint = load(out, device="cpu"), load(best, device="cpu")
    assert from_export.module.thresholds().tolist() == pytest.approx(stored)
    assert from_export.predict(text) == from_checkpoint.predict(text)
