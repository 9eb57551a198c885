"""SRU-NER's ``model.action_weighting``: per-column weights of the gold action cells from the training
rows, by hand; the other corpora's (soft) cells keep an exactly zero gradient with weights on; ``none`` is
the unweighted loss exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import collate_sentences, tiny_bert_config

from datamodules.corpora import label_space_of
from datamodules.sentence import Sentence, Span
from lightning_modules.registry import build_module
from lightning_modules.sru_ner.codec import EOA, SHIFT
from lightning_modules.sru_ner.targets import action_counts
from losses import balanced_binary_weights, dynamic_multi_hot_target, multi_hot_bce_terms, welt_binary_weights

LS = label_space_of(["BC5CDR", "NCBI-disease"])  # BC5CDR/Chemical 0, BC5CDR/Disease 1, NCBI 2
TR = {k: 2 + 2 * k for k in range(3)}
RE = {k: 3 + 2 * k for k in range(3)}


def test_action_counts_by_hand():
    # BC5CDR "w0 w1 w2" with Chemical on w0: rows TR(0) | SH | RE(0) | SH | SH | EOA -> 6 rows.
    # NCBI "w0 w1" without mentions: SH | SH | EOA -> 3 rows.
    rows = {
        "BC5CDR": {"spans": [[0, 1, 0]], "num_words": [3]},
        "NCBI-disease": {"spans": [[]], "num_words": [2]},
    }
    pos, neg = action_counts(rows, LS)
    expected_pos = np.zeros(8, dtype=np.int64)
    expected_pos[[SHIFT, EOA, TR[0], RE[0]]] = [3 + 2, 1 + 1, 1, 1]
    assert pos.tolist() == expected_pos.tolist()
    expected_neg = np.zeros(8, dtype=np.int64)
    expected_neg[SHIFT] = (6 - 3) + (3 - 2)
    expected_neg[EOA] = (6 - 1) + (3 - 1)
    expected_neg[[TR[0], RE[0]]] = 5 + 1  # BC5CDR's 5 other rows; NCBI's EOA row
    expected_neg[[TR[1], RE[1]]] = 6 + 1
    expected_neg[[TR[2], RE[2]]] = 1 + 3  # BC5CDR's EOA row; NCBI's 3 rows
    assert neg.tolist() == expected_neg.tolist()


def test_weights_by_hand():
    pos, neg = torch.tensor([1, 5, 0]), torch.tensor([9, 5, 4])
    w_pos, w_neg = welt_binary_weights(pos, neg)  # WeLT over (negatives, positives) per column
    for k in range(3):
        share = pos[k].item() / (pos[k] + neg[k]).item()
        z = math.exp(1 - share) + math.exp(share)
        assert w_pos[k].item() == pytest.approx(2 * math.exp(1 - share) / z, rel=1e-6)
        assert w_neg[k].item() == pytest.approx(2 * math.exp(share) / z, rel=1e-6)
    b_pos, b_neg = balanced_binary_weights(pos, neg, cap=4.0)
    assert b_pos.tolist() == [4.0, 1.0, 4.0]  # 9 capped at 4; 5/5; never positive: the cap
    assert b_neg.tolist() == [1.0, 1.0, 1.0]
    assert balanced_binary_weights(torch.tensor([10]), torch.tensor([1]), cap=4.0)[0].tolist() == [0.25]


def test_soft_cells_keep_an_exactly_zero_gradient_with_weights_on():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, generator=g, requires_grad=True)
    gold = torch.zeros(3, 8)
    gold[0, SHIFT], gold[1, TR[0]], gold[2, EOA] = 1, 1, 1
    other = torch.zeros(3, 8, dtype=torch.bool)
    other[:, [TR[2], RE[2]]] = True  # the BC5CDR sentence's other-corpus columns
    target, _ = dynamic_multi_hot_target(
        logits, gold, other, torch.zeros(3, dtype=torch.bool), shift_col=SHIFT, eoa_col=EOA
    )
    w_pos, w_neg = torch.linspace(0.5, 3.0, 8), torch.linspace(2.0, 0.25, 8)
    total, _ = multi_hot_bce_terms(
        logits[None], target[None], torch.ones(1, 3, dtype=torch.bool), pos_weight=w_pos, neg_weight=w_neg
    )
    (grad,) = torch.autograd.grad(total, logits)
    soft = (target > 0) & (target < 1)
    assert soft[:2, [TR[2], RE[2]]].all() and not soft[2].any()  # soft on rows 0-1; the EOA row is hard
    assert torch.equal(grad[soft], torch.zeros_like(grad[soft]))
    assert (grad[~soft] != 0).all()
    # a hard cell's gradient is its weight times the plain one, (sigmoid(u) - t) / A
    p = torch.sigmoid(logits.detach())
    assert grad[1, TR[0]].item() == pytest.approx(
        w_pos[TR[0]].item() * (p[1, TR[0]].item() - 1) / 8, rel=1e-5
    )
    assert grad[1, SHIFT].item() == pytest.approx(w_neg[SHIFT].item() * p[1, SHIFT].item() / 8, rel=1e-5)


def _module(weighting: str):
    torch.manual_seed(0)
    cfg = {"encoder": {"name": "tiny"}, "model": {"name": "sru_ner", "action_weighting": weighting}}
    return build_module(cfg, LS, tiny_bert_config().to_dict())


def test_none_is_the_unweighted_loss_exactly_and_weights_come_from_the_training_rows(tmp_path):
    sentences = [
        Sentence(("the", "acid", "binds"), (Span(1, 2, "Chemical"),), "BC5CDR"),
        Sentence(("cancer", "disease", "."), (Span(0, 2, "Disease"),), "NCBI-disease"),
    ]
    plain, welt = _module("none"), _module("welt")
    assert not plain.uses_training_rows and welt.uses_training_rows
    batch = collate_sentences(tmp_path, sentences, LS, plain.target_encoder())
    torch.manual_seed(1)  # the same dropout masks in both forwards
    got = plain.loss_terms(batch)
    torch.manual_seed(1)
    out = plain.network(batch, None, plain.soft_sh_offset)  # the soft SH target, as the module trains
    want = multi_hot_bce_terms(out.logits, out.targets, out.row_mask)
    assert torch.equal(got.total, want[0]) and torch.equal(got.count, want[1])

    rows = {
        "BC5CDR": {"spans": [[1, 2, 0]], "num_words": [3]},
        "NCBI-disease": {"spans": [[0, 2, 2]], "num_words": [3]},
    }
    welt.learn_from_training_rows(rows)
    w_pos, w_neg = welt_binary_weights(*(torch.from_numpy(c) for c in action_counts(rows, LS)))
    assert torch.equal(welt.action_pos_weight, w_pos) and torch.equal(welt.action_neg_weight, w_neg)
    # model state (a loaded model decides as it trained), which checkpoints before issue 33 lack
    assert torch.equal(welt.state_dict()["action_pos_weight"], w_pos)
    assert {"action_pos_weight", "action_neg_weight"} <= welt.optional_state_keys
    loss = welt.training_loss(batch)
    assert torch.isfinite(loss)


def test_one_weight_without_the_other_is_refused():
    logits, targets = torch.zeros(1, 1, 8), torch.zeros(1, 1, 8)
    with pytest.raises(ValueError, match="together"):
        multi_hot_bce_terms(logits, targets, torch.ones(1, 1, dtype=torch.bool), neg_weight=torch.ones(8))
