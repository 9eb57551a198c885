"""Render a run's ``metrics.json`` as a text or Markdown table (per corpus, optionally per type).

python -m metrics.report outputs/mt6_cpu/my-run                 # the run directory or its metrics.json
python -m metrics.report outputs/mt6_cpu/my-run --markdown --types
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VIEWS = ("disjoint", "merged")
SCORES = ("precision", "recall", "f1")


def load_metrics(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.json (written at the end of a finished train.py run)")
    return json.loads(path.read_text())


def _layout(metrics: dict, stage: str) -> dict[str, list[str]]:
    """corpus -> its types, in first-seen order, read off ``<stage>/disjoint/<corpus>[/<type>]/f1`` keys."""
    corpora: dict[str, list[str]] = {}
    prefix = f"{stage}/disjoint/"
    for key in metrics:
        if not (key.startswith(prefix) and key.endswith("/f1")):
            continue
        parts = key[len(prefix) : -len("/f1")].split("/")
        if len(parts) == 1 and parts[0] not in ("macro", "micro"):
            corpora.setdefault(parts[0], [])
        elif len(parts) == 2:
            corpora.setdefault(parts[0], []).append(parts[1])
    return corpora


def render(metrics: dict, *, stage: str = "test", markdown: bool = False, types: bool = False) -> str:
    corpora = _layout(metrics, stage)
    if not corpora:
        raise ValueError(f"no {stage}/... scores in these metrics")

    def cells(prefix: str) -> list[str]:
        out = []
        for view in VIEWS:
            for score in SCORES:
                value = metrics.get(f"{stage}/{view}/{prefix}{score}")
                out.append("-" if value is None else f"{float(value):.2f}")
        return out

    rows: list[tuple[str, str, list[str]]] = []
    for corpus, corpus_types in corpora.items():
        if types:
            rows += [(corpus, t, cells(f"{corpus}/{t}/")) for t in corpus_types]
        rows.append((corpus, "(micro)" if types else "", cells(f"{corpus}/")))
    macro = [f"{float(metrics[f'{stage}/{view}/macro_f1']):.2f}" for view in VIEWS]
    names = {"precision": "P", "recall": "R", "f1": "F1"}
    header = ["corpus", *(["type"] if types else []), *(f"{v} {names[s]}" for v in VIEWS for s in SCORES)]
    body = [[c, *([t] if types else []), *v] for c, t, v in rows]
    footer = ["macro F1", *([""] if types else []), "", "", macro[0], "", "", macro[1]]
    if markdown:
        align = ["---"] * (len(header) - 6) + ["---:"] * 6
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("| " + " | ".join(f"**{x}**" if x else "" for x in footer) + " |")
        return "\n".join(lines) + _joint_table(metrics, stage, markdown=True)
    table = [header, *body, footer]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    fmt = [f"{{:<{w}}}" if i < len(header) - 6 else f"{{:>{w}}}" for i, w in enumerate(widths)]
    text = "\n".join("  ".join(f.format(x) for f, x in zip(fmt, r)) for r in table)
    return text + _joint_table(metrics, stage, markdown=False)


def _joint_table(metrics: dict, stage: str, *, markdown: bool) -> str:
    """NER / RE / RE+ micro and macro F1 of a joint entity + relation run (empty for NER-only runs)."""
    if f"{stage}/re_plus/micro_f1" not in metrics:
        return ""
    rows = [
        (
            name,
            f"{float(metrics[f'{stage}/{key}/micro_f1']):.2f}",
            f"{float(metrics[f'{stage}/{key}/macro_f1']):.2f}",
        )
        for name, key in (("NER", "ner"), ("RE", "re"), ("RE+", "re_plus"))
    ]
    if markdown:
        lines = ["", "", "| task | micro F1 | macro F1 |", "|---|---:|---:|"]
        return "\n".join(lines + [f"| {a} | {b} | {c} |" for a, b, c in rows])
    return "\n\n" + "\n".join(f"{a:<4} micro F1 {b:>6}  macro F1 {c:>6}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a run directory or its metrics.json")
    parser.add_argument("--stage", default="test")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--types", action="store_true", help="a row per entity type as well")
    args = parser.parse_args(argv)
    try:
        print(render(load_metrics(args.run), stage=args.stage, markdown=args.markdown, types=args.types))
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
