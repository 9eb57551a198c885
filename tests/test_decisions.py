"""Decisions that match the loss (issue 33): every decision a loss weighting shifted reads the calibrated
score ``u - log(w+/w-)``, on hand-built logits where the calibrated and the raw decision differ; the
decoder reads generation's logits (the fp32 sigmoid tie); the weights and thresholds are model state that
older checkpoints lack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import collate_sentences, tiny_bert_config

from datamodules.corpora import label_space_of
from datamodules.sentence import Sentence, Span
from lightning_modules.decisions import binary_offset, class_offset, threshold_logits
from lightning_modules.registry import build_module
from lightning_modules.sru_ner.codec import EOA, SHIFT, ActionVocabulary, decode_batch
from losses import dynamic_multi_hot_target

LS = label_space_of(["BC5CDR", "NCBI-disease"])  # BC5CDR/Chemical 0, BC5CDR/Disease 1, NCBI 2
TR = {k: 2 + 2 * k for k in range(3)}
RE = {k: 3 + 2 * k for k in range(3)}
A = 8
LOW = -30.0  # a logit that decides nothing


def _sru(decisions: str = "calibrated", weighting: str = "balanced", **model):
    cfg = {
        "encoder": {"name": "tiny"},
        "model": {"name": "sru_ner", "loop": "autograd", "action_weighting": weighting,
                  "decisions": decisions, **model},
    }  # fmt: skip
    return build_module(cfg, LS, tiny_bert_config().to_dict()).eval()


class ScriptedMLP(torch.nn.Module):
    """Stands in for the SRU head's MLP: returns row ``t`` of ``script`` (``(T, A)``) at the t-th call,
    for every sentence of the batch; the rows after the script are EOA."""

    def __init__(self, script: list[list[float]]):
        super().__init__()
        self.script = torch.tensor(script)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        row = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return row.expand(x.shape[0], -1).clone()


def _row(**cells: float) -> list[float]:
    row = [LOW] * A
    for name, value in cells.items():
        row[
            {
                "EOA": EOA,
                "SH": SHIFT,
                **{f"TR{k}": c for k, c in TR.items()},
                **{f"RE{k}": c for k, c in RE.items()},
            }[name]
        ] = value  # noqa: E501
    return row


def _predict(module, script, tmp_path, words=("the", "acid", "binds")) -> list:
    module.network.head.mlp = ScriptedMLP(script)
    batch = collate_sentences(tmp_path, [Sentence(words, (), "BC5CDR")], LS, module.target_encoder())
    return module.predict(batch).spans[0]


def _set_weights(module, pos: dict[int, float]) -> None:
    weights = torch.ones(A)
    for col, w in pos.items():
        weights[col] = w
    module.action_pos_weight.copy_(weights)
    module.action_neg_weight.fill_(1.0)


# --- the offset ----------------------------------------------------------------------------------
def test_offsets_by_hand():
    assert binary_offset(torch.tensor([10.0, 1.0, 0.5]), torch.tensor([1.0, 1.0, 2.0])).tolist() == [
        pytest.approx(math.log(10)),
        0.0,
        pytest.approx(math.log(0.25)),
    ]
    assert class_offset(torch.tensor([2.0, 1.0])).tolist() == [pytest.approx(math.log(2)), 0.0]
    assert threshold_logits(np.array([0.5, 0.9])).tolist() == pytest.approx([0.0, math.log(9)])
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        threshold_logits(1.0)


def test_a_weighted_bce_optimum_moves_by_the_offset():
    """The loss-optimal logit of a weighted BCE at base rate p is logit(p) + log(w+/w-), the reading the
    calibration rests on: the expected loss p w+ softplus(-u) + (1 - p) w- softplus(u) has zero gradient
    there and is convex."""
    p, w_pos, w_neg = 0.2, 10.0, 1.0
    optimum = math.log(p / (1 - p)) + math.log(w_pos / w_neg)
    u = torch.tensor([optimum - 0.1, optimum, optimum + 0.1], dtype=torch.float64, requires_grad=True)
    softplus = torch.nn.functional.softplus
    (p * w_pos * softplus(-u) + (1 - p) * w_neg * softplus(u)).sum().backward()
    assert u.grad[0] < 0 and abs(u.grad[1].item()) < 1e-12 and u.grad[2] > 0


# --- SRU-NER: each decision, raw against calibrated ------------------------------------------------
def test_sru_tr_re_threshold_reads_the_calibrated_probability(tmp_path):
    """TR(Chemical) and RE(Chemical) at logit 1.0 (raw p .73), each the argmax of its row, with w+ = 10 on
    both: the calibrated p is sigmoid(1 - log 10) = .21, below 0.5. Raw decisions find the mention;
    calibrated ones do not."""
    script = [_row(TR0=1.0, SH=-5.0), _row(SH=5.0), _row(RE0=1.0, SH=-5.0), _row(SH=5.0), _row(SH=5.0),
              _row(EOA=5.0)]  # fmt: skip
    found = {}
    for decisions in ("raw", "calibrated"):
        module = _sru(decisions)
        _set_weights(module, {TR[0]: 10.0, RE[0]: 10.0})
        found[decisions] = _predict(module, script, tmp_path)
    assert found["raw"] == [(0, 1, 0)]
    assert found["calibrated"] == []


def test_sru_pointer_argmax_reads_the_calibrated_logits(tmp_path):
    """Row 0: SH 2.0 and TR(Chemical) 1.0. Raw: SH is the argmax, the word counter moves and the TR is
    ignored. With w+(SH) = 10 and w+(TR) = 1/10 the calibrated SH is 2 - log 10 = -0.3 and TR 1 + log 10 =
    3.3: a TR row, and the pointer stays."""
    script = [_row(SH=2.0, TR0=1.0), _row(SH=5.0), _row(RE0=5.0), _row(SH=5.0), _row(SH=5.0), _row(EOA=5.0)]
    found = {}
    for decisions in ("raw", "calibrated"):
        module = _sru(decisions)
        _set_weights(module, {SHIFT: 10.0, TR[0]: 0.1})
        found[decisions] = _predict(module, script, tmp_path)
    # raw: SH at row 0 (wc 1), SH (wc 2), RE with no open TR -> nothing
    assert found["raw"] == []
    # calibrated: TR at wc 0, SH (wc 1), RE(Chemical) -> [0, 1)
    assert found["calibrated"] == [(0, 1, 0)]


def test_sru_eoa_stop_reads_the_calibrated_logit(tmp_path):
    """Row 0: EOA 1.0 is the argmax raw (stop: no mention); with w+(EOA) = 10 its calibrated logit is
    1 - log 10 < 0 and TR(Chemical) at 0.5 + log 10 wins the row."""
    script = [_row(EOA=1.0, TR0=0.5), _row(SH=5.0), _row(RE0=5.0), _row(SH=5.0), _row(SH=5.0), _row(EOA=5.0)]
    found = {}
    for decisions in ("raw", "calibrated"):
        module = _sru(decisions)
        _set_weights(module, {EOA: 10.0, TR[0]: 0.1})
        found[decisions] = _predict(module, script, tmp_path)
    assert found["raw"] == []
    assert found["calibrated"] == [(0, 1, 0)]


def test_generation_stops_on_the_calibrated_eoa():
    """The batch stops once every sentence's calibrated EOA logit is above 0: raw EOA at 1.0 stops at row
    0; with w+(EOA) = 10 (offset log 10 > 1) generation goes on to row 1's EOA at 5."""
    module = _sru("calibrated")
    head = module.network.head
    slots, word_mask = (
        torch.zeros(1, 5, head.action_embeddings.embedding_dim),
        torch.ones(1, 5, dtype=torch.bool),
    )
    offset = torch.zeros(A)
    offset[EOA] = math.log(10)
    for given, steps in ((None, 1), (offset, 2)):
        head.mlp = ScriptedMLP([_row(EOA=1.0), _row(EOA=5.0)])
        assert head.generate(slots, word_mask, given).shape[1] == steps


def test_dynamic_target_sh_test_reads_calibrated_probabilities():
    """SH at logit 1.0 and another corpus's TR at 2.0 on an SH gold row. Raw: sigmoid(2) > sigmoid(1): SH
    displaced. With offsets SH -2.02 and TR +2.30 (balanced at the cap): sigmoid(-0.30) <= sigmoid(3.02):
    SH kept. The targets still hold the raw sigmoid of the soft cell (zero gradient)."""
    logits = torch.full((1, A), LOW)
    logits[0, SHIFT], logits[0, TR[2]] = 1.0, 2.0
    gold = torch.zeros(1, A)
    gold[0, SHIFT] = 1.0
    other = torch.zeros(1, A, dtype=torch.bool)
    other[0, [TR[2], RE[2]]] = True
    offset = torch.zeros(A)
    offset[SHIFT], offset[TR[2]] = math.log(0.133), math.log(10)
    kwargs = {"shift_col": SHIFT, "eoa_col": EOA}
    raw_target, raw_removed = dynamic_multi_hot_target(
        logits, gold, other, torch.zeros(1, dtype=torch.bool), **kwargs
    )
    cal_target, cal_removed = dynamic_multi_hot_target(
        logits, gold, other, torch.zeros(1, dtype=torch.bool), decision_offset=offset, **kwargs
    )
    assert raw_removed.tolist() == [True] and cal_removed.tolist() == [False]
    assert cal_target[0, SHIFT].item() == 1.0
    assert cal_target[0, TR[2]].item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


@pytest.mark.parametrize("loop", ["autograd", "fused"])
def test_training_passes_the_offset_to_the_sh_test(tmp_path, loop):
    """The SH test of the training loop, raw against calibrated: SH at logit 1.0 and NCBI's TR(Disease) at
    2.0 (on the first row; the fused loop, whose MLP is set to a constant, on every row). Raw: the SH of
    an SH gold row is displaced and the gold row used again (more than 6 rows). Calibrated with w+(SH) =
    .133 and w+(TR) = 10: SH kept, exactly the 6 gold rows (SH | TR | SH | RE | SH | EOA)."""
    sentences = [Sentence(("the", "acid", "binds"), (Span(1, 2, "Chemical"),), "BC5CDR")]
    rows = {}
    for decisions in ("raw", "calibrated"):
        module = _sru(decisions, loop=loop).train()
        _set_weights(module, {SHIFT: 0.133, TR[2]: 10.0})
        head = module.network.head
        script = [_row(SH=1.0, TR2=2.0)] + [_row(SH=1.0)] * 12
        if loop == "fused":  # the fused loop reads the MLP's weights: every row's logits = the bias
            head.weights().w2.data.zero_()
            head.weights().b2.data.copy_(torch.tensor(script[0]))
        else:
            head.mlp = ScriptedMLP(script)
        batch = collate_sentences(tmp_path, sentences, LS, module.target_encoder())
        with torch.no_grad():
            out = module.network(batch, module.decision_offset)
        rows[decisions] = int(out.row_mask.sum())
    assert rows["calibrated"] == 6
    assert rows["raw"] > rows["calibrated"]
    assert _sru("calibrated", weighting="none").decision_offset is None  # nothing shifted without weights


# --- the sigmoid tie ---------------------------------------------------------------------------------
def test_decoder_follows_generation_where_fp32_sigmoids_tie(tmp_path):
    """Row 0: TR(Chemical) 20 and SH 18. Generation advances on the logits' argmax (TR: the pointer stays).
    In fp32 both sigmoids are exactly 1.0, and an argmax of the probabilities picks SH (the first), which
    shifts every later span by a word. Decoding from the logits finds the mention at [0, 1). This test
    fails on the decoder of the probabilities (before issue 33)."""
    assert torch.sigmoid(torch.tensor([18.0, 20.0])).tolist() == [1.0, 1.0]
    script = [_row(SH=18.0, TR0=20.0), _row(SH=5.0), _row(RE0=5.0), _row(SH=5.0), _row(SH=5.0), _row(EOA=5.0)]
    module = _sru("raw", weighting="none")
    assert _predict(module, script, tmp_path) == [(0, 1, 0)]
    logits = torch.tensor([script])
    assert decode_batch(logits, [3], ActionVocabulary(3))[0] == [[(0, 1, 0)]]


def test_per_type_thresholds_decide_each_type_on_its_own():
    """Chemical's TR/RE at p .6, Disease's at p .8: thresholds (.7, .7, .5) keep only Disease; (.5, .9,
    .5) only Chemical."""
    vocab = ActionVocabulary(3)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    rows = [_row(TR0=logit(0.6), TR1=logit(0.8)), _row(SH=5.0)]
    rows += [_row(RE0=logit(0.6), RE1=logit(0.8)), _row(EOA=5.0)]
    logits = torch.tensor([rows], dtype=torch.float64)
    assert decode_batch(logits, [1], vocab, np.array([0.7, 0.7, 0.5]))[0] == [[(0, 1, 1)]]
    assert decode_batch(logits, [1], vocab, np.array([0.5, 0.9, 0.5]))[0] == [[(0, 1, 0)]]


# --- TabERT-CNN -----------------------------------------------------------------------------------------
def _tabert(decisions: str, corpora=("BC5CDR", "NCBI-disease"), **model):
    cfg = {
        "encoder": {"name": "tiny"},
        "model": {"name": "tabert_cnn", "channels": 16, "pair_dim": 8, "class_weighting": "welt",
                  "decisions": decisions, **model},
    }  # fmt: skip
    return build_module(cfg, label_space_of(list(corpora)), tiny_bert_config().to_dict()).eval()


def test_tabert_cell_threshold_reads_the_calibrated_probability(tmp_path, monkeypatch):
    """One cell of type Chemical at logit 1.0 (raw p .73) with w+/w- = 10: calibrated p = .21."""
    found = {}
    for decisions in ("raw", "calibrated"):
        module = _tabert(decisions)
        module.span_pos_weight.fill_(10.0)
        module.span_neg_weight.fill_(1.0)
        batch = collate_sentences(tmp_path, [Sentence(("the", "acid"), (), "BC5CDR")], module.label_space,
                                  module.target_encoder())  # fmt: skip
        logits = torch.full((1, 3, 2, 2), LOW)
        logits[0, 0, 1, 1] = 1.0  # type 0 on the cell of "acid"
        monkeypatch.setattr(module.network, "forward", lambda batch, _l=logits: (_l, None))
        found[decisions] = module.predict(batch).spans[0]
    assert found["raw"] == [(1, 2, 0)]
    assert found["calibrated"] == []


def test_tabert_paper_argmax_reads_the_calibrated_logits(tmp_path, monkeypatch):
    """Paper mode: a word with O at 1.0 and U-Peop at 0.5; with class weights O 1/10 (WeLT gives the
    majority class the small weight) the calibrated O is 1 + log 10, U-Peop 0.5 - 0: O wins calibrated...
    so the opposite: O weighted 10, U-Peop 1 -> calibrated O 1 - log 10 < 0.5: a mention."""
    found = {}
    for decisions in ("raw", "calibrated"):
        module = _tabert(decisions, corpora=("CoNLL04",))
        layout = module.layout
        weights = torch.ones(layout.num_entity_labels)
        weights[0] = 10.0
        module.entity_class_weights.copy_(weights)
        batch = collate_sentences(tmp_path, [Sentence(("john",), (), "CoNLL04")], module.label_space,
                                  module.target_encoder())  # fmt: skip
        entity = torch.full((1, 1, layout.num_entity_labels), LOW)
        entity[0, 0, 0] = 1.0  # O
        u_first = 4  # B, I, L, U of type 0 at 1..4: U of type 0
        entity[0, 0, u_first] = 0.5
        relations = torch.full((1, layout.num_relation_labels, 1, 1), LOW)
        relations[0, 0] = 0.0
        monkeypatch.setattr(module.network, "forward", lambda batch, _r=relations, _e=entity: (_r, _e))
        found[decisions] = module.predict(batch).spans[0]
    assert found["raw"] == []
    assert found["calibrated"] == [(0, 1, 0)]


# --- state --------------------------------------------------------------------------------------------
def test_weights_and_thresholds_are_model_state_that_older_checkpoints_lack():
    module = _sru("calibrated")
    state = module.state_dict()
    assert {"action_pos_weight", "action_neg_weight", "type_thresholds"} <= set(state)
    module.action_pos_weight.fill_(3.0)
    module.type_thresholds.copy_(torch.tensor([0.3, 0.4, 0.6]))
    fresh = _sru("calibrated")
    fresh.load_state_dict(module.state_dict())
    assert fresh.action_pos_weight.tolist() == [3.0] * A
    assert fresh.thresholds().tolist() == pytest.approx([0.3, 0.4, 0.6])
    old = {k: v for k, v in module.state_dict().items() if k not in module.optional_state_keys}
    older = _sru("calibrated")
    older.load_state_dict(old)  # strict: the missing keys keep their values
    assert older.action_pos_weight.tolist() == [1.0] * A and older.thresholds().tolist() == [0.5] * 3


def test_thresholds_mode_calibrates_the_thresholds_only(tmp_path):
    """``model.decisions=thresholds``: the TR/RE thresholds read the calibrated probability (the mention of
    the threshold test is dropped, as with ``calibrated``), the row argmax and the pointer the raw logits
    (the pointer test's row 0 is an SH row, as with ``raw``), and the SH test is raw (no offset)."""
    module = _sru("thresholds")
    _set_weights(module, {TR[0]: 10.0, RE[0]: 10.0})
    script = [_row(TR0=1.0, SH=-5.0), _row(SH=5.0), _row(RE0=1.0, SH=-5.0), _row(SH=5.0), _row(SH=5.0),
              _row(EOA=5.0)]  # fmt: skip
    assert _predict(module, script, tmp_path) == []
    assert module.decision_offset is None
    module = _sru("thresholds")
    _set_weights(module, {SHIFT: 10.0, TR[0]: 0.1})
    script = [_row(SH=2.0, TR0=1.0), _row(SH=5.0), _row(RE0=5.0), _row(SH=5.0), _row(SH=5.0), _row(EOA=5.0)]
    assert _predict(module, script, tmp_path) == []
