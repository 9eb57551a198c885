"""The stand-in model of the prediction tests: every word a BC5CDR/Chemical mention and every row (window)
one NCBI-disease/Disease mention around them, no scores, so the expected output is known word by word
(a document of n words in one window has n + 1 mentions); and where the shared corpora are."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import torch

from datamodules.corpora import label_space_of
from lightning_modules.outputs import Prediction

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PUBTATOR = SHARED / "BC5CDR-PubTator" / "CDR_TestSet.PubTator.txt"
LS = label_space_of(["BC4CHEMD", "BC5CDR", "NCBI-disease"])
CHEMICAL, DISEASE = LS.type_id("BC5CDR", "Chemical"), LS.type_id("NCBI-disease", "Disease")


class EveryWordModule(torch.nn.Module):
    label_space = LS
    settings = SimpleNamespace(precision="32-true")  # what a trained module's settings say

    def __init__(self):
        super().__init__()
        self.batches = []  # (sentences, max words, max subwords) of each batch predicted

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    def eval_batch_bytes(self, sentences, words, subwords, element_bytes=None):
        return sentences * words * words * element_bytes  # a table's cost: 4 bytes per cell in fp32

    def predict(self, batch):
        n = batch["num_words"].tolist()
        self.batches.append((len(n), max(n), batch["input_ids"].shape[1]))
        return Prediction([[(i, i + 1, CHEMICAL) for i in range(k)] + [(0, k, DISEASE)] for k in n])
