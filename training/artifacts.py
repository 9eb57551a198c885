"""The trained model as a W&B model artifact: when a run with ``logger=wandb`` ends, the best checkpoint's
export directory (``export.py``: weights, tokenizer, label space, model card; no pickle) is logged as a
version of the artifact ``model-<W&B run id>`` with the aliases ``best`` and ``step-<N>``; with
``wandb.log_model=all`` the last checkpoint's too (``last``, ``step-<M>``; one version when both are the
same step). The directories stay in ``<run_dir>/export/step-<N>``, so an offline run's artifacts upload
with ``wandb sync``, and an export directory can be pushed to the Hugging Face Hub as it is (its model
card has the Hub's YAML header). Logging a model never fails a finished run: a problem is one warning.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.loggers import WandbLogger

from inference.tagger import EXPORT_FILE, export
from lightning_modules.checkpoints import read_checkpoint
from training.run_dir import RunDir

if TYPE_CHECKING:
    from configs.schema import RunCfg


def checkpoints_to_log(
    trainer: Any, run: RunDir, how: str, *, trust: bool = False
) -> list[tuple[str, int, list[str]]]:
    """``(checkpoint, step, aliases)`` to log: the best checkpoint, and with ``how="all"`` the last one."""
    wanted: list[tuple[str, list[str]]] = []
    callback = trainer.checkpoint_callback
    if callback is not None and callback.best_model_path:
        wanted.append((callback.best_model_path, ["best"]))
    last = run.checkpoints / "last.ckpt"
    if how == "all" and last.is_file():
        wanted.append((str(last), ["last"]))
    by_step: dict[int, tuple[str, list[str]]] = {}
    for path, aliases in wanted:
        step = int(read_checkpoint(path, trust=trust).get("global_step") or 0)
        if step in by_step:
            by_step[step][1].extend(aliases)
        else:
            by_step[step] = (path, list(aliases))
    return [(path, step, aliases) for step, (path, aliases) in sorted(by_step.items())]


def log_model_artifacts(
    trainer: Any, run: RunDir, cfg: RunCfg, metrics: dict[str, Any] | None = None
) -> list[Path]:
    """Export and log the checkpoints ``cfg.wandb.log_model`` asks for (rank 0, W&B runs only); the export
    directories logged."""
    how = str(cfg.wandb.log_model)
    loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
    if how == "none" or not loggers or not trainer.is_global_zero:
        return []
    try:
        return _log(loggers[0].experiment, trainer, run, cfg, how, metrics or {})
    except Exception as err:  # noqa: BLE001 - the run has finished; its checkpoints are on disk
        problem = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        print(f"W&B: the model artifact was not logged ({problem}); export it with export.py", flush=True)
        return []


def _log(
    experiment: Any, trainer: Any, run: RunDir, cfg: RunCfg, how: str, metrics: dict[str, Any]
) -> list[Path]:
    import wandb

    logged = []
    scores = {k: v for k, v in metrics.items() if k.endswith("macro_f1") and v is not None}
    for checkpoint, step, aliases in checkpoints_to_log(trainer, run, how, trust=cfg.trust_checkpoint):
        out = run.path / "export" / f"step-{step}"
        if not (out / EXPORT_FILE).is_file():  # written once per step: the logged files never change
            partial = out.with_name(f".{out.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            try:
                export(checkpoint, partial, trust_checkpoint=cfg.trust_checkpoint)
                partial.rename(out)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(partial)
        artifact = wandb.Artifact(
            f"model-{experiment.id}",
            type="model",
            description=f"{cfg.model.name} on {', '.join(map(str, cfg.data.corpora))}, step {step}",
            metadata={"model": str(cfg.model.name), "step": step, "checkpoint": checkpoint, **scores},
        )
        artifact.add_dir(str(out), policy="immutable")
        experiment.log_artifact(artifact, aliases=[*aliases, f"step-{step}"])
        print(
            f"W&B: logged {out} as model artifact model-{experiment.id} ({', '.join(aliases)}, step-{step})"
        )
        logged.append(out)
    return logged
