"""Using a trained model: ``load(checkpoint_or_export_dir).predict(texts)`` (see ``inference.tagger``)."""

from inference.documents import Document, Entity, Passage
from inference.tagger import Tagger, export, load

__all__ = ["Document", "Entity", "Passage", "Tagger", "export", "load"]
