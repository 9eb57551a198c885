"""Operations per SRU-NER generation step: what a GPU pays for in the transition loop (issue 19).

Every ATen operation the loop runs on a GPU is one kernel launch; on the CPU the profiler records the
same operations, so they are counted here without a GPU. The head alone (no encoder) on a synthetic
batch of the six-corpus action space: ``--batch`` sentences of ``--words`` words, MiniLM's width, gold
action rows with a mention on about a third of the words. Counted, for ``model.loop=fused`` and
``autograd``: the training forward, its backward, and greedy generation, each divided by its number of
loop steps. "Launching" operations exclude the ones that only make a view or a new, uninitialised
tensor (``aten::view``, ``aten::empty``, ...: no kernel); both counts are written.

    python bench/step_ops.py
    python bench/step_ops.py --batch 16 --words 40 --device cuda
    python bench/step_ops.py --before bench/results/step_ops-cpu-e9c4389.json   # ops_ratio vs that loop

Writes ``bench/results/step_ops-DEVICE.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import torch
from common import arg_parser, command_line, machine, write_result

# operations that launch no kernel: views, metadata, allocation without initialisation
NO_KERNEL = {
    "aten::view", "aten::_unsafe_view", "aten::reshape", "aten::as_strided", "aten::expand",
    "aten::transpose", "aten::permute", "aten::select", "aten::slice", "aten::unsqueeze",
    "aten::squeeze", "aten::t", "aten::detach", "aten::alias", "aten::empty", "aten::empty_strided",
    "aten::empty_like", "aten::resize_", "aten::unbind", "aten::split", "aten::chunk", "aten::narrow",
    "aten::lift_fresh", "aten::_reshape_alias", "aten::numpy_T", "aten::contiguous", "aten::as_strided_",
    "aten::to",  # a leaf aten::to is a no-op (same dtype and device); a real cast calls aten::_to_copy
    "aten::resolve_conj", "aten::resolve_neg",  # no-ops on real tensors (matmuls call them on operands)
    "aten::unsqueeze_", "aten::squeeze_", "aten::new_empty",
    "aten::dropout",  # in eval mode it returns its input; in training the kernels are its children's
}  # fmt: skip
NUM_TYPES = (
    11  # the six corpora's qualified types: BC2GM 1, BC4CHEMD 1, BC5CDR 2, JNLPBA 5, Linnaeus 1, NCBI 1
)


def synthetic_batch(batch: int, words: int, hidden: int, actions: int, seed: int = 0):
    """Slots (B, Q, d), word mask, gold rows (B, T, A): SHIFT per word, a TR/RE pair on ~1/3 of them."""
    from lightning_modules.sru_ner.codec import EOA, SHIFT

    g = torch.Generator().manual_seed(seed)
    slots = torch.randn(batch, words + 2, hidden, generator=g)
    word_mask = torch.ones(batch, words + 2, dtype=torch.bool)
    steps = 2 * words + 1
    gold = torch.zeros(batch, steps, actions)
    for b in range(batch):
        t = 0
        for _ in range(words):
            if torch.rand(1, generator=g) < 1 / 3 and t < steps - words:
                gold[b, t, 2 + torch.randint(0, actions - 2, (1,), generator=g)] = 1
                t += 1
            gold[b, t, SHIFT] = 1
            t += 1
        gold[b, t, EOA] = 1
    return slots, word_mask, gold[:, : t + 1]


def _launches(event) -> bool:
    """An ATen operation launches a kernel of its own when it is not a view/allocation/no-op and none of
    the ATen operations it calls launches one (``aten::mm`` calls only ``aten::resolve_conj``, a no-op
    for real tensors: the mm is the kernel; ``aten::softmax`` calls ``aten::_softmax``: that one is)."""
    if not event.name.startswith("aten::") or event.name in NO_KERNEL:
        return False
    return not any(_launches(child) for child in event.cpu_children)


def count(prof: torch.profiler.profile) -> tuple[int, int, Counter]:
    """All ATen operations, and those that launch a kernel (``_launches``) by name."""
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    launching = Counter(e.name for e in events if _launches(e))
    return len(events), sum(launching.values()), launching


def measure(loop: str, args, device: torch.device) -> dict:
    from lightning_modules.sru_ner.config import SRUNERConfig
    from lightning_modules.sru_ner.network import SRUHead
    from losses import multi_hot_bce

    actions = 2 + 2 * NUM_TYPES
    cfg = dataclasses.replace(SRUNERConfig(), loop=loop)
    torch.manual_seed(0)
    head = SRUHead(cfg, actions, args.hidden).to(device).train()
    slots, word_mask, gold = (
        t.to(device) for t in synthetic_batch(args.batch, args.words, args.hidden, actions)
    )
    slots.requires_grad_(True)
    for _ in range(2):  # warm-up: workspace, allocator
        out = head(slots, word_mask, gold)
        multi_hot_bce(out.logits, out.targets, out.row_mask).backward()
    activities = [torch.profiler.ProfilerActivity.CPU]
    cuda = device.type == "cuda"
    peak_mb = {}

    def reset() -> None:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)

    def peak(name: str) -> None:  # GPU memory at the phase's peak, the inputs and weights included
        if cuda:
            torch.cuda.synchronize()
            peak_mb[name] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

    reset()
    with torch.profiler.profile(activities=activities) as forward:
        out = head(slots, word_mask, gold)
        loss = multi_hot_bce(out.logits, out.targets, out.row_mask)
    peak("forward")
    with torch.profiler.profile(activities=activities) as backward:
        loss.backward()
    peak("backward")
    head.eval()
    reset()
    with torch.profiler.profile(activities=activities) as generation:
        probs = head.generate(slots.detach(), word_mask)
    peak("generation")
    train_steps, generation_steps = out.logits.shape[1], probs.shape[1]
    result = {"train_steps": train_steps, "generation_steps": generation_steps}
    for name, prof, steps in (
        ("forward", forward, train_steps),
        ("backward", backward, train_steps),
        ("generation", generation, generation_steps),
    ):
        total, launching, ops = count(prof)
        result[name] = {
            "ops": total,
            "launching_ops": launching,
            "launching_ops_per_step": round(launching / steps, 2),
            "most_common": dict(ops.most_common(12)),
            **({"peak_gpu_mb": peak_mb[name]} if name in peak_mb else {}),
        }
    return result


def training_ops_per_step(loop: dict) -> float:
    return loop["forward"]["launching_ops_per_step"] + loop["backward"]["launching_ops_per_step"]


def compare(before: dict, now: dict, path: str) -> dict:
    """``ops_ratio``: kernels per training step (forward + backward) of today's fused loop over the
    earlier checkout's; ``generation_ops_ratio`` likewise. Same batch and counting required."""
    for key in ("batch", "words", "hidden", "actions"):
        if before[key] != now[key]:
            raise SystemExit(f"--before {path}: {key}={before[key]}, this run {now[key]}: not comparable")
    old, new = before["loops"]["fused"], now["loops"]["fused"]
    return {
        "before": {"result": path, "command": before["command"], "fused": old},
        "ops_ratio": round(training_ops_per_step(new) / training_ops_per_step(old), 3),
        "generation_ops_ratio": round(
            new["generation"]["launching_ops_per_step"] / old["generation"]["launching_ops_per_step"], 3
        ),
    }


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=384)  # MiniLM
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--before", help="a step_ops result of an earlier checkout: its fused loop is compared (ops_ratio)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    result = {
        "command": command_line(__file__),
        "machine": machine(),
        "batch": args.batch,
        "words": args.words,
        "hidden": args.hidden,
        "actions": 2 + 2 * NUM_TYPES,
        "loops": {loop: measure(loop, args, device) for loop in ("fused", "autograd")},
    }
    if args.before:
        result.update(compare(json.loads(Path(args.before).read_text()), result, args.before))
    write_result(f"step_ops-{device.type}", result)


if __name__ == "__main__":
    main()
