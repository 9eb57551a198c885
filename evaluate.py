"""Evaluate a checkpoint on corpora: per corpus and per type P/R/F1 in both views, as Markdown and JSON.

    python evaluate.py CKPT|EXPORT_DIR|ORG/NAME[@REV] [--corpus NAME_OR_DIR ...] [--split test|dev]
        [--reading full|paper] [--match strict,exact,partial,type|none] [--data-root DIR] [-o OUT_DIR]
        [--wandb] [--trust-checkpoint]
        [--thresholds stored|default|tune [--tune-sentences N] [--save-thresholds]]
        [--decisions calibrated|thresholds|raw]

Without ``--corpus`` it scores the model's own corpora exactly as training's final test does (same rows,
batches and metric), so ``metrics.json`` reproduces the run's ``test/...`` numbers. A corpus the model never
trained on (a registered name or a user corpus directory) is scored through the merged types: on its
sentences every predicted type whose merged name is one of the corpus's types counts as that type (a
model trained on BC5CDR tags NCBI-disease's ``Disease`` through ``BC5CDR/Disease``); other predictions are
ignored. ``OUT_DIR`` (default: ``eval/<checkpoint name>-<split>`` next to the checkpoint's run) receives
``metrics.json`` (the keys of training's ``metrics.json``), ``report.md`` and ``f1_per_corpus.png``.
An export directory, or one on the Hub (``ORG/NAME[@REVISION]``, ``inference.hub``: ``metrics.json`` records
the repo and the commit as ``hub``; default ``OUT_DIR``: ``eval/<org>--<name>-<commit>-<split>`` here), is
scored the same way, its tokenizer taken from the directory.

``--match`` (default: all four) adds the SemEval-2013 partial-match schemas (``metrics/partial_match.py``,
scored by nervaluate) per corpus and type in both views: ``<split>/<view>/<schema>/<corpus>[/<type>]/f1``
etc. in ``metrics.json``, one table per schema in ``report.md``.

SRU-NER and TabERT-CNN (span mode) decide by per-type thresholds, tuned on dev at the end of training and
stored in the checkpoint (``training/thresholds.py``). ``--thresholds default`` scores with every type at
the untuned default; ``--thresholds tune`` tunes them now on the dev split of the model's own corpora
(never on test) and ``--save-thresholds`` writes them into the checkpoint. ``--decisions
raw|thresholds|calibrated`` decides on the raw scores, calibrates only the thresholds, or every decision
the loss weighting shifted (``lightning_modules/decisions.py``), instead of what the model was trained
with.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomic_output import atomic_output
from errors import BionerError, report_user_error
from inference.tagger import EXPORT_FILE
from lightning_modules.precision import activation_bytes, training_autocast


def evaluate(
    checkpoint: str | Path,
    corpora: Sequence[str] | None = None,
    *,
    split: str = "test",
    reading: str | None = None,
    data_root: str | None = None,
    device: str | None = None,
    trust_checkpoint: bool = False,
    match: Sequence[str] = (),
    thresholds: str = "stored",
    decisions: str | None = None,
    tune_sentences: int | None = None,
) -> tuple[dict[str, float], Any]:
    """``({"<split>/<key>": value}, module)``: ``checkpoint`` scored on ``corpora`` (default: its own).

    The model's own corpora are scored in the model's label space, exactly as in training (a subset only
    leaves the others out); corpora it does not know through the merged types (module docstring). With
    both, the macro F1 is the mean over all evaluated corpora and no micro F1 is given. ``match``: the
    partial-match schemas to add (``metrics/partial_match.py``). ``thresholds``: the checkpoint's
    (``stored``), every type at the model's untuned default (``default``), or tuned now on the dev split of
    the model's own corpora (``tune``: at most ``tune_sentences`` per corpus, seeded; the record is
    ``module.threshold_tuning``). ``decisions``: one of ``decisions.DECISIONS``, not the checkpoint's."""
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import load_module
    from metrics.scorer import Scorer

    if split not in ("test", "dev"):
        raise BionerError(f"--split {split}: test or dev")
    if Path(checkpoint).is_dir():
        module = _export_module(Path(checkpoint))
    else:
        module = load_module(checkpoint, trust=trust_checkpoint)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_float32_matmul_precision("high")  # as train.py
    module.eval().to(target)
    set_decisions(module, thresholds, decisions, target, data_root, tune_sentences)
    cfg = copy.deepcopy(module.run_config)
    data = cfg["data"]
    data["corpora"] = list(corpora or data["corpora"])
    data["val_subsample"] = None
    if data_root is not None:
        data["root"] = data_root
    if reading is not None:
        data["reading"] = reading
    datamodule = MultiCorpusDataModule.from_config(cfg)
    precision = cfg.get("trainer", {}).get("precision")
    datamodule.eval_cost = partial(module.eval_batch_bytes, element_bytes=activation_bytes(precision, target))
    datamodule.check_files()
    scorer = Scorer(module.label_space, datamodule.label_space, match)
    loaders = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    with torch.no_grad(), training_autocast(precision, target):
        for loader in loaders:  # one loader per corpus
            for batch in loader:
                scorer.update(batch, module.predict(module.transfer_batch_to_device(batch, target, 0)))
    results = scorer.compute()
    return {f"{split}/{k}": v for k, v in results.items()}, module


def _export_module(directory: Path) -> Any:
    """The module of an export directory (checked as ``inference.load`` checks it), its run config reading
    the tokenizer from the directory."""
    from inference.tagger import load_export_module

    if not (directory / EXPORT_FILE).is_file():
        raise BionerError(
            f"{directory}: a directory, but no export ({EXPORT_FILE}); evaluate.py scores a run's .ckpt file "
            "(e.g. RUN_DIR/checkpoints/best.ckpt), an export directory or a Hub id"
        )
    module = load_export_module(directory)
    cfg = module.run_config
    module.run_config = {**cfg, "encoder": {**cfg.get("encoder", {}), "name": str(directory)}}
    return module


THRESHOLDS = ("stored", "default", "tune")


def set_decisions(
    module: Any,
    thresholds: str,
    decisions: str | None,
    device: torch.device,
    data_root: str | None = None,
    tune_sentences: int | None = None,
) -> None:
    """Apply ``evaluate``'s ``thresholds`` and ``decisions`` choices to a loaded ``module``."""
    from lightning_modules.decisions import DECISIONS

    module.threshold_tuning = None
    if thresholds not in THRESHOLDS:
        raise BionerError(f"--thresholds {thresholds}: use one of {', '.join(THRESHOLDS)}")
    if decisions is not None:
        if decisions not in DECISIONS or not hasattr(module.model_cfg, "decisions"):
            raise BionerError(f"--decisions {decisions}: use one of {', '.join(DECISIONS)}")
        module.model_cfg.decisions = decisions
    if thresholds == "stored":
        return
    if not module.tunes_thresholds():
        raise BionerError(
            f"--thresholds {thresholds}: model {module.model_cfg.name} decides by an argmax and has "
            "no thresholds (use --thresholds stored)"
        )
    from training.thresholds import apply_thresholds, tune_thresholds

    if thresholds == "default":
        apply_thresholds(module, np.full(len(module.label_space), module.default_threshold))
        return
    from datamodules.multi_corpus import MultiCorpusDataModule

    cfg = copy.deepcopy(module.run_config)
    cfg["data"]["val_subsample"] = None
    if data_root is not None:
        cfg["data"]["root"] = data_root
    settings = cfg.get("thresholds") or {}
    sentences = tune_sentences or settings.get("dev_sentences", 2000)
    datamodule = MultiCorpusDataModule.from_config(cfg)
    precision = cfg.get("trainer", {}).get("precision")
    datamodule.eval_cost = partial(module.eval_batch_bytes, element_bytes=activation_bytes(precision, device))
    datamodule.check_files()
    tuning = tune_thresholds(
        module, datamodule.dev_dataloaders(sentences), device=device, precision=precision,
        granularity=settings.get("granularity", "auto"), min_gain=settings.get("min_gain", 0.5),
        default=module.default_threshold, dev_sentences=sentences, seed=cfg.get("seed"),
    )  # fmt: skip
    apply_thresholds(module, tuning.thresholds)
    module.threshold_tuning = tuning


def save_thresholds(checkpoint: Path, module: Any, trust_checkpoint: bool = False) -> None:
    """Write ``module``'s thresholds and their tuning record into ``checkpoint`` (atomically)."""
    from lightning_modules.checkpoints import read_checkpoint
    from training.checkpointing import AtomicCheckpointIO
    from training.thresholds import CHECKPOINT_KEY

    raw = read_checkpoint(checkpoint, trust=trust_checkpoint, mmap=False)
    raw["state_dict"]["type_thresholds"] = module.type_thresholds.detach().cpu().clone()
    raw[CHECKPOINT_KEY] = module.threshold_tuning.to_dict(module.label_space)
    try:
        AtomicCheckpointIO(trust=trust_checkpoint).save_checkpoint(raw, checkpoint)
    except OSError as err:
        raise BionerError(f"--save-thresholds: cannot write {checkpoint} ({err})") from None


def _default_out_dir(checkpoint: Path, split: str, hub: Any = None) -> Path:
    if hub is not None:  # never inside the Hub cache
        return Path("eval") / f"{hub.repo_id.replace('/', '--')}-{hub.commit[:12]}-{split}"
    if checkpoint.is_dir():  # an export directory
        return checkpoint.resolve().parent / "eval" / f"{checkpoint.name}-{split}"
    run_dir = checkpoint.resolve().parent.parent  # <run_dir>/checkpoints/<name>.ckpt
    return run_dir / "eval" / f"{checkpoint.stem}-{split}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    corpus_help = "a registered corpus or a corpus directory (repeatable; default: the model's)"
    parser.add_argument("--corpus", action="append", dest="corpora", metavar="NAME_OR_DIR", help=corpus_help)
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--reading", choices=("full", "paper"))
    match_help = "partial-match schemas to add, comma-separated, or none (default: strict,exact,partial,type)"
    parser.add_argument("--match", default="strict,exact,partial,type", help=match_help)
    parser.add_argument("--data-root", help="where the registered corpora are (default: the run's data.root)")
    parser.add_argument("-o", "--out-dir")
    parser.add_argument("--device")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load a checkpoint that needs more than plain data; it may run code: "
                        "only a file you trust")  # fmt: skip
    thresholds_help = (
        "decision thresholds: the checkpoint's (stored), the untuned default (default), or tuned now on "
        "the dev split of the model's corpora (tune; never the test split)"
    )
    parser.add_argument("--thresholds", choices=THRESHOLDS, default="stored", help=thresholds_help)
    parser.add_argument("--tune-sentences", type=int, metavar="N",
                        help="with --thresholds tune: at most N dev sentences per corpus (seeded; default: "
                        "the run's thresholds.dev_sentences, 2000)")  # fmt: skip
    save_help = "with --thresholds tune: write the tuned thresholds into the checkpoint"
    parser.add_argument("--save-thresholds", action="store_true", help=save_help)
    decisions_help = (
        "calibrate every decision, the thresholds only, or none (default: as the model was trained)"
    )
    parser.add_argument("--decisions", choices=("calibrated", "thresholds", "raw"), help=decisions_help)
    wandb_help = "log a job_type=eval run in the training run's W&B group (default: when it logged to W&B)"
    parser.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=None, help=wandb_help)
    return parser.parse_args(argv)


def match_schemas(value: str) -> list[str]:
    from metrics.partial_match import SCHEMAS

    if value.strip().lower() == "none":
        return []
    schemas = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in schemas if s not in SCHEMAS]
    if unknown or not schemas:
        raise BionerError(f"--match {value}: use a comma-separated subset of {','.join(SCHEMAS)}, or none")
    return schemas


def run(args: argparse.Namespace) -> int:
    from inference.hub_ids import resolve_model
    from metrics.partial_match import is_match_key, render_match
    from metrics.report import render

    schemas = match_schemas(args.match)
    if args.save_thresholds and args.thresholds != "tune":
        raise BionerError("--save-thresholds saves tuned thresholds: add --thresholds tune")
    checkpoint, hub = resolve_model(args.checkpoint)
    if args.save_thresholds and checkpoint.is_dir():
        raise BionerError(f"--save-thresholds writes into a checkpoint; {args.checkpoint} is an export")
    if args.tune_sentences is not None and args.tune_sentences < 1:
        raise BionerError(f"--tune-sentences {args.tune_sentences}: must be >= 1")
    started = time.perf_counter()
    everything, module = evaluate(
        checkpoint, args.corpora, split=args.split, reading=args.reading,
        data_root=args.data_root, device=args.device, trust_checkpoint=args.trust_checkpoint, match=schemas,
        thresholds=args.thresholds, decisions=args.decisions, tune_sentences=args.tune_sentences,
    )  # fmt: skip
    tuning = module.threshold_tuning
    metrics = {k: v for k, v in everything.items() if not is_match_key(k)}
    out = Path(args.out_dir) if args.out_dir else _default_out_dir(checkpoint, args.split, hub)
    record = {**everything, "checkpoint": str(checkpoint.resolve()), "corpora": args.corpora}
    if hub is not None:
        record["hub"] = {"id": hub.repo_id, "revision": hub.commit, "requested": hub.requested}
    name = hub.pinned if hub is not None else str(checkpoint)
    record["thresholds"] = args.thresholds
    if module.tunes_thresholds():
        record["type_thresholds"] = dict(zip(module.label_space.types, map(float, module.thresholds())))
    if tuning is not None:
        from training.thresholds import CHECKPOINT_KEY

        record[CHECKPOINT_KEY] = tuning.to_dict(module.label_space)
    report = render(metrics, stage=args.split, markdown=True, types=True)
    if schemas:
        report += "\n" + render_match(everything, args.split, schemas)
    from metrics.charts import f1_bar_chart

    try:  # staged next to the out dir: a failure leaves an earlier evaluation's files there as they were
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as staging:
            staging.mkdir()
            (staging / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            (staging / "report.md").write_text(f"# Evaluation of `{name}` ({args.split})\n\n{report}\n")
            title = f"{hub.repo_id if hub is not None else checkpoint.name} ({args.split})"
            f1_bar_chart(metrics, args.split, staging / "f1_per_corpus.png", title=title)
    except OSError as err:
        raise BionerError(f"-o {out}: cannot write ({err.strerror or err})") from None
    if args.wandb or (args.wandb is None and module.run_config.get("logger") == "wandb"):
        _log_wandb(module, everything, args.split, out, checkpoint)
    print(render(metrics, stage=args.split, types=True))
    if schemas:
        print(render_match(everything, args.split, schemas, markdown=False))
    if tuning is not None:
        print("\n".join(tuning.lines(module.label_space)))
        if args.save_thresholds:
            save_thresholds(checkpoint, module, args.trust_checkpoint)
            print(f"thresholds written into {checkpoint}")
    print(f"evaluated in {time.perf_counter() - started:.0f} s; metrics: {out / 'metrics.json'}")
    return 0


def _log_wandb(module: Any, metrics: dict[str, float], split: str, out: Path, checkpoint: Path) -> None:
    """An eval run in the training run's group: the scores, the per-type table and the chart. Online when
    wandb finds an API key (as in train.py), else offline under ``OUT_DIR/wandb`` (``wandb sync``)."""
    import os

    import wandb

    from metrics.charts import f1_table_rows
    from training.logger import wandb_api_key

    cfg = module.run_config
    settings = cfg.get("wandb") or {}
    mode = os.environ.get("WANDB_MODE") or ("online" if wandb_api_key() else "offline")
    run = wandb.init(
        project=settings.get("project", "bioner-mtl"),
        entity=settings.get("entity"),
        group=cfg.get("experiment") or None,
        job_type="eval",
        name=f"eval-{cfg.get('run_name') or checkpoint.stem}-{split}",
        tags=[*module.label_space.corpora, cfg["model"]["name"], f"seed={cfg.get('seed')}"],
        dir=str(out),
        mode=mode,
        config={"checkpoint": str(checkpoint.resolve()), "split": split, "run_config": cfg},
    )
    run.log({f"eval/{k}": v for k, v in metrics.items() if not k.endswith(("/tp", "/fp", "/fn"))})
    from metrics.partial_match import is_match_key

    columns, rows = f1_table_rows({k: v for k, v in metrics.items() if not is_match_key(k)}, split)
    run.log({"eval/f1_per_type": wandb.Table(columns=columns, data=rows)})
    run.log({"eval/f1_per_corpus": wandb.Image(str(out / "f1_per_corpus.png"))})
    run.finish()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (BionerError, ValueError) as err:
        return report_user_error(err)


if __name__ == "__main__":
    sys.exit(main())
