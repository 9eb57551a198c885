"""What ``init_from=PATH`` means for a run: the trained model it starts from (a checkpoint or an
``export.py`` directory) and the model and encoder the run then builds.

A warm-started run takes the source's model (``model=NAME`` unless given) and encoder with its tokenizer
(``encoder.name``: the source's, or the export directory itself, whose encoder is rebuilt from its
config before the source's weights replace it); it has its own corpora, optimiser, schedule, sampler
and step counter. Once the run has a checkpoint, ``resume=auto`` continues it from there (the same command
line serves every requeue); without ``resume`` a run directory that already holds a checkpoint is refused
(``training/run_dir.py``, as for every run).

The weights (``warm_start``): every parameter of the network whose first dimension runs over entity
types, corpora or relation types is declared by its model (``SpanNERModule.type_rows``): one row key per
row (``lightning_modules/row_keys.py``). The two label spaces are matched first (``label_mapping``):

- ``qualified`` (the default): a type of the run takes the source's type of the same qualified name
  (``BC5CDR/Chemical``), a corpus the source's corpus of the same name;
- ``merged``: each corpus of the run takes the source corpus that has the most of its merged type names
  (ties: the first by name), and each type that corpus's type of the same merged name; so a BC5CDR model
  starts a user corpus whose types are ``Chemical`` and ``Disease``.

Then each declared row takes the source's row of the mapped key; a row whose key has no counterpart
keeps the run's fresh initialisation. Every other network parameter must have the source's shape. The
module's own buffers (class weights counted over this run's training rows) are the run's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from configs.compose import ConfigError
from datamodules.label_space import LabelSpace, qualify
from errors import BionerError, CheckpointError
from inference.tagger import EXPORT_FILE, checked_export, read_export_weights
from lightning_modules.checkpoints import checkpoint_model_name, read_checkpoint
from lightning_modules.model_bounds import check_planned_weights, checked_description
from lightning_modules.registry import model_class_of
from lightning_modules.row_keys import CORPUS, POOL, RELATION, TYPE, RowKey

if TYPE_CHECKING:
    from configs.schema import RunCfg

OPTIMISATION_KEYS = {"lr", "weight_decay", "warmup_epochs"}
MAPS = ("qualified", "merged")
NETWORK = "network."


class WarmStartError(BionerError):
    pass


@dataclass
class LabelMapping:
    """Run -> source: qualified types, corpora and qualified relation types that have a counterpart."""

    types: dict[str, str] = field(default_factory=dict)
    corpora: dict[str, str] = field(default_factory=dict)
    relations: dict[str, str] = field(default_factory=dict)

    def source_key(self, key: RowKey) -> RowKey | None:
        if len(key) == 1:
            return key
        role, kind, name = key
        if kind == POOL:
            return key
        table = {TYPE: self.types, CORPUS: self.corpora, RELATION: self.relations}[kind]
        return (role, kind, table[name]) if name in table else None


@dataclass
class WarmStartReport:
    """What a warm start kept (run type <- source type), started fresh and dropped, by qualified type."""

    source: str
    init_map: str
    kept: dict[str, str]
    new: list[str]
    dropped: list[str]
    corpora: dict[str, str]
    parameters: int  # network tensors copied whole or in part

    def lines(self) -> list[str]:
        kept = [k if k == v else f"{k} <- {v}" for k, v in self.kept.items()]
        return [
            f"init_from={self.source} (init_map={self.init_map}): {self.parameters} network tensors",
            f"  kept ({len(kept)}): {', '.join(kept) or '-'}",
            f"  new, freshly initialised ({len(self.new)}): {', '.join(self.new) or '-'}",
            f"  dropped, in the source only ({len(self.dropped)}): {', '.join(self.dropped) or '-'}",
        ]

    def to_dict(self) -> dict:
        return {
            "source": self.source, "init_map": self.init_map, "kept": self.kept, "new": self.new,
            "dropped": self.dropped, "corpora": self.corpora, "parameters": self.parameters,
        }  # fmt: skip


def label_mapping(run: LabelSpace, source: LabelSpace, init_map: str = "qualified") -> LabelMapping:
    if init_map not in MAPS:
        raise WarmStartError(f"init_map={init_map}: use one of {', '.join(MAPS)}")
    mapping = LabelMapping()
    for corpus in run.corpora:
        if init_map == "qualified":
            if corpus in source.corpora:
                mapping.corpora[corpus] = corpus
        else:
            wanted = set(run.corpus_types[corpus])
            overlap = {c: len(wanted & set(source.corpus_types[c])) for c in source.corpora}
            best = max(source.corpora, key=lambda c: (overlap[c], -source.corpora.index(c)))
            if overlap[best]:
                mapping.corpora[corpus] = best
        match = mapping.corpora.get(corpus)
        if match is None:
            continue
        for name in run.corpus_types[corpus]:
            if name in source.corpus_types[match]:
                mapping.types[qualify(corpus, name)] = qualify(match, name)
        for name in run.corpus_relation_types[corpus]:
            if name in source.corpus_relation_types[match]:
                mapping.relations[qualify(corpus, name)] = qualify(match, name)
    return mapping


def warm_start(
    module: torch.nn.Module,
    source_state: Mapping[str, torch.Tensor],
    source_labels: LabelSpace,
    *,
    init_map: str = "qualified",
    source_name: str = "source",
    source_model: Mapping | None = None,
    settings_hint: str = "",
) -> WarmStartReport:
    """Copy ``source_state`` (a state dict of the same model class) into ``module``'s network, mapping
    the declared type rows; the rest of ``module`` is left as built. ``source_model``: the source's
    ``model`` settings (default: the run's). ``settings_hint``: appended to a shape error (which model
    settings differ)."""
    cls = type(module)
    rows = cls.type_rows(module.model_cfg, module.label_space)
    source_config = module.model_cfg if source_model is None else cls.config_class(**source_model)
    source_rows = cls.type_rows(source_config, source_labels)
    if rows is None:
        raise WarmStartError(
            f"init_from={source_name}: model {module.model_cfg.name} does not say how its "
            "type-dependent parameters map (SpanNERModule.type_rows), so it cannot warm-start"
        )
    mapping = label_mapping(module.label_space, source_labels, init_map)
    target = module.state_dict()
    network_keys = [k for k in target if k.startswith(NETWORK)]
    missing = [k for k in network_keys if k not in source_state]
    extra = [k for k in source_state if k.startswith(NETWORK) and k not in target]
    if missing or extra:
        which = f"{missing[0]} is not in the source" if missing else f"{extra[0]} is in the source only"
        raise WarmStartError(f"init_from={source_name}: not the same network ({which}){settings_hint}")
    merged: dict[str, torch.Tensor] = {}
    for key in network_keys:
        mine, theirs = target[key], source_state[key]
        if key in rows:
            source_index = {k: i for i, k in enumerate(source_rows[key])}
            if mine.shape[1:] != theirs.shape[1:] or len(source_rows[key]) != theirs.shape[0]:
                raise WarmStartError(
                    f"init_from={source_name}: {key} is {tuple(theirs.shape)} in the source and "
                    f"{tuple(mine.shape)} here{settings_hint}"
                )
            value = mine.clone()
            for i, row_key in enumerate(rows[key]):
                found = mapping.source_key(row_key)
                if found is not None and found in source_index:
                    value[i] = theirs[source_index[found]].to(value.dtype)
            merged[key] = value
        elif mine.shape != theirs.shape:
            raise WarmStartError(
                f"init_from={source_name}: {key} is {tuple(theirs.shape)} in the source and "
                f"{tuple(mine.shape)} here{settings_hint}"
            )
        else:
            merged[key] = theirs.to(mine.dtype)
    module.load_state_dict(merged, strict=False)
    targets = set(mapping.types.values()) | set(mapping.relations.values())
    return WarmStartReport(
        source=source_name,
        init_map=init_map,
        kept={**mapping.types, **mapping.relations},
        new=[t for t in (*module.label_space.types, *module.label_space.relation_types)
             if t not in mapping.types and t not in mapping.relations],
        dropped=[t for t in (*source_labels.types, *source_labels.relation_types) if t not in targets],
        corpora=mapping.corpora,
        parameters=len(merged),
    )  # fmt: skip


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
    """The trained model at ``path``: a checkpoint file (read as plain data unless ``trust``), an
    ``export.py`` directory (safetensors and JSON) or a Hub id of one (``org/name[@revision]``, resolved by
    ``inference.hub_ids``; the source is then named by the commit it resolved to)."""
    from inference.hub_ids import resolve_model

    snapshot, hub = resolve_model(path)
    if hub is not None:
        return replace(read_init_source(str(snapshot), trust), path=hub.pinned)
    where = Path(path)
    if where.is_dir():
        if not (where / EXPORT_FILE).exists():
            raise ConfigError(
                f"init_from={path}: a directory without {EXPORT_FILE}; name a checkpoint file or a "
                "directory written by export.py"
            )
        meta, description, weights_path = checked_export(where)
        state = read_export_weights(where, weights_path)
        return InitSource(
            path, str(meta["model"]), dict(description.cfg), description.label_space, state,
            dict(description.encoder_config), str(where), _step(meta.get("global_step")),
        )  # fmt: skip
    if not where.exists():
        raise ConfigError(f"init_from={path}: no such checkpoint file or export directory")
    checkpoint = read_checkpoint(where, trust=trust)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        kind = "missing" if hparams is None else f"a {type(hparams).__name__}"
        raise CheckpointError(where, f"hyper_parameters is {kind}, not a mapping (not written by train.py?)")
    name = checkpoint_model_name(checkpoint)
    if name is None or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(where, "not a model checkpoint of train.py (no model or weights)")
    description = checked_description(
        where,
        model_class_of(where, name, "hyper_parameters.cfg.model.name"),
        hparams.get("cfg"),
        hparams.get("label_space"),
        hparams.get("encoder_config"),
        prefix="hyper_parameters.",
    )
    found = {key: tuple(getattr(value, "shape", ())) for key, value in checkpoint["state_dict"].items()}
    check_planned_weights(where, description, found, source="the checkpoint")
    return InitSource(
        path, name, dict(description.cfg), description.label_space, checkpoint["state_dict"],
        hparams.get("encoder_config"), description.settings.encoder.name,
        _step(checkpoint.get("global_step")),
    )  # fmt: skip


def _step(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def check_init(cfg: RunCfg, resuming: bool) -> InitSource | None:
    """The source of a warm start (None: no ``init_from``, or the run resumes its own checkpoint)."""
    if not cfg.get("init_from"):
        return None
    if cfg.init_map not in MAPS:
        raise ConfigError(f"init_map={cfg.init_map}: use one of {', '.join(MAPS)}")
    if resuming:
        print(f"init_from={cfg.init_from}: not applied, the run resumes its own checkpoint", flush=True)
        return None
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


def apply_init(module: Any, source: InitSource, cfg: RunCfg) -> WarmStartReport:
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
