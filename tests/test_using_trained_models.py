"""A finished run's checkpoint in use: evaluate.py reproduces its test scores and scores a corpus it never
saw, predict.py tags the 500 BC5CDR test abstracts (PubTator in and out), export.py writes a directory
that predicts the same offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from train_runner import ROOT, run_train, tiny_encoder_dir
from wandb_offline import find_run_file

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PUBTATOR = SHARED / "BC5CDR-PubTator" / "CDR_TestSet.PubTator.txt"
SMALL_CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "checkpoint_0b39895_baseline.ckpt"  # tiny


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """The baseline with MiniLM, 40 steps on the BC5CDR sample: test F1 ~48, NCBI-disease ~22; 2 min."""
    tmp_path = tmp_path_factory.mktemp("trained")
    run_dir = tmp_path / "run"
    args = [
        "model=baseline", f"run_dir={run_dir}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.corpora=[BC5CDR]",
        "data.samples_per_epoch=160", "trainer.max_steps=40", "encoder.lr=1e-4", "model.lr=2e-3",
        "logger=none", "callbacks.rich_progress=false",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    proc = run_train(args, tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_evaluate_reproduces_the_runs_test_scores_exactly(finished_run, tmp_path, monkeypatch):
    import evaluate

    for key in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    metrics = json.loads((finished_run / "metrics.json").read_text())
    best = metrics["best_checkpoint"]
    assert evaluate.main([best, "-o", str(tmp_path / "eval"), "--wandb"]) == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    test_keys = [k for k in metrics if k.startswith("test/")]
    assert len(test_keys) > 20 and metrics["test/disjoint/BC5CDR/Chemical/f1"] > 0
    assert {k: again[k] for k in test_keys} == {k: metrics[k] for k in test_keys}
    assert "| BC5CDR |" in (tmp_path / "eval" / "report.md").read_text()
    for schema in ("strict", "exact", "partial", "type"):  # --match's default: every schema, both views
        for view in ("disjoint", "merged"):
            assert 0 < again[f"test/{view}/{schema}/BC5CDR/f1"] <= 100
            assert f"test/{view}/{schema}/BC5CDR/Chemical/f1" in again
        assert f"### Partial match: {schema}" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "f1_per_corpus.png").read_bytes()[:4] == b"\x89PNG"
    media = find_run_file(tmp_path / "eval" / "wandb").parent / "files" / "media"  # an offline eval run
    per_type = json.loads(next((media / "table" / "eval").glob("f1_per_type_*.table.json")).read_text())
    assert ["BC5CDR", "Chemical", "disjoint"] in [row[:3] for row in per_type["data"]]
    assert list((media / "images" / "eval").glob("f1_per_corpus_*.png"))


@pytest.mark.slow
def test_a_corpus_never_trained_on_is_scored_through_merged_types(finished_run, tmp_path):
    import evaluate
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import load_module
    from metrics.span_f1 import prf

    best = json.loads((finished_run / "metrics.json").read_text())["best_checkpoint"]
    assert evaluate.main([best, "--corpus", "NCBI-disease", "-o", str(tmp_path / "cross")]) == 0
    scores = json.loads((tmp_path / "cross" / "metrics.json").read_text())

    # the same counts by hand: on NCBI-disease sentences, BC5CDR/Disease predictions are Disease mentions
    module = load_module(best).eval()
    run = module.run_config
    cfg = {**run, "data": {**run["data"], "corpora": ["NCBI-disease"], "val_subsample": None}}
    datamodule = MultiCorpusDataModule.from_config(cfg)
    disease = module.label_space.type_id("BC5CDR", "Disease")
    tp = fp = fn = 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader()[0]:
            for gold, found in zip(batch["spans"], module.predict(batch).spans):
                gold_set = {(s, e) for s, e, _ in gold.tolist()}
                predicted = {(s, e) for s, e, t in found if t == disease}
                tp, fp, fn = (
                    tp + len(gold_set & predicted),
                    fp + len(predicted - gold_set),
                    fn + len(gold_set - predicted),
                )
    assert tp > 0 and fn > 0
    got = [scores[f"test/merged/NCBI-disease/Disease/{s}"] for s in ("precision", "recall", "f1")]
    assert got == pytest.approx(list(prf(tp, fp, fn)), abs=1e-4)
    assert scores["test/disjoint/NCBI-disease/f1"] == pytest.approx(prf(tp, fp, fn)[2], abs=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not PUBTATOR.is_file(), reason=f"{PUBTATOR} not found")
def test_predict_tags_the_bc5cdr_test_abstracts_and_export_predicts_the_same(
    finished_run, tmp_path, monkeypatch
):
    import export
    import predict
    from inference import load
    from inference.documents import read_documents

    best = json.loads((finished_run / "metrics.json").read_text())["best_checkpoint"]
    source = tmp_path / "first100.pubtator"  # predict.py on all 500 abstracts: docs/results.md
    source.write_text("\n\n".join(PUBTATOR.read_text().split("\n\n")[:100]) + "\n\n")
    out = tmp_path / "tagged.pubtator"
    assert predict.main([best, str(source), "-o", str(out), "--types", "disjoint"]) == 0
    before, after = read_documents(source, "pubtator"), read_documents(out, "pubtator")
    assert len(before) == len(after) == 100
    added = 0
    for a, b in zip(before, after):
        assert (b.id, b.source.title_line, b.source.abstract_line) == (
            a.id,
            a.source.title_line,
            a.source.abstract_line,
        )
        text = b.passages[0].text + " " + b.passages[1].text
        for line in b.source.annotation_lines[len(a.source.annotation_lines) :]:
            _, start, end, mention, _, _ = line.rstrip("\n").split("\t")
            assert text[int(start) : int(end)] == mention
            added += 1
    assert added > 0

    assert export.main([best, str(tmp_path / "exported")]) == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the export needs no hub and no original encoder files
    exported = load(tmp_path / "exported", device="cpu")
    assert "README.md" in {p.name for p in (tmp_path / "exported").iterdir()}
    documents = before[:25]
    assert exported.annotate(documents) == load(best, device="cpu").annotate(documents)

    texts = [
        "Famotidine-associated delirium.",
        "Cisplatin nephrotoxicity in 12 patients. None had renal failure.",
    ]
    found = exported.predict(texts)  # the Python API: one list of mentions per text
    assert len(found) == 2 and sum(map(len, found)) > 0
    for text, mentions in zip(texts, found):
        assert all(text[m.start : m.end] == m.text and 0 < m.score <= 1 for m in mentions)


class GoldEchoModule(torch.nn.Module):
    """A stand-in for a model trained on BC5CDR and NCBI-disease: it predicts each sentence's gold
    mentions, plus, on BC5CDR sentences, NCBI-disease/Disease on every BC5CDR Disease mention and on one
    wrong span. Those must count in the merged view only, never as BC5CDR's own (disjoint) mentions."""

    def __init__(self, cfg: dict):
        super().__init__()
        from datamodules.corpora import label_space_of

        self.run_config = cfg
        self.label_space = label_space_of(["BC5CDR", "NCBI-disease"])

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    def eval_batch_bytes(self, sentences, words, subwords, element_bytes=None):
        return sentences * subwords  # far below any budget: batches by sentence count

    def predict(self, batch):
        from lightning_modules.outputs import Prediction

        ncbi = self.label_space.type_id("NCBI-disease", "Disease")
        out = []
        for spans, n in zip(batch["spans"], batch["num_words"].tolist()):
            gold = [tuple(s) for s in spans.tolist()]  # BC5CDR ids are the same in both spaces
            extra = [(s, e, ncbi) for s, e, t in gold if t == 1] + [(0, n, ncbi)]
            out.append(gold + extra)
        return Prediction(out)


def test_a_subset_of_the_model_corpora_is_scored_as_in_training(tmp_path, monkeypatch):
    from omegaconf import OmegaConf
    from tiny_models import tiny_tokenizer

    import evaluate
    import lightning_modules.registry as registry
    from configs.compose import compose

    tokenizer_dir = tmp_path / "tok"
    tiny_tokenizer(tokenizer_dir)
    cfg = OmegaConf.to_container(
        compose([f"encoder.name={tokenizer_dir}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.corpora=[BC5CDR,NCBI-disease]"]),
        resolve=True,
    )  # fmt: skip
    monkeypatch.setattr(registry, "load_module", lambda path, **_: GoldEchoModule(cfg))
    subset, _ = evaluate.evaluate("model.ckpt", ["BC5CDR"], device="cpu")
    assert subset["test/disjoint/BC5CDR/f1"] == 100.0  # the NCBI-disease predictions are not BC5CDR's
    assert subset["test/merged/BC5CDR/Disease/precision"] < 100.0  # ... but count as Disease when merged
    assert not any("NCBI-disease" in k for k in subset)
    both, _ = evaluate.evaluate("model.ckpt", device="cpu")  # BC5CDR's scores do not depend on the others
    per_corpus = [k for k in subset if "/BC5CDR/" in k]
    assert len(per_corpus) == 18 and {k: both[k] for k in per_corpus} == {k: subset[k] for k in per_corpus}
    assert subset["test/disjoint/macro_f1"] == 100.0  # the macro F1 of the evaluated corpora only


@pytest.mark.slow
def test_the_tagger_predicts_in_the_precision_the_model_was_trained_in(finished_run, monkeypatch):
    from inference import load, tagger
    from inference.documents import Document, Passage
    from lightning_modules.precision import training_autocast

    seen = []

    def recording(precision, device):
        seen.append((str(precision), device.type))
        return training_autocast(precision, device)

    monkeypatch.setattr(tagger, "training_autocast", recording)
    best = json.loads((finished_run / "metrics.json").read_text())["best_checkpoint"]
    model = load(best, device="cpu")
    model.annotate([Document("d1", [Passage(0, "Aspirin causes gastric ulcers.")])])
    assert seen == [(str(model.module.settings.precision), "cpu")]


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [("bf16-mixed", "cuda", torch.bfloat16), ("16-mixed", "cuda", torch.float16), ("32", "cuda", None),
     ("bf16-mixed", "cpu", None), (None, "cuda", None)],
)  # fmt: skip
def test_training_autocast_is_the_runs_mixed_precision_on_a_gpu_only(
    monkeypatch, precision, device, expected
):
    from lightning_modules import precision as module

    made = []
    monkeypatch.setattr(
        module.torch,
        "autocast",
        lambda device_type, dtype, enabled: made.append((device_type, dtype, enabled)),
    )
    module.training_autocast(precision, torch.device(device))
    assert made == [(device, expected, expected is not None)]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_export_and_evaluate_keep_an_earlier_output_when_they_fail_half_way(tmp_path, monkeypatch, capsys):
    import evaluate
    import export

    tiny_encoder_dir(tmp_path / "tiny", hidden=16, layers=1)  # the fixture checkpoint's encoder.name
    monkeypatch.chdir(tmp_path)
    earlier = {"model.safetensors": b"earlier weights", "bioner_model.json": b"{}", "notes.txt": b"mine"}
    exported, evaluated = tmp_path / "exported", tmp_path / "eval"
    for directory in (exported, evaluated):
        directory.mkdir()
        for name, data in earlier.items():
            (directory / name).write_bytes(data)

    def crash(*args, **kwargs):
        raise RuntimeError("crash half-way")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    for failure in (crash, disk_full):  # after the tokenizer was written: a half-made export
        monkeypatch.setattr("safetensors.torch.save_file", failure)
        if failure is crash:
            with pytest.raises(RuntimeError, match="half-way"):
                export.main([str(SMALL_CHECKPOINT), str(exported)])
        else:
            assert export.main([str(SMALL_CHECKPOINT), str(exported)]) == 2
            assert f"\nerror: export to {exported}: [Errno 28]" in capsys.readouterr().err
        assert _files(exported) == earlier
        assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert export.main([str(SMALL_CHECKPOINT), str(exported)]) == 0
    after = _files(exported)
    assert after["notes.txt"] == b"mine" and after["model.safetensors"] != b"earlier weights"

    samples = str(ROOT / "datamodules" / "samples")
    argv = [str(SMALL_CHECKPOINT), "--data-root", samples, "-o", str(evaluated), "--no-wandb"]
    monkeypatch.setattr("metrics.charts.f1_bar_chart", crash)  # after metrics.json and report.md
    with pytest.raises(RuntimeError, match="half-way"):
        evaluate.main(argv)
    assert _files(evaluated) == earlier
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
