"""The ``README.md`` model card of a run directory: what was trained on what, its scores, and the commands
that reproduce and use it. Written when training starts and rewritten with the scores when it ends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.hub_card import card_metadata

SAMPLES = Path(__file__).resolve().parents[1] / "datamodules" / "samples"


def reads_samples(root: str | Path) -> bool:
    """Whether ``data.root`` is the bundled samples: this checkout's, or another checkout's (a run made
    elsewhere), whose splits are no Hub dataset's."""
    path = Path(str(root))
    return path.resolve() == SAMPLES or path.parts[-2:] == ("datamodules", "samples")


def hub_header(
    run_name: str,
    model: str,
    encoder: str,
    corpora: list[str],
    metrics: dict[str, Any] | None = None,
    *,
    samples: bool = False,
) -> tuple[list[str], list[str]]:
    """The YAML front matter the Hugging Face Hub reads from a model card (``inference.hub_card``: datasets,
    licence, base model, test F1 per corpus as a ``model-index``), so an export directory uploads as it is,
    and the card lines that explain it."""
    import yaml

    metadata = card_metadata(run_name, model, encoder, corpora, metrics, samples=samples)
    header = yaml.safe_dump(metadata.data, sort_keys=False, allow_unicode=True).rstrip("\n")
    return ["---", *header.split("\n"), "---", ""], metadata.text


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
    run_name = plain.get("run_name") or run_dir.name
    samples = reads_samples(data["root"])
    header, hub_lines = hub_header(
        run_name, model["name"], encoder["name"], list(data["corpora"]), metrics, samples=samples
    )
    lines = [
        *header,
        f"# {run_name}",
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
    lines += ["", *hub_lines]
    lines += [
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
