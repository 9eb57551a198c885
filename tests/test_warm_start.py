"""Warm start (``init_from``, ``training/warm_start.py``): with the same corpora a run starts
from exactly the source's weights and predictions; with other corpora the rows of shared types are the
source's (at the row indices worked out by hand below) and the others are the run's fresh initialisation;
``init_map=merged`` carries a registered corpus onto a user corpus; the one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_models import collate_sentences, tiny_bert_config
from train_runner import ROOT, run_train, tiny_encoder_dir, tiny_run_args

import train
from datamodules.corpora import label_space_of
from datamodules.label_space import LabelSpace
from datamodules.sentence import Sentence, Span
from lightning_modules.registry import build_module
from training.warm_start import WarmStartError, label_mapping, warm_start

MODELS = {
    "sru_ner": {"name": "sru_ner"},
    "baseline": {"name": "baseline"},
    "tabert_cnn": {"name": "tabert_cnn", "channels": 16, "pair_dim": 8},
}
SOURCE = ["BC5CDR", "NCBI-disease"]  # types: 0 BC5CDR/Chemical, 1 BC5CDR/Disease, 2 NCBI-disease/Disease
SUBSET = ["JNLPBA", "NCBI-disease"]  # 0..4 JNLPBA's five types, 5 NCBI-disease/Disease


def _build(model: dict, label_space: LabelSpace, seed: int = 0):
    torch.manual_seed(seed)
    cfg = {"encoder": {"name": "tiny"}, "model": model}
    return build_module(cfg, label_space, tiny_bert_config().to_dict())


def _trained_source(name: str) -> tuple:
    """A source whose weights are far from any fresh initialisation (so it predicts mentions)."""
    source = _build(MODELS[name], label_space_of(SOURCE), seed=1)
    torch.manual_seed(2)
    with torch.no_grad():
        for key, value in source.state_dict().items():
            if key.startswith("network.") and value.is_floating_point():
                value.add_(torch.randn_like(value))
    return source, {k: v.clone() for k, v in source.state_dict().items()}


def _network(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("network.")}


SENTENCES = [
    Sentence(("the", "acid", "levels", "in", "cancer", "patients"), (Span(1, 2, "Chemical"),), "BC5CDR"),
    Sentence(("human", "cancer", "disease", "."), (Span(1, 3, "Disease"),), "NCBI-disease"),
]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_same_corpora_start_from_exactly_the_sources_weights_and_predictions(name, tmp_path):
    source, state = _trained_source(name)
    run = _build(MODELS[name], label_space_of(SOURCE))
    report = warm_start(run, state, source.label_space, source_name="src")
    for key, value in _network(state).items():
        assert torch.equal(run.state_dict()[key], value), key
    assert report.new == [] and report.dropped == [] and len(report.kept) == 3
    fresh = _build(MODELS[name], label_space_of(SOURCE)).eval()
    batch = collate_sentences(tmp_path, SENTENCES, source.label_space, source.target_encoder())
    want, got = source.eval().predict(batch), run.eval().predict(batch)
    assert got.spans == want.spans
    if name != "sru_ner":  # these random weights give SRU-NER no mention; its loss below covers it
        assert sum(map(len, want.spans)) > 0 and fresh.predict(batch).spans != want.spans
    if want.scores is not None:
        assert all(
            torch.equal(torch.as_tensor(g), torch.as_tensor(w)) for g, w in zip(got.scores, want.scores)
        )
    with torch.no_grad():  # eval mode: no dropout, so the loss is a function of the weights alone
        loss = source.loss_terms(batch).total
        assert torch.equal(run.loss_terms(batch).total, loss)
        assert not torch.equal(fresh.loss_terms(batch).total, loss)  # the comparison can fail


# (state-dict key, rows of the run, the source's rows they come from), worked out from each model's
# layout for SOURCE -> SUBSET: only NCBI-disease/Disease is shared (source type 2, run type 5)
SUBSET_ROWS = {
    "sru_ner": [  # EOA 0, SHIFT 1, TR(k) 2 + 2k, RE(k) 3 + 2k
        ("network.head.mlp.3.weight", [0, 1, 12, 13], [0, 1, 6, 7]),
        ("network.head.mlp.3.bias", [0, 1, 12, 13], [0, 1, 6, 7]),
        ("network.head.action_embeddings.weight", [0, 1, 12, 13], [0, 1, 6, 7]),
        ("network.head.read_params.latents", list(range(16)), list(range(16))),  # 2 x 8 latents in the source
    ],
    # per corpus O, B-t, I-t; source: BC5CDR 0..4, NCBI-disease 5..7; run: JNLPBA 0..10, NCBI-disease 11..13
    "baseline": [
        ("network.heads.weight", [11, 12, 13], [5, 6, 7]),
        ("network.heads.bias", [11, 12, 13], [5, 6, 7]),
    ],
    "tabert_cnn": [  # one channel per type
        ("network.table.convs.1.weight", [5], [2]),
        ("network.table.convs.1.bias", [5], [2]),
    ],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_other_corpora_keep_the_shared_types_rows_and_start_the_new_ones_fresh(name):
    source, state = _trained_source(name)
    fresh = _build(MODELS[name], label_space_of(SUBSET))
    run = _build(MODELS[name], label_space_of(SUBSET))
    report = warm_start(run, state, source.label_space, source_name="src")
    assert report.kept == {"NCBI-disease/Disease": "NCBI-disease/Disease"}
    assert report.dropped == ["BC5CDR/Chemical", "BC5CDR/Disease"] and len(report.new) == 5
    got, initial = run.state_dict(), fresh.state_dict()
    typed = {key for key, _, _ in SUBSET_ROWS[name]}
    for key, rows, source_rows in SUBSET_ROWS[name]:
        assert torch.equal(got[key][rows], state[key][source_rows]), key
        others = [i for i in range(got[key].shape[0]) if i not in rows]
        assert torch.equal(got[key][others], initial[key][others]), key
        assert not torch.equal(got[key], initial[key])
    for key, value in _network(state).items():
        if key not in typed:
            assert torch.equal(got[key], value), key


@pytest.mark.parametrize("name", sorted(MODELS))
def test_merged_mapping_carries_a_registered_corpus_onto_a_user_corpus(name):
    source = _build(MODELS[name], label_space_of(["BC5CDR"]), seed=1)
    state = source.state_dict()
    user = LabelSpace({"my-abstracts": ["Chemical", "Disease"]})
    run = _build(MODELS[name], user)
    report = warm_start(run, state, source.label_space, init_map="merged", source_name="src")
    assert report.kept == {
        "my-abstracts/Chemical": "BC5CDR/Chemical",
        "my-abstracts/Disease": "BC5CDR/Disease",
    }
    for key, value in _network(state).items():  # the same layout, every row mapped
        assert torch.equal(run.state_dict()[key], value), key
    by_name = _build(MODELS[name], user)
    assert warm_start(by_name, state, source.label_space, source_name="src").kept == {}


def test_merged_mapping_picks_the_source_corpus_with_most_of_the_types():
    source = label_space_of(["BC4CHEMD", "BC5CDR", "NCBI-disease"])
    mapping = label_mapping(
        LabelSpace({"mine": ["Chemical", "Disease"], "other": ["Disease"]}), source, "merged"
    )
    assert mapping.corpora == {"mine": "BC5CDR", "other": "BC5CDR"}  # BC5CDR before NCBI-disease by name
    assert mapping.types["mine/Chemical"] == "BC5CDR/Chemical"
    assert label_mapping(LabelSpace({"x": ["Species"]}), source, "merged").corpora == {}


def test_a_different_network_shape_names_the_parameter_and_a_model_without_rows_says_why():
    source = _build({**MODELS["tabert_cnn"], "channels": 32}, label_space_of(SOURCE))
    run = _build(MODELS["tabert_cnn"], label_space_of(SOURCE))
    shapes = r"init_from=src: network.table.convs.0.weight is \(32, 16, 3, 3\) in the source and \(16, 16"
    with pytest.raises(WarmStartError, match=shapes):
        warm_start(run, source.state_dict(), source.label_space, source_name="src")
    from omegaconf import OmegaConf

    from training.warm_start import InitSource, apply_init

    origin = InitSource(
        "src",
        "tabert_cnn",
        {"model": {**MODELS["tabert_cnn"], "channels": 32}},
        source.label_space,
        source.state_dict(),
        None,
        "tiny",
        0,
    )
    cfg = OmegaConf.create({"model": MODELS["tabert_cnn"], "init_map": "qualified"})
    with pytest.raises(
        WarmStartError, match=r"here; the model settings differ \(model.channels: 32 there, 16 here\)$"
    ):
        apply_init(run, origin, cfg)
    with pytest.raises(WarmStartError, match="does not say how its type-dependent parameters map"):
        type(run).type_rows, saved = classmethod(lambda cls, c, ls: None), type(run).type_rows
        try:
            warm_start(run, source.state_dict(), source.label_space, source_name="src")
        finally:
            type(run).type_rows = classmethod(saved.__func__)


# --- train.py --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """SRU-NER with a tiny encoder, 6 steps on the BC5CDR and NCBI-disease samples, tested."""
    tmp = tmp_path_factory.mktemp("warm")
    encoder = tiny_encoder_dir(tmp / "enc")
    run_dir = tmp / "source"
    args = [
        *tiny_run_args(tmp, run_dir, encoder, "BC5CDR,NCBI-disease"),
        "trainer.max_steps=6",
        "data.samples_per_epoch=48",
        "model.lr=5e-3",
    ]
    proc = run_train(args, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, run_dir, encoder


def _args(tmp: Path, run_dir: Path, corpora: str, *extra: str) -> list[str]:
    args = [
        a for a in tiny_run_args(tmp, run_dir, Path("unused"), corpora) if not a.startswith("encoder.name=")
    ]
    return [*args, *extra]


@pytest.mark.slow
def test_train_py_from_a_checkpoint_and_an_export_starts_at_the_sources_test_scores(source_run):
    tmp, source_dir, _ = source_run
    import json

    want = json.loads((source_dir / "metrics.json").read_text())
    best = want["best_checkpoint"]
    export_dir = tmp / "exported"
    assert run_export(best, export_dir) == 0
    for name, origin in (("from-ckpt", best), ("from-export", str(export_dir))):
        run_dir = tmp / name
        proc = run_train(
            _args(tmp, run_dir, "BC5CDR,NCBI-disease", f"init_from={origin}", "trainer.max_steps=0"), tmp
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"init_from={origin} (init_map=qualified)" in proc.stdout
        got = json.loads((run_dir / "metrics.json").read_text())
        test = [k for k in want if k.startswith("test/")]
        assert len(test) > 10 and {k: got[k] for k in test} == {k: want[k] for k in test}, name
        card = (run_dir / "README.md").read_text()
        assert (
            "## Warm start" in card
            and "- kept (3): BC5CDR/Chemical, BC5CDR/Disease, NCBI-disease/Disease" in card
        )


def run_export(checkpoint: str, out: Path) -> int:
    import export

    return export.main([checkpoint, str(out)])


@pytest.mark.slow
def test_train_py_warm_starts_a_user_corpus_by_merged_types_and_trains(source_run):
    tmp, source_dir, _ = source_run
    user = tmp / "my-abstracts"
    shutil.copytree(ROOT / "datamodules" / "samples" / "BC5CDR", user)
    run_dir = tmp / "user-run"
    best = str(source_dir / "checkpoints" / "last.ckpt")
    proc = run_train(
        _args(
            tmp,
            run_dir,
            str(user),
            f"init_from={best}",
            "init_map=merged",
            "trainer.max_steps=2",
            "test_after_fit=false",
        ),
        tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "kept (2): my-abstracts/Chemical <- BC5CDR/Chemical, my-abstracts/Disease <- BC5CDR/Disease"
        in proc.stdout
    )
    assert "dropped, in the source only (1): NCBI-disease/Disease" in proc.stdout
    # a warm start is a new run: the same command again finds the run's checkpoint
    again = run_train(_args(tmp, run_dir, str(user), f"init_from={best}", "init_map=merged"), tmp)
    assert again.returncode == 2
    assert (
        again.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: run_dir={run_dir} already holds checkpoints")
    )
    resumed = run_train(
        _args(
            tmp,
            run_dir,
            str(user),
            f"init_from={best}",
            "init_map=merged",
            "resume=auto",
            "trainer.max_steps=3",
            "test_after_fit=false",
        ),
        tmp,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not applied, the run resumes its own checkpoint" in resumed.stdout


@pytest.mark.slow
def test_train_py_refuses_an_unreadable_source_and_another_model_in_one_line(tmp_path, capsys, source_run):
    tmp, source_dir, _ = source_run
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [
        ([f"init_from={garbage}"], f"error: {garbage}"),
        (
            [f"init_from={tmp_path / 'missing'}"],
            f"error: init_from={tmp_path / 'missing'}: no such checkpoint file",
        ),
        ([f"init_from={tmp_path}"], f"error: init_from={tmp_path}: a directory without bioner_model.json"),
        (
            [f"init_from={source_dir / 'checkpoints' / 'last.ckpt'}", "model=baseline"],
            "cannot start a baseline run",
        ),
    ]
    for extra, message in cases:
        code = train.main(_args(tmp_path, tmp_path / "run", "BC5CDR", *extra))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], (extra, err)
