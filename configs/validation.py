"""Checks on a composed run config that its types alone cannot express: enumerated values, ranges, corpus
lists and the model's own hyperparameters. ``train.py`` runs them before it loads anything, so a bad value
is one line and exit 2 before training, never a traceback inside the first step."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from configs.compose import ConfigError
from datamodules.catalog import CorpusSpec
from datamodules.corpora import label_space_of_specs, resolve
from datamodules.readers import READINGS
from datamodules.sampler import WEIGHTINGS
from errors import BionerError
from lightning_modules.decisions import GRANULARITIES
from lightning_modules.registry import get_model

if TYPE_CHECKING:
    from configs.schema import RunCfg

LOGGERS = ("wandb", "csv", "none")
MODEL_LOGGING = ("best", "all", "none")
WANDB_MODES = ("online", "offline", "disabled")
SCHEDULES = ("linear", "cosine")


def _choice(problems: list[str], key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        problems.append(f"{key}={value}: use one of {', '.join(map(str, allowed))}")


def _at_least(problems: list[str], key: str, value: Any, low: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or value < low:
        problems.append(f"{key}={value}: must be >= {low}")


def config_problems(cfg: RunCfg) -> list[str]:
    """Every problem of the run config ``cfg`` (a composed DictConfig), one short sentence each."""
    return _problems_and_specs(cfg)[0]


def _problems_and_specs(cfg: RunCfg) -> tuple[list[str], dict[str, Any]]:
    """The problems of ``cfg`` and the corpus specs its ``data.corpora`` entries resolved to."""

    problems: list[str] = []
    data = cfg.data
    corpora = list(data.corpora)
    if not corpora:
        problems.append("data.corpora is empty: name at least one corpus, e.g. data.corpora=[BC5CDR]")
    for name, count in Counter(corpora).items():
        if count > 1:
            problems.append(f"data.corpora names {name} {count} times")
    specs = {}  # entry -> spec; a user corpus (a path) is read and validated here, before training
    for entry in dict.fromkeys(corpora):
        try:
            specs[entry] = resolve(entry)
        except BionerError as err:
            problems.append(str(err))
    entries_of: dict[str, list[str]] = {}
    for entry, spec in specs.items():
        entries_of.setdefault(spec.name, []).append(entry)
    for name, entries in entries_of.items():
        if len(entries) > 1:
            problems.append(f"data.corpora has {len(entries)} corpora named {name} ({', '.join(entries)})")
    if data.fold is not None:
        with_folds = [spec for spec in specs.values() if spec.folds]
        if not with_folds:
            problems.append(f"data.fold={data.fold}: none of data.corpora has cross-validation folds")
        for spec in with_folds:
            if data.fold not in spec.folds:
                problems.append(
                    f"data.fold={data.fold}: {spec.name} has folds {', '.join(map(str, spec.folds))}"
                )
    _choice(problems, "data.reading", data.reading, READINGS)
    _choice(problems, "data.weighting", data.weighting, WEIGHTINGS)
    _at_least(problems, "data.batch_size", data.batch_size, 1)
    _at_least(problems, "data.eval_batch_size", data.eval_batch_size, 1)
    _at_least(problems, "data.eval_memory_mb", data.eval_memory_mb, 1, optional=True)
    _at_least(problems, "data.max_subwords", data.max_subwords, 8)
    _at_least(problems, "data.num_workers", data.num_workers, 0)
    _at_least(problems, "data.samples_per_epoch", data.samples_per_epoch, 1, optional=True)
    _at_least(problems, "data.val_subsample", data.val_subsample, 1, optional=True)
    _choice(problems, "logger", cfg.logger, LOGGERS)
    _choice(problems, "wandb.mode", cfg.wandb.mode, (None, *WANDB_MODES))
    _choice(problems, "wandb.log_model", cfg.wandb.log_model, MODEL_LOGGING)
    _choice(problems, "init_map", cfg.init_map, ("qualified", "merged"))
    _choice(problems, "optim.schedule", cfg.optim.schedule, SCHEDULES)
    _choice(problems, "thresholds.granularity", cfg.thresholds.granularity, GRANULARITIES)
    _at_least(problems, "thresholds.dev_sentences", cfg.thresholds.dev_sentences, 1, optional=True)
    _at_least(problems, "thresholds.min_gain", cfg.thresholds.min_gain, 0)
    _at_least(problems, "optim.total_steps", cfg.optim.total_steps, 1, optional=True)
    if len(cfg.optim.betas) != 2 or not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        problems.append(f"optim.betas={list(cfg.optim.betas)}: two values in [0, 1)")
    for key in ("lr", "weight_decay", "warmup_epochs"):
        value = cfg.encoder[key]
        if value < 0 or (key == "lr" and value == 0):
            problems.append(f"encoder.{key}={value}: must be {'> 0' if key == 'lr' else '>= 0'}")
    if not str(cfg.encoder.name).strip():
        problems.append("encoder.name is empty: a hub name or a local directory")
    try:
        entry = get_model(cfg.model.name)
        model_config = entry.config_class(**OmegaConf.to_container(cfg.model, resolve=True))
    except (TypeError, ValueError) as err:
        problems.append(str(err))
    else:
        if corpora and len(specs) == len(set(corpora)) == len(entries_of):  # every entry, distinct names
            label_space = label_space_of_specs(specs.values())
            problem = entry.module_class.label_space_problem(model_config, label_space)
            if problem:
                problems.append(problem)
    return problems, specs


def check_config(cfg: RunCfg) -> tuple[CorpusSpec, ...]:
    """Raise a ``ConfigError`` listing every problem of ``cfg`` on one line; else return the specs of
    ``data.corpora`` (resolved once, here: a user corpus is read and validated now)."""

    problems, specs = _problems_and_specs(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    return tuple(specs.values())
