"""The model interface: a model defined here, registered, trains through train.py's entry point; checkpoints
name their model, so a resume rebuilds it without flags; the schedule length comes from the data module."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_runner import tiny_encoder_dir, tiny_run_args

import train
from configs.compose import ConfigError, compose
from lightning_modules.base import ModelConfig, SpanNERModule
from lightning_modules.checkpoints import read_checkpoint
from lightning_modules.optimisation import linear_warmup_decay
from lightning_modules.outputs import LossTerms, Prediction
from lightning_modules.registry import get_model, load_module, register_model
from training.resume import with_checkpoint_model


@dataclass
class OneWordConfig(ModelConfig):
    threshold: float = 0.5


class OneWordTargets:
    """(B, N, M) multi-hot: word i is a one-word mention of type t."""

    def __init__(self, num_types: int):
        self.num_types = num_types

    def __call__(self, batch: dict) -> dict:
        width = int(batch["num_words"].max())
        target = torch.zeros(len(batch["spans"]), width, self.num_types)
        for b, spans in enumerate(batch["spans"]):
            for start, end, type_id in spans.tolist():
                if end == start + 1:
                    target[b, start, type_id] = 1.0
        batch["one_word"] = target
        return batch


class OneWordNetwork(nn.Module):
    def __init__(self, encoder: nn.Module, num_types: int):
        super().__init__()
        self.encoder = encoder
        self.out = nn.Linear(encoder.hidden_size, num_types)

    def forward(self, batch: dict) -> torch.Tensor:  # (B, N, M) logits
        q = batch["word_mask"].shape[1]
        slots = self.encoder(batch["input_ids"], batch["attention_mask"], batch["word_index"], q)
        return self.out(slots[:, 1 : q - 1])


@register_model("one_word_test", description="test model: one-word mentions only")
class OneWordModule(SpanNERModule):
    config_class = OneWordConfig
    input_keys = (*SpanNERModule.input_keys, "one_word")

    @classmethod
    def build_network(cls, config, label_space, encoder):
        return OneWordNetwork(encoder, len(label_space))

    def target_encoder(self):
        return OneWordTargets(len(self.label_space))

    def loss_terms(self, batch):  # the mean BCE over every (word, type) cell of the batch
        target = batch["one_word"]
        total = F.binary_cross_entropy_with_logits(self.network(batch), target, reduction="sum")
        return LossTerms(total, target.numel())

    def predict(self, batch):
        hits = (self.network(batch).sigmoid() > self.model_cfg.threshold).cpu()
        out = [[] for _ in batch["spans"]]
        for b, i, t in hits.nonzero().tolist():
            if i < int(batch["num_words"][b]):
                out[b].append((i, i + 1, t))
        return Prediction(out)


def _args(tmp_path: Path, run_dir: Path, encoder: Path, *extra: str) -> list[str]:
    base = tiny_run_args(tmp_path, run_dir, encoder)
    return [*base, "data.samples_per_epoch=32", "trainer.limit_test_batches=1", *extra]


def test_a_model_defined_in_a_test_trains_through_train_py_and_resumes_without_flags(tmp_path):
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    args = _args(tmp_path, run_dir, encoder)
    assert train.main([*args, "model=one_word_test", "model.threshold=0.4", "trainer.max_steps=2"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "test/merged/BC5CDR/Chemical/f1" in metrics

    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2
    assert last["hyper_parameters"]["cfg"]["model"] == {
        "name": "one_word_test", "lr": 5e-4, "weight_decay": 1e-3, "warmup_epochs": 0.2, "threshold": 0.4,
    }  # fmt: skip
    assert {k.split(".")[1] for k in last["state_dict"]} == {"encoder", "out"}

    # no model= on the command line: the checkpoint's model is rebuilt, not the default (sru_ner)
    assert train.main([*args, "resume=last", "model.threshold=0.4", "trainer.max_steps=4"]) == 0
    resumed = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 4
    assert resumed["hyper_parameters"]["cfg"]["model"]["name"] == "one_word_test"
    assert resumed["hyper_parameters"]["cfg"]["model"]["threshold"] == 0.4

    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    assert type(module) is OneWordModule and module.model_cfg.threshold == 0.4
    assert torch.equal(module.network.out.weight, resumed["state_dict"]["network.out.weight"])


def test_resuming_with_another_model_is_a_one_line_error(tmp_path, capsys):
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    args = _args(tmp_path, run_dir, encoder, "test_after_fit=false")
    assert train.main([*args, "model=one_word_test", "trainer.max_steps=1"]) == 0
    capsys.readouterr()
    assert train.main([*args, "model=baseline", "resume=last", "trainer.max_steps=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # (transformers prints a weight-loading bar first)
    assert err[-1].startswith("error: ") and "Traceback" not in "".join(err)
    assert "trained with model=one_word_test, this run has model=baseline" in err[-1]


def test_registry_lookups():
    assert get_model("one_word_test").module_class is OneWordModule
    assert get_model("one_word_test").config_class is OneWordConfig
    with pytest.raises(ValueError, match="already registered"):
        register_model("sru_ner", description="x")(OneWordModule)
    cfg = compose(["model=one_word_test", "model.threshold=0.7"])
    assert cfg.model.threshold == 0.7
    with pytest.raises(ConfigError, match="Did you mean: 'threshold'"):
        compose(["model=one_word_test", "model.treshold=0.7"])
    with pytest.raises(ConfigError, match="could not be converted to Float"):
        compose(["model=one_word_test", "model.threshold=high"])


def test_model_name_set_in_a_config_file_is_an_error(tmp_path, monkeypatch):
    import configs.compose as compose_module

    (tmp_path / "sneaky.yaml").write_text("model:\n  name: baseline\n")
    monkeypatch.setitem(compose_module.GROUPS, "experiment", tmp_path)
    with pytest.raises(
        ConfigError, match="model.name=baseline in a config file: choose models with model=NAME"
    ):
        compose(["experiment=sneaky"])


def test_schedule_length_comes_from_the_data_module(tmp_path):
    """steps per epoch = ceil(epoch / batch) for the data module's epoch, on any number of processes
    (data.batch_size is the global batch); a batch that does not split is a one-line ConfigError."""
    from datamodules.multi_corpus import MultiCorpusDataModule

    encoder = tiny_encoder_dir(tmp_path / "tiny")
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    cfg = compose([f"encoder.name={encoder}", cache, "data.corpora=[BC5CDR,NCBI-disease]"])
    data = MultiCorpusDataModule.from_config(cfg)
    cfg.data.samples_per_epoch = None
    mean_size = MultiCorpusDataModule.from_config(cfg)
    assert data.train_steps_per_epoch(1, 1) == 1600 // 16 == 100
    assert data.train_steps_per_epoch(2, 1) == data.train_steps_per_epoch(4, 2) == 100  # 8 or 2 per rank
    with pytest.raises(ConfigError, match="set data.batch_size to a multiple of 3"):
        data.train_steps_per_epoch(3, 1)
    steps = mean_size.train_steps_per_epoch(2, 1)
    sizes = [len(mean_size.datasets["train"][c]) for c in ("BC5CDR", "NCBI-disease")]
    assert steps == math.ceil((sum(sizes) // 2) / 16)  # epoch = mean train size, floored
    # the sampler the loader uses agrees
    assert len(data.train_dataloader()) == 100


def test_linear_warmup_then_decay():
    f = linear_warmup_decay(4, 12)
    assert [f(s) for s in (0, 2, 4, 8, 12, 20)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    assert linear_warmup_decay(0, 10)(0) == 1.0


def test_help_lists_every_registered_model(capsys):
    assert train.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "models (model=NAME; the default is sru_ner):" in out
    for name in ("baseline", "sru_ner", "one_word_test"):
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name


def test_a_checkpoint_path_names_its_model(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"cfg": {"model": {"name": "baseline"}}}}, path)
    assert with_checkpoint_model([f"resume={path}", "a=1"]) == [
        "model=baseline",
        f"resume={path}",
        "a=1",
    ]
    assert with_checkpoint_model(["model=sru_ner", f"resume={path}"]) == [
        "model=sru_ner",
        f"resume={path}",
    ]
    (tmp_path / "bad.ckpt").write_bytes(b"cut")
    assert with_checkpoint_model([f"resume={tmp_path / 'bad.ckpt'}"]) == [f"resume={tmp_path / 'bad.ckpt'}"]
