"""SRU-NER (``model=sru_ner``); importing the package registers the model."""

from lightning_modules.sru_ner.module import SRUNERModule

__all__ = ["SRUNERModule"]
