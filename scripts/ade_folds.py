"""Train and test TabERT-CNN on all ten ADE cross-validation folds, then report mean +- std per metric.

    python scripts/ade_folds.py                      # experiment=ade, folds 0..9, one after another
    python scripts/ade_folds.py --folds 0 1 -- trainer=cpu encoder.name=/path/to/encoder

Each fold is one ``train.py experiment=ade data.fold=K run_dir=<out>/fold-K`` run (extra overrides after
``--`` go to every fold). A fold whose ``metrics.json`` already exists is not run again, so an interrupted
sweep resumes where it stopped. Writes ``<out>/summary.json`` and prints the table (percent, macro for
ADE as in the paper, micro too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = (
    "test/ner/macro_f1", "test/ner/micro_f1",
    "test/re/macro_f1", "test/re/micro_f1",
    "test/re_plus/macro_f1", "test/re_plus/micro_f1",
)  # fmt: skip


def summarize(per_fold: dict[int, dict]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation over the folds of every key in ``KEYS``."""
    out = {}
    for key in KEYS:
        values = [float(m[key]) for m in per_fold.values() if key in m]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[key] = {"mean": statistics.fmean(values), "std": std, "folds": len(values)}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--experiment", default="ade")
    parser.add_argument("--out", default="outputs/ade_folds")
    args = parser.parse_args(argv)
    out = Path(args.out)
    per_fold: dict[int, dict] = {}
    for fold in args.folds:
        run_dir = out / f"fold-{fold}"
        metrics = run_dir / "metrics.json"
        if not metrics.is_file():
            command = [sys.executable, str(ROOT / "train.py"), f"experiment={args.experiment}",
                       f"data.fold={fold}", f"run_dir={run_dir}", *extra]  # fmt: skip
            print("$ " + " ".join(command), flush=True)
            code = subprocess.call(command, cwd=ROOT)
            if code != 0:
                print(f"fold {fold} failed (exit {code}); rerun this command to resume", file=sys.stderr)
                return code
        per_fold[fold] = json.loads(metrics.read_text())
    summary = summarize(per_fold)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"folds": sorted(per_fold), "scores": summary}, indent=2))
    for key, s in summary.items():
        print(f"{key:<24} {s['mean']:6.2f} +- {s['std']:5.2f}  ({s['folds']} folds)")
    print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
