"""The model contract (``lightning_modules/base.py``): checkpoints of the earlier format still load (same
state_dict keys and shapes for every model), a model class that misses an abstract method is refused at
registration, ``SRUNERConfig`` lists exactly the SRU head's settings, and TabERT-CNN's class weights come
from the declared training-rows hook and survive a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_bert_config
from train_runner import tiny_encoder_dir, tiny_run_args

import train
from datamodules.corpora import label_space_of
from lightning_modules.base import SpanNERModule
from lightning_modules.checkpoints import read_checkpoint
from lightning_modules.outputs import LossTerms
from lightning_modules.registry import build_module, register_model

KEYS = json.loads((Path(__file__).parent / "checkpoint_keys.json").read_text())["state_dict"]
TWO_CORPORA = ["BC5CDR", "NCBI-disease"]
TABERT = {"name": "tabert_cnn", "channels": 16, "pair_dim": 8}
# the model configurations whose state_dict keys checkpoint_keys.json recorded
CASES = {
    "sru_ner": (TWO_CORPORA, {"name": "sru_ner"}),
    "sru_ner_dense": (TWO_CORPORA, {"name": "sru_ner", "memory": "dense", "train_token_multiplier": True}),
    "baseline": (TWO_CORPORA, {"name": "baseline"}),
    "tabert_cnn_span": (TWO_CORPORA, TABERT),
    "tabert_cnn_paper": (["CoNLL04"], {**TABERT, "class_weighting": "welt"}),
    "tabert_cnn_straight": (
        ["CoNLL04"],
        {**TABERT, "mode": "span", "pair_dim": 0, "first_layer": "straightforward"},
    ),
}


def _build(corpora: list[str], model: dict) -> SpanNERModule:
    cfg = {"encoder": {"name": "tiny"}, "model": model}
    return build_module(cfg, label_space_of(corpora), tiny_bert_config().to_dict())


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_keys_are_those_of_existing_checkpoints(case):
    """Every key of an existing checkpoint, and no other except the model state that older checkpoints
    may lack (``register_model_state``: loss weights and decision thresholds, issue 33)."""
    module = _build(*CASES[case])
    optional = module.optional_state_keys
    state = module.state_dict()
    assert [[k, list(v.shape)] for k, v in state.items() if k not in optional] == KEYS[case]
    assert optional <= {"action_pos_weight", "action_neg_weight", "type_thresholds"}


@pytest.mark.parametrize("case", ["sru_ner", "tabert_cnn_span"])
def test_a_checkpoint_without_the_newer_model_state_loads(tmp_path, case):
    """A checkpoint written before the weights and thresholds were model state loads through
    ``load_module`` (its checks included) with weights 1 and the default thresholds."""
    from lightning_modules.registry import load_module

    module = _build(*CASES[case])
    state = {k: v for k, v in module.state_dict().items() if k not in module.optional_state_keys}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(module.hparams)}, path)
    loaded = load_module(path)
    assert loaded.thresholds().tolist() == [0.5] * len(loaded.label_space)
    if case == "sru_ner":
        assert loaded.action_pos_weight.tolist() == [1.0] * loaded.vocab.size


def test_a_model_missing_part_of_the_contract_is_refused_at_registration():
    class NoPredict(SpanNERModule):
        @classmethod
        def build_network(cls, config, label_space, encoder):
            return torch.nn.Linear(1, 1)

        def target_encoder(self):
            return lambda batch: batch

        def loss_terms(self, batch):
            return LossTerms(torch.zeros(()), 1)

    with pytest.raises(TypeError, match="NoPredict does not implement predict"):
        register_model("no_predict_test", description="x")(NoPredict)


def test_the_sru_network_is_built_from_its_model_config():
    """One list of the head's settings: the network reads SRUNERConfig itself."""
    from lightning_modules.sru_ner.config import SRUNERConfig
    from lightning_modules.sru_ner.network import SRUHead

    config = SRUNERConfig(name="sru_ner", half_context=7, action_space_dim=3, dropout_mlp=0.25)
    head = SRUHead(config, num_actions=6, hidden=4)
    assert head.cfg is config
    assert head.read_params.positions.num_embeddings == 2 * 7 + 4  # offsets -7..7, padding, 2 ends
    assert head.read_params.latents.shape[0] == 3 * 6  # J = action_space_dim x actions
    weights = head.weights()
    assert weights.dropout == 0.25 and weights.w2.shape == (6, 2 * 4) and weights.b2.shape == (6,)
    with pytest.raises(ValueError, match="model.omega must be 'softmax' or 'logits'"):
        SRUNERConfig(omega="other")
    with pytest.raises(ValueError, match="model.loop must be 'fused' or 'autograd'"):
        SRUNERConfig(loop="other")


def test_tabert_cnn_and_weighted_sru_ner_use_training_rows():
    users = {
        name: _build(TWO_CORPORA, settings).uses_training_rows
        for name, settings in (
            ("baseline", {"name": "baseline"}), ("sru_ner", {"name": "sru_ner"}),
            ("sru_ner_welt", {"name": "sru_ner", "action_weighting": "welt"}), ("tabert_cnn", TABERT),
        )
    }  # fmt: skip
    assert users == {"baseline": False, "sru_ner": False, "sru_ner_welt": True, "tabert_cnn": True}


def test_tabert_class_weights_come_from_the_training_rows_hook():
    from losses import welt_binary_weights

    rows = {
        "BC5CDR": {"num_words": [3, 2], "spans": [[0, 1, 0, 1, 3, 1], [1, 2, 0]]},
        "NCBI-disease": {"num_words": [4], "spans": [[]]},
    }
    unweighted = _build(TWO_CORPORA, TABERT)
    unweighted.learn_from_training_rows(rows)
    assert unweighted.span_pos_weight.tolist() == [1.0, 1.0, 1.0]

    module = _build(TWO_CORPORA, {**TABERT, "class_weighting": "welt"})
    module.learn_from_training_rows(rows)
    # by hand: BC5CDR has 6 + 3 cells (i <= j) over its two sentences, NCBI-disease 10; Chemical (type 0)
    # has 2 mentions, BC5CDR/Disease 1, NCBI-disease/Disease none
    w_pos, w_neg = welt_binary_weights(torch.tensor([2, 1, 0]), torch.tensor([7, 8, 10]))
    assert torch.equal(module.span_pos_weight, w_pos) and torch.equal(module.span_neg_weight, w_neg)
    assert module.span_pos_weight.tolist() != [1.0, 1.0, 1.0]
    # a checkpoint carries them: a model rebuilt from hyper_parameters gets them from its state_dict
    rebuilt = type(module).build(**module.hparams)
    rebuilt.load_state_dict(module.state_dict())
    assert torch.equal(rebuilt.span_pos_weight, w_pos) and torch.equal(rebuilt.span_neg_weight, w_neg)


def test_tabert_welt_weights_of_a_train_py_run_and_of_its_resume(tmp_path):
    """The weights of a run are WeLT's over its training rows, and a resumed run keeps the same ones."""
    from omegaconf import OmegaConf

    from datamodules.multi_corpus import MultiCorpusDataModule
    from losses import welt_binary_weights

    encoder = tiny_encoder_dir(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    args = [
        *tiny_run_args(tmp_path, run_dir, encoder),
        "data.samples_per_epoch=16",
        "test_after_fit=false",
        "model=tabert_cnn",
        "model.class_weighting=welt",
        "model.channels=16",
        "model.pair_dim=8",
    ]
    assert train.main([*args, "trainer.max_steps=1"]) == 0
    first = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    cfg = OmegaConf.create(first["hyper_parameters"]["cfg"])
    data = MultiCorpusDataModule.from_config(cfg)
    positives, negatives = torch.zeros(len(data.label_space)), torch.zeros(len(data.label_space))
    for rows in data.training_rows().values():  # one corpus here: every type is its own
        for n, spans in zip(rows["num_words"], rows["spans"]):
            types = torch.tensor(list(spans[2::3]), dtype=torch.long)
            positives += torch.bincount(types, minlength=len(data.label_space))
            negatives += n * (n + 1) // 2 - torch.bincount(types, minlength=len(data.label_space))
    expected = welt_binary_weights(positives, negatives)
    assert torch.equal(first["state_dict"]["span_pos_weight"], expected[0])
    assert torch.equal(first["state_dict"]["span_neg_weight"], expected[1])

    assert train.main([*args, "resume=last", "trainer.max_steps=2"]) == 0
    resumed = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 2
    for key in ("span_pos_weight", "span_neg_weight"):
        assert torch.equal(resumed["state_dict"][key], first["state_dict"][key])
