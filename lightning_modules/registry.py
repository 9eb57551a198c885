"""The model registry: ``model=NAME`` -> the model's config dataclass and its ``SpanNERModule`` class.

A model package registers its module class with ``@register_model(NAME, description=...)``; the class
names its config dataclass (``config_class``). Configs, ``train.py``, benchmarks and tests look models up
here and never name a model class. On the first lookup the packages of ``BUILTIN_MODELS`` are imported (a
new model package of this repository adds its name there), then every entry point of the group
``bioner_mtl.models`` (a model in another installed package); a model defined elsewhere (a test) is
available as soon as its module has been imported.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamodules.label_space import LabelSpace
from errors import BionerError, CheckpointError
from lightning_modules.base import ModelConfig, SpanNERModule
from lightning_modules.optimisation import Schedule

ENTRY_POINT_GROUP = "bioner_mtl.models"
BUILTIN_MODELS = ("lightning_modules.sru_ner", "lightning_modules.tabert_cnn", "lightning_modules.baseline")


class UnknownModelError(BionerError):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str
    module_class: type[SpanNERModule]
    description: str

    @property
    def config_class(self) -> type[ModelConfig]:
        return self.module_class.config_class


_MODELS: dict[str, ModelEntry] = {}
_builtins_loaded = False


def register_model(name: str, *, description: str) -> Callable[[type[SpanNERModule]], type[SpanNERModule]]:
    """Class decorator: make ``model=name`` build this ``SpanNERModule`` subclass."""

    def register(module_class: type[SpanNERModule]) -> type[SpanNERModule]:
        if not issubclass(module_class, SpanNERModule):
            raise TypeError(f"{module_class.__name__} is not a SpanNERModule")
        if not issubclass(module_class.config_class, ModelConfig):
            raise TypeError(f"{module_class.__name__}.config_class must extend ModelConfig")
        if inspect.isabstract(module_class):
            missing = ", ".join(sorted(module_class.__abstractmethods__))
            raise TypeError(f"{module_class.__name__} does not implement {missing}")
        known = _MODELS.get(name)
        if known is not None and known.module_class.__qualname__ != module_class.__qualname__:
            raise ValueError(f"model {name!r} is already registered by {known.module_class.__qualname__}")
        _MODELS[name] = ModelEntry(name, module_class, description)
        return module_class

    return register


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for package in BUILTIN_MODELS:
        importlib.import_module(package)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def available_models() -> dict[str, ModelEntry]:
    _load_builtins()
    return dict(sorted(_MODELS.items()))


def get_model(name: str) -> ModelEntry:
    models = available_models()
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} Available: {', '.join(models)}")
    return models[name]


def model_class_of(source: str | Path, name: str, key: str) -> type[SpanNERModule]:
    """The module class of the model ``name`` that the file ``source`` names under ``key``; an unknown
    one is a ``CheckpointError`` naming the file and the key."""
    try:
        return get_model(name).module_class
    except UnknownModelError as err:
        raise CheckpointError(source, f"{key}: {err}") from None


def build_module(
    cfg: Mapping[str, Any],
    label_space: LabelSpace | Mapping[str, Any],
    encoder_config: Mapping[str, Any] | None = None,
    *,
    schedule: Schedule | None = None,
) -> SpanNERModule:
    """The LightningModule of ``cfg["model"]["name"]`` for a plain-dict run config (its network built
    by the model's ``build_network``; ``SpanNERModule.build``); ``schedule``: for a model that trains."""
    module_class = get_model(cfg["model"]["name"]).module_class
    return module_class.build(cfg, label_space, encoder_config, schedule=schedule)


def load_module(path: str | Path, *, map_location: str = "cpu", trust: bool = False) -> SpanNERModule:
    """Rebuild the trained module of a checkpoint (the right class, its weights), without any flag.

    The checkpoint is read as plain data only; ``trust=True`` (``--trust-checkpoint``) loads a file that
    needs more unrestricted (``checkpoints.read_checkpoint``). Its ``hyper_parameters`` are checked, and the
    network they describe compared with the state dict's shapes, before the network is built
    (``model_bounds``): a bad or oversized description is a ``CheckpointError`` naming the file."""
    from lightning_modules.checkpoints import check_checkpoint, checkpoint_model_name, read_checkpoint
    from lightning_modules.model_bounds import check_planned_weights, checked_description

    checkpoint = read_checkpoint(path, map_location=map_location, trust=trust)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        kind = "missing" if hparams is None else f"a {type(hparams).__name__}"
        raise CheckpointError(path, f"hyper_parameters is {kind}, not a mapping (not written by train.py?)")
    name = checkpoint_model_name(checkpoint)
    if name is None:
        raise CheckpointError(path, "no model name in its hyper_parameters (not written by train.py?)")
    module_class = model_class_of(path, name, "hyper_parameters.cfg.model.name")
    description = checked_description(
        path,
        module_class,
        hparams.get("cfg"),
        hparams.get("label_space"),
        hparams.get("encoder_config"),
        prefix="hyper_parameters.",
    )
    found = {key: tuple(tensor.shape) for key, tensor in checkpoint["state_dict"].items()}
    check_planned_weights(path, description, found, source="the checkpoint")
    try:
        module = module_class.build(description.cfg, description.label_space, description.encoder_config)
    except OSError as err:  # the encoder named in the run config cannot be found
        raise CheckpointError(
            path, f"cannot build its encoder {description.settings.encoder.name!r} ({err})"
        ) from None
    check_checkpoint(path, module, module.label_space.to_dict(), checkpoint=checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module
