"""Issue 20's study on ``experiment=mt6_cpu``: a one-factor-at-a-time grid of short runs per model, ranked
on dev only, then the 1,000-step confirmations of each model's defaults.

    python scripts/mt6_study.py grid --data-root ../shared/data          # every grid run, then the table
    python scripts/mt6_study.py table                                     # the table of what has run
    python scripts/mt6_study.py confirm --data-root ../shared/data        # 1,000 steps of each, with test
    python scripts/mt6_study.py confirm --steps 3000 --only sru_ner --data-root ../shared/data

Grid runs are 400 steps of 16 sentences (``data.samples_per_epoch=3200``: validation at 200 and 400 on the
seeded 200-sentence dev subsample of each corpus), ``test_after_fit=false``, seed 42. Every run is its own
run directory under ``--out`` (default ``outputs/mt6_study``) and is started with ``resume=auto``:
running the script again skips the finished runs and continues an interrupted one from its last
checkpoint. The table (``OUT/grid.md``) has, per run, the settings, dev macro F1 (merged and disjoint) at
each validation, the best dev and the training wall time; the best run of each model is marked. Ranking
is on the best dev merged macro F1 (the checkpoint monitor), never on test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metrics.history import read_history  # noqa: E402

GRID_STEPS = 400
GRID_SAMPLES_PER_EPOCH = 3200  # 200 steps of 16 per "epoch": validation at 200 and 400

# name -> (model, experiment, overrides). The first run of each model is its current mt6_cpu default.
GRID: dict[str, tuple[str, str, list[str]]] = {
    "sru-none": ("sru_ner", "mt6_cpu", ["model.action_weighting=none"]),
    "sru-welt": ("sru_ner", "mt6_cpu", ["model.action_weighting=welt"]),
    "sru-balanced": ("sru_ner", "mt6_cpu", ["model.action_weighting=balanced"]),
    "sru-balanced-cap30": (
        "sru_ner",
        "mt6_cpu",
        ["model.action_weighting=balanced", "model.action_weight_cap=30"],
    ),
    "sru-balanced-lr1e-3": ("sru_ner", "mt6_cpu", ["model.action_weighting=balanced", "model.lr=1e-3"]),
    "sru-balanced-lr2.5e-4": ("sru_ner", "mt6_cpu", ["model.action_weighting=balanced", "model.lr=2.5e-4"]),
    "sru-balanced-enc1e-4": ("sru_ner", "mt6_cpu", ["model.action_weighting=balanced", "encoder.lr=1e-4"]),
    "sru-balanced-warmup-short": (
        "sru_ner",
        "mt6_cpu",
        ["model.action_weighting=balanced", "model.warmup_epochs=0.05", "encoder.warmup_epochs=0.1"],
    ),
    "sru-balanced-sentences": (
        "sru_ner",
        "mt6_cpu",
        ["model.action_weighting=balanced", "model.loss_normalization=sentences"],
    ),
    "sru-balanced-lr2e-3": ("sru_ner", "mt6_cpu", ["model.action_weighting=balanced", "model.lr=2e-3"]),
    "sru-balanced-lr1e-3-enc1e-4": (
        "sru_ner",
        "mt6_cpu",
        ["model.action_weighting=balanced", "model.lr=1e-3", "encoder.lr=1e-4"],
    ),
    # precision: the adopted SRU-NER settings with a lower cap on the positive weights
    "sru-balanced-lr1e-3-enc1e-4-cap3": (
        "sru_ner",
        "mt6_cpu",
        ["model.action_weighting=balanced", "model.lr=1e-3", "encoder.lr=1e-4", "model.action_weight_cap=3"],
    ),
    "sru-balanced-lr1e-3-enc1e-4-cap5": (
        "sru_ner",
        "mt6_cpu",
        ["model.action_weighting=balanced", "model.lr=1e-3", "encoder.lr=1e-4", "model.action_weight_cap=5"],
    ),
    "baseline-lr5e-4": ("baseline", "mt6_cpu", []),
    "baseline-lr1e-3": ("baseline", "mt6_cpu", ["model.lr=1e-3"]),
    "baseline-lr2e-3": ("baseline", "mt6_cpu", ["model.lr=2e-3"]),
    "baseline-lr4e-3": ("baseline", "mt6_cpu", ["model.lr=4e-3"]),
    "baseline-enc1e-4": ("baseline", "mt6_cpu", ["encoder.lr=1e-4"]),
    "baseline-lr8e-3": ("baseline", "mt6_cpu", ["model.lr=8e-3"]),
    "baseline-lr4e-3-enc1e-4": ("baseline", "mt6_cpu", ["model.lr=4e-3", "encoder.lr=1e-4"]),
    "tabert-lr1e-3": ("tabert_cnn", "mt6_tabert_cpu", []),
    "tabert-lr2e-3": ("tabert_cnn", "mt6_tabert_cpu", ["model.lr=2e-3"]),
    "tabert-lr2e-3-enc1e-4": ("tabert_cnn", "mt6_tabert_cpu", ["model.lr=2e-3", "encoder.lr=1e-4"]),
    "tabert-lr4e-3": ("tabert_cnn", "mt6_tabert_cpu", ["model.lr=4e-3"]),
}

# Every grid run starts from the defaults mt6_cpu / mt6_tabert_cpu had before the study (its results are
# now those experiments' defaults), so the grid reruns as it ran.
STUDY_START: dict[str, list[str]] = {
    "sru_ner": ["model.action_weighting=none", "model.lr=5e-4", "encoder.lr=5e-5"],
    "baseline": ["model.lr=5e-4", "encoder.lr=5e-5"],
    "tabert_cnn": ["model.lr=1e-3", "encoder.lr=5e-5"],
}

# The confirmations: each model's mt6_cpu defaults, 1,000 steps, the best checkpoint on the full test.
CONFIRM: dict[str, tuple[str, str]] = {
    "sru_ner": ("sru_ner", "mt6_cpu"),
    "baseline": ("baseline", "mt6_cpu"),
    "tabert_cnn": ("tabert_cnn", "mt6_tabert_cpu"),
}

QUIET = ["logger=csv", "callbacks.rich_progress=false", "trainer.enable_progress_bar=false", "resume=auto"]
DEV_MERGED, DEV_DISJOINT = "val/merged/macro_f1", "val/disjoint/macro_f1"


def train_command(
    model: str, experiment: str, overrides: list[str], run_dir: Path, data_root: str
) -> list[str]:
    return [
        sys.executable, "train.py", f"experiment={experiment}", f"model={model}", f"data.root={data_root}",
        *overrides, *QUIET, f"run_dir={run_dir}",
    ]  # fmt: skip


def finished(run_dir: Path, steps: int, needs_test: bool) -> bool:
    if needs_test:
        return (run_dir / "metrics.json").is_file() and "test/disjoint/macro_f1" in (
            (run_dir / "metrics.json").read_text()
        )
    history = read_history(run_dir)
    return bool(history) and history[-1]["step"] >= steps


def run(command: list[str], log: Path) -> None:
    print("+ " + " ".join(command), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(
            f"error: {command[2:4]} exited with {code}; see {log}; run the script again to resume"
        )


def grid(out: Path, data_root: str, only: list[str]) -> None:
    for name, (model, experiment, overrides) in GRID.items():
        if only and name not in only:
            continue
        run_dir = out / "grid" / name
        if finished(run_dir, GRID_STEPS, needs_test=False):
            print(f"{name}: finished, skipped", flush=True)
            continue
        short = [
            f"trainer.max_steps={GRID_STEPS}", f"data.samples_per_epoch={GRID_SAMPLES_PER_EPOCH}",
            "test_after_fit=false",
        ]  # fmt: skip
        run(
            # a later value of a key wins: the start, then the run's own settings
            train_command(model, experiment, [*STUDY_START[model], *overrides, *short], run_dir, data_root),
            out / "logs" / f"{name}.log",
        )


def confirm(out: Path, data_root: str, only: list[str], steps: int | None = None) -> None:
    """The confirmations at the experiment's budget, or at ``steps`` (then under ``OUT/confirm-STEPS``)."""
    folder = "confirm" if steps is None else f"confirm-{steps}"
    overrides = [] if steps is None else [f"trainer.max_steps={steps}"]
    for name, (model, experiment) in CONFIRM.items():
        if only and name not in only:
            continue
        run_dir = out / folder / name
        if finished(run_dir, 0, needs_test=True):
            print(f"{name}: finished, skipped", flush=True)
            continue
        command = train_command(model, experiment, overrides, run_dir, data_root)
        run(command, out / "logs" / f"{folder}-{name}.log")


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(out: Path) -> str:
    rows, best = [], {}
    for name, (model, _, overrides) in GRID.items():
        history = read_history(out / "grid" / name)
        if not history:
            continue
        merged = [line["metrics"].get(DEV_MERGED) for line in history]
        disjoint = [line["metrics"].get(DEV_DISJOINT) for line in history]
        top = max(v for v in merged if v is not None)
        rows.append((name, model, overrides, merged, disjoint, top, history[-1]["wall_s"]))
        if model not in best or top > best[model][1]:
            best[model] = (name, top)
    lines = [
        "| run | model | settings (beyond the study's start) | dev merged (200 → 400) "
        "| dev disjoint (200 → 400) | best dev merged | wall |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for name, model, overrides, merged, disjoint, top, wall in rows:
        mark = " **(best)**" if best[model][0] == name else ""
        settings = ", ".join(f"`{o}`" for o in overrides) or "the start"
        lines.append(
            f"| {name}{mark} | {model} | {settings} | {' → '.join(map(_f, merged))} "
            f"| {' → '.join(map(_f, disjoint))} | {_f(top)} | {wall / 60:.1f} min |"
        )
    text = "\n".join(lines) + "\n"
    (out / "grid.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "grid.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["grid", "table", "confirm"])
    parser.add_argument("--data-root", default="data", help="where the six corpora are (default: data)")
    parser.add_argument("--out", default="outputs/mt6_study", help="the study's directory")
    parser.add_argument("--only", nargs="*", default=[], help="run only these names")
    parser.add_argument("--steps", type=int, help="confirm: this many steps (under OUT/confirm-STEPS)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    unknown = [n for n in args.only if n not in GRID and n not in CONFIRM]
    if unknown:
        print(
            f"error: --only {' '.join(unknown)}: not a run of this study ({', '.join(GRID)})", file=sys.stderr
        )
        return 2
    if args.stage == "grid":
        grid(out, args.data_root, args.only)
    elif args.stage == "confirm":
        confirm(out, args.data_root, args.only, args.steps)
    print(table(out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
