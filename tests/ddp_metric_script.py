"""Feed a fixed set of sentences to ``SpanF1`` under ``Trainer.validate`` on N CPU processes.

Usage: ``python tests/ddp_metric_script.py --devices N --out counts.json``. Run by
``tests/test_span_f1_ddp.py`` as a subprocess (``strategy="ddp"`` re-executes ``sys.argv`` for the other
ranks, which must not be the pytest command line). Rank 0 writes the synchronised counts, the scores and
how many sentences each rank saw. Lightning is imported inside ``main`` so that the test can import
``make_sentences`` and ``LABEL_SPACE`` cheaply.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from datamodules.label_space import LabelSpace

LABEL_SPACE = LabelSpace(
    {
        "BC5CDR": ["Chemical", "Disease"],
        "BC4CHEMD": ["Chemical"],
        "NCBI-disease": ["Disease"],
        "JNLPBA": ["DNA", "RNA", "Cell_Line", "Cell_Type", "Gene_or_protein"],
    }
)
NUM_SENTENCES = 48  # divisible by 2 ranks x BATCH_SIZE: DistributedSampler pads nothing
BATCH_SIZE = 4

Sentence = tuple[int, torch.Tensor, torch.Tensor]


def make_sentences(n: int = NUM_SENTENCES, seed: int = 0) -> list[Sentence]:
    """Deterministic (corpus_id, gold (S,3), pred (S,3)) triples with hits, misses, duplicates and
    predictions of other corpora's types (some sharing the merged type)."""
    ls, rng = LABEL_SPACE, random.Random(seed)
    merged_of = ls.merged_id_per_type()
    out: list[Sentence] = []
    for i in range(n):
        cid = (i // 2) % len(ls.corpora)  # every corpus lands on both ranks
        own = ls.type_ids_of(ls.corpora[cid])
        gold = [(2 * k, 2 * k + rng.randint(1, 2), rng.choice(own)) for k in range(rng.randint(0, 4))]
        pred = []
        for s, e, typ in gold:
            r = rng.random()
            if r < 0.5:
                pred.append((s, e, typ))
            elif r < 0.7:  # same merged type from another corpus (a merged-view hit only)
                same = [u for u in range(len(ls)) if merged_of[u] == merged_of[typ] and u != typ]
                pred.append((s, e, rng.choice(same or [typ])))
            elif r < 0.85:
                pred.append((s, e + 1, typ))  # boundary error
        pred += [(20 + k, 21 + k, rng.randrange(len(ls))) for k in range(rng.randint(0, 3))]
        if pred and rng.random() < 0.3:
            pred.append(pred[0])  # duplicate
        rng.shuffle(pred)
        out.append((cid, _tensor(gold), _tensor(pred)))
    return out


def _tensor(rows: list[tuple[int, int, int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from metrics.span_f1 import SpanF1

    sentences = make_sentences()

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.dummy = torch.nn.Linear(1, 1)  # DDP refuses a module without trainable parameters
            self.metric = SpanF1(LABEL_SPACE)
            self.result: dict[str, object] = {}

        def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
            picked = [sentences[i] for i in batch[0].tolist()]
            self.metric.update([s[0] for s in picked], [s[1] for s in picked], [s[2] for s in picked])

        def on_validation_epoch_end(self) -> None:
            local = torch.tensor([int(self.metric.sentences.sum())])
            per_rank = self.all_gather(local).reshape(-1).tolist()  # collective: every rank calls it
            counts = self.metric.counts()
            scores = {k: float(v) for k, v in self.metric.compute().items()}
            self.metric.reset()
            self.result = {"local_sentences": per_rank, "counts": counts, "scores": scores}

    model = Module()
    loader = DataLoader(TensorDataset(torch.arange(NUM_SENTENCES)), batch_size=BATCH_SIZE, shuffle=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(model, dataloaders=loader, verbose=False)
    if trainer.is_global_zero:
        result = {"world_size": trainer.world_size, **model.result}
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    if torch.distributed.is_initialized():
        # tear the group down here, every rank together, rather than in Lightning's atexit handler: there
        # gloo's threads were once destroyed while joinable ("terminate called without an active
        # exception", both ranks aborted after the result was written; CI at 15eb5be)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
