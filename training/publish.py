"""What a run leaves for its readers: ``config.yaml`` and the model card when it starts; when it ends, the
test scores as ``metrics.json``, the printed per-corpus table, ``f1_per_corpus.png``, the W&B chart and
per-type table, and the model card with the scores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from datamodules.label_space import LabelSpace
from inference.model_card import write_model_card
from metrics import names
from metrics.charts import f1_bar_chart, f1_table_rows
from metrics.report import render
from training.run_dir import RunDir


def publish_run_start(run: RunDir, plain: dict, label_space: LabelSpace, argv: Sequence[str]) -> None:
    OmegaConf.save(OmegaConf.create(plain), run.path / "config.yaml")
    write_model_card(run.path, plain, label_space, argv)


def publish_test_scores(
    trainer: pl.Trainer,
    test_results: dict[str, float],
    monitor: str,
    run: RunDir,
    plain: dict,
    label_space: LabelSpace,
    argv: Sequence[str],
) -> dict[str, Any]:
    """``metrics.json`` (best ``monitor`` score, best checkpoint, ``test/...`` scores) and the rest; the
    metrics written."""
    checkpoint = trainer.checkpoint_callback
    score = checkpoint.best_model_score if checkpoint else None
    metrics: dict[str, Any] = {
        monitor: float(score) if score is not None else None,
        "best_checkpoint": checkpoint.best_model_path if checkpoint else "",
    }
    if plain.get("decision_thresholds"):  # tuned on dev after fit (training/thresholds.py)
        metrics["decision_thresholds"] = plain["decision_thresholds"]
    metrics.update({names.logged("test", k): v for k, v in test_results.items()})
    (run.path / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    if test_results:  # none with trainer.limit_test_batches=0
        chart = f1_bar_chart(metrics, "test", run.path / "f1_per_corpus.png", title=f"{run.name}: test F1")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("test/f1_per_corpus", [str(chart)])
                columns, rows = f1_table_rows(metrics, "test")
                logger.log_table("test/f1_per_type", columns=columns, data=rows)
        print(render(metrics, types=True))
    write_model_card(run.path, plain, label_space, argv, metrics)
    print(f"metrics: {run.path / 'metrics.json'}")
    return metrics
