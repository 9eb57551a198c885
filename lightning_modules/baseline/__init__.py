"""The per-corpus tagging baseline (``model=baseline``); importing the package registers the model."""

from lightning_modules.baseline.module import PerCorpusTaggerModule

__all__ = ["PerCorpusTaggerModule"]
