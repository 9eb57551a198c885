"""Issue 21's results: does a first stage on other corpora help one small corpus, at equal total steps?
Each arm trains one model (default: the baseline) for the same number of steps in all, and its final
model is scored on the target's test split, exact-span and in the four partial-match schemas:

- ``single``: the target alone, all the steps in one run (``experiment=mt6_cpu`` on the target only);
- ``single+finetune``: the same, half the steps, then ``experiment=finetune`` for the other half (the
  control: what a second, gentler schedule alone does);
- ``mt6+finetune``: the six corpora (``experiment=mt6_cpu``) for half, then fine-tuned on the target
  (AIONER, HunFlair2);
- ``conll+finetune``: the target together with CoNLL-2003 for half, then fine-tuned (GERBERA).

    python scripts/finetune_study.py --data-root ../shared/data                 # NCBI-disease, 1,000 steps
    python scripts/finetune_study.py --data-root ../shared/data --only single mt6+finetune

Every two-stage arm is ``scripts/two_stage.py`` (its own table in ``OUT/ARM/two_stage.md``); everything is
started with ``resume=auto``, so running the script again skips what has finished. It writes
``OUT/finetune_study.md`` (and prints it): per arm the steps of each stage, the training wall time of
both stages together, and the target's test F1 in every schema. The first stage of a two-stage arm needs
no test (``test_after_fit=false``); its best checkpoint, by dev, is the one fine-tuned.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import two_stage  # noqa: E402

from metrics.history import read_history  # noqa: E402

ARMS = ("single", "single+finetune", "mt6+finetune", "conll+finetune")
QUIET = ["logger=csv", "callbacks.rich_progress=false", "trainer.enable_progress_bar=false"]


def stage1_args(arm: str, target: str, model: str, steps: int, data_root: str) -> list[str]:
    corpora = {
        "single": f"[{target}]", "single+finetune": f"[{target}]", "mt6+finetune": None,
        "conll+finetune": f"[{target},CoNLL2003]",
    }[arm]  # fmt: skip
    args = ["experiment=mt6_cpu", f"model={model}", f"data.root={data_root}", f"trainer.max_steps={steps}"]
    if corpora:
        args.append(f"data.corpora={corpora}")
    return [*args, *QUIET] if arm == "single" else [*args, "test_after_fit=false", *QUIET]


def run_arm(arm: str, target: str, model: str, steps: int, data_root: str, out: Path) -> dict:
    """Train and score one arm; its row: stage steps, wall time, and the target's test metrics."""
    if arm == "single":
        log = out / "single.log"
        out.mkdir(parents=True, exist_ok=True)
        best = two_stage.train(stage1_args(arm, target, model, steps, data_root), out / "single", log)
        metrics = two_stage.evaluate(best, target, out / "eval-single", data_root, log)
        return {"stages": [out / "single"], "metrics": metrics}
    half = steps // 2
    code = two_stage.main(
        [
            "--target", target, "--out", str(out / arm),
            "--stage1", *stage1_args(arm, target, model, half, data_root),
            "--stage2", f"trainer.max_steps={steps - half}", *QUIET,
        ]
    )  # fmt: skip
    if code:
        raise SystemExit(code)
    metrics = json.loads((out / arm / "eval-stage2" / "metrics.json").read_text())
    return {"stages": [out / arm / "stage1", out / arm / "stage2"], "metrics": metrics}


def table(rows: list[tuple[str, dict]], target: str) -> str:
    schemas = two_stage.SCHEMAS
    head = ["arm", "steps", "wall", "F1 (P / R)", *(f"{s} F1" for s in schemas)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---|" + "---:|" * len(schemas)]
    for arm, row in rows:
        histories = [read_history(d) for d in row["stages"]]
        steps = " + ".join(str(h[-1]["step"]) if h else "–" for h in histories)
        wall = sum(h[-1]["wall_s"] for h in histories if h)
        m = row["metrics"]
        exact = f"{m[f'test/merged/{target}/f1']:.2f} ({m[f'test/merged/{target}/precision']:.2f} / "
        exact += f"{m[f'test/merged/{target}/recall']:.2f})"
        cells = [f"{m[f'test/merged/{s}/{target}/f1']:.2f}" for s in schemas]
        lines.append("| " + " | ".join([arm, steps, f"{wall / 60:.1f} min", exact, *cells]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", required=True, help="where the corpora are (e.g. ../shared/data)")
    parser.add_argument("--target", default="NCBI-disease", help="the small corpus every arm is scored on")
    parser.add_argument("--model", default="baseline", help="the model of every arm")
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each arm in all")
    parser.add_argument("--out", default="outputs/finetune_study", help="the arms' run directories")
    parser.add_argument("--only", nargs="*", default=[], choices=ARMS, help="run only these arms")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    rows = []
    for arm in ARMS:
        if args.only and arm not in args.only:
            continue
        rows.append((arm, run_arm(arm, args.target, args.model, args.steps, args.data_root, out)))
    text = (
        f"{args.target} test split, {args.model}, {args.steps} training steps per arm, each arm's final "
        "model (its last stage's best checkpoint by dev); exact-span F1 (P / R), then the partial-match "
        "schemas:\n\n" + table(rows, args.target)
    )
    (out / "finetune_study.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
