"""``export.py --format transformers``: a baseline corpus as a standard token classifier that transformers'
pipeline runs with the mentions ``predict.py --corpus`` finds; the refusals; ``Tagger.from_pretrained``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tiny_models import tiny_bert_config
from train_runner import ROOT, tiny_encoder_dir

import export
from configs.compose import compose, samples_dir
from datamodules.corpora import label_space_of, read_split, resolve
from inference.tagger import Tagger, load
from lightning_modules.registry import build_module

sys.path.insert(0, str(ROOT / "scripts"))
from check_transformers_export import (  # noqa: E402
    Agreement,
    bundled_abstracts,
    our_mentions,
    permute_rows,
    pipeline_mentions,
)

TEXTS = ["the human gene binds to the receptor .", "mouse cancer cell line , alpha kinase induced by acid ."]


def save_checkpoint(module, path: Path) -> Path:
    """What ``load_module`` reads of a train.py checkpoint: the state dict and the hyperparameters."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def run_config(encoder: str, model: str, corpora: tuple[str, ...], *overrides: str) -> dict:
    argv = [f"model={model}", f"encoder.name={encoder}", f"data.corpora=[{','.join(corpora)}]", *overrides]
    return OmegaConf.to_container(compose(argv), resolve=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny checkpoints: baselines (first- and max-pooled, one and two corpora), SRU-NER,
    TabERT-CNN."""
    root = tmp_path_factory.mktemp("tiny")
    encoder = tiny_encoder_dir(root / "encoder")
    specs = {
        "first": ("baseline", ("BC5CDR",), "model.pooling=first"),
        "max": ("baseline", ("BC5CDR",)),
        "two": ("baseline", ("BC5CDR", "NCBI-disease"), "model.pooling=first"),
        "sru_ner": ("sru_ner", ("BC5CDR",)),
        "tabert_cnn": ("tabert_cnn", ("BC5CDR",)),
    }
    out = {}
    for name, (model, corpora, *overrides) in specs.items():
        torch.manual_seed(0)
        cfg = run_config(str(encoder), model, corpora, *overrides)
        module = build_module(cfg, label_space_of(corpora), encoder_config=tiny_bert_config().to_dict())
        out[name] = save_checkpoint(module, root / f"{name}.ckpt")
    return out


def test_first_pooling_takes_each_words_first_subword():
    from lightning_modules.encoder import WordEncoder

    encoder = WordEncoder(config=tiny_bert_config()).eval()
    input_ids = torch.tensor([[2, 10, 11, 12, 3, 0]])
    word_index = torch.tensor([[0, 1, 1, 2, 3, 4]])  # CLS, word 1 of two subwords, word 2, SEP, padding
    with torch.no_grad():
        hidden = encoder.model(input_ids=input_ids, attention_mask=(input_ids > 0).long()).last_hidden_state
        first = encoder(input_ids, (input_ids > 0).long(), word_index, 4, pooling="first")
        pooled = encoder(input_ids, (input_ids > 0).long(), word_index, 4)
    assert torch.equal(first[0], hidden[0, [0, 1, 3, 4]])
    assert torch.equal(pooled[0, 1], hidden[0, 1:3].amax(0))


def test_the_classifier_is_the_corpus_head_row_for_row(tiny, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from lightning_modules.registry import load_module

    out = tmp_path / "tfx"
    assert (
        export.main([str(tiny["two"]), str(out), "--format", "transformers", "--corpus", "NCBI-disease"]) == 0
    )
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "O", "1": "B-Disease", "2": "I-Disease"}
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: token-classification\n")

    module = load_module(tiny["two"]).eval()
    model = AutoModelForTokenClassification.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    batch = tokenizer(TEXTS[0].split(), is_split_into_words=True, return_tensors="pt")
    word_ids = batch.word_ids()
    first = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
    with torch.no_grad():
        theirs = model(**batch).logits[0, first]  # (n, 3)
        slots = torch.tensor([[0 if w is None else w + 1 for w in word_ids[:-1]] + [len(first) + 1]])
        logits = module.network.tag_logits(
            {**batch, "word_index": slots, "word_mask": torch.ones(1, len(first) + 2, dtype=torch.bool)}
        )[0]
    k = module.label_space.corpus_index["NCBI-disease"]
    columns = module.layout.columns[k][module.layout.valid[k]]
    torch.testing.assert_close(theirs, logits[:, columns], rtol=1e-5, atol=1e-5)


def _refused(argv: list[str], capsys) -> str:
    assert export.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(
    "case, needle",
    [
        ("sru_ner", "SRU-NER is a transition system"),
        ("tabert_cnn", "TabERT-CNN scores a word-pair table"),
        ("two", "pick one with --corpus (BC5CDR, NCBI-disease)"),
        ("unknown corpus", "the model knows BC5CDR, NCBI-disease, not JNLPBA"),
        ("not empty", "exists and is not empty"),
        ("corpus without format", "--corpus NAME goes with --format transformers"),
    ],
)
def test_refusals_are_one_error_line_and_write_nothing(case, needle, tiny, tmp_path, capsys):
    out = tmp_path / "out"
    checkpoint = str(tiny.get(case, tiny["two"]))
    argv = [checkpoint, str(out), "--format", "transformers"]
    if case == "unknown corpus":
        argv += ["--corpus", "JNLPBA"]
    if case == "not empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    if case == "corpus without format":
        argv = [checkpoint, str(out), "--corpus", "BC5CDR"]
    assert needle in _refused(argv, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if case == "not empty" else [])
    if case == "not empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_max_pooled_baseline_exports_with_a_warning(tiny, tmp_path, capsys):
    assert export.main([str(tiny["max"]), str(tmp_path / "tfx"), "--format", "transformers"]) == 0
    assert (
        "warning: " in capsys.readouterr().err
        and "first subword" in (tmp_path / "tfx" / "README.md").read_text()
    )


@pytest.mark.parametrize("model", ["first", "sru_ner", "tabert_cnn"])
def test_from_pretrained_predicts_as_load(model, tiny, tmp_path):
    assert export.main([str(tiny[model]), str(tmp_path / "export")]) == 0
    tagger = Tagger.from_pretrained(tmp_path / "export", device="cpu")
    assert isinstance(tagger, Tagger)
    assert tagger.predict(TEXTS) == load(tmp_path / "export", device="cpu").predict(TEXTS)


# --- the pipeline against predict.py on the bundled BC5CDR abstracts ------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A first-pooled baseline: the offline MiniLM, 20 steps of 8 BC5CDR sample sentences."""
    from datamodules.multi_corpus import Collator
    from datamodules.rows import tokenize_corpus

    root = tmp_path_factory.mktemp("trained")
    cfg = run_config(compose([]).encoder.name, "baseline", ("BC5CDR",), "model.pooling=first")
    label_space = label_space_of(["BC5CDR"])
    torch.manual_seed(0)
    module = build_module(cfg, label_space)
    tokenizer = load_tokenizer(cfg["encoder"]["name"])
    sentences = read_split(resolve("BC5CDR"), samples_dir(), "train").sentences
    rows, _ = tokenize_corpus(sentences, tokenizer, label_space, "BC5CDR")
    rows = [{**rows[i], "corpus_id": 0} for i in range(len(rows))]
    collate = Collator(tokenizer.pad_token_id, module.target_encoder())
    network = module.network
    optimizer = torch.optim.AdamW(
        [
            {"params": network.encoder.parameters(), "lr": 1e-4},
            {"params": network.heads.parameters(), "lr": 3e-3},
        ]
    )
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    module.train()
    for step in range(20):
        batch = collate([rows[order[(8 * step + i) % len(rows)]] for i in range(8)])
        loss = module.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_checkpoint(module.eval(), root / "first.ckpt")


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "tfx"
    assert export.main([str(trained), str(out), "--format", "transformers", "--corpus", "BC5CDR"]) == 0
    return out


@pytest.fixture(scope="module")
def abstracts() -> list:
    return bundled_abstracts()[:20]


@pytest.fixture(scope="module")
def ours(trained, abstracts) -> set:
    return our_mentions(load(trained, device="cpu"), abstracts, "BC5CDR")


@pytest.mark.slow
def test_the_pipeline_finds_the_mentions_predict_finds(exported, ours, abstracts):
    theirs = pipeline_mentions(exported, abstracts, unit="sentence", aggregation="first")
    agreement = Agreement(ours, theirs)
    assert len(ours) >= 50  # trained enough to tag
    assert agreement.percent >= 95, (len(agreement.only_ours), len(agreement.only_pipeline))


@pytest.mark.slow
def test_the_check_fails_when_the_classifier_rows_are_permuted(exported, ours, abstracts, tmp_path):
    permuted = tmp_path / "permuted"
    shutil.copytree(exported, permuted)
    permute_rows(permuted)
    theirs = pipeline_mentions(permuted, abstracts, unit="sentence", aggregation="first")
    assert Agreement(ours, theirs).percent < 95


@pytest.mark.slow
def test_from_pretrained_of_the_trained_export_predicts_as_load(trained, tmp_path):
    assert export.main([str(trained), str(tmp_path / "export")]) == 0
    documents = bundled_abstracts()[:5]
    found = Tagger.from_pretrained(tmp_path / "export", device="cpu").annotate(documents, corpus="BC5CDR")
    assert found == load(tmp_path / "export", device="cpu").annotate(documents, corpus="BC5CDR")
    assert sum(map(len, found)) > 0


@pytest.mark.parametrize(("root", "datasets"), [(None, None), ("/corpora/full", ["chintagunta85/BC5CDR"])])
def test_the_token_classifiers_card_is_what_the_hub_reads(root, datasets, tmp_path):
    """Dataset ids only for a run on the full corpora (the samples' splits are no Hub dataset's)."""
    from huggingface_hub import ModelCard

    encoder = tiny_encoder_dir(tmp_path / "encoder")
    overrides = ["model.pooling=first"] + ([f"data.root={root}"] if root else [])
    cfg = run_config(str(encoder), "baseline", ("BC5CDR",), *overrides)
    torch.manual_seed(0)
    module = build_module(cfg, label_space_of(["BC5CDR"]), encoder_config=tiny_bert_config().to_dict())
    checkpoint = save_checkpoint(module, tmp_path / "tiny.ckpt")
    assert export.main([str(checkpoint), str(tmp_path / "out"), "--format", "transformers"]) == 0
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "token-classification"
    assert card.data.datasets == datasets
    assert card.data.license == "other" and "bioner-mtl" in card.data.tags
