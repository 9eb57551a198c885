"""Peak memory of one training step (forward, loss, backward, AdamW) of the baseline and of SRU-NER for
batches of 16 sentences of {64, 128, 256, 405} subword tokens (CLS and SEP included).

The sentences are BC5CDR training words, consecutive sentences joined and cut at a word boundary at the
length; the six-corpus label space; MiniLM (or ``--encoder``); a fresh model. Each (model, length) runs in
a fresh process so that no allocator cache from another size is counted: CPU peaks are the process's
resident-set high-water mark over the step minus the resident set before it (``/proc/self/clear_refs``),
with glibc told to map every block of 64 KB or more on its own (``MALLOC_MMAP_THRESHOLD_=65536``) so that
a freed tensor leaves the resident set at once and the high-water mark follows the tensors alive at once;
GPU peaks are ``torch.cuda.max_memory_allocated`` over the step minus the allocation before it. Buffers a
model keeps between steps (the fused SRU-NER loop's workspace) are resident before the step and are added.

    python bench/memory_scaling.py --data-root ../shared/data [--device cuda]

Writes ``bench/results/memory_scaling-DEVICE.json``: per length the two peaks (MB), SRU-NER's excess over
the baseline, and ``decoder_memory_ratio_405_256`` = excess at 405 / excess at 256.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import arg_parser, command_line, peak_mb, reset_peak, resident_mb, run_in_child, write_result

LENGTHS = (64, 128, 256, 405)


def sentences_of_length(data_root: str, tokenizer, subwords: int, count: int = 16) -> list:
    """``count`` sentences of exactly ``subwords`` tokens with CLS and SEP (BC5CDR words, in file order)."""
    from datamodules.catalog import CORPORA
    from datamodules.corpora import read_split
    from datamodules.sentence import Sentence

    words = [w for s in read_split(CORPORA["BC5CDR"], data_root, "train").sentences for w in s.tokens]
    out, position = [], 0
    for _ in range(count):
        chosen, used = [], 2
        while True:
            n = len(tokenizer(words[position], add_special_tokens=False)["input_ids"]) or 1
            if used + n > subwords:
                break
            chosen.append(words[position])
            used, position = used + n, position + 1
        out.append(Sentence(tuple(chosen), (), "BC5CDR"))
    return out


def measure(model: str, subwords: int, data_root: str, encoder: str, device: str) -> dict:
    """One configuration, in this process."""
    import torch
    from omegaconf import OmegaConf
    from train_step import SIX
    from transformers import AutoTokenizer

    from configs.compose import compose
    from datamodules.corpora import label_space_of
    from datamodules.multi_corpus import Collator
    from datamodules.rows import tokenize_corpus
    from lightning_modules.registry import build_module
    from untrusted import pretrained

    target = torch.device(device)
    label_space = label_space_of(SIX)
    tokenizer = pretrained(AutoTokenizer.from_pretrained, encoder)
    sentences = sentences_of_length(data_root, tokenizer, subwords)
    plain = OmegaConf.to_container(compose([f"model={model}", f"encoder.name={encoder}"]), resolve=True)
    torch.manual_seed(0)
    module = build_module(plain, label_space).to(target).train()
    rows, _ = tokenize_corpus(sentences, tokenizer, label_space, "BC5CDR", split="train")
    lengths = sorted({len(rows[i]["input_ids"]) for i in range(len(rows))})
    batch = Collator(tokenizer.pad_token_id, module.target_encoder())(
        [{**rows[i], "corpus_id": label_space.corpus_index["BC5CDR"]} for i in range(len(rows))]
    )
    batch = module.transfer_batch_to_device(batch, target, 0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)

    def step() -> None:
        module.training_loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # gradients and AdamW state stay allocated: not counted

    step()  # warm-up: optimiser state, gradient buffers and kernels exist before the measured step
    if target.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20 - before
    else:
        reset_peak()
        before = resident_mb()
        step()
        peak = peak_mb() - before
    held = sum(m.workspace.used_nbytes() for m in module.modules() if hasattr(m, "workspace")) / 2**20
    return {
        "model": model,
        "subwords": subwords,
        "row_lengths": lengths,
        "peak_over_start_mb": round(peak + held, 1),
        "held_between_steps_mb": round(held, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--encoder", default=None, help="default: the bundled MiniLM")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SUBWORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from configs.compose import _minilm_path

    encoder = args.encoder or _minilm_path()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.data_root, encoder, args.device)))
        return 0
    results: dict[str, dict[int, dict]] = {"baseline": {}, "sru_ner": {}}
    env = {"MALLOC_MMAP_THRESHOLD_": "65536"} if args.device == "cpu" else None
    for subwords in LENGTHS:
        for model in results:
            command = [__file__, "--data-root", args.data_root, "--encoder", encoder,
                       "--device", args.device, "--one", model, str(subwords)]  # fmt: skip
            results[model][subwords] = run_in_child(command, extra_env=env)
            print(results[model][subwords], flush=True)
    excess = {
        n: round(
            results["sru_ner"][n]["peak_over_start_mb"] - results["baseline"][n]["peak_over_start_mb"], 1
        )
        for n in LENGTHS
    }
    summary = {
        "benchmark": "memory_scaling",
        "device": args.device,
        "encoder": "MiniLM (bundled)" if args.encoder is None else encoder,
        "batch_sentences": 16,
        "cpu_allocator": "MALLOC_MMAP_THRESHOLD_=65536" if args.device == "cpu" else None,
        "peak_over_start_mb": {
            m: {n: r[n]["peak_over_start_mb"] for n in LENGTHS} for m, r in results.items()
        },
        "sru_ner_excess_mb": excess,
        "sru_ner_held_between_steps_mb": {n: results["sru_ner"][n]["held_between_steps_mb"] for n in LENGTHS},
        "decoder_memory_ratio_405_256": round(excess[405] / excess[256], 3) if excess[256] > 0 else None,
        "excess_405_below_baseline_peak_405": excess[405] < results["baseline"][405]["peak_over_start_mb"],
        "date": time.strftime("%Y-%m-%d"),
        "command": command_line(__file__, argv),
    }
    write_result(f"memory_scaling-{args.device.split(':')[0]}", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
