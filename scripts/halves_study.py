"""Issue 33's target 3: the synthetic-halves check at equal compute, on several splits and two schedules.

    python scripts/halves_study.py run --data-root ../shared/data            # every run, then the table
    python scripts/halves_study.py run --data-root ../shared/data --schedule default --seed 13
    python scripts/halves_study.py table                                     # the table of what has run

For each seed (a random split of BC5CDR's training and dev sentences into a Chemical-only and a
Disease-only half, ``scripts/synthetic_halves.py``) and each schedule, three SRU-NER runs at the adopted
defaults (nothing but the schedule and the data is overridden):

- the **joint** run on both halves for the schedule's budget of N steps, logging each half's recall of
  the type it lacks against the hidden gold at every validation (``callbacks.hidden_gold``);
- the **Chemical single** and the **Disease single**, N/2 steps each on their own half: together the
  joint run's compute.

Each best checkpoint is then scored on the full BC5CDR test through merged types (``evaluate.py``). The
check holds on a split when the joint model's Chemical F1 is at or above the Chemical single's, its
Disease F1 at or above the Disease single's, and neither half's unannotated recall is lower at N than at
N/2 (the "no fall between half and full budget" of the issue).

Schedules: ``default`` is the embedded default run's (``python train.py``: 300 steps of 16, 1,600
sentences per "epoch", its learning rates and warmups), validated every 50 steps (so that N/2 = 150 is a
validation) on 200 dev sentences per half, as ``mt6_cpu`` does; ``mt6_cpu`` is that experiment's (1,000
steps, 4,000 sentences per "epoch", validation every 250 on 200 dev sentences per half).

Every run is its own run directory under ``--out`` (default ``outputs/halves_study``) started with
``resume=auto``: running the script again skips what finished and continues an interrupted run from its
last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mt6_study import run as run_logged  # noqa: E402  (scripts/ is on sys.path when run as a script)

from metrics.history import read_history  # noqa: E402

SEEDS = (13, 14, 15)
# schedule -> (the joint run's steps N, the schedule's overrides)
SCHEDULES: dict[str, tuple[int, list[str]]] = {
    "default": (300, ["trainer.val_check_interval=50", "data.val_subsample=200"]),
    "mt6_cpu": (1000, ["experiment=mt6_cpu"]),
}
HALVES = {"chem": ("BC5CDR-chem", "Chemical"), "dis": ("BC5CDR-dis", "Disease")}
QUIET = ["logger=csv", "callbacks.rich_progress=false", "trainer.enable_progress_bar=false", "resume=auto"]
UNANNOTATED = {
    "chem": "val/unannotated/BC5CDR-chem/Disease/recall",  # the Chemical half's recall of Disease
    "dis": "val/unannotated/BC5CDR-dis/Chemical/recall",
}


def halves_dir(out: Path, seed: int) -> Path:
    return out / "data" / f"seed{seed}"


def runs_of(
    out: Path, schedule: str, seed: int, data_root: str, extra: list[str] = ()
) -> dict[str, tuple[Path, int, list[str]]]:
    """name -> (run directory, steps, train.py arguments) of one schedule and seed; ``extra``: overrides
    added to every run (``--set``)."""
    steps, overrides = SCHEDULES[schedule]
    data = halves_dir(out, seed)
    corpus = {k: str(data / name) for k, (name, _) in HALVES.items()}
    base = [*overrides, "model=sru_ner", f"data.root={data_root}", "test_after_fit=false", *QUIET, *extra]
    runs = {
        "joint": (
            steps,
            [
                f"data.corpora=[{corpus['chem']},{corpus['dis']}]",
                f"callbacks.hidden_gold={data / 'hidden_gold.json'}",
            ],
        ),
        "chem": (steps // 2, [f"data.corpora=[{corpus['chem']}]"]),
        "dis": (steps // 2, [f"data.corpora=[{corpus['dis']}]"]),
    }
    return {
        name: (
            run_dir := out / schedule / f"seed{seed}" / name,
            n,
            [*base, *args, f"trainer.max_steps={n}", f"run_dir={run_dir}"],
        )
        for name, (n, args) in runs.items()
    }


def evaluation(run_dir: Path) -> Path:
    return run_dir / "eval-bc5cdr-test" / "metrics.json"


def run(
    out: Path,
    data_root: str,
    schedules: list[str],
    seeds: list[int],
    names: list[str] | None = None,
    extra: list[str] = (),
) -> None:
    for seed in seeds:
        data = halves_dir(out, seed)
        if not (data / "hidden_gold.json").is_file():
            run_logged(
                [sys.executable, "scripts/synthetic_halves.py", f"--data-root={data_root}", f"--seed={seed}",
                 f"--out={data}"],
                out / "logs" / f"halves-seed{seed}.log",
            )  # fmt: skip
    for schedule in schedules:
        for seed in seeds:
            for name, (run_dir, steps, args) in runs_of(out, schedule, seed, data_root, extra).items():
                if names and name not in names:
                    continue
                log = out / "logs" / f"{schedule}-seed{seed}-{name}.log"
                if not _trained(run_dir, steps):
                    run_logged([sys.executable, "train.py", *args], log)
                if not evaluation(run_dir).is_file():
                    run_logged(
                        [sys.executable, "evaluate.py", str(run_dir / "checkpoints" / "best.ckpt"),
                         "--corpus", "BC5CDR", f"--data-root={data_root}", "--match", "none", "--no-wandb",
                         "-o", str(evaluation(run_dir).parent)],
                        log,
                    )  # fmt: skip
            print(table(out), end="", flush=True)


def _trained(run_dir: Path, steps: int) -> bool:
    """The run validated at its last step and has its best checkpoint."""
    history = read_history(run_dir)
    return (
        bool(history) and history[-1]["step"] >= steps and (run_dir / "checkpoints" / "best.ckpt").is_file()
    )


def _merged_f1(run_dir: Path, kind: str) -> float | None:
    path = evaluation(run_dir)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record.get(f"test/merged/BC5CDR/{kind}/f1")


def _unannotated(run_dir: Path, step: int) -> dict[str, float | None]:
    for line in read_history(run_dir):
        if line["step"] == step:
            return {k: line["metrics"].get(key) for k, key in UNANNOTATED.items()}
    return dict.fromkeys(UNANNOTATED)


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(out: Path) -> str:
    lines = [
        "| schedule | seed | Chemical F1: joint / single | Disease F1: joint / single "
        "| unannotated Disease recall (chem half), N/2 → N | unannotated Chemical recall (dis half), N/2 → N "
        "| holds |",
        "|---|---:|---|---|---|---|---|",
    ]
    for schedule, (steps, _) in SCHEDULES.items():
        for seed in SEEDS:
            runs = {name: out / schedule / f"seed{seed}" / name for name in ("joint", "chem", "dis")}
            if not runs["joint"].is_dir():
                continue
            chem = (_merged_f1(runs["joint"], "Chemical"), _merged_f1(runs["chem"], "Chemical"))
            dis = (_merged_f1(runs["joint"], "Disease"), _merged_f1(runs["dis"], "Disease"))
            half, full = _unannotated(runs["joint"], steps // 2), _unannotated(runs["joint"], steps)
            values = [*chem, *dis, *half.values(), *full.values()]
            holds = "–"
            if None not in values:
                holds = (
                    "yes"
                    if chem[0] >= chem[1] and dis[0] >= dis[1] and all(full[k] >= half[k] for k in half)
                    else "**no**"
                )
            lines.append(
                f"| {schedule} | {seed} | {_f(chem[0])} / {_f(chem[1])} | {_f(dis[0])} / {_f(dis[1])} "
                f"| {_f(half['chem'])} → {_f(full['chem'])} "
                f"| {_f(half['dis'])} → {_f(full['dis'])} | {holds} |"
            )
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["run", "table"])
    parser.add_argument("--data-root", default="data", help="the directory holding BC5CDR/")
    parser.add_argument("--out", type=Path, default=Path("outputs/halves_study"))
    parser.add_argument("--schedule", choices=list(SCHEDULES), action="append", help="default: both")
    parser.add_argument("--seed", type=int, action="append", help=f"default: {', '.join(map(str, SEEDS))}")
    parser.add_argument("--run", choices=["joint", "chem", "dis"], action="append", help="default: all three")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a train.py override for every run"
    )
    args = parser.parse_args(argv)
    if args.stage == "run":
        schedules, seeds = args.schedule or list(SCHEDULES), args.seed or list(SEEDS)
        run(args.out, args.data_root, schedules, seeds, args.run, args.set)
    print(table(args.out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
