"""Validation speed of a trained model, end to end, on every full dev split of its corpora.

Runs the module's own ``validation_step`` (the network's prediction, decoding into spans, the span-F1
update) over each full dev split through the data module's validation loaders, then the metric's
``compute``, and splits the wall time three ways: the network (every call into ``module.network``),
decoding + metrics (the rest of ``validation_step``, and ``compute``), and loading (the loader's
collation, the copy to the device and everything else).
``decode_and_metrics_fraction`` = decoding + metrics / wall time.

    python bench/inference.py --data-root ../shared/data --checkpoint RUN_DIR/checkpoints/best.ckpt

Writes ``bench/results/inference-DEVICE.json`` and appends a row to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import copy
import functools
import sys
import time
from pathlib import Path

import torch
from common import arg_parser, command_line, machine, write_result


class NetworkClock:
    """Accumulates the time spent inside the network's own methods (outermost calls only)."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.seconds, self._depth = 0.0, 0
        names = {
            "forward",
            *(n for n, v in vars(type(network)).items() if callable(v) and not n.startswith("_")),
        }
        for name in names:
            setattr(network, name, self._timed(getattr(network, name)))

    def _timed(self, method):
        @functools.wraps(method)
        def timed(*args, **kwargs):
            self._depth += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - started

        return timed


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--limit", type=int, default=None, help="at most this many batches per corpus (quick runs)"
    )
    args = parser.parse_args(argv)

    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.precision import activation_bytes
    from lightning_modules.registry import load_module

    device = torch.device(args.device)
    torch.set_float32_matmul_precision("high")  # as train.py
    module = load_module(args.checkpoint).eval().to(device)
    cfg = copy.deepcopy(module.run_config)
    cfg["data"].update(root=args.data_root, val_subsample=None)
    datamodule = MultiCorpusDataModule.from_config(cfg, label_space=module.label_space)
    datamodule.eval_cost = functools.partial(
        module.eval_batch_bytes, element_bytes=activation_bytes(cfg["trainer"]["precision"], device)
    )
    datamodule.check_files()
    clock = NetworkClock(module.network)
    corpora, totals = {}, {"sentences": 0, "wall_s": 0.0, "network_s": 0.0, "decode_and_metrics_s": 0.0}
    loaders = datamodule.val_dataloader()
    with torch.no_grad():
        for corpus, loader in zip(datamodule.label_space.corpora, loaders):
            sentences, network_before = 0, clock.seconds
            decode_and_metrics = 0.0
            started = time.perf_counter()
            for index, batch in enumerate(loader):
                if args.limit is not None and index >= args.limit:
                    break
                batch = module.transfer_batch_to_device(batch, device, 0)  # counted as loading
                step_started, network_at_step = time.perf_counter(), clock.seconds
                module.validation_step(batch, index)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                step = time.perf_counter() - step_started
                decode_and_metrics += step - (clock.seconds - network_at_step)
                sentences += len(batch["num_words"])
            compute_started = time.perf_counter()
            scores = module.val_scorer.compute()
            module.val_scorer.reset()
            decode_and_metrics += time.perf_counter() - compute_started
            wall = time.perf_counter() - started
            network = clock.seconds - network_before
            corpora[corpus] = {
                "sentences": sentences,
                "wall_s": round(wall, 2),
                "sentences_per_s": round(sentences / wall, 1),
                "network_s": round(network, 2),
                "decode_and_metrics_s": round(decode_and_metrics, 3),
                "dev_f1_disjoint": round(scores[f"disjoint/{corpus}/f1"], 2),
            }
            print(corpus, corpora[corpus], flush=True)
            for key, value in (("sentences", sentences), ("wall_s", wall), ("network_s", network)):
                totals[key] += value
            totals["decode_and_metrics_s"] += decode_and_metrics
    host = machine()
    result = {
        "benchmark": "inference",
        "checkpoint": str(Path(args.checkpoint)),
        "model": module.model_cfg.name,
        "device": str(device),
        "threads": host["threads"],
        "eval_batch_size": cfg["data"]["eval_batch_size"],
        "eval_memory_mb": datamodule.eval_memory_mb,
        "sentences": totals["sentences"],
        "wall_s": round(totals["wall_s"], 1),
        "sentences_per_s": round(totals["sentences"] / totals["wall_s"], 1),
        "network_fraction": round(totals["network_s"] / totals["wall_s"], 3),
        "decode_and_metrics_fraction": round(totals["decode_and_metrics_s"] / totals["wall_s"], 4),
        "loading_fraction": round(
            1 - (totals["network_s"] + totals["decode_and_metrics_s"]) / totals["wall_s"], 3
        ),
        "full_dev_splits": args.limit is None,
        "corpora": corpora,
        "torch": host["torch"],
        "date": time.strftime("%Y-%m-%d"),
        "command": command_line(__file__, argv),
    }
    write_result(f"inference-{device.type}", result, print_without={"corpora"})
    _append_row(result)
    return 0


HEADER = """
| date | device | model | sentences | sentences/s | network | decode + metrics | loading | command |
|---|---|---|---:|---:|---:|---:|---:|---|
"""


def _append_row(result: dict) -> None:
    from report import add_row

    device = f"{result['device']} ({result['threads']} threads)"
    cells = [
        result["date"], device, result["model"], f"{result['sentences']:,}", f"{result['sentences_per_s']}",
        f"{result['network_fraction']:.1%}", f"{result['decode_and_metrics_fraction']:.1%}",
        f"{result['loading_fraction']:.1%}", f"`{result['command']}`",
    ]  # fmt: skip
    add_row("inference", HEADER, cells)


if __name__ == "__main__":
    sys.exit(main())
