"""Issue 33's study on ``experiment=mt6_cpu``: which SRU-NER decisions match its loss, ranked on dev only.

    python scripts/decisions_study.py grid --data-root ../shared/data    # every run, then the table
    python scripts/decisions_study.py decode --data-root ../shared/data  # decode-only comparisons
    python scripts/decisions_study.py table                               # the table of what has run

Each run is 400 steps of 16 sentences from ``mt6_cpu``'s defaults (validation at 200 and 400 on the seeded
200-sentence dev subsample of each corpus, at the untuned thresholds), ``test_after_fit=false``, seed 42,
then the best checkpoint's thresholds are tuned on a seeded subsample of ``TUNE_SENTENCES`` dev sentences
per corpus (``training/thresholds.py``). The factors: the weighting (none / balanced), the decisions
(raw / calibrated), and which columns are weighted (all / TR and RE only). The table (``OUT/grid.md``)
has, per run, dev macro F1 at each validation, and on the tuning subsample the disjoint macro F1 at the
untuned threshold 0.5 and at the tuned ones, with each corpus's tuned thresholds. Runs resume
(``resume=auto``) and finished ones are skipped, as in ``mt6_study.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mt6_study import GRID_SAMPLES_PER_EPOCH, GRID_STEPS, finished, run, train_command  # noqa: E402

from metrics.history import read_history  # noqa: E402

TUNE_SENTENCES = 500

# Each run pins the decisions it trained and validated with (the default is now ``thresholds``, adopted
# from this study: its training is ``raw``'s; only the TR/RE thresholds read calibrated scores).
GRID: dict[str, list[str]] = {
    "none": ["model.action_weighting=none"],
    "balanced-raw": ["model.decisions=raw"],
    "balanced-calibrated": ["model.decisions=calibrated"],
    "balanced-calibrated-typed": ["model.decisions=calibrated", "model.weighted_actions=typed"],
}

# Decode-only comparisons on the grid's checkpoints (evaluate.py --decisions ... --thresholds tune): which
# decisions a trained model reads, apart from how it was trained.
DECODE: dict[str, tuple[str, str]] = {
    "balanced-raw-as-calibrated": ("balanced-raw", "calibrated"),
    "balanced-raw-as-thresholds": ("balanced-raw", "thresholds"),
    "balanced-calibrated-as-raw": ("balanced-calibrated", "raw"),
}


def grid(out: Path, data_root: str, only: list[str]) -> None:
    for name, overrides in GRID.items():
        if only and name not in only:
            continue
        run_dir = out / "grid" / name
        if finished(run_dir, GRID_STEPS, needs_test=False) and (run_dir / "metrics.json").exists():
            print(f"{name}: finished, skipped", flush=True)
            continue
        short = [
            f"trainer.max_steps={GRID_STEPS}", f"data.samples_per_epoch={GRID_SAMPLES_PER_EPOCH}",
            "test_after_fit=false", f"thresholds.dev_sentences={TUNE_SENTENCES}",
        ]  # fmt: skip
        run(
            train_command("sru_ner", "mt6_cpu", [*overrides, *short], run_dir, data_root),
            out / "logs" / f"{name}.log",
        )
        record = _tuning(run_dir)
        if record is not None:
            (run_dir / "metrics.json").write_text(json.dumps({"decision_thresholds": record}, indent=2))


def decode(out: Path, data_root: str) -> None:
    """Each ``DECODE`` entry: the grid checkpoint's thresholds re-tuned on the same dev subsample under
    other decisions (the evaluated split is NCBI-disease's dev, small; the tuning covers every corpus)."""
    for name, (source, decisions) in DECODE.items():
        log = out / "decode" / f"{name}.log"
        if log.is_file() and "decision thresholds tuned" in log.read_text():
            continue
        command = [
            sys.executable, "evaluate.py", str(out / "grid" / source / "checkpoints" / "best.ckpt"),
            "--split", "dev", "--corpus", "NCBI-disease", "--thresholds", "tune",
            "--tune-sentences", str(TUNE_SENTENCES), "--decisions", decisions, "--match", "none",
            "--data-root", data_root, "-o", str(out / "decode" / name),
        ]  # fmt: skip
        run(command, log)


def _decode_rows(out: Path) -> list[str]:
    rows = []
    for name, (source, decisions) in DECODE.items():
        log = out / "decode" / f"{name}.log"
        if not log.is_file():
            continue
        untuned, tuned = [], []
        for line in log.read_text().splitlines():
            if "dev F1" in line and " -> " in line:
                before, after = line.split("dev F1 ")[1].split(" -> ")
                untuned.append(float(before.split()[0]))
                tuned.append(float(after.split()[0]))
        if tuned:
            rows.append(
                f"| {name} | `{source}` read with `model.decisions={decisions}` | "
                f"{sum(untuned) / len(untuned):.2f} → {sum(tuned) / len(tuned):.2f} |"
            )
    return rows


def _tuning(run_dir: Path) -> dict | None:
    from lightning_modules.checkpoints import read_checkpoint
    from training.thresholds import CHECKPOINT_KEY

    best = run_dir / "checkpoints" / "best.ckpt"
    return read_checkpoint(best).get(CHECKPOINT_KEY) if best.is_file() else None


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(out: Path) -> str:
    lines = [
        "| run | settings (beyond mt6_cpu) | dev merged (200 → 400) | dev disjoint (200 → 400) "
        "| tuning dev disjoint macro, 0.5 → tuned | tuned thresholds | wall |",
        "|---|---|---|---|---|---|---:|",
    ]
    for name, overrides in GRID.items():
        run_dir = out / "grid" / name
        history = read_history(run_dir)
        if not history:
            continue
        merged = [line["metrics"].get("val/merged/macro_f1") for line in history]
        disjoint = [line["metrics"].get("val/disjoint/macro_f1") for line in history]
        metrics = run_dir / "metrics.json"
        record = json.loads(metrics.read_text()).get("decision_thresholds") if metrics.is_file() else None
        tuned = "–"
        thresholds = "–"
        if record:
            untuned = sum(record["default_f1"].values()) / len(record["default_f1"])
            best = sum(record["tuned_f1"].values()) / len(record["tuned_f1"])
            tuned = f"{untuned:.2f} → {best:.2f}"
            by_corpus: dict[str, list[str]] = {}
            for qualified, value in record["thresholds"].items():
                by_corpus.setdefault(qualified.split("/")[0], []).append(f"{value:.2f}")
            thresholds = ", ".join(f"{c} {'/'.join(sorted(set(v)))}" for c, v in by_corpus.items())
        settings = ", ".join(f"`{o}`" for o in overrides) or "the defaults"
        lines.append(
            f"| {name} | {settings} | {' → '.join(map(_f, merged))} | {' → '.join(map(_f, disjoint))} "
            f"| {tuned} | {thresholds} | {history[-1]['wall_s'] / 60:.1f} min |"
        )
    decoded = _decode_rows(out)
    if decoded:
        lines += ["", "| decode-only | checkpoint and decisions | tuning dev disjoint macro, 0.5 → tuned |",
                  "|---|---|---|", *decoded]  # fmt: skip
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["grid", "decode", "table"])
    parser.add_argument("--data-root", default="data", help="where the six corpora are (default: data)")
    parser.add_argument("--out", default="outputs/decisions_study", help="the study's directory")
    parser.add_argument("--only", nargs="*", default=[], help="run only these names")
    args = parser.parse_args(argv)
    unknown = [n for n in args.only if n not in GRID]
    if unknown:
        print(
            f"error: --only {' '.join(unknown)}: not a run of this study ({', '.join(GRID)})", file=sys.stderr
        )
        return 2
    if args.stage == "grid":
        grid(Path(args.out), args.data_root, args.only)
    elif args.stage == "decode":
        decode(Path(args.out), args.data_root)
    print(table(Path(args.out)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
