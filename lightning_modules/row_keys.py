"""Row keys: how a model names the rows of its type-dependent parameters (``SpanNERModule.type_rows``),
so that a warm start (``training/warm_start.py``) maps them across label spaces.

A key is ``(role,)`` or ``(role, TYPE | CORPUS | RELATION, qualified name or corpus)``, e.g.
``("TR", TYPE, "BC5CDR/Chemical")``, ``("O", CORPUS, "BC5CDR")``, ``("EOA",)``; or ``(role, POOL, index)``:
a row of a pool whose size follows the label space but whose rows belong to no type (SRU-NER's latents),
kept where the source has a row of that index.
"""

from __future__ import annotations

from datamodules.label_space import LabelSpace

TYPE, CORPUS, RELATION, POOL = "type", "corpus", "relation", "pool"
RowKey = tuple[str, ...]


def type_keys(role: str, label_space: LabelSpace) -> list[RowKey]:
    """One row per qualified entity type, in type-id order."""
    return [(role, TYPE, t) for t in label_space.types]


def relation_keys(role: str, label_space: LabelSpace) -> list[RowKey]:
    return [(role, RELATION, r) for r in label_space.relation_types]
