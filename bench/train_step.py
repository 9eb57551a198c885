"""Time of one optimiser step of the per-corpus baseline and of a second model (default SRU-NER) on the same
real batch: their ratio is what the second model's head costs on top of the shared encoder.

Fixed recipe (issue #10): MiniLM (or ``--encoder``), the six-corpus label space, the first 16 BC5CDR
training sentences (file order) of 35-45 words, a fresh model in train mode, one step = forward, loss,
backward, gradient clipping (1.0) and AdamW; 2 warm-up steps, then ``--steps`` timed steps of each model,
interleaved (baseline, model, baseline, ...), medians reported.

    python bench/train_step.py --data-root ../shared/data
    python bench/train_step.py --data-root ../shared/data --device cuda --precision bf16
    python bench/train_step.py --data-root ../shared/data --model tabert_cnn
    python bench/train_step.py --data-root ../shared/data --device cuda --precision bf16 --shape bert-large

``--shape bert-large``: a randomly initialised encoder of BERT-large's shape (24 layers, width 1024, as
BioLinkBERT-large) with the encoder's tokenizer, for timings without downloading one.

Writes ``bench/results/train_step[-MODEL][-bert-large]-DEVICE.json`` with ``decoder_overhead`` = model
step / baseline step - 1, and appends a row to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from common import arg_parser, command_line, machine, write_result

SIX = ["BC2GM", "BC4CHEMD", "BC5CDR", "JNLPBA", "Linnaeus", "NCBI-disease"]


def recipe_sentences(data_root: str, count: int = 16, low: int = 35, high: int = 45) -> list:
    from datamodules.catalog import CORPORA
    from datamodules.corpora import read_split

    sentences = read_split(CORPORA["BC5CDR"], data_root, "train").sentences
    chosen = [s for s in sentences if low <= len(s.tokens) <= high][:count]
    if len(chosen) < count:
        raise SystemExit(
            f"only {len(chosen)} BC5CDR training sentences of {low}-{high} words under {data_root}"
        )
    return chosen


BERT_LARGE = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}


def build(model: str, encoder: str, label_space, sentences, device: torch.device, shape: str = "encoder"):
    """A fresh module of ``model`` and the recipe batch with its targets, on ``device``; ``shape``
    "bert-large": a random encoder of that shape instead of ``encoder``'s weights."""
    from transformers import AutoTokenizer

    from configs.compose import compose
    from datamodules.multi_corpus import Collator
    from datamodules.rows import tokenize_corpus
    from lightning_modules.registry import build_module
    from untrusted import pretrained

    cfg = compose([f"model={model}", f"encoder.name={encoder}", "experiment=mt6_cpu"])
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True)
    tokenizer = pretrained(AutoTokenizer.from_pretrained, encoder)
    encoder_config = None
    if shape == "bert-large":
        from transformers import BertConfig

        encoder_config = BertConfig(vocab_size=len(tokenizer), **BERT_LARGE).to_dict()
    torch.manual_seed(0)
    module = build_module(plain, label_space, encoder_config).to(device).train()
    rows, _ = tokenize_corpus(sentences, tokenizer, label_space, "BC5CDR", split="train")
    corpus_id = label_space.corpus_index["BC5CDR"]
    batch = Collator(tokenizer.pad_token_id, module.target_encoder())(
        [{**rows[i], "corpus_id": corpus_id} for i in range(len(rows))]
    )
    batch = module.transfer_batch_to_device(batch, device, 0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)
    return module, batch, optimizer


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--model", default="sru_ner")
    parser.add_argument("--encoder", default=None, help="default: the bundled MiniLM")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--shape", choices=("encoder", "bert-large"), default="encoder",
                        help="bert-large: a random encoder of that shape (see above)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)

    from configs.compose import _minilm_path
    from datamodules.corpora import label_space_of

    encoder = args.encoder or _minilm_path()
    device = torch.device(args.device)

    label_space = label_space_of(SIX)
    sentences = recipe_sentences(args.data_root)
    models = {
        name: build(name, encoder, label_space, sentences, device, args.shape)
        for name in ("baseline", args.model)
    }
    dtype = torch.bfloat16 if args.precision == "bf16" else None

    def step(name: str) -> float:
        module, batch, optimizer = models[name]
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = module.training_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(args.warmup + args.steps):
        for name in models:
            elapsed = step(name)
            if i >= args.warmup:
                times[name].append(elapsed)
    baseline, other = (statistics.median(times[n]) for n in ("baseline", args.model))
    host = machine()
    result = {
        "benchmark": "train_step",
        "model": args.model,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else host["processor"],
        "threads": host["threads"],
        "precision": args.precision,
        "encoder": ("MiniLM (bundled)" if args.encoder is None else encoder)
        if args.shape == "encoder"
        else "BERT-large shape (random)",
        "batch": {"sentences": len(sentences), "words": [len(s.tokens) for s in sentences]},
        "steps": args.steps,
        "baseline_step_s": round(baseline, 4),
        f"{args.model}_step_s": round(other, 4),
        "decoder_overhead": round(other / baseline - 1, 3),
        "all_s": {n: [round(t, 4) for t in ts] for n, ts in times.items()},
        "torch": host["torch"],
        "python": host["python"],
        "command": command_line(__file__, argv),
    }
    suffix = ("" if args.model == "sru_ner" else f"-{args.model}") + (
        "" if args.shape == "encoder" else "-bert-large"
    )
    write_result(f"train_step{suffix}-{device.type}", result, print_without={"all_s"})
    _append_row(result, args.model, baseline, other)
    return 0


HEADER = """
| date | device | precision | encoder | model | baseline step | model step | overhead | torch | command |
|---|---|---|---|---|---:|---:|---:|---|---|
"""


def _append_row(result: dict, model: str, baseline: float, other: float) -> None:
    from report import add_row

    device = f"{result['device_name'] or result['device']} ({result['threads']} threads)"
    cells = [
        time.strftime("%Y-%m-%d"), device, result["precision"], result["encoder"], model,
        f"{baseline * 1000:.0f} ms", f"{other * 1000:.0f} ms", f"{result['decoder_overhead']:.2f}",
        result["torch"], f"`{result['command']}`",
    ]  # fmt: skip
    add_row("train_step", HEADER, cells)


if __name__ == "__main__":
    sys.exit(main())
