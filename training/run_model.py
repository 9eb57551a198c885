"""The model of a run, ready to fit: built with its schedule's length, warm-started (``init_from``),
joined to the data module (its collate-time targets and evaluation cost), given what it counts over the
training split, and checked against the checkpoint it resumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lightning.fabric.utilities.rank_zero import rank_zero_only

from configs.compose import ConfigError
from lightning_modules.base import SpanNERModule
from lightning_modules.checkpoints import check_checkpoint
from lightning_modules.registry import build_module
from training.schedule import schedule_of
from training.warm_start import InitSource, WarmStartReport, apply_init

if TYPE_CHECKING:
    from configs.schema import RunCfg


def build_run_model(
    cfg: RunCfg,
    plain: Mapping[str, Any],
    datamodule: Any,
    trainer: Any,
    *,
    source: InitSource | None,
    encoder_config: Mapping[str, Any] | None,
    ckpt_path: str | None,
) -> tuple[SpanNERModule, WarmStartReport | None]:
    """The model of the run config ``cfg`` (``plain``: the same, resolved, as the checkpoint records it)
    for ``trainer``'s processes, and the warm start's report when ``source`` is given."""
    schedule = schedule_of(datamodule, trainer, cfg.optim.total_steps)
    try:
        model = build_module(plain, datamodule.label_space, encoder_config, schedule=schedule)
    except (OSError, ValueError) as err:  # the encoder's weights cannot be loaded
        raise ConfigError(f"encoder.name={cfg.encoder.name}: cannot load the encoder ({err})") from None
    report = None
    if source is not None:
        report = apply_init(model, source, cfg)
        if rank_zero_only.rank == 0:
            print("\n".join(report.lines()), flush=True)
    datamodule.batch_transform = model.target_encoder()
    datamodule.eval_cost = model.eval_batch_bytes
    if model.uses_training_rows:  # what a model counts over the training split (TabERT-CNN's class weights)
        model.learn_from_training_rows(datamodule.training_rows())
    if ckpt_path is not None:
        check_checkpoint(ckpt_path, model, datamodule.label_space.to_dict(), trust=cfg.trust_checkpoint)
    return model, report
