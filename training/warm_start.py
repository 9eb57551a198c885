"""What ``init_from=PATH`` means for a run: the trained model it starts from (a checkpoint or an
``export.py`` directory), the model and encoder the run then builds, and the check that a warm start is
a new run, not a resume.

A warm-started run takes the source's model (``model=NAME`` unless given) and encoder with its tokenizer
(``encoder.name``: the source's, or the export directory itself, whose encoder is rebuilt from its
config before the source's weights replace it); it has its own corpora, optimiser, schedule, sampler
and step counter. ``lightning_modules/warm_start.py`` maps the weights. Once the run has a checkpoint,
``resume=auto`` continues it from there (the same command line serves every requeue); without ``resume``
a run directory that already holds a checkpoint is refused.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from configs.compose import ConfigError
from datamodules.label_space import LabelSpace
from errors import CheckpointError
from inference.tagger import EXPORT_FILE, EXPORT_WEIGHTS
from lightning_modules.checkpoints import checkpoint_model_name, newest_good_checkpoint, read_checkpoint
from lightning_modules.warm_start import MAPS, WarmStartReport, warm_start
from training.run_dir import RunDir

OPTIMISATION_KEYS = {"lr", "weight_decay", "warmup_epochs"}


@dataclass
class InitSource:
    path: str
    model: str
    cfg: dict[str, Any]  # the source's run config
    label_space: LabelSpace
    state_dict: dict[str, torch.Tensor]
    encoder_config: dict[str, Any] | None
    encoder_name: str  # what the run's encoder.name must be: the source's, or the export directory
    step: int | None


@functools.lru_cache(maxsize=2)
def read_init_source(path: str, trust: bool = False) -> InitSource:
    """The trained model at ``path``: a checkpoint file (read as plain data unless ``trust``) or an
    ``export.py`` directory (safetensors and JSON)."""
    where = Path(path)
    if where.is_dir():
        meta_path = where / EXPORT_FILE
        if not meta_path.is_file():
            raise ConfigError(
                f"init_from={path}: a directory without {EXPORT_FILE}; name a checkpoint file or a "
                "directory written by export.py"
            )
        from safetensors.torch import load_file

        try:
            meta = json.loads(meta_path.read_text())
            state = load_file(str(where / EXPORT_WEIGHTS))
            return InitSource(
                path, str(meta["model"]), meta["cfg"], LabelSpace.from_dict(meta["label_space"]), state,
                meta["encoder_config"], str(where), meta.get("global_step"),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as err:
            problem = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            raise CheckpointError(where, f"not a readable exported model for init_from ({problem})") from None
    if not where.is_file():
        raise ConfigError(f"init_from={path}: no such checkpoint file or export directory")
    checkpoint = read_checkpoint(where, trust=trust)
    name = checkpoint_model_name(checkpoint)
    hparams = checkpoint.get("hyper_parameters") or {}
    if name is None or "state_dict" not in checkpoint or "label_space" not in hparams:
        raise CheckpointError(where, "not a model checkpoint of train.py (no model, weights or labels)")
    cfg = hparams["cfg"]
    return InitSource(
        path, name, cfg, LabelSpace.coerce(hparams["label_space"]), checkpoint["state_dict"],
        hparams.get("encoder_config"), str(cfg["encoder"]["name"]), checkpoint.get("global_step"),
    )  # fmt: skip


def with_init_source(argv: Sequence[str]) -> list[str]:
    """``argv`` with the source's ``model=`` and ``encoder.name=`` in front (command-line values win)
    when it has ``init_from=``; unchanged otherwise."""
    argv = list(argv)
    values = dict(a.split("=", 1) for a in argv if "=" in a)
    path = values.get("init_from")
    if not path or path.lower() in ("null", "none"):
        return argv
    trust = values.get("trust_checkpoint", "false").strip().lower() in ("true", "yes", "on", "1")
    source = read_init_source(path, trust)
    front = [] if "model" in values else [f"model={source.model}"]
    if "encoder.name" not in values:
        front.append(f"encoder.name={source.encoder_name}")
    return [*front, *argv]


def check_init(cfg: Any, run: RunDir, resuming: bool) -> InitSource | None:
    """The source of a warm start (None: no ``init_from``, or the run resumes its own checkpoint)."""
    if not cfg.get("init_from"):
        return None
    if cfg.init_map not in MAPS:
        raise ConfigError(f"init_map={cfg.init_map}: use one of {', '.join(MAPS)}")
    if resuming:
        print(f"init_from={cfg.init_from}: not applied, the run resumes its own checkpoint", flush=True)
        return None
    found = newest_good_checkpoint(run.path, trust=cfg.trust_checkpoint)
    if found is not None:
        raise ConfigError(
            f"init_from={cfg.init_from}: {run.path} already holds the checkpoint {found}; a warm start is a "
            "new run: choose another run_dir, or add resume=auto to continue that run"
        )
    source = read_init_source(str(cfg.init_from), bool(cfg.trust_checkpoint))
    if source.model != cfg.model.name:
        raise ConfigError(
            f"init_from={cfg.init_from}: a {source.model} model cannot start a {cfg.model.name} run; "
            f"drop model={cfg.model.name}"
        )
    if str(cfg.encoder.name) != source.encoder_name:
        raise ConfigError(
            f"init_from={cfg.init_from}: its encoder is {source.encoder_name}, not encoder.name="
            f"{cfg.encoder.name}; drop encoder.name (a warm start keeps the source's encoder and tokenizer)"
        )
    return source


def apply_init(module: Any, source: InitSource, cfg: Any) -> WarmStartReport:
    """Load ``source``'s weights into ``module``'s network by ``cfg.init_map``; print what was kept."""
    mine = dict(cfg.model)
    differ = [
        f"model.{k}: {v} there, {mine.get(k)} here"
        for k, v in source.cfg.get("model", {}).items()
        if k not in OPTIMISATION_KEYS and mine.get(k) != v
    ]
    hint = f"; the model settings differ ({'; '.join(differ[:4])})" if differ else ""
    return warm_start(
        module, source.state_dict, source.label_space, init_map=str(cfg.init_map), source_name=source.path,
        source_model=source.cfg.get("model"), settings_hint=hint,
    )  # fmt: skip
