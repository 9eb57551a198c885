"""Per-corpus F1 as a bar chart (PNG, readable without W&B) and per-type scores as table rows."""

from __future__ import annotations

from pathlib import Path

from metrics.report import VIEWS, _layout


def f1_table_rows(metrics: dict, stage: str) -> tuple[list[str], list[list]]:
    """Columns and rows ``[corpus, type, view, precision, recall, f1]`` of every corpus-qualified type."""
    columns = ["corpus", "type", "view", "precision", "recall", "f1"]
    rows = []
    for corpus, types in _layout(metrics, stage).items():
        for view in VIEWS:
            for t in types:
                key = f"{stage}/{view}/{corpus}/{t}"
                rows.append(
                    [
                        corpus,
                        t,
                        view,
                        *(round(metrics[f"{key}/{s}"], 2) for s in ("precision", "recall", "f1")),
                    ]
                )
    return columns, rows


def f1_bar_chart(metrics: dict, stage: str, path: str | Path, *, title: str = "") -> Path:
    """Grouped bars: per corpus, its F1 in the disjoint and the merged view, plus the macro averages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(_layout(metrics, stage))
    labels = [*corpora, "macro"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 1.5), 3.6), dpi=120)
    width = 0.38
    for k, view in enumerate(VIEWS):
        values = [metrics.get(f"{stage}/{view}/{c}/f1", 0.0) for c in corpora]
        values.append(metrics.get(f"{stage}/{view}/macro_f1", 0.0))
        xs = [i + (k - 0.5) * width for i in range(len(labels))]
        bars = ax.bar(xs, values, width, label=view)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{stage} F1 (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
