"""Which checkpoints become W&B model artifacts (``training/artifacts.py``), and a failed upload is one
warning, not a failed run. The offline artifact itself is checked in ``tests/test_train_e2e.py``."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from training.artifacts import checkpoints_to_log, log_model_artifacts
from training.run_dir import RunDir


def _run(tmp_path, best_step: int, last_step: int):
    run = RunDir(tmp_path.name, tmp_path, explicit=True)
    run.checkpoints.mkdir(parents=True)
    best = run.checkpoints / f"best-{best_step}.ckpt"
    torch.save({"global_step": best_step, "state_dict": {}}, best)
    torch.save({"global_step": last_step, "state_dict": {}}, run.checkpoints / "last.ckpt")
    trainer = SimpleNamespace(checkpoint_callback=SimpleNamespace(best_model_path=str(best)))
    return run, trainer, str(best)


def test_best_alone_or_with_last_and_one_version_for_one_step(tmp_path):
    run, trainer, best = _run(tmp_path / "a", 4, 8)
    last = str(run.checkpoints / "last.ckpt")
    assert checkpoints_to_log(trainer, run, "best") == [(best, 4, ["best"])]
    assert checkpoints_to_log(trainer, run, "all") == [(best, 4, ["best"]), (last, 8, ["last"])]
    run, trainer, best = _run(tmp_path / "b", 8, 8)
    assert checkpoints_to_log(trainer, run, "all") == [(best, 8, ["best", "last"])]


def test_a_failed_upload_is_one_warning(tmp_path, capsys):
    run, trainer, _ = _run(tmp_path, 4, 8)

    class Broken(WandbLogger):
        def __init__(self):
            pass

        @property
        def experiment(self):
            raise RuntimeError("server said no")

    trainer.loggers, trainer.is_global_zero = [Broken()], True
    cfg = OmegaConf.create({"wandb": {"log_model": "best"}, "trust_checkpoint": False})
    assert log_model_artifacts(trainer, run, cfg) == []
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "W&B: the model artifact was not logged (RuntimeError: server said no); export it with export.py"
    ]
    cfg.wandb.log_model = "none"
    assert log_model_artifacts(trainer, run, cfg) == [] and capsys.readouterr().out == ""
