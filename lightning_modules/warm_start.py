"""Warm start: a new run's network from a trained model's weights, across label spaces (``init_from``).

Every parameter of the network whose first dimension runs over entity types, corpora or relation types
is declared by its model (``SpanNERModule.type_rows``): one ``RowKey`` per row, ``("TR", TYPE,
"BC5CDR/Chemical")``, ``("O", CORPUS, "BC5CDR")``, ``("EOA",)``. The two label spaces are matched first
(``label_mapping``):

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

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from datamodules.label_space import LabelSpace, qualify
from errors import BionerError

TYPE, CORPUS, RELATION, POOL = "type", "corpus", "relation", "pool"
# (role,) or (role, TYPE | CORPUS | RELATION, qualified name or corpus), or (role, POOL, index): a row of
# a pool whose size follows the label space but whose rows belong to no type (SRU-NER's latents) is kept
# where the source has a row of that index
RowKey = tuple[str, ...]
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
            f"init_from={source_name}: model {module.cfg['model']['name']} does not say how its "
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


def type_keys(role: str, label_space: LabelSpace) -> list[RowKey]:
    """One row per qualified entity type, in type-id order."""
    return [(role, TYPE, t) for t in label_space.types]


def relation_keys(role: str, label_space: LabelSpace) -> list[RowKey]:
    return [(role, RELATION, r) for r in label_space.relation_types]
