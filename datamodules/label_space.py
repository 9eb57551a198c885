"""Corpus-qualified, disjoint entity types and their merged view.

``BC5CDR/Chemical`` and ``BC4CHEMD/Chemical`` are different labels (a model trained on both learns two
types); the merged view drops the corpus prefix so both map back to ``Chemical`` for evaluation.
Type order is fixed: corpora sorted by name, types sorted within a corpus. Relation types (CoNLL04, ADE)
are qualified and ordered the same way (``CoNLL04/Kill``); a label space of NER-only corpora has none.
Checkpoints carry ``to_dict()`` so a model can be reloaded without the corpora.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SEPARATOR = "/"


class LabelSpace:
    def __init__(
        self,
        corpus_types: Mapping[str, Iterable[str]],
        relation_types: Mapping[str, Iterable[str]] | None = None,
    ):
        if not corpus_types:
            raise ValueError("a label space needs at least one corpus")
        unknown = set(relation_types or ()) - set(corpus_types)
        if unknown:
            raise ValueError(f"relation types for corpora without entity types: {sorted(unknown)}")
        self.corpora: tuple[str, ...] = tuple(sorted(corpus_types))
        self.corpus_types: dict[str, tuple[str, ...]] = {
            c: tuple(sorted(set(corpus_types[c]))) for c in self.corpora
        }
        self.types: tuple[str, ...] = tuple(qualify(c, t) for c in self.corpora for t in self.corpus_types[c])
        self.type_index: dict[str, int] = {q: i for i, q in enumerate(self.types)}
        self.corpus_index: dict[str, int] = {c: i for i, c in enumerate(self.corpora)}
        self.merged_types: tuple[str, ...] = tuple(
            sorted({t for ts in self.corpus_types.values() for t in ts})
        )
        self.merged_index: dict[str, int] = {t: i for i, t in enumerate(self.merged_types)}
        self.corpus_relation_types: dict[str, tuple[str, ...]] = {
            c: tuple(sorted(set((relation_types or {}).get(c, ())))) for c in self.corpora
        }
        self.relation_types: tuple[str, ...] = tuple(
            qualify(c, r) for c in self.corpora for r in self.corpus_relation_types[c]
        )
        self.relation_index: dict[str, int] = {q: i for i, q in enumerate(self.relation_types)}

    # --- lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.types)

    def type_id(self, corpus: str, unified_type: str) -> int:
        return self.type_index[qualify(corpus, unified_type)]

    def corpus_of(self, type_id: int) -> str:
        return split_qualified(self.types[type_id])[0]

    def merged_of(self, type_id: int) -> str:
        return split_qualified(self.types[type_id])[1]

    def type_ids_of(self, corpus: str) -> list[int]:
        return [self.type_index[qualify(corpus, t)] for t in self.corpus_types[corpus]]

    def corpus_id_per_type(self) -> list[int]:
        return [self.corpus_index[self.corpus_of(i)] for i in range(len(self))]

    def merged_id_per_type(self) -> list[int]:
        return [self.merged_index[self.merged_of(i)] for i in range(len(self))]

    def relation_id(self, corpus: str, relation_type: str) -> int:
        return self.relation_index[qualify(corpus, relation_type)]

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{corpus: [types]}``; with relation types ``{"entity_types": ..., "relation_types": ...}``."""
        entities = {c: list(ts) for c, ts in self.corpus_types.items()}
        if not self.relation_types:
            return entities
        relations = {c: list(rs) for c, rs in self.corpus_relation_types.items() if rs}
        return {"entity_types": entities, "relation_types": relations}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpace:
        if "entity_types" in data:
            return cls(data["entity_types"], data.get("relation_types"))
        return cls(data)

    @classmethod
    def coerce(cls, value: LabelSpace | Mapping[str, Iterable[str]]) -> LabelSpace:
        """``value`` itself when it is a label space, else one from its ``to_dict()`` form (checkpoints)."""
        return value if isinstance(value, LabelSpace) else cls.from_dict(value)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LabelSpace)
            and self.corpus_types == other.corpus_types
            and self.corpus_relation_types == other.corpus_relation_types
        )

    def __repr__(self) -> str:
        return f"LabelSpace({self.to_dict()})"


def qualify(corpus: str, unified_type: str) -> str:
    return f"{corpus}{SEPARATOR}{unified_type}"


def split_qualified(qualified: str) -> tuple[str, str]:
    corpus, _, t = qualified.partition(SEPARATOR)
    return corpus, t
