"""How well a multi-corpus model finds the types a corpus does not annotate, at every validation.

A corpus annotated for some types only (each half of ``scripts/synthetic_halves.py``: BC5CDR with its
Chemical or its Disease mentions) holds unannotated mentions of the other types. Their gold is known for
such a synthetic corpus and comes as a JSON file (``callbacks.hidden_gold``)::

    {"<corpus>": {"type": "<the merged type it lacks>",
                  "sentences": {"<dev sentence index>": [[start, end], ...]}}}

After each validation the callback logs, per listed corpus, the recall and precision of the lacking type's
predictions (any corpus's type with that merged name) against that hidden gold on the corpus's dev
sentences: ``val/unannotated/<corpus>/<type>/recall`` and ``.../precision`` (percent). The counts are summed
over processes. Rows that are later windows of a long sentence (``chunk > 0``) are skipped (their word
offsets are not the sentence's).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import torch

from errors import ConfigError


class UnannotatedRecall(pl.Callback):
    def __init__(self, hidden_gold: str | Path) -> None:
        path = Path(hidden_gold)
        try:
            data = json.loads(path.read_text())
            self.gold = {
                corpus: (
                    entry["type"],
                    {int(i): {tuple(s) for s in spans} for i, spans in entry["sentences"].items()},
                )
                for corpus, entry in data.items()
            }
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"callbacks.hidden_gold={path}: not a hidden-gold file ({err})") from None
        self._counts: dict[str, list[int]] = {}  # corpus -> [true positives, gold, predicted]

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._counts = {corpus: [0, 0, 0] for corpus in self.gold if corpus in pl_module.label_space.corpora}

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if trainer.sanity_checking or outputs is None:
            return
        space = pl_module.label_space
        for b, (corpus_id, sentence, chunk) in enumerate(
            zip(batch["corpus_id"].tolist(), batch["sentence_index"].tolist(), batch["chunk"].tolist())
        ):
            corpus = space.corpora[corpus_id]
            if corpus not in self._counts or chunk != 0:
                continue
            lacking, sentences = self.gold[corpus]
            gold = sentences.get(sentence, set())
            found = {(s, e) for s, e, t in outputs.spans[b] if space.merged_of(t) == lacking}
            counts = self._counts[corpus]
            counts[0] += len(found & gold)
            counts[1] += len(gold)
            counts[2] += len(found)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._counts:
            return
        corpora = sorted(self._counts)
        rows = [self._counts[c] for c in corpora]
        counts = torch.tensor(rows, dtype=torch.float64, device=pl_module.device)
        counts = trainer.strategy.reduce(counts, reduce_op="sum")  # every process runs this hook
        for corpus, (hits, gold, found) in zip(corpora, counts.tolist()):
            lacking = self.gold[corpus][0]
            prefix = f"val/unannotated/{corpus}/{lacking}"
            pl_module.log(f"{prefix}/recall", 100.0 * hits / gold if gold else 0.0, sync_dist=False)
            pl_module.log(f"{prefix}/precision", 100.0 * hits / found if found else 0.0, sync_dist=False)
