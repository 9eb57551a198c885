"""TabERT-CNN's first convolution, straightforward vs factored: time and peak memory of one training step.

One training step (forward, loss, backward, AdamW) of the whole model (MiniLM encoder + table CNN, paper
mode on the CoNLL04 label space) on one batch of 16 sentences of exactly 40, 80 and 160 words (one subword
each, random gold entities and relations), for ``model.first_layer`` = straightforward (the n x n x 2p pair
table, then Conv2d) and factored (a row term plus a column term, ``lightning_modules/tabert_cnn/network.py``).
Each (length, form) runs in a fresh process, so the peak resident memory (VmHWM) is its own; the step
time is the median of the timed steps after one warm-up step.

    python bench/tabert_first_layer.py                       # the paper's table: 512 channels, p = d
    python bench/tabert_first_layer.py --channels 256 --pair-dim 128 --tag cpu   # the *_cpu experiments

Writes bench/results/tabert_first_layer[-TAG].json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from common import (
    ChildFailed,
    arg_parser,
    command_line,
    machine,
    peak_mb,
    reset_peak,
    resident_mb,
    run_in_child,
    write_result,
)

LENGTHS = (40, 80, 160)
FORMS = ("factored", "straightforward")


def measure(words: int, form: str, channels: int, pair_dim: int, steps: int) -> dict:
    import random

    import torch
    from transformers import AutoTokenizer

    from configs.compose import _minilm_path
    from datamodules.corpora import label_space_of
    from datamodules.multi_corpus import Collator
    from datamodules.rows import tokenize_corpus
    from datamodules.sentence import Relation, Sentence, Span
    from lightning_modules.registry import build_module
    from untrusted import pretrained

    torch.manual_seed(0)
    rng = random.Random(0)
    encoder = _minilm_path()
    tokenizer = pretrained(AutoTokenizer.from_pretrained, encoder)
    vocab = ["the", "protein", "cell", "drug", "patient", "city", "river", "house", "water"]
    label_space = label_space_of(["CoNLL04"])
    types, relation_types = label_space.corpus_types["CoNLL04"], label_space.corpus_relation_types["CoNLL04"]
    sentences = []
    for _ in range(16):
        spans = [Span(i, i + 2, rng.choice(types)) for i in range(0, words - 2, 8)]
        relations = [Relation(k, k + 1, rng.choice(relation_types)) for k in range(0, len(spans) - 1, 2)]
        tokens = tuple(rng.choice(vocab) for _ in range(words))
        sentences.append(Sentence(tokens, tuple(spans), "CoNLL04", relations=tuple(relations)))
    cfg = {
        "encoder": {"name": encoder},
        "model": {"name": "tabert_cnn", "channels": channels, "pair_dim": pair_dim, "first_layer": form},
    }
    module = build_module(cfg, label_space)
    rows, _ = tokenize_corpus(sentences, tokenizer, label_space, "CoNLL04", split="train")
    batch = Collator(tokenizer.pad_token_id, module.target_encoder())(
        [{**rows[i], "corpus_id": 0} for i in range(len(rows))]
    )
    assert batch["input_ids"].shape[1] == words + 2, "every word must be one subword"
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    rss_before = int(resident_mb())
    reset_peak()
    times = []
    for step in range(1 + steps):
        start = time.perf_counter()
        loss = module.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return {
        "words": words,
        "first_layer": form,
        "step_seconds": round(statistics.median(times), 3),
        "timed_steps": steps,
        "rss_before_mb": rss_before,
        "peak_mb": int(peak_mb()),
        "peak_over_start_mb": int(peak_mb()) - rss_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--pair-dim", type=int, default=0, help="0: pair the encoder vectors unprojected")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--tag", default="")
    parser.add_argument("--one", nargs=2, metavar=("WORDS", "FORM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        result = measure(int(args.one[0]), args.one[1], args.channels, args.pair_dim, args.steps)
        print(json.dumps(result))
        return 0

    import transformers

    results = []
    for words in args.lengths:
        for form in FORMS:
            command = [__file__, "--one", str(words), form, "--channels", str(args.channels),
                       "--pair-dim", str(args.pair_dim), "--steps", str(args.steps)]  # fmt: skip
            try:
                results.append(run_in_child(command))
            except ChildFailed as failed:
                print(failed.stderr[-3000:], file=sys.stderr)
                return 1
            print(json.dumps(results[-1]), flush=True)
    by = {(r["words"], r["first_layer"]): r for r in results}
    summary = {
        str(w): {
            "speedup": round(by[w, "straightforward"]["step_seconds"] / by[w, "factored"]["step_seconds"], 2),
            "peak_saved_mb": by[w, "straightforward"]["peak_mb"] - by[w, "factored"]["peak_mb"],
        }
        for w in args.lengths
    }
    host = machine()
    report = {
        "benchmark": "tabert_first_layer",
        "command": command_line(__file__, argv),
        "machine": {"cpus": host["threads"], "platform": host["platform"]},  # cpus: torch's threads
        "versions": {"torch": host["torch"], "transformers": transformers.__version__},
        "setup": {
            "batch": 16,
            "channels": args.channels,
            "pair_dim": args.pair_dim,
            "kernel": 3,
            "layers": 2,
            "encoder": "MiniLM (all-MiniLM-L6-v2)",
            "device": "cpu",
            "dtype": "float32",
        },  # fmt: skip
        "results": results,
        "factored_vs_straightforward": summary,
    }
    write_result("tabert_first_layer" + (f"-{args.tag}" if args.tag else ""), report, quiet=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
