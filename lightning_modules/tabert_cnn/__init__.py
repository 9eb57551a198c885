"""TabERT-CNN (``model=tabert_cnn``); importing the package registers the model."""

from lightning_modules.tabert_cnn.module import TabERTCNNModule

__all__ = ["TabERTCNNModule"]
