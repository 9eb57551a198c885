"""The ``README.md`` model card of a run directory: what was trained on what, its scores, and the commands
that reproduce and use it. Written when training starts and rewritten with the scores when it ends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def hub_header(model: str, encoder: str, corpora: list[str]) -> list[str]:
    """The YAML front matter the Hugging Face Hub reads from a model card (library, tags, datasets,
    metrics; the base model when the encoder is a hub name), so an export directory uploads as it is."""
    datasets = [Path(str(c)).name for c in corpora]  # a user corpus by path: its directory's name
    lines = [
        "---",
        "library_name: bioner-mtl",
        "pipeline_tag: token-classification",
        "language:",
        "- en",
        "tags:",
    ]
    lines += [f"- {t}" for t in ("biomedical", "named-entity-recognition", "token-classification", model)]
    lines += ["datasets:", *(f"- {d}" for d in datasets), "metrics:", "- f1"]
    if not Path(encoder).exists() and encoder.count("/") == 1:  # an owner/name on the Hub, not a local path
        lines.append(f"base_model: {encoder}")
    return [*lines, "---", ""]


def write_model_card(
    run_dir: Path,
    plain: dict[str, Any],
    label_space: Any,
    argv: Sequence[str],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/README.md`` for the run config ``plain`` (scores from ``metrics`` when given)."""
    from omegaconf import OmegaConf

    from metrics.report import render

    model, data, encoder = plain["model"], plain["data"], plain["encoder"]
    command = " ".join(["python train.py", *[a for a in argv if not a.startswith("resume=")]])
    best = (metrics or {}).get("best_checkpoint") or str(run_dir / "checkpoints" / "best.ckpt")
    lines = [
        *hub_header(model["name"], encoder["name"], list(data["corpora"])),
        f"# {plain.get('run_name') or run_dir.name}",
        "",
        f"- model: `{model['name']}`; encoder: `{encoder['name']}`",
        f"- experiment: `{plain.get('experiment')}`; seed: {plain.get('seed')}",
        f"- corpora: {', '.join(f'`{c}`' for c in data['corpora'])} (from `{data['root']}`, reading "
        f"`{data.get('reading', 'full')}`)",
        "",
        "## Label space",
        "",
        "| corpus | entity types |",
        "|---|---|",
        *[f"| {c} | {', '.join(ts)} |" for c, ts in label_space.corpus_types.items()],
        "",
    ]
    warm = plain.get("warm_start")
    if warm:
        renamed = [k if k == v else f"{k} <- {v}" for k, v in warm["kept"].items()]
        lines += [
            "## Warm start",
            "",
            f"Started from `{warm['source']}` (`init_map={warm['init_map']}`).",
            "",
            f"- kept ({len(renamed)}): {', '.join(renamed) or '-'}",
            f"- new, freshly initialised ({len(warm['new'])}): {', '.join(warm['new']) or '-'}",
            f"- dropped, in the source only ({len(warm['dropped'])}): {', '.join(warm['dropped']) or '-'}",
            "",
        ]
    lines += decision_threshold_lines(plain.get("decision_thresholds"), label_space)
    lines += [
        "## Test scores",
        "",
    ]
    if metrics and any(k.startswith("test/") for k in metrics):
        lines += [render(metrics, markdown=True, types=True), "", "![per-corpus F1](f1_per_corpus.png)"]
    else:
        lines.append(
            "No test scores yet: this card is rewritten with them when training ends with a test "
            f"(`test_after_fit`); otherwise `python evaluate.py {best}` scores the model."
        )
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Use",
        "",
        "```bash",
        f"python predict.py {best} abstracts.txt -o mentions.jsonl",
        f"python evaluate.py {best}",
        f"python export.py {best} exported-model/",
        "```",
        "",
        "## Configuration",
        "",
        "```yaml",
        OmegaConf.to_yaml(OmegaConf.create(plain)).rstrip(),
        "```",
        "",
    ]
    path = run_dir / "README.md"
    path.write_text("\n".join(lines))
    return path


def decision_threshold_lines(record: dict[str, Any] | None, label_space: Any) -> list[str]:
    """The card's "Decision thresholds" section from a tuning record (``training/thresholds.py``)."""
    from datamodules.label_space import qualify

    if not record:
        return []
    cap = record.get("dev_sentences")
    sample = f"a seeded subsample of at most {cap} sentences" if cap else "every sentence"
    lines = [
        "## Decision thresholds",
        "",
        f"Tuned on the dev split after training ({sample} per corpus, seed {record.get('seed')}), never on "
        f"test; a mention fires when its calibrated probability is above its type's threshold (untuned: "
        f"{record['default']}). Dev F1 (disjoint) of those sentences:",
        "",
        "| corpus | thresholds | chosen per | dev F1 untuned | dev F1 tuned | sentences |",
        "|---|---|---|---:|---:|---:|",
    ]
    for corpus, types in label_space.corpus_types.items():
        chosen = record["thresholds"]
        values = ", ".join(f"{t} {chosen[qualify(corpus, t)]:.2f}" for t in types)
        lines.append(
            f"| {corpus} | {values} | {record['granularity'].get(corpus, 'corpus')} | "
            f"{record['default_f1'].get(corpus, 0.0):.2f} | {record['tuned_f1'].get(corpus, 0.0):.2f} | "
            f"{record['sentences'].get(corpus, 0)} |"
        )
    return [*lines, ""]
