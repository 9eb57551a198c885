"""train.py under 2-process DDP (CPU, gloo): trains, validates, tests, and checkpoints every rank's RNGs.

DDP refuses parameters that get no gradient (an encoder's unused pooler would fail at step 2), and the
test-time metrics must be summed over ranks: the test scores of the DDP run are compared with a
single-process evaluation of the same best checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_runner import run_train, tiny_encoder_dir

from lightning_modules.checkpoints import read_checkpoint


def _train(tmp_path: Path, run_dir: Path, encoder: Path, *extra: str):
    args = [
        f"run_dir={run_dir}",
        f"encoder.name={encoder}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.corpora=[BC5CDR,NCBI-disease]",
        "data.samples_per_epoch=64",  # 4 steps of 16 sentences (8 per rank)
        "data.val_subsample=8",
        "thresholds.dev_sentences=8",
        "trainer.max_steps=4",
        "logger=none",
        "callbacks.rich_progress=false",
        "trainer.enable_progress_bar=false",
        *extra,
    ]
    return run_train(args, tmp_path, timeout=600, extra_env={"OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_ddp_training_run_completes_and_matches_single_process_test_scores(tmp_path):
    encoder = tiny_encoder_dir(tmp_path / "tiny")

    run_dir = tmp_path / "ddp"
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
    proc = _train(tmp_path, run_dir, encoder, *ddp)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    assert len(last["rng_states"]) == 2  # one per rank

    # the same best checkpoint evaluated by one process: identical test counts, hence identical scores
    reference = _single_process_test(run_dir / "checkpoints" / "best.ckpt")
    tests = {k: v for k, v in metrics.items() if k.startswith("test/")}
    assert tests and tests == {f"test/{k}": v for k, v in reference.items()}


def _single_process_test(checkpoint: Path) -> dict[str, float]:
    import lightning.pytorch as pl

    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.sru_ner.module import SRUNERModule

    state = read_checkpoint(checkpoint)
    module = SRUNERModule.build(**state["hyper_parameters"])
    module.load_state_dict(state["state_dict"])
    datamodule = MultiCorpusDataModule.from_config(
        state["hyper_parameters"]["cfg"], batch_transform=module.target_encoder()
    )
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return module.test_results
