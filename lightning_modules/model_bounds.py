"""A model described by a file (a checkpoint's ``hyper_parameters``, an export's ``bioner_model.json``) is
checked before anything of it is allocated.

The network is built from that description, and only then are the weights compared with it: a header
claiming 10^6 label types or 10^5-wide layers would allocate gigabytes before failing. So, in order:

1. the description's shape: mappings where mappings belong, a ``model`` and an ``encoder`` section, the
   model section accepted by the model's config dataclass (no unknown key, ``lr > 0``, ...);
2. sane limits (below), so that even an empty network of it stays small as Python objects;
3. the network is built on the ``meta`` device (shapes, no storage) and its state-dict shapes are compared
   with those the weights file holds (``check_state_shapes``): a network is built for real only when
   it matches weights that exist, so memory is bounded by the weights file itself.

The limits leave a wide margin over real encoders (BERT-large and BioLinkBERT-large: hidden 1024, 24
layers, 16 heads, intermediate 4096, vocabulary 28,996-60,000 and 512 positions; XLM-R: vocabulary
250,002; ModernBERT: 8,192 positions) and over this project's models (at most a few hundred types; the
model sections' sizes are in the hundreds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from datamodules.label_space import LabelSpace
from errors import CheckpointError
from lightning_modules.checkpoints import check_state_shapes
from lightning_modules.settings import ModuleSettings

MAX_CORPORA = 10_000
MAX_TYPES = 10_000  # entity types over all corpora
MAX_RELATION_TYPES = 10_000
MAX_MODEL_INT = 16_384  # any integer of the model section (TabERT-CNN channels 512, SRU-NER half_context 150)
ENCODER_LIMITS: dict[str, int] = {
    "hidden_size": 8_192,
    "intermediate_size": 32_768,
    "num_hidden_layers": 96,
    "num_attention_heads": 128,
    "vocab_size": 1_000_000,
    "max_position_embeddings": 65_536,
    "type_vocab_size": 1_024,
    "embedding_size": 8_192,  # ALBERT, ELECTRA
    "dim": 8_192,  # DistilBERT's names for the same
    "hidden_dim": 32_768,
    "n_layers": 96,
    "n_heads": 128,
}

_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RuntimeError)


@dataclass(frozen=True)
class ModelDescription:
    """A checked description: what ``module_class.build`` is called with."""

    module_class: type
    cfg: Mapping[str, Any]
    settings: ModuleSettings
    label_space: LabelSpace
    encoder_config: Mapping[str, Any] | None


def checked_description(
    path: Any,
    module_class: type,
    cfg: Any,
    label_space: Any,
    encoder_config: Any,
    *,
    prefix: str = "",
    needs_encoder_config: bool = False,
) -> ModelDescription:
    """Steps 1 and 2 of the module docstring; a ``CheckpointError`` naming ``path`` and the key
    (``prefix`` + its path in the description, e.g. ``hyper_parameters.cfg.model.lr``) otherwise."""

    def refuse(key: str, problem: str) -> CheckpointError:
        return CheckpointError(path, f"{prefix}{key}: {problem}")

    if not isinstance(cfg, Mapping):
        raise refuse("cfg", f"is {_kind(cfg)}, not a mapping")
    for section in ("model", "encoder"):
        if not isinstance(cfg.get(section), Mapping):
            raise refuse(f"cfg.{section}", "missing" if section not in cfg else f"is {_kind(cfg[section])}")
    for section in ("trainer", "optim", "data"):
        if section in cfg and not isinstance(cfg[section], Mapping):
            raise refuse(f"cfg.{section}", f"is {_kind(cfg[section])}, not a mapping")
    try:
        settings = ModuleSettings.of(module_class.config_class, cfg)
    except (TypeError, ValueError) as err:
        raise refuse("cfg", _short(err)) from None
    if not isinstance(settings.encoder.name, str) or "name" not in cfg.get("encoder", {}):
        raise refuse("cfg.encoder.name", "missing or not a string")
    for field in dataclasses.fields(settings.model):
        value = getattr(settings.model, field.name)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_MODEL_INT:
            raise refuse(f"cfg.model.{field.name}", f"{value} is over the limit of {MAX_MODEL_INT}")
    space = _checked_label_space(label_space, refuse)
    if encoder_config is None and needs_encoder_config:
        raise refuse("encoder_config", "missing")
    if encoder_config is not None:
        check_encoder_config(encoder_config, lambda key, problem: refuse(f"encoder_config{key}", problem))
    return ModelDescription(module_class, cfg, settings, space, encoder_config)


def check_encoder_config(config: Any, refuse: Any) -> None:
    """``config`` (a transformers config dict) within ``ENCODER_LIMITS``; ``refuse(".key", problem)``
    makes the error to raise."""
    if not isinstance(config, Mapping):
        raise refuse("", f"is {_kind(config)}, not a mapping")
    if not isinstance(config.get("model_type"), str):
        raise refuse(".model_type", "missing or not a string")
    for key, limit in ENCODER_LIMITS.items():
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise refuse(f".{key}", f"{_cut(value)} is not an integer in [1, {limit:,}]")


def _checked_label_space(value: Any, refuse: Any) -> LabelSpace:
    """The label space of ``value`` (a ``LabelSpace.to_dict()``), counted before it is built."""
    key = "label_space"
    if not isinstance(value, Mapping):
        raise refuse(key, f"is {_kind(value)}, not a mapping")
    relations: Any = {}
    entities: Any = value
    if "entity_types" in value:
        entities, relations = value["entity_types"], value.get("relation_types") or {}
        key = "label_space.entity_types"
    for where, groups, limit in (
        (key, entities, MAX_TYPES),
        ("label_space.relation_types", relations, MAX_RELATION_TYPES),
    ):
        if not isinstance(groups, Mapping):
            raise refuse(where, f"is {_kind(groups)}, not a mapping")
        if len(groups) > MAX_CORPORA:
            raise refuse(where, f"{len(groups):,} corpora; at most {MAX_CORPORA:,}")
        count = 0
        for corpus, names in groups.items():
            if not isinstance(corpus, str) or not isinstance(names, list | tuple):
                raise refuse(f"{where}.{_cut(corpus)}", "not a corpus name and a list of type names")
            count += len(names)
            if count > limit:
                raise refuse(where, f"more than {limit:,} types")
            if not all(isinstance(name, str) for name in names):
                raise refuse(f"{where}.{_cut(corpus)}", "a type name that is not a string")
    try:
        return LabelSpace(entities, relations)
    except ValueError as err:
        raise refuse(key, _short(err)) from None


def planned_shapes(
    path: Any, description: ModelDescription
) -> tuple[dict[str, tuple[int, ...]], frozenset[str]]:
    """The state-dict shapes of the described module and the keys it may lack, from a build on the
    ``meta`` device (nothing allocated). Without an ``encoder_config`` the encoder's own config is read
    from ``cfg.encoder.name`` (and checked like one)."""
    encoder_config = description.encoder_config
    name = description.settings.encoder.name
    if encoder_config is None:
        from transformers import AutoConfig

        try:
            encoder_config = AutoConfig.from_pretrained(name).to_dict()
        except (OSError, ValueError) as err:
            raise CheckpointError(path, f"cannot build its encoder {_cut(name)!r} ({_short(err)})") from None
        check_encoder_config(
            encoder_config,
            lambda key, problem: CheckpointError(path, f"its encoder {_cut(name)!r}: config{key}: {problem}"),
        )
    try:
        with torch.device("meta"):
            module = description.module_class.build(description.cfg, description.label_space, encoder_config)
    except _BUILD_ERRORS as err:
        raise CheckpointError(path, f"cannot build the model it describes ({_short(err)})") from None
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    return shapes, frozenset(module.optional_state_keys)


def check_planned_weights(
    path: Any, description: ModelDescription, found: Mapping[str, tuple[int, ...]], *, source: str
) -> None:
    """The described module's state-dict shapes (``planned_shapes``) are exactly ``found``, the shapes
    the weights file holds, before the module is built for real."""
    planned, optional = planned_shapes(path, description)
    check_state_shapes(path, planned, found, optional, source=source)


def _kind(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def _cut(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(err: BaseException) -> str:
    return _cut(" ".join(f"{type(err).__name__}: {err}".split()), 300)
