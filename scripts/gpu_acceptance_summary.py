"""The summary table of ``scripts/gpu_acceptance.sh``: each part's exit status and time, the train-step
overheads against issue 19's targets, the ops per loop step, the short run's dev F1 and the tagging
throughput in bf16 (issue 30). Reads
``bench/results/*-cuda.json`` and the run's ``metrics.csv``; writes
``bench/results/gpu_acceptance-cuda.json`` and ``.md`` and prints the Markdown.

    python scripts/gpu_acceptance_summary.py --status bench/results/gpu_acceptance-status.txt \
        --run-dir /tmp/gpu-acceptance-run
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
# issue 19: SRU-NER's decoder_overhead on a GPU in bf16, per encoder
TARGETS = {"minilm": 2.0, "bert_large": 0.5}


def _read(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def last_dev_f1(run_dir: Path) -> float | None:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    value = None
    with path.open() as f:
        for row in csv.DictReader(f):
            if row.get("val/merged/macro_f1"):
                value = float(row["val/merged/macro_f1"])
    return value


def summary(status_file: Path, run_dir: Path) -> dict:
    parts = {}
    if status_file.is_file():
        for line in status_file.read_text().splitlines():
            name, rc, seconds = line.split()
            parts[name] = {"rc": int(rc), "seconds": int(seconds)}
    steps = {}
    for model in ("sru_ner", "tabert_cnn"):
        for encoder, suffix in (("minilm", ""), ("bert_large", "-bert-large")):
            name = ("train_step" if model == "sru_ner" else f"train_step-{model}") + f"{suffix}-cuda"
            result = _read(name)
            if result is not None:
                steps[f"{model}/{encoder}"] = {
                    "baseline_ms": round(result["baseline_step_s"] * 1000, 1),
                    "model_ms": round(result[f"{model}_step_s"] * 1000, 1),
                    "decoder_overhead": result["decoder_overhead"],
                    **({"target": TARGETS[encoder]} if model == "sru_ner" else {}),
                }
    ops = _read("step_ops-cuda")
    per_step = None
    if ops is not None:
        per_step = {
            loop: {
                phase: data[phase]["launching_ops_per_step"]
                for phase in ("forward", "backward", "generation")
            }
            | {f"{phase}_peak_gpu_mb": data[phase].get("peak_gpu_mb") for phase in ("forward", "generation")}
            for loop, data in ops["loops"].items()
        }
    tagging = {}
    for model in ("sru_ner", "baseline"):
        result = _read(f"predict_scale-{model}-cuda")
        if result is not None:
            tagging[model] = {
                f"{r['input']} ({r['documents']} documents)": {
                    "documents_per_s": r["documents_per_s"],
                    "peak_rss_mb": r["peak_rss_mb"],
                }
                for r in result["runs"]
            }
    return {
        "parts": parts,
        "train_step": steps,
        "step_ops": per_step,
        "mt6_300_steps_dev_f1": last_dev_f1(run_dir),
        "predict_bf16": tagging,
    }


def markdown(result: dict) -> str:
    lines = ["| part | exit | seconds |", "|---|---:|---:|"]
    lines += [f"| {name} | {p['rc']} | {p['seconds']} |" for name, p in result["parts"].items()]
    lines += [
        "",
        "| model / encoder (bf16) | baseline step | model step | overhead | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in result["train_step"].items():
        target = s.get("target")
        verdict = (
            "" if target is None else f"≤ {target} {'met' if s['decoder_overhead'] <= target else 'NOT met'}"
        )
        times = f"{s['baseline_ms']} ms | {s['model_ms']} ms"
        lines.append(f"| {name} | {times} | {s['decoder_overhead']:.2f} | {verdict} |")
    if result["step_ops"]:
        lines += ["", "| loop | fwd ops/step | bwd ops/step | generation ops/step | peak fwd / gen MB |"]
        lines += ["|---|---:|---:|---:|---:|"]
        for loop, s in result["step_ops"].items():
            lines.append(
                f"| {loop} | {s['forward']} | {s['backward']} | {s['generation']} | "
                f"{s['forward_peak_gpu_mb']} / {s['generation_peak_gpu_mb']} |"
            )
    if result.get("predict_bf16"):
        lines += ["", "| tagging in bf16 | input | documents/s | peak RSS MB |", "|---|---|---:|---:|"]
        for model, runs in result["predict_bf16"].items():
            for size, r in runs.items():
                lines.append(f"| {model} | {size} | {r['documents_per_s']} | {r['peak_rss_mb']} |")
    f1 = result["mt6_300_steps_dev_f1"]
    lines += [
        "",
        f"mt6_cpu trainer=gpu, 300 steps: dev macro F1 (merged) {'not run' if f1 is None else f'{f1:.4f}'}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--status", type=Path, default=RESULTS / "gpu_acceptance-status.txt")
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/gpu-acceptance-run"))
    args = parser.parse_args(argv)
    result = summary(args.status, args.run_dir)
    (RESULTS / "gpu_acceptance-cuda.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / "gpu_acceptance-cuda.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
