"""The unit every reader produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A mention over words ``[start, end)`` (exclusive end) with its type as written in the corpus."""

    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Relation:
    """A directed relation between two spans of the same sentence (indices into ``Sentence.spans``)."""

    head: int
    tail: int
    type: str


@dataclass(frozen=True)
class Sentence:
    tokens: tuple[str, ...]
    spans: tuple[Span, ...]
    corpus: str
    doc_id: str = ""
    relations: tuple[Relation, ...] = field(default=())

    def __post_init__(self) -> None:
        for span in self.spans:
            if not 0 <= span.start < span.end <= len(self.tokens):
                raise ValueError(f"span {span} outside sentence of {len(self.tokens)} words")
