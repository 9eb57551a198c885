"""train.py end to end: a short run writes metrics.json, offline W&B history and a table; errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_runner import run_train, tiny_encoder_dir
from wandb_offline import history_rows, read_wandb_records, summary, wait_for_run_file

from configs.compose import available, compose


def _train(args: list[str], tmp_path: Path, timeout: int = 900):
    return run_train(args, tmp_path, timeout=timeout)


@pytest.mark.slow
def test_short_default_run_writes_metrics_and_offline_wandb_history(tmp_path):
    run_dir = tmp_path / "run"
    proc = _train(
        [
            f"run_dir={run_dir}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.corpora=[BC5CDR,NCBI-disease]",
            "data.samples_per_epoch=64",  # 4 steps per epoch: two validations in 8 steps
            "data.val_subsample=16",
            "trainer.max_steps=8",
            "trainer.limit_test_batches=1",
            "trainer.log_every_n_steps=2",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no API key found, logging offline" in proc.stdout
    assert "merged F1" in proc.stdout and "macro F1" in proc.stdout  # the per-corpus, per-type table

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for view in ("disjoint", "merged"):
        assert 0.0 <= metrics[f"test/{view}/macro_f1"] <= 100.0
        for corpus in ("BC5CDR", "NCBI-disease"):
            assert {f"test/{view}/{corpus}/{s}" for s in ("precision", "recall", "f1")} <= metrics.keys()
    assert "test/merged/BC5CDR/Chemical/f1" in metrics
    assert metrics["val/merged/macro_f1"] is not None
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    last = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", mmap=True, weights_only=False
    )
    assert last["global_step"] == 8  # the latest state, not the best one

    run_file = wait_for_run_file(run_dir / "wandb")
    rows = history_rows(run_file)
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    val_f1 = [r["val/merged/macro_f1"] for r in rows if "val/merged/macro_f1" in r]
    assert len(losses) >= 1 and all(v > 0 for v in losses)
    assert len(val_f1) == 2  # after steps 4 and 8
    assert "val/BC5CDR" not in rows[0]
    assert any("val/merged/BC5CDR/Chemical/f1" in r for r in rows)
    assert summary(run_file)["val/merged/macro_f1"] is not None

    # comparable runs: a predictions table at each validation, the test chart and per-type table
    media = run_file.parent / "files" / "media"
    tables = sorted(  # predictions_<W&B step>_<hash>.table.json
        (media / "table" / "val").glob("predictions_*.table.json"), key=lambda p: int(p.name.split("_")[1])
    )
    assert len(tables) == 2  # steps 4 and 8
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["step", "corpus", "sentence", "gold", "predicted"]
    assert {row[1] for row in table["data"]} == {"BC5CDR", "NCBI-disease"} and len(table["data"]) == 16
    assert all(row[0] == 8 and row[2] for row in table["data"])
    per_type = json.loads(next((media / "table" / "test").glob("f1_per_type_*.table.json")).read_text())
    assert ["BC5CDR", "Chemical", "merged"] in [row[:3] for row in per_type["data"]]
    assert list((media / "images" / "test").glob("f1_per_corpus_*.png"))
    assert (run_dir / "f1_per_corpus.png").read_bytes()[:4] == b"\x89PNG"
    card = (run_dir / "README.md").read_text()
    assert "## Test scores" in card and "merged F1" in card and "python train.py run_dir=" in card
    assert card.startswith("---\nlibrary_name: bioner-mtl\n") and "\nlicense: " in card
    assert "datasets:" not in card.split("\n---\n")[0] and "the bundled samples, not the full corpora" in card

    # the best checkpoint's export directory, a model artifact of the offline run (wandb.log_model=best)
    best_step = torch.load(metrics["best_checkpoint"], map_location="cpu", mmap=True, weights_only=False)[
        "global_step"
    ]
    artifacts = [
        r.artifact
        for r in read_wandb_records(run_file)
        if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"
    ]  # tables are artifacts too
    assert len(artifacts) == 1
    artifact = artifacts[0]
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    assert (artifact.type, artifact.name) == ("model", f"model-{run_id}")
    assert {"best", f"step-{best_step}"} <= set(artifact.aliases)
    files = {entry.path: Path(entry.local_path) for entry in artifact.manifest.contents}
    assert {"model.safetensors", "bioner_model.json", "README.md", "tokenizer.json"} <= files.keys()
    assert all(
        path.is_file() and path.parent == run_dir / "export" / f"step-{best_step}" for path in files.values()
    )
    assert files["README.md"].read_text() == card  # the model card with its Hub header and the test scores
    assert json.loads(files["bioner_model.json"].read_text())["global_step"] == best_step

    # the validation history in the run directory: the same scores as W&B's, and the comparison tool
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [4, 8]
    assert [h["metrics"]["val/merged/macro_f1"] for h in history] == pytest.approx(val_f1)
    assert 0 < history[0]["wall_s"] < history[1]["wall_s"]
    from metrics import compare

    assert compare.main([str(run_dir), "-o", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp.md").read_text().splitlines()
    assert table[2].startswith(f"| run | sru_ner | 8 | {metrics['val/merged/macro_f1']:.2f} |")
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


def test_user_errors_exit_2_with_one_line_and_no_traceback(tmp_path, monkeypatch, capsys):
    import train

    monkeypatch.chdir(tmp_path)  # a default run directory would be outputs/... here
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    for args, expected in [
        (["trainer.max_stepz=3"], "Did you mean"),
        (["experiment=mt7"], "unknown experiment"),
        ([f"resume={garbage}", "logger=none", f"run_dir={tmp_path / 'g'}"], "not a readable checkpoint"),
        (["resume=last", "logger=none"], "resume=last needs the run to continue"),
        (
            ["data.root=/nonexistent", "logger=none", f"run_dir={tmp_path / 'r'}"],
            "python -m datamodules.prepare",
        ),
    ]:
        assert train.main(args) == 2, args
        err = capsys.readouterr().err
        assert "Traceback" not in err and expected in err, (args, err[-2000:])
        assert err.strip().splitlines()[-1].startswith("error: ")
    assert list(tmp_path.iterdir()) == [garbage]  # no run directory, no cache


def test_every_experiment_config_builds_every_model_with_a_tiny_encoder(tmp_path):
    from omegaconf import OmegaConf

    from datamodules.corpora import label_space_of
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import available_models, build_module

    encoder_dir = tiny_encoder_dir(tmp_path / "tiny")
    experiments = available("experiment")
    assert {
        "mt6",
        "mt6_cpu",
        "single_corpus",
        "conll04",
        "conll04_cpu",
        "ade",
        "mt6_tabert_cpu",
        "finetune",
    } <= set(experiments)
    shipped = [n for n, e in available_models().items() if e.module_class.__module__.startswith("lightning_")]
    assert {"sru_ner", "baseline", "tabert_cnn"} <= set(shipped)
    for name in experiments:
        for model in shipped:
            extra = ["data.corpora=[JNLPBA]"] if name in ("single_corpus", "finetune") else []
            extra += ["init_from=a-trained-model"] if name == "finetune" else []  # composes; read at run time
            cfg = compose([f"experiment={name}", f"model={model}", f"encoder.name={encoder_dir}", *extra])
            assert (cfg.experiment, cfg.model.name) == (name, model)
            label_space = label_space_of(cfg.data.corpora)
            module = build_module(OmegaConf.to_container(cfg, resolve=True), label_space)
            assert module.hparams["cfg"]["model"]["name"] == model
            assert module.label_space is label_space
            MultiCorpusDataModule.from_config(
                cfg, batch_transform=module.target_encoder(), label_space=label_space
            )
    conll = compose(["experiment=conll04_cpu"])  # model_settings.tabert_cnn applies to its own model only
    assert (conll.model.name, conll.model.channels, conll.model.pair_dim) == ("tabert_cnn", 256, 128)
    assert compose(["experiment=conll04_cpu", "model.channels=64"]).model.channels == 64
    assert "channels" not in compose(["experiment=conll04_cpu", "model=baseline"]).model
    # issue 20's study: each model's best dev setting is its mt6_cpu default (docs/results.md)
    sru, baseline = compose(["experiment=mt6_cpu"]), compose(["experiment=mt6_cpu", "model=baseline"])
    assert (sru.model.action_weighting, sru.model.lr, sru.encoder.lr) == ("balanced", 1e-3, 1e-4)
    assert (baseline.model.lr, baseline.encoder.lr) == (4e-3, 1e-4)
    tabert = compose(["experiment=mt6_tabert_cpu"])
    assert (tabert.model.name, tabert.model.lr, tabert.encoder.lr) == ("tabert_cnn", 2e-3, 1e-4)
    mt6 = compose(["experiment=mt6"])
    assert mt6.encoder.name == "michiyasunaga/BioLinkBERT-large"
    assert mt6.trainer.precision == "bf16-mixed" and len(mt6.data.corpora) == 6
    assert (mt6.encoder.lr, mt6.model.lr, mt6.data.batch_size) == (2e-5, 3e-4, 16)
    assert (mt6.model.half_context, mt6.model.dropout_latents) == (150, 0.2)  # the paper's, by default
    # the embedded default takes mt6_cpu's per-model settings (issue 33), and only without an experiment
    default = compose([])
    assert (default.model.action_weighting, default.model.lr, default.encoder.lr) == ("balanced", 1e-3, 1e-4)
    assert default.model.decisions == "thresholds" and default.thresholds.tune
    assert compose(["model=baseline"]).model.lr == 4e-3
    assert (mt6.model.action_weighting, mt6.model.lr) == ("none", 3e-4)


def _wandb_best_summaries(run_file: Path) -> dict[str, str]:
    """Metric name -> the best-value summary W&B was told to keep for it (``define_metric``)."""
    from wandb_offline import read_wandb_records

    declared = {}
    for record in read_wandb_records(run_file):
        if record.WhichOneof("record_type") == "metric":
            kinds = [k for k in ("max", "min") if getattr(record.metric.summary, k)]
            declared[record.metric.name] = kinds[0] if kinds else ""
    return declared


@pytest.mark.slow
def test_conll04_keeps_its_own_selection_metric_as_the_wandb_best_value(tmp_path, conll04_root):
    """experiment=conll04 selects on val/re_plus/micro_f1: W&B keeps its maximum, as for checkpoints."""
    root = conll04_root
    run_dir = tmp_path / "run"
    encoder = tiny_encoder_dir(tmp_path / "encoder")
    proc = _train(
        [
            "experiment=conll04",
            "trainer=cpu",
            f"encoder.name={encoder}",
            f"data.root={root}",
            f"run_dir={run_dir}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.num_workers=0",
            "model.channels=16",
            "trainer.max_epochs=2",
            "callbacks.rich_progress=false",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_file = wait_for_run_file(run_dir / "wandb")
    declared = _wandb_best_summaries(run_file)
    assert declared["val/re_plus/micro_f1"] == "max"
    assert declared["val/merged/macro_f1"] == "max" and declared["train/loss"] == "min"
    best = summary(run_file)["val/re_plus/micro_f1"]
    assert isinstance(best, dict) and set(best) >= {"max"}, best
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "val/re_plus/micro_f1" in metrics  # the run's own selection metric names its best score
    rows = [r["val/re_plus/micro_f1"] for r in history_rows(run_file) if "val/re_plus/micro_f1" in r]
    assert len(rows) == 2 and best["max"] == pytest.approx(max(rows))


def test_the_old_name_of_the_selection_metric_still_selects_it(capsys):
    assert compose(["callbacks.monitor=val/f1_merged_macro"]).callbacks.monitor == "val/merged/macro_f1"
    assert (
        "callbacks.monitor=val/f1_merged_macro is now called val/merged/macro_f1" in capsys.readouterr().err
    )
    assert compose([]).callbacks.monitor == "val/merged/macro_f1"


@pytest.mark.slow
def test_a_run_over_a_truncated_cache_entry_warns_once_rebuilds_it_and_finishes(tmp_path, capsys):
    from train_runner import tiny_run_args

    import train

    encoder = tiny_encoder_dir(tmp_path / "tiny")
    args = [*tiny_run_args(tmp_path, tmp_path / "first", encoder), "model=baseline", "trainer.max_steps=1"]
    assert train.main([*args, "data.samples_per_epoch=16", "trainer.limit_test_batches=1"]) == 0
    (arrow,) = (tmp_path / "cache" / "BC5CDR").glob("train-*/*.arrow")
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])  # a copy cut short
    capsys.readouterr()

    args = [*tiny_run_args(tmp_path, tmp_path / "second", encoder), "model=baseline", "trainer.max_steps=1"]
    assert train.main([*args, "data.samples_per_epoch=16", "trainer.limit_test_batches=1"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(arrow.parent) in warnings[0] and "rebuilding" in warnings[0], warnings
    assert (tmp_path / "second" / "metrics.json").is_file()
