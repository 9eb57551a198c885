"""Memory and time of one SRU-NER training step: dense (spec A3 as written) vs decomposed memory read.

Measures the SRU head alone (the encoder's cost does not depend on the memory form) on the shapes of a
MiniLM six-corpus run: batch 16, hidden 384, 11 corpus-qualified types (24 actions, 48 latents), random
gold mentions (about one per six words, a quarter of them nested), the dynamic multi-hot target on.
Each configuration runs in a fresh subprocess so that its peak RSS is its own.

Reported per configuration:
  saved_mb   bytes of the tensors autograd keeps for backward (unique storages), at the end of forward
  peak_mb    growth of the process's peak RSS over one forward + backward (VmHWM - VmRSS before)
  step_s     median wall time of forward + backward over --repeats steps (after one warm-up)

    python bench/sru_memory.py                        # 64/128/256/405 slots; dense up to 128
    python bench/sru_memory.py --dense-max-slots 256  # dense at 256 needs tens of GB

Writes bench/results/sru_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import (
    RESULTS,
    ChildFailed,
    arg_parser,
    command_line,
    machine,
    peak_mb,
    resident_mb,
    run_in_child,
    write_result,
)


def _batch(slots: int, batch: int, num_types: int, num_corpora: int, seed: int):
    import numpy as np
    import torch

    from lightning_modules.sru_ner.codec import (
        ActionVocabulary,
        dense_batch,
        gold_action_rows,
    )

    rng = np.random.default_rng(seed)
    vocab = ActionVocabulary(num_types)
    num_words = slots - 2  # CLS and SEP slots
    items = []
    for _ in range(batch):
        spans = set()
        for _ in range(max(1, num_words // 6)):
            start = int(rng.integers(0, num_words))
            end = int(min(num_words, start + rng.integers(1, 5)))
            spans.add((start, end, int(rng.integers(0, num_types))))
            if rng.random() < 0.25 and end - start > 1:  # a nested mention inside it
                spans.add((start, start + 1, int(rng.integers(0, num_types))))
        items.append(gold_action_rows(sorted(spans), num_words, vocab))
    gold = torch.from_numpy(dense_batch(items, vocab.size))
    # other corpora's typed columns: types are split evenly over corpora, sentence i from corpus i % K
    corpus_of_type = torch.arange(num_types) % num_corpora
    typed = torch.zeros(batch, vocab.size, dtype=torch.bool)
    for i in range(batch):
        other = (corpus_of_type != i % num_corpora).nonzero().flatten().tolist()
        for t in other:
            typed[i, vocab.transition(t)] = typed[i, vocab.reduce(t)] = True
    return vocab, gold, typed


def measure_one(memory: str, slots: int, repeats: int, batch: int, hidden: int, seed: int) -> dict:
    import torch

    from lightning_modules.sru_ner.config import SRUNERConfig
    from lightning_modules.sru_ner.network import SRUHead
    from losses import multi_hot_bce

    torch.manual_seed(seed)
    num_types, num_corpora = 11, 6
    vocab, gold, other_mask = _batch(slots, batch, num_types, num_corpora, seed)
    head = SRUHead(SRUNERConfig(memory=memory), vocab.size, hidden).train()
    word_mask = torch.ones(batch, slots, dtype=torch.bool)
    slot_embeddings = torch.randn(batch, slots, hidden)

    def step(count_saved: bool) -> tuple[float, float, int]:
        source = slot_embeddings.clone().requires_grad_(True)
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t

        start = time.perf_counter()
        if count_saved:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = head(source, word_mask, gold, other_mask)
        else:
            out = head(source, word_mask, gold, other_mask)
        loss = multi_hot_bce(out.logits, out.targets, out.row_mask)
        loss.backward()
        head.zero_grad(set_to_none=True)
        return time.perf_counter() - start, sum(storages.values()) / 2**20, out.logits.shape[1]

    rss_before = resident_mb()
    _, saved_mb, steps = step(count_saved=True)
    peak_growth_mb = peak_mb() - rss_before
    times = [step(count_saved=False)[0] for _ in range(repeats)]
    return {
        "memory": memory,
        "slots": slots,
        "batch": batch,
        "hidden": hidden,
        "gold_steps": int(gold.shape[1]),
        "steps_run": int(steps),
        "saved_mb": round(saved_mb, 1),
        "peak_mb": round(peak_growth_mb, 1),
        "step_s": round(statistics.median(times), 3),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--slots", type=int, nargs="+", default=[64, 128, 256, 405])
    parser.add_argument("--dense-max-slots", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("MEMORY", "SLOTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        result = measure_one(args.one[0], int(args.one[1]), args.repeats, args.batch, args.hidden, args.seed)
        print(json.dumps(result))
        return 0

    rows = []
    for slots in args.slots:
        for memory in ("dense", "decomposed"):
            if memory == "dense" and slots > args.dense_max_slots:
                rows.append(
                    {
                        "memory": memory,
                        "slots": slots,
                        "skipped": f"> --dense-max-slots {args.dense_max_slots}",
                    }
                )
                continue
            cmd = [__file__, "--one", memory, str(slots), "--repeats", str(args.repeats)]
            cmd += ["--batch", str(args.batch), "--hidden", str(args.hidden), "--seed", str(args.seed)]
            try:
                rows.append(run_in_child(cmd))
            except ChildFailed as failed:
                rows.append({"memory": memory, "slots": slots, "failed": failed.last_line})
            print(json.dumps(rows[-1]), flush=True)

    host = machine()
    meta = {"command": command_line(__file__, argv), "machine": host["platform"], "cpus": host["cpus"]}
    write_result("sru_memory", {"meta": meta, "rows": rows}, quiet=True)
    lines = [
        f"`{meta['command']}` on {meta['machine']}, {meta['cpus']} CPUs",
        "",
        "| slots | memory | gold steps | steps run | saved for backward (MB) | peak RSS growth (MB) "
        "| fwd+bwd (s) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "saved_mb" in r:
            lines.append(
                f"| {r['slots']} | {r['memory']} | {r['gold_steps']} | {r['steps_run']} "
                f"| {r['saved_mb']:,.1f} | {r['peak_mb']:,.1f} | {r['step_s']:.3f} |"
            )
        else:
            lines.append(f"| {r['slots']} | {r['memory']} | | | {r.get('skipped') or r.get('failed')} | | |")
    (RESULTS / "sru_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
