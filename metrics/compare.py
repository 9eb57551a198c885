"""Compare runs of any models: dev curves as one PNG and a Markdown table.

    python -m metrics.compare outputs/mt6_cpu/sru_ner-1 outputs/mt6_cpu/baseline-1 -o docs/mt6_cpu

reads each run directory's ``history.jsonl`` (one line per validation, ``training/
validation_history.py``), ``metrics.json`` (best dev, test scores; finished runs) and ``config.yaml``
(the model), and writes ``OUT.png`` (dev merged macro F1 against the step, and the same per corpus) and
``OUT.md`` (per run: model, steps, best dev, test macro F1 disjoint / merged, test F1 per corpus in the
disjoint view, training wall time), and prints the table. A run without a history (written before it
existed, or never validated) has a table row but no curve; one without ``metrics.json`` (unfinished)
shows its best dev from the history and no test scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from errors import BionerError, report_user_error
from metrics.history import read_history
from metrics.names import DEFAULT_MONITOR
from metrics.report import _layout

DEV = DEFAULT_MONITOR  # val/merged/macro_f1


def load_run(run_dir: str | Path) -> dict:
    """What the comparison needs of one run directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise BionerError(f"{path}: not a run directory")
    history = read_history(path)
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
    model = "?"
    if (path / "config.yaml").is_file():
        from omegaconf import OmegaConf

        model = str(OmegaConf.load(path / "config.yaml").get("model", {}).get("name", "?"))
    if not history and not metrics:
        raise BionerError(f"{path}: neither history.jsonl nor metrics.json (has the run validated?)")
    dev = [line["metrics"][DEV] for line in history if DEV in line["metrics"]]
    best_dev = metrics.get(DEV) if metrics.get(DEV) is not None else (max(dev) if dev else None)
    return {
        "name": path.name,
        "model": model,
        "history": history,
        "metrics": metrics,
        "best_dev": best_dev,
        "steps": history[-1]["step"] if history else None,
        "wall_s": history[-1]["wall_s"] if history else None,
    }


def corpora_of(runs: list[dict]) -> list[str]:
    """Every corpus any run has scores for, in first-seen order."""
    seen: dict[str, None] = {}
    for run in runs:
        for line in run["history"]:
            seen.update(dict.fromkeys(_layout(line["metrics"], "val")))
        seen.update(dict.fromkeys(_layout(run["metrics"], "test")))
    return list(seen)


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def markdown(runs: list[dict]) -> str:
    corpora = corpora_of(runs)
    head = ["run", "model", "steps", "best dev", "test macro (disjoint / merged)", *corpora, "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for run in runs:
        m = run["metrics"]
        macro = (
            f"{_cell(m.get('test/disjoint/macro_f1'))} / {_cell(m.get('test/merged/macro_f1'))}"
            if "test/disjoint/macro_f1" in m
            else "–"
        )
        wall = "–" if run["wall_s"] is None else f"{run['wall_s'] / 60:.1f} min"
        cells = [
            run["name"], run["model"], str(run["steps"] or "–"), _cell(run["best_dev"]), macro,
            *(_cell(m.get(f"test/disjoint/{c}/f1")) for c in corpora), wall,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path, extra: list[str] = ()) -> Path:
    """Dev merged macro F1 against the step, then one panel per corpus (its merged F1), then one per
    ``extra`` history key (e.g. ``val/unannotated/<corpus>/<type>/recall``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = corpora_of(runs)
    panels = [
        ("dev macro F1 (merged)", DEV),
        *((f"dev {c} F1 (merged)", f"val/merged/{c}/f1") for c in corpora),
        *((key.removeprefix("val/"), key) for key in extra),
    ]
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), dpi=120, squeeze=False)
    for ax, (title, key) in zip(axes.flat, panels):
        for run in runs:
            points = [(h["step"], h["metrics"][key]) for h in run["history"] if key in h["metrics"]]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=f"{run['name']} ({run['model']})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 3) if handles else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m metrics.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("-o", "--output", default="compare", help="OUT: writes OUT.png and OUT.md")
    parser.add_argument(
        "--metric", action="append", default=[], help="one more history key to plot (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        runs = [load_run(r) for r in args.runs]
        out = Path(args.output)
        if not out.parent.is_dir():
            raise BionerError(f"-o {args.output}: the directory {out.parent} does not exist")
        table = markdown(runs)
        out.with_suffix(".md").write_text(table)
        plot(runs, out.with_suffix(".png"), args.metric)
    except BionerError as err:
        return report_user_error(err)
    print(table, end="")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
