"""The two-stage recipes in one command: stage 1 trains on several corpora, stage 2 fine-tunes its best
checkpoint on the target corpus alone (``experiment=finetune``), then both are scored on the target's
test split, exact-span and in the partial-match schemas, side by side.

    # AIONER / HunFlair2: six corpora, then the target
    python scripts/two_stage.py --target NCBI-disease --out outputs/two_stage/mt6 \\
        --stage1 experiment=mt6_cpu data.root=../shared/data trainer.max_steps=600 \\
        --stage2 data.root=../shared/data trainer.max_steps=400
    # GERBERA: the target together with CoNLL-2003, then the target
    python scripts/two_stage.py --target JNLPBA --out outputs/two_stage/gerbera \\
        --stage1 experiment=mt6_cpu "data.corpora=[JNLPBA,CoNLL2003]" data.root=../shared/data \\
        --stage2 data.root=../shared/data

``--stage1`` and ``--stage2`` take ``train.py`` arguments; the script adds ``run_dir=OUT/stage{1,2}`` and
``resume=auto`` (running it again skips what has finished and resumes what was interrupted), and for
stage 2 ``experiment=finetune init_from=<stage 1's best checkpoint> data.corpora=[TARGET]`` (and stage 1's
``data.root`` unless ``--stage2`` names one). It writes
``OUT/two_stage.md`` (and prints it): per stage the training steps and wall time, the target's test F1
(disjoint and merged) and the merged view's strict / exact / partial / type F1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metrics.history import read_history  # noqa: E402

SCHEMAS = ("strict", "exact", "partial", "type")


def _run(command: list[str], log: Path) -> None:
    print("+ " + " ".join(command), flush=True)
    with log.open("a") as out:
        code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        raise SystemExit(f"error: {' '.join(command[1:3])} exited with {code} ({tail[0]}); see {log}")


def train(args: list[str], run_dir: Path, log: Path) -> str:
    """Train (or finish, or skip) one stage; its best checkpoint. With ``test_after_fit=false`` (stage 1
    needs no test of its own) the run has no ``metrics.json``; a second call resumes it, finds it done
    and returns at once."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        _run([sys.executable, "train.py", *args, f"run_dir={run_dir}", "resume=auto"], log)
    best = json.loads(metrics.read_text()).get("best_checkpoint") if metrics.is_file() else None
    best = best or str(run_dir / "checkpoints" / "best.ckpt")
    if not Path(best).is_file():
        raise SystemExit(f"error: {run_dir} has no best checkpoint (did the stage validate?)")
    return best


def evaluate(checkpoint: str, target: str, out: Path, data_root: str | None, log: Path) -> dict:
    if not (out / "metrics.json").is_file():
        extra = ["--data-root", data_root] if data_root else []
        command = [sys.executable, "evaluate.py", checkpoint, "--corpus", target, "-o", str(out), *extra]
        _run([*command, "--no-wandb"], log)
    return json.loads((out / "metrics.json").read_text())


def table(rows: list[tuple[str, Path, dict]], target: str) -> str:
    head = ["stage", "steps", "wall", "F1 disjoint", "F1 merged", *(f"{s} (merged)" for s in SCHEMAS)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, run_dir, m in rows:
        history = read_history(run_dir)
        steps = str(history[-1]["step"]) if history else "–"
        wall = f"{history[-1]['wall_s'] / 60:.1f} min" if history else "–"
        cells = [f"{m[f'test/{v}/{target}/f1']:.2f}" for v in ("disjoint", "merged")]
        cells += [f"{m[f'test/merged/{s}/{target}/f1']:.2f}" for s in SCHEMAS]
        lines.append("| " + " | ".join([name, steps, wall, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _data_root(args: list[str]) -> str | None:
    roots = [a.split("=", 1)[1] for a in args if a.startswith("data.root=")]
    return roots[-1] if roots else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target", required=True, help="the corpus stage 2 fine-tunes on and both are scored on"
    )
    parser.add_argument("--out", required=True, help="the directory of both runs and the table")
    parser.add_argument("--stage1", nargs="*", default=[], metavar="KEY=VALUE", help="train.py arguments")
    parser.add_argument("--stage2", nargs="*", default=[], metavar="KEY=VALUE", help="train.py arguments")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "two_stage.log"
    best1 = train(args.stage1, out / "stage1", log)
    stage2 = ["experiment=finetune", f"init_from={best1}", f"data.corpora=[{args.target}]", *args.stage2]
    if _data_root(args.stage2) is None:  # the target's files are where stage 1 found them
        from omegaconf import OmegaConf

        stage2.insert(3, f"data.root={OmegaConf.load(out / 'stage1' / 'config.yaml').data.root}")
    best2 = train(stage2, out / "stage2", log)
    root = _data_root(stage2)
    plumbing = (
        "data.root=",
        "encoder.name=",
        "logger=",
        "callbacks.",
        "trainer.enable_progress_bar=",
        "test_after_fit=",
    )
    described = " ".join(a for a in args.stage1 if not a.startswith(plumbing))
    rows = [
        (f"1: {described}", out / "stage1", evaluate(best1, args.target, out / "eval-stage1", root, log)),
        (
            f"2: finetune on {args.target}",
            out / "stage2",
            evaluate(best2, args.target, out / "eval-stage2", root, log),
        ),
    ]
    text = f"Test split of {args.target}, each stage's best checkpoint:\n\n" + table(rows, args.target)
    (out / "two_stage.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
