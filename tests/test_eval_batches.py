"""Evaluation batches bounded by the model's memory estimate (``datamodules.eval_batches``), and the
estimate itself against the activation peak measured on the CPU."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_corpora import make_dm

from datamodules.eval_batches import budget_batches

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def table_cost(sentences: int, words: int, subwords: int) -> float:
    return sentences * words * words  # one byte per cell


def test_greedy_cut_by_hand():
    # rows in length order 10, 10, 6, 6, 6, 2, 2 words; budget 250 cells, at most 4 sentences
    words = np.array([6, 2, 10, 6, 2, 10, 6])
    order = [2, 5, 0, 3, 6, 1, 4]
    batches = budget_batches(order, words, words * 2, max_sentences=4, cost=table_cost, budget_bytes=250)
    # 2 x 100 = 200 (a third 10-word row: 300); then 6-word rows: 3 x 36 = 108, adding a 2-word row keeps
    # n = 6 (4 x 36 = 144) and hits the 4-sentence cap; the last 2-word row alone
    assert batches == [[2, 5], [0, 3, 6, 1], [4]]
    assert budget_batches(order, words, words, max_sentences=3) == [[2, 5, 0], [3, 6, 1], [4]]  # no cost


def test_a_row_over_budget_alone_is_its_own_batch_and_said(caplog):
    words = np.array([20, 20, 3])
    with caplog.at_level(logging.WARNING, logger="datamodules.eval_batches"):
        batches = budget_batches([0, 1, 2], words, words, max_sentences=8, cost=table_cost, budget_bytes=100)
    assert batches == [[0], [1], [2]]
    assert "2 sentence(s) exceed the evaluation memory budget" in caplog.text


def test_eval_loaders_follow_the_cost(data_root, tokenizer_dir, tmp_path):
    dm = make_dm(data_root, tokenizer_dir, tmp_path, eval_batch_size=8, eval_memory_mb=5 / 2**20)
    dm.eval_cost = table_cost
    for loader, rows in zip(dm.test_dataloader(), dm._rows("test")):
        batches = list(loader)
        for batch in batches:
            assert table_cost(len(batch["num_words"]), int(batch["num_words"].max()), 0) <= 5 or (
                len(batch["num_words"]) == 1
            )
        seen = sorted(i for b in batches for i in b["sentence_index"].tolist())
        assert seen == sorted(int(rows[i]["sentence_index"]) for i in range(len(rows)))
        assert len(batches) > 1  # 3 and 2 sentences of 2+ words: two of them exceed 5 cells
    dm.eval_cost = None  # no model estimate: eval_batch_size alone
    assert [len(list(loader)) for loader in dm.test_dataloader()] == [1, 1]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "BC4CHEMD").is_dir(), reason="needs the full corpora (../shared/data)")
def test_tabert_estimate_is_within_25_percent_of_the_measured_peak_on_the_longest_bc4chemd_batch(tmp_path):
    """experiment=mt6_tabert_cpu (six-corpus TabERT-CNN, MiniLM, 128 channels, eval_memory_mb 1536): the
    first test batch of BC4CHEMD, its longest sentences, as the budget cuts it; the estimate against the
    peak of tensor memory the profiler records over ``predict`` (weights excluded), and the encoder's
    part against the encoder's own peak."""
    from omegaconf import OmegaConf
    from torch.profiler import ProfilerActivity, profile

    from configs.compose import compose
    from datamodules.corpora import label_space_of
    from datamodules.multi_corpus import MultiCorpusDataModule
    from lightning_modules.registry import build_module

    cfg = compose(["experiment=mt6_tabert_cpu", f"data.root={SHARED}", f"data.cache_dir={tmp_path}"])
    module = build_module(OmegaConf.to_container(cfg, resolve=True), label_space_of(cfg.data.corpora))
    module.eval()
    data_cfg = OmegaConf.merge(cfg, {"data": {"corpora": ["BC4CHEMD"]}})
    data = MultiCorpusDataModule.from_config(data_cfg, batch_transform=module.target_encoder())
    data.eval_cost = module.eval_batch_bytes
    rows = data._rows("test")[0]
    first = data.eval_batches(rows)[0]
    batch = data.collator()([rows[i] for i in first])
    sentences, words, subwords = len(first), int(batch["num_words"].max()), batch["input_ids"].shape[1]
    assert words > 250 and 1 < sentences < cfg.data.eval_batch_size  # the budget, not the count, cut it

    def peak_bytes(run) -> int:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run()
        events = prof.profiler.kineto_results.events()
        live = peak = 0
        for _, size in sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"):
            live += size
            peak = max(peak, live)
        return peak

    encoder = module.network.encoder
    with torch.no_grad():
        measured = peak_bytes(lambda: module.predict(batch))
        measured_encoder = peak_bytes(
            lambda: encoder(
                batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["word_mask"].shape[1]
            )
        )
    estimate = module.eval_batch_bytes(sentences, words, subwords)
    estimate_encoder = encoder.eval_activation_bytes(sentences, subwords, 4)
    assert estimate <= cfg.data.eval_memory_mb * 2**20
    assert abs(estimate / measured - 1) <= 0.25, (estimate / 2**20, measured / 2**20)
    assert abs(estimate_encoder / measured_encoder - 1) <= 0.25, (estimate_encoder, measured_encoder)
