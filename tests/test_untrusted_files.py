"""Files from others run no code and block nothing (issue 29, items 1 and 2; ``untrusted.py``).

Remote code: an export directory whose ``tokenizer_config.json`` has an ``auto_map``, and a checkpoint whose
``encoder.name`` is an encoder directory with ``auto_map`` in ``config.json`` and ``tokenizer_config.json``,
each next to ``evil.py``, a module that creates a marker file when imported. ``echo y | predict.py ...`` and
``train.py init_from=...`` must exit 2 with one ``error:`` line naming the file and the key, print no
prompt, and import nothing (no marker). An ``attn_implementation`` that is not built in (a hub kernel) is
refused the same way wherever an encoder config comes from.

Special files: a FIFO as the input document, as the checkpoint, and as a file of an export directory must
be refused before it is opened (opening one blocks until a writer comes): exit 2, the entry point's
``main`` done within 5 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from fuzz_cases import add_json, plant
from tiny_models import tiny_bert_config
from train_runner import ROOT, clean_env, tiny_encoder_dir, tiny_run_args
from transformers import AutoTokenizer

import export
import predict
from lightning_modules.checkpoints import read_checkpoint
from untrusted import RemoteCodeError, pretrained, refuse_code_settings

OLD_CHECKPOINT = ROOT / "tests" / "fixtures" / "checkpoint_0b39895_baseline.ckpt"
KERNEL = "kernels-community/flash-attn"


def _checkpoint(path: Path, encoder: Path, encoder_config: dict | None = None) -> Path:
    """The bundled old checkpoint (a 1-layer BERT of width 16) with ``encoder.name`` set to ``encoder``."""
    checkpoint = torch.load(OLD_CHECKPOINT, map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    hparams["cfg"]["encoder"]["name"] = str(encoder)
    hparams["encoder_config"] = encoder_config
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A good encoder, checkpoint and export, and the evil encoder, checkpoint and export."""
    root = tmp_path_factory.mktemp("models")
    encoder = tiny_encoder_dir(root / "tiny", hidden=16, layers=1)
    good = _checkpoint(root / "good.ckpt", encoder)
    assert export.main([str(good), str(root / "export")]) == 0
    marker = root / "marker"
    evil_encoder = plant(tiny_encoder_dir(root / "evil_encoder", hidden=16, layers=1), marker, config=True)
    evil_export = root / "evil_export"
    shutil.copytree(root / "export", evil_export)
    plant(evil_export, marker, config=False)
    return {
        "encoder": encoder,
        "checkpoint": good,
        "export": root / "export",
        "marker": marker,
        "evil_encoder": evil_encoder,
        "evil_checkpoint": _checkpoint(root / "evil.ckpt", evil_encoder),
        "evil_export": evil_export,
    }


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


# --- no code from data -----------------------------------------------------------------------------------
def _with_yes(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``echo y | python SCRIPT ARGS`` in ``tmp_path``, in a user's fresh environment (its own HOME, so
    transformers' module cache too)."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        input="y\n",
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, refused",
    [
        ("evil_export", "evil_export/tokenizer_config.json: refused: auto_map = "),
        ("evil_checkpoint", "evil_encoder/config.json: refused: auto_map = "),
    ],
)
def test_echo_y_into_predict_imports_no_module_of_a_model_directory(models, tmp_path, source, refused):
    (tmp_path / "doc.txt").write_text("aspirin induced cancer .")
    proc = _with_yes("predict.py", [str(models[source]), "doc.txt", "--device", "cpu"], tmp_path)
    assert not models["marker"].exists(), "a module of the model directory was imported"
    assert "Do you wish" not in proc.stdout + proc.stderr and proc.stdout == ""
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert refused in line and "never runs code" in line, line


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, refused",
    [
        ("evil_export", "evil_export/tokenizer_config.json: refused: auto_map = "),
        ("evil_checkpoint", "evil_encoder/config.json: refused: auto_map = "),
    ],
)
def test_train_init_from_imports_no_module_of_a_model_directory(models, tmp_path, source, refused):
    args = [
        a for a in tiny_run_args(tmp_path, tmp_path / "run", models["encoder"]) if "encoder.name" not in a
    ]
    proc = _with_yes("train.py", [*args, f"init_from={models[source]}"], tmp_path)
    assert not models["marker"].exists(), "a module of the model directory was imported"
    assert "Do you wish" not in proc.stdout + proc.stderr
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert refused in line, line


def test_pretrained_turns_remote_code_off_and_transformers_then_raises_instead_of_asking(models, monkeypatch):
    """Behind the directory check, ``trust_remote_code=False`` is what keeps transformers from asking on
    stdout and reading stdin (a hub name has no directory to check first)."""
    seen = {}

    def loader(name, **kwargs):
        seen.update(kwargs)
        return "loaded"

    assert pretrained(loader, models["encoder"]) == "loaded"
    assert seen == {"trust_remote_code": False, "local_files_only": True}
    assert pretrained(loader, "some-org/some-encoder") == "loaded" and seen["local_files_only"] is False

    def asked(*args):
        raise AssertionError("transformers asked whether to run the custom code")

    monkeypatch.setattr("builtins.input", asked)
    with pytest.raises(ValueError, match="custom code"):
        AutoTokenizer.from_pretrained(str(models["evil_export"]), **seen | {"local_files_only": True})
    assert not models["marker"].exists()


def test_a_hub_kernel_as_attention_is_refused_naming_the_file_and_the_key(models, tmp_path, capsys):
    kernel_config = {**tiny_bert_config(hidden=16, layers=1).to_dict(), "attn_implementation": KERNEL}
    checkpoint = _checkpoint(tmp_path / "kernel.ckpt", models["encoder"], kernel_config)
    with pytest.raises(RemoteCodeError) as err:
        read_checkpoint(checkpoint)
    assert str(err.value).startswith(
        f"{checkpoint}: refused: hyper_parameters.encoder_config.attn_implementation = '{KERNEL}'"
    )

    exported = tmp_path / "kernel_export"
    shutil.copytree(models["export"], exported)
    meta = json.loads((exported / "bioner_model.json").read_text())
    meta["encoder_config"]["attn_implementation"] = KERNEL
    (exported / "bioner_model.json").write_text(json.dumps(meta))
    encoder = tmp_path / "kernel_encoder"
    shutil.copytree(models["encoder"], encoder)
    add_json(encoder / "config.json", attn_implementation=KERNEL)
    (tmp_path / "doc.txt").write_text("aspirin .")
    cases = [
        (checkpoint, f"{checkpoint}: refused: hyper_parameters.encoder_config.attn_implementation"),
        (exported, f"{exported / 'bioner_model.json'}: refused: encoder_config.attn_implementation"),
        (
            _checkpoint(tmp_path / "named.ckpt", encoder),
            f"{encoder / 'config.json'}: refused: attn_implementation",
        ),
    ]
    for model, refused in cases:
        capsys.readouterr()
        code = predict.main([str(model), str(tmp_path / "doc.txt"), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err[-3000:]
        assert err.startswith(f"error: {refused} = '{KERNEL}' would fetch an attention kernel"), err


def test_built_in_attention_and_plain_configs_pass():
    refuse_code_settings(
        {"attn_implementation": "sdpa", "text_config": {"attn_implementation": "eager"}}, "x"
    )
    refuse_code_settings({"_attn_implementation": None, "hidden_size": 16}, "x")
    refuse_code_settings(None, "x")
    with pytest.raises(RemoteCodeError, match=r"x: refused: text_config\.auto_map = "):
        refuse_code_settings({"text_config": {"auto_map": {"AutoModel": "a.B"}}}, "x")


# --- only regular files ------------------------------------------------------------------------------------
TIMED_MAIN = """
import sys, time
import lightning, transformers, inference.tagger, lightning_modules.registry
import {module}
started = time.monotonic()
try:
    sys.exit({module}.main(sys.argv[1:]))
finally:
    with open("seconds", "w") as out:
        out.write(f"{{time.monotonic() - started:.3f}}")
"""


def _refused_in_time(module: str, args: list[str], fifo: Path, tmp_path: Path) -> None:
    """``python MODULE.py ARGS`` exits 2 with one line naming ``fifo`` and its ``main`` takes under 5 s (the
    heavy imports done before, a busy machine takes seconds for them); a process blocked on the FIFO is
    killed (a thread would not do: safetensors and tokenizers open files holding the GIL)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", TIMED_MAIN.format(module=module), *args],
            cwd=tmp_path,
            env=clean_env(tmp_path, {"PYTHONPATH": str(ROOT)}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{module}.py still blocked on {fifo} after 120 s")
    seconds = float((tmp_path / "seconds").read_text())
    assert seconds < 5, f"{module}.py took {seconds:.1f} s on {fifo}"
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    assert proc.stderr.startswith(f"error: {fifo}: a FIFO (named pipe), not a regular file"), proc.stderr


def test_a_fifo_as_the_input_document_is_refused_at_once(models, tmp_path):
    fifo = tmp_path / "doc.txt"
    os.mkfifo(fifo)
    _refused_in_time("predict", [str(models["export"]), str(fifo)], fifo, tmp_path)


@pytest.mark.parametrize(
    "entry_point", ["predict", *(pytest.param(e, marks=pytest.mark.slow) for e in ("evaluate", "export"))]
)
def test_a_fifo_as_the_checkpoint_is_refused_at_once(tmp_path, entry_point):
    fifo = tmp_path / "model.ckpt"
    os.mkfifo(fifo)
    (tmp_path / "doc.txt").write_text("aspirin .")
    args = {
        "predict": [str(fifo), "doc.txt", "--device", "cpu"],
        "evaluate": [str(fifo), "--device", "cpu"],
        "export": [str(fifo), "out"],
    }
    _refused_in_time(entry_point, args[entry_point], fifo, tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "model.safetensors",
        *(pytest.param(n, marks=pytest.mark.slow) for n in ("bioner_model.json", "tokenizer.json")),
    ],
)
def test_a_fifo_inside_an_export_directory_is_refused_at_once(models, tmp_path, name):
    exported = tmp_path / "export"
    shutil.copytree(models["export"], exported)
    (exported / name).unlink()
    os.mkfifo(exported / name)
    (tmp_path / "doc.txt").write_text("aspirin .")
    _refused_in_time("predict", [str(exported), "doc.txt", "--device", "cpu"], exported / name, tmp_path)


# --- config groups, a run directory's config.yaml, checkpoint files, evaluate's argument -----------------
def test_a_config_group_is_a_name_of_its_directory_never_a_path(tmp_path):
    from configs.compose import ConfigError, compose

    (tmp_path / "evil.yaml").write_text("trainer:\n  max_steps: 7\n")
    for group in ("experiment", "trainer"):
        with pytest.raises(ConfigError, match=f"unknown {group}"):
            compose([f"{group}={tmp_path / 'evil'}"])  # an absolute path joined to configs/<group>/
        with pytest.raises(ConfigError, match=f"unknown {group}"):
            compose([f"{group}=../{group}/../../configs/train"])


@pytest.mark.parametrize(
    "content",
    [
        "model: !!python/object/apply:os.system ['touch {marker}']\n",
        "model: [name: {{unclosed\n",
        "model:\n  name: 7\n",
        "[" * 10_000 + "\n",
    ],
    ids=["python-tag", "malformed", "not-a-name", "deep"],
)
def test_a_bad_config_yaml_under_resume_auto_is_one_line(tmp_path, capsys, content):
    import train

    marker = tmp_path / "MARKER"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(content.format(marker=marker))
    assert train.main([f"run_dir={run_dir}", "resume=auto", "logger=none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir / 'config.yaml'}: "), err
    assert len(err[0]) < 400 and not marker.exists()


def test_a_config_yaml_that_is_not_a_regular_file_or_is_huge_is_one_line(tmp_path, capsys):
    import train

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fifo = run_dir / "config.yaml"
    os.mkfifo(fifo)
    # a writer on the other end: code that opens the FIFO reads a config instead of blocking the suite
    writer = threading.Thread(target=lambda: fifo.write_text("model:\n  name: sru_ner\n"), daemon=True)
    writer.start()
    try:
        assert train.main([f"run_dir={run_dir}", "resume=auto", "logger=none"]) == 2
        assert "not a regular file" in capsys.readouterr().err
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets a writer still waiting finish
        writer.join(timeout=5)
    fifo.unlink()
    (run_dir / "config.yaml").write_text("# " + "x" * (2 << 20) + "\n")
    assert train.main([f"run_dir={run_dir}", "resume=auto", "logger=none"]) == 2
    assert "not a run's config.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x05\x06" + b"\x00" * 18 + b"x" * 100])
def test_an_empty_or_foreign_checkpoint_file_is_named_without_torchs_message(tmp_path, content):
    from errors import CheckpointError

    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "not a readable checkpoint" in message
    assert "mmap" not in message and "\n" not in message


def test_evaluate_on_a_directory_says_what_to_pass_and_checks_an_export(tmp_path, capsys):
    import evaluate
    from inference.tagger import EXPORT_FILE

    assert evaluate.main([str(tmp_path)]) == 2  # no export in it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a directory, but no export" in err[0]
    assert "checkpoints/best.ckpt" in err[0] and "IsADirectoryError" not in err[0]
    (tmp_path / EXPORT_FILE).write_text("{}")  # an export is scored, after the checks inference.load makes
    assert evaluate.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model: missing or not a string" in err[0]
