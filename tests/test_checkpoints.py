"""check_checkpoint: a checkpoint that cannot resume this model is a one-line error naming the file."""

import pytest
import torch
from torch import nn

from errors import CheckpointError
from lightning_modules.checkpoints import check_checkpoint

SPACE = {"BC5CDR": ["Chemical", "Disease"]}


def _model(hidden: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(3, hidden), nn.Linear(hidden, 2))


def _save(path, state_dict, label_space=SPACE):
    torch.save({"state_dict": state_dict, "hyper_parameters": {"label_space": label_space}}, path)
    return path


def test_matching_checkpoint_passes(tmp_path):
    model = _model()
    checkpoint = check_checkpoint(_save(tmp_path / "ok.ckpt", model.state_dict()), model, SPACE)
    assert torch.equal(checkpoint["state_dict"]["0.weight"], model.state_dict()["0.weight"])


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not a readable checkpoint"),
        (lambda p: p.write_text("hello"), "not a readable checkpoint"),
        (lambda p: torch.save([1, 2], p), "not a Lightning checkpoint"),
        (lambda p: _save(p, _model(hidden=5).state_dict()), "0.weight has shape (5, 3) in the checkpoint"),
        (lambda p: _save(p, {"0.weight": torch.zeros(4, 3)}), "missing 3 (e.g. 0.bias)"),
        (lambda p: _save(p, {**_model().state_dict(), "extra": torch.zeros(1)}), "unexpected 1 (e.g. extra)"),
        (lambda p: _save(p, _model().state_dict(), {"NCBI-disease": ["Disease"]}), "trained on corpora"),
    ],
)
def test_bad_checkpoints_name_file_and_problem(tmp_path, make, problem):
    path = tmp_path / "bad.ckpt"
    make(path)
    with pytest.raises(CheckpointError) as err:
        check_checkpoint(path, _model(), SPACE)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        check_checkpoint(tmp_path / "nope.ckpt", _model())


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    """A full disk in the middle of a save: the old file stays whole, no temporary file is left."""
    import errno

    import lightning.fabric.utilities.cloud_io as cloud_io

    from training.checkpointing import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    before = path.read_bytes()

    def disk_full(checkpoint, filepath):
        with open(filepath, "wb") as fh:
            fh.write(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cloud_io, "_atomic_save", disk_full)
    monkeypatch.setattr("lightning.fabric.plugins.io.torch_io._atomic_save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.load(path, weights_only=False)["global_step"] == 1


def test_a_checkpoint_selected_under_the_old_metric_name_keeps_its_best_score(tmp_path):
    """A run from before metrics.names (``val/f1_merged_macro``), resumed, keeps selecting its best.ckpt."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from training.checkpointing import RenamedMetrics

    def states(monitor: str) -> dict:
        best = ModelCheckpoint(dirpath=str(tmp_path), filename="best", monitor=monitor, mode="max")
        best.best_model_score = torch.tensor(61.5)
        stop = EarlyStopping(monitor=monitor, mode="max", patience=3)
        return {best.state_key: best.state_dict(), stop.state_key: stop.state_dict(), "Other": {"x": 1}}

    old, new = states("val/f1_merged_macro"), states("val/merged/macro_f1")
    checkpoint = {"callbacks": old}
    RenamedMetrics().on_load_checkpoint(None, None, checkpoint)
    assert checkpoint["callbacks"].keys() == new.keys()
    best_key = next(k for k in new if k.startswith("ModelCheckpoint"))
    assert checkpoint["callbacks"][best_key]["monitor"] == "val/merged/macro_f1"
    assert float(checkpoint["callbacks"][best_key]["best_model_score"]) == 61.5
