"""A model's description from a file is checked before anything is allocated (issue 29, item 4).

An export's ``bioner_model.json`` and a checkpoint's ``hyper_parameters`` describe the network that is
built before the weights are loaded into it. A description claiming 10^6 types or 10^5-wide layers, or one
the weights do not match, is refused in one ``error:`` line naming the file and the key, before the network
is built (peak RSS under 1 GB, measured in a child process); wrong types in a checkpoint's contents are one
line from predict.py, evaluate.py and export.py, not a traceback.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fuzz_cases import make_models, set_key
from train_runner import ROOT

import evaluate
import export
import predict
from errors import CheckpointError
from inference import load

BERT_LARGE = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The fixture checkpoint with its ``encoder.name`` made absolute, its export, and its contents."""
    models = make_models(tmp_path_factory.mktemp("made"))
    return models.checkpoint, models.export, models.contents


def _export_variant(made, tmp_path: Path, change) -> Path:
    directory = tmp_path / "export"
    shutil.copytree(made[1], directory)
    meta = json.loads((directory / "bioner_model.json").read_text())
    change(meta, directory)
    (directory / "bioner_model.json").write_text(json.dumps(meta))
    return directory


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert "Traceback" not in stderr
    return lines[0]


# --- exports: limits and the safetensors header, before allocation ------------------------------------
def _types(n: int):
    return lambda meta, d: meta.__setitem__("label_space", {"C": [f"T{i}" for i in range(n)]})


RSS_CASES = {
    "a million types": (_types(10**6), "label_space"),
    "100,000-wide layers": (
        lambda meta, d: meta["encoder_config"].update(hidden_size=100_000),
        "hidden_size",
    ),
    "BERT-large sizes on tiny weights": (
        lambda meta, d: meta["encoder_config"].update(BERT_LARGE),
        "parameters do not match",
    ),
}
_RUN_AND_MEASURE = """
import resource, subprocess, sys
limit = 4 * 2**30  # a safety net: code that allocates the claimed sizes fails here instead of swapping
child = subprocess.run(
    sys.argv[1:], preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    capture_output=True, text=True,
)
sys.stderr.write(child.stderr)
print(child.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.parametrize("case", sorted(RSS_CASES))
def test_an_oversized_export_is_refused_before_allocating(made, tmp_path, case):
    change, key = RSS_CASES[case]
    directory = _export_variant(made, tmp_path, change)
    (tmp_path / "in.txt").write_text("aspirin induced cancer .")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    measured = subprocess.run(
        [sys.executable, "-c", _RUN_AND_MEASURE, sys.executable, str(ROOT / "predict.py"), str(directory),
         str(tmp_path / "in.txt"), "--device", "cpu"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    code, peak_kib = map(int, measured.stdout.split())
    line = _one_error_line(measured.stderr)
    assert code == 2, measured.stderr[-2000:]
    assert line.startswith(f"error: {directory / 'bioner_model.json'}: ") and key in line, line
    assert peak_kib < 2**20, f"peak RSS {peak_kib / 2**20:.2f} GiB"


def _cut_weights(meta, directory: Path) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])


EXPORT_CASES = {
    "10,001 types": (_types(10_001), "bioner_model.json: label_space: more than 10,000 types"),
    "a million layers": (
        lambda m, d: m["encoder_config"].update(num_hidden_layers=10**6),
        "bioner_model.json: encoder_config.num_hidden_layers",
    ),
    "no attention heads": (
        lambda m, d: m["encoder_config"].update(num_attention_heads=0),
        "bioner_model.json: encoder_config.num_attention_heads",
    ),
    "a vocabulary size that is a string": (
        lambda m, d: m["encoder_config"].update(vocab_size="many"),
        "bioner_model.json: encoder_config.vocab_size: many",
    ),
    "no encoder_config": (
        lambda m, d: m.__setitem__("encoder_config", None),
        "bioner_model.json: encoder_config: missing",
    ),
    "label_space a list": (
        lambda m, d: m.__setitem__("label_space", ["C"]),
        "bioner_model.json: label_space: is a list",
    ),
    "an unknown model key": (
        lambda m, d: m["cfg"]["model"].update(extra=1),
        "bioner_model.json: cfg: TypeError",
    ),
    "no encoder section": (lambda m, d: m["cfg"].pop("encoder"), "bioner_model.json: cfg.encoder: missing"),
    "BERT-large sizes on tiny weights": (
        lambda m, d: m["encoder_config"].update(BERT_LARGE),
        "bioner_model.json: parameters do not match",
    ),
    "truncated weights": (_cut_weights, "model.safetensors: not a safetensors file"),
    "a 1 TB safetensors header": (
        lambda m, d: (d / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}"),
        "model.safetensors: not a safetensors file (a header length of 1099511627776",
    ),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_a_bad_export_is_one_line_naming_the_file_and_the_key(made, tmp_path, capsys, case):
    change, expected = EXPORT_CASES[case]
    directory = _export_variant(made, tmp_path, change)
    (tmp_path / "in.txt").write_text("aspirin")
    assert predict.main([str(directory), str(tmp_path / "in.txt"), "--device", "cpu"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {directory}/") and expected in line, line
    with pytest.raises(CheckpointError, match="^" + str(directory)):
        load(directory, device="cpu")


def test_the_export_of_the_fixture_still_loads_and_predicts(made):
    tagger = load(made[1], device="cpu")
    assert len(tagger.predict(["aspirin induced cancer in human patients ."])) == 1


# --- checkpoints: contents of the wrong type, limits, shapes before the build ---------------------------
def _set(*keys, value=None, drop=False):
    def change(contents):
        set_key(contents, keys, value, drop=drop)

    return change


CHECKPOINT_CASES = {
    "hyper_parameters a list": (_set("hyper_parameters", value=[1]), "hyper_parameters is a list"),
    "hyper_parameters a string": (_set("hyper_parameters", value="x"), "hyper_parameters is a str"),
    "state_dict a list": (_set("state_dict", value=[1]), "its state_dict is a list"),
    "no encoder section": (
        _set("hyper_parameters", "cfg", "encoder", drop=True),
        "hyper_parameters.cfg.encoder: missing",
    ),
    "lr=-1": (_set("hyper_parameters", "cfg", "model", "lr", value=-1), "model.lr must be > 0"),
    "an unknown model key": (
        _set("hyper_parameters", "cfg", "model", "bogus", value=1),
        "unexpected keyword argument 'bogus'",
    ),
    "a trainer section that is a list": (
        _set("hyper_parameters", "cfg", "trainer", value=[]),
        "hyper_parameters.cfg.trainer: is a list",
    ),
    "label_space a list": (_set("hyper_parameters", "label_space", value=["x"]), "label_space: is a list"),
    "10,001 types": (
        _set("hyper_parameters", "label_space", value={"C": [f"T{i}" for i in range(10_001)]}),
        "hyper_parameters.label_space: more than 10,000 types",
    ),
    "100,000-wide encoder": (
        _set("hyper_parameters", "encoder_config", value={"model_type": "bert", "hidden_size": 100_000}),
        "hyper_parameters.encoder_config.hidden_size",
    ),
    "num_attention_heads 0": (
        _set("hyper_parameters", "encoder_config", value={"model_type": "bert", "num_attention_heads": 0}),
        "hyper_parameters.encoder_config.num_attention_heads",
    ),
    "an unknown model name": (
        _set("hyper_parameters", "cfg", "model", "name", value="nope"),
        "hyper_parameters.cfg.model.name: unknown model 'nope'",
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_bad_checkpoint_contents_are_one_line_naming_the_file(made, tmp_path, capsys, case):
    change, expected = CHECKPOINT_CASES[case]
    contents = copy.deepcopy(made[2])
    change(contents)
    path = tmp_path / "bad.ckpt"
    torch.save(contents, path)
    (tmp_path / "in.txt").write_text("aspirin")
    calls = {
        "predict": lambda: predict.main([str(path), str(tmp_path / "in.txt"), "--device", "cpu"]),
        "evaluate": lambda: evaluate.main([str(path), "--no-wandb", "-o", str(tmp_path / "eval")]),
        "export": lambda: export.main([str(path), str(tmp_path / "exported")]),
    }
    for tool, call in calls.items():
        assert call() == 2, tool
        line = _one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: {path}: ") and expected in line, (tool, line)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "exported").exists()


def test_a_checkpoint_claiming_a_large_encoder_is_refused_before_the_network_is_built(
    made, tmp_path, capsys, monkeypatch
):
    """BERT-large sizes over the fixture's 16-wide weights: the mismatch is found on the ``meta`` device,
    and no encoder is ever built with storage."""
    import lightning_modules.base as base

    contents = copy.deepcopy(made[2])
    contents["hyper_parameters"]["encoder_config"] = {"model_type": "bert", **BERT_LARGE}
    path = tmp_path / "large.ckpt"
    torch.save(contents, path)
    devices = []
    build_encoder = base._build_encoder

    def recording(*args, **kwargs):
        devices.append(torch.get_default_device().type)
        return build_encoder(*args, **kwargs)

    monkeypatch.setattr(base, "_build_encoder", recording)
    (tmp_path / "in.txt").write_text("aspirin")
    assert predict.main([str(path), str(tmp_path / "in.txt"), "--device", "cpu"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {path}: parameters do not match this model: missing"), line
    assert set(devices) <= {"meta"}, devices


def test_a_good_checkpoint_still_loads(made):
    tagger = load(made[0], device="cpu")
    assert len(tagger.predict(["aspirin induced cancer in human patients ."])) == 1
