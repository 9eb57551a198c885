"""What a reader yields and a writer takes: a ``Document`` (an id and passages, each a text at a character
offset in the document) and the ``Entity`` mentions found in it, in document character offsets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Passage:
    offset: int
    text: str
    infons: dict[str, str] = field(default_factory=dict)  # BioC passage infons (PubMed: type, label...)


@dataclass
class Document:
    id: str
    passages: list[Passage]
    source: Any = None  # what the writer of the same format needs to reproduce the input

    def to_bioc(self) -> Any:
        """A ``bioc.BioCDocument`` with this document's id and passages (offsets, texts, infons), no
        annotations."""
        import bioc  # only the BioC formats need it

        document = bioc.BioCDocument()
        document.id = self.id
        for passage in self.passages:
            bioc_passage = bioc.BioCPassage()
            bioc_passage.offset, bioc_passage.text = passage.offset, passage.text
            bioc_passage.infons.update(passage.infons)
            document.add_passage(bioc_passage)
        return document


@dataclass(frozen=True)
class Entity:
    doc_id: str
    start: int  # document character offsets, end exclusive
    end: int
    text: str
    type: str  # merged (``Chemical``) or corpus-qualified (``BC5CDR/Chemical``), as requested
    corpus_type: str  # always corpus-qualified
    score: float | None  # the model's confidence in [0, 1]; None for a model that reports none

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "type": self.type,
            "corpus_type": self.corpus_type,
            "score": None if self.score is None else round(self.score, 4),
        }
