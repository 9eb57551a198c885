"""Loading a checkpoint never runs code from it (issue 22).

``evil.ckpt`` is the file of the issue: ``torch.save`` of a dict holding an object whose ``__reduce__`` is
``os.system("touch <marker>")``. Passed to predict.py, evaluate.py, train.py ``resume=`` and
``inference.load``, it must run nothing (the marker file is not created) and be refused in one line that
names the file and the global it needs, with exit 2. ``--trust-checkpoint`` (``trust_checkpoint=true``) loads
a file that needs more the old way: tested with a harmless class (``Note``), never with code execution.

``tests/fixtures/checkpoint_0b39895_baseline.ckpt`` is a checkpoint written by the code before the safe
loader (git revision 0b39895: ``train.py model=baseline trainer.max_steps=2 data.samples_per_epoch=32
test_after_fit=false`` on the bundled BC5CDR sample with ``encoder.name=tiny``, a 1-layer BERT of width 16,
``tiny_encoder_dir(..., hidden=16, layers=1)``); it loads restricted, resumes and predicts.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from train_runner import ROOT, run_train, tiny_encoder_dir, tiny_run_args

import evaluate
import export
import predict
import train
from errors import CheckpointError
from inference import load
from lightning_modules.checkpoints import UntrustedCheckpointError, read_checkpoint

OLD_CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "checkpoint_0b39895_baseline.ckpt"
SAMPLES = ROOT / "datamodules" / "samples"


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class Note:
    """A harmless custom class: a checkpoint holding one needs more than plain data to load."""

    def __init__(self, text: str) -> None:
        self.text = text


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": Evil(marker)}, path)
    return path, marker


def _assert_refused(path: Path, marker: Path, code: int, stderr: str, needs: str = "posix.system") -> None:
    assert not marker.exists(), "the checkpoint ran code"
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {path}: refused: it needs {needs},"), lines[0]
    assert "--trust-checkpoint" in lines[0]


def test_read_checkpoint_refuses_evil_and_names_the_global(evil):
    path, marker = evil
    with pytest.raises(UntrustedCheckpointError) as err:
        read_checkpoint(path)
    assert not marker.exists()
    assert err.value.global_name == "posix.system" and "\n" not in str(err.value)


def test_predict_refuses_evil(evil, tmp_path, capsys):
    path, marker = evil
    (tmp_path / "in.txt").write_text("aspirin induced cancer .")
    code = predict.main([str(path), str(tmp_path / "in.txt")])
    _assert_refused(path, marker, code, capsys.readouterr().err)


def test_evaluate_refuses_evil(evil, capsys):
    path, marker = evil
    code = evaluate.main([str(path)])
    _assert_refused(path, marker, code, capsys.readouterr().err)


def test_train_resume_refuses_evil(evil, tmp_path, capsys):
    path, marker = evil
    encoder = tiny_encoder_dir(tmp_path / "tiny", hidden=16, layers=1)
    capsys.readouterr()
    code = train.main([*tiny_run_args(tmp_path, tmp_path / "run", encoder), f"resume={path}"])
    _assert_refused(path, marker, code, capsys.readouterr().err)


def test_inference_load_refuses_evil(evil):
    path, marker = evil
    with pytest.raises(CheckpointError) as err:
        load(path, device="cpu")
    assert not marker.exists()
    assert str(err.value).startswith(f"{path}: refused: it needs posix.system,")


def test_a_file_torch_cannot_read_is_not_called_a_refusal(tmp_path):
    path = tmp_path / "noise.ckpt"
    path.write_bytes(b"\x80\x02}q\x00Xjunk")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert not isinstance(err.value, UntrustedCheckpointError) and "not a readable checkpoint" in str(
        err.value
    )


@pytest.fixture
def in_tiny_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working directory, with ``tiny`` there: the fixture's ``encoder.name`` (the same
    shapes; its weights are the checkpoint's)."""
    tiny_encoder_dir(tmp_path / "tiny", hidden=16, layers=1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _with_note(directory: Path) -> Path:
    path = directory / "noted.ckpt"
    checkpoint = torch.load(OLD_CHECKPOINT, map_location="cpu", weights_only=True)
    torch.save({**checkpoint, "note": Note("kept")}, path)
    return path


def test_the_checkpoint_written_before_the_safe_loader_loads_restricted_and_predicts(in_tiny_cwd):
    assert OLD_CHECKPOINT.stat().st_size < 400_000
    assert torch.serialization.get_unsafe_globals_in_checkpoint(OLD_CHECKPOINT) == []
    tagger = load(OLD_CHECKPOINT, device="cpu")
    assert len(tagger.predict(["aspirin induced cancer in human patients ."])) == 1


def test_trust_checkpoint_loads_a_custom_class(in_tiny_cwd, capsys):
    path = _with_note(in_tiny_cwd)
    with pytest.raises(UntrustedCheckpointError) as err:
        read_checkpoint(path)
    assert err.value.global_name.endswith(".Note")
    assert read_checkpoint(path, trust=True)["note"].text == "kept"
    assert load(path, device="cpu", trust_checkpoint=True).predict("aspirin .") is not None

    (in_tiny_cwd / "in.txt").write_text("aspirin induced cancer .")
    args = [str(path), "in.txt", "-o", "out.jsonl", "--device", "cpu"]
    capsys.readouterr()
    code = predict.main(args)
    _assert_refused(path, in_tiny_cwd / "none", code, capsys.readouterr().err, needs=err.value.global_name)
    assert predict.main([*args, "--trust-checkpoint"]) == 0
    assert "error" not in capsys.readouterr().err

    capsys.readouterr()
    code = export.main([str(path), "exported"])
    _assert_refused(path, in_tiny_cwd / "none", code, capsys.readouterr().err, needs=err.value.global_name)
    assert export.main([str(path), "exported", "--trust-checkpoint"]) == 0
    for file in (in_tiny_cwd / "exported").iterdir():  # no pickle in an export: safetensors and JSON
        data = file.read_bytes()
        assert not data.startswith(b"\x80") and b"data.pkl" not in data, file.name
    assert load(in_tiny_cwd / "exported", device="cpu").predict("aspirin .") is not None

    capsys.readouterr()
    code = evaluate.main([str(path), "--data-root", str(SAMPLES), "-o", "eval", "--no-wandb"])
    _assert_refused(path, in_tiny_cwd / "none", code, capsys.readouterr().err, needs=err.value.global_name)
    eval_args = [str(path), "--data-root", str(SAMPLES), "-o", "eval", "--no-wandb", "--trust-checkpoint"]
    assert evaluate.main([*eval_args, "--device", "cpu"]) == 0


@pytest.mark.slow
def test_the_old_checkpoint_resumes_and_trust_checkpoint_resumes_a_custom_class(in_tiny_cwd):
    args = [
        *tiny_run_args(in_tiny_cwd, in_tiny_cwd / "run", Path("tiny")),
        "model=baseline",
        "data.samples_per_epoch=32",
        "trainer.max_steps=3",
        "test_after_fit=false",
    ]
    old = in_tiny_cwd / "old.ckpt"
    shutil.copy(OLD_CHECKPOINT, old)
    proc = run_train([*args, f"resume={old}"], in_tiny_cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_checkpoint(in_tiny_cwd / "run" / "checkpoints" / "last.ckpt")["global_step"] == 3

    noted = _with_note(in_tiny_cwd)
    proc = run_train([*args, f"run_dir={in_tiny_cwd / 'noted'}", f"resume={noted}"], in_tiny_cwd)
    assert proc.returncode == 2 and f"error: {noted}: refused: it needs " in proc.stderr, proc.stderr[-3000:]
    assert not list((in_tiny_cwd / "noted").glob("checkpoints/*.ckpt"))
    trusted = [*args, f"run_dir={in_tiny_cwd / 'noted'}", f"resume={noted}", "trust_checkpoint=true"]
    tests_dir = {"PYTHONPATH": str(Path(__file__).resolve().parent)}  # where Note is defined
    proc = run_train(trusted, in_tiny_cwd, timeout=600, extra_env=tests_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_checkpoint(in_tiny_cwd / "noted" / "checkpoints" / "last.ckpt")["global_step"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("model", ["baseline", "sru_ner", "tabert_cnn"])
def test_every_models_checkpoints_hold_only_plain_data(tmp_path, model):
    """best.ckpt and last.ckpt of each model need nothing beyond torch's weights_only set, and
    ``trainer.test(ckpt_path=best)`` loaded best.ckpt through the restricted loader."""
    encoder = tiny_encoder_dir(tmp_path / "tiny", hidden=16, layers=1)
    extra = ["model.channels=16", "model.pair_dim=8"] if model == "tabert_cnn" else []
    run_dir = tmp_path / "run"
    args = [*tiny_run_args(tmp_path, run_dir, encoder), "data.samples_per_epoch=32", "trainer.max_steps=2"]
    assert train.main([*args, "trainer.limit_test_batches=1", f"model={model}", *extra]) == 0
    for name in ("best.ckpt", "last.ckpt"):
        path = run_dir / "checkpoints" / name
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        assert read_checkpoint(path)["global_step"] == 2


@pytest.mark.slow
def test_the_wandb_api_key_reaches_no_file_of_the_run_or_its_export(tmp_path):
    marker = "bioner22marker" + "0123456789abcdef" * 2 + "zz"  # 48 characters, in no other file
    encoder = tiny_encoder_dir(tmp_path / "tiny", hidden=16, layers=1)
    run_dir = tmp_path / "run"
    args = [*tiny_run_args(tmp_path, run_dir, encoder), "data.samples_per_epoch=32", "trainer.max_steps=2"]
    args = [*(a for a in args if a != "logger=none"), "logger=wandb", "trainer.limit_test_batches=1"]
    env = {"WANDB_API_KEY": marker, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = run_train(args, tmp_path, timeout=600, extra_env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker not in proc.stdout + proc.stderr
    assert export.main([str(run_dir / "checkpoints" / "best.ckpt"), str(tmp_path / "exported")]) == 0
    files = [p for d in (run_dir, tmp_path / "exported") for p in d.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and (run_dir / "config.yaml").is_file()
    assert [p for p in files if marker.encode() in p.read_bytes()] == []
