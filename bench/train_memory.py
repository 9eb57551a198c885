"""Resident memory and time of real training steps (encoder + head + AdamW) on the full corpora.

Three measurements, with the run config of an experiment (default ``mt6_cpu``) and a fresh model of any
registered kind (``--model``, default: the model of ``configs/train.yaml``):

  longest    one training step on the 16 longest sentences of the largest corpus, and one evaluation
             (prediction) batch of the ``eval_batch_size`` longest test sentences: peak RSS of each;
  steps      ``--steps`` steps on the training stream: RSS and peak RSS every 10 steps, and wall time
             (shows how much the C allocator keeps after varying-size batches).

    python bench/train_memory.py --data-root ../shared/data
    MALLOC_MMAP_THRESHOLD_=1048576 python bench/train_memory.py --data-root ../shared/data --tag mmap1m
    python bench/train_memory.py --data-root ../shared/data --model baseline

Writes bench/results/train_memory[-MODEL][-TAG].json (no MODEL part for the default model).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch
from common import arg_parser, peak_mb, reset_peak, resident_mb, write_result


def _memory_mb() -> dict[str, int]:
    return {"rss_mb": int(resident_mb()), "peak_mb": int(peak_mb())}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--experiment", default="mt6_cpu")
    parser.add_argument("--model", default=None, help="a registered model name (default: train.yaml's)")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)

    from omegaconf import OmegaConf

    from configs.compose import compose, default_group
    from datamodules.corpora import label_space_of
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import build_module

    args.model = args.model or default_group("model")
    cfg = compose([f"experiment={args.experiment}", f"model={args.model}", f"data.root={args.data_root}"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    label_space = label_space_of(cfg.data.corpora)
    module = build_module(plain, label_space)
    data = MultiCorpusDataModule.from_config(
        cfg, batch_transform=module.target_encoder(), label_space=label_space
    )
    data.setup(None)
    network = module.network
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-5)
    collate = data.collator()

    def train_step(batch: dict) -> None:
        module.training_loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    results: dict = {
        "config": {"experiment": args.experiment, "model": args.model, "steps": args.steps, "tag": args.tag}
    }
    results["malloc_env"] = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    results["start"] = _memory_mb()

    largest = max(range(len(data.corpora)), key=lambda i: len(data._rows("train")[i]))
    rows = data._rows("train")[largest]
    batch = collate([rows[int(i)] for i in np.argsort(-rows.lengths)[: cfg.data.batch_size]])
    reset_peak()
    network.train()
    train_step(batch)
    results["longest_train_batch"] = {
        "corpus": data.corpora[largest],
        "subwords": int(batch["input_ids"].shape[1]),
        "slots": int(batch["word_mask"].shape[1]),
        **_memory_mb(),
    }
    test_rows = data._rows("test")[largest]
    data.eval_cost = module.eval_batch_bytes  # the first batch evaluation runs: the longest sentences
    batch = collate([test_rows[i] for i in data.eval_batches(test_rows)[0]])
    reset_peak()
    network.eval()
    with torch.no_grad():
        module.predict(batch)
    sentences, words = len(batch["num_words"]), int(batch["num_words"].max())
    subwords = int(batch["input_ids"].shape[1])
    results["longest_eval_batch"] = {
        "sentences": sentences,
        "subwords": subwords,
        "words": words,
        "estimate_mb": round(module.eval_batch_bytes(sentences, words, subwords) / 2**20),
        **_memory_mb(),
    }

    network.train()
    stream = iter(data.train_dataloader())
    reset_peak()
    trajectory, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        train_step(next(stream))
        if step % 10 == 0:
            trajectory.append({"step": step, **_memory_mb()})
            print(json.dumps(trajectory[-1]), flush=True)
    results["steps"] = {"seconds": round(time.perf_counter() - start, 1), "trajectory": trajectory}

    name = "train_memory" + ("" if args.model == default_group("model") else f"-{args.model}")
    print(f"{args.steps} steps: {results['steps']['seconds']} s")
    write_result(f"{name}{'-' + args.tag if args.tag else ''}", results, print_without={"steps"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
