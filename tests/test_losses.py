"""Dynamic multi-hot targets (spec A4) and the masked multi-label BCE (Part 1 item 7), hand-computed."""

from __future__ import annotations

import math

import pytest
import torch

from losses import dynamic_multi_hot_target, multi_hot_bce

# Toy vocabulary: EOA=0, SH=1, own corpus TR/RE = 2/3, other corpus TR/RE = 4/5 (A = 6).
EOA, SH, A = 0, 1, 6
OTHER = torch.tensor([False, False, False, False, True, True])
LN3 = math.log(3.0)


def _hand_bce(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-row BCE with explicit log-sigmoids: -(1/A) sum_a g log s(u) + (1-g) log(1-s(u)), float64."""
    s = torch.sigmoid(u.double())
    return -(g.double() * torch.log(s) + (1 - g.double()) * torch.log(1 - s)).mean(-1)


def _row(*cols: int) -> torch.Tensor:
    r = torch.zeros(A)
    r[list(cols)] = 1.0
    return r


def test_single_row_hand_value() -> None:
    # logits [0, 0, ln3, -ln3], gold [0, 1, 1, 0]: cells ln2, ln2, ln(4/3), ln(4/3) -> mean ln(8/3)/2.
    u = torch.tensor([[[0.0, 0.0, LN3, -LN3]]])
    g = torch.tensor([[[0.0, 1.0, 1.0, 0.0]]])
    loss = multi_hot_bce(u, g, torch.ones(1, 1, dtype=torch.bool))
    assert loss.item() == pytest.approx(math.log(8 / 3) / 2, abs=1e-6)


def test_one_corpus_equals_plain_bce_over_gold_rows() -> None:
    torch.manual_seed(0)
    gold = torch.stack([_row(SH), _row(2), _row(3, 2), _row(EOA)])  # (T=4, A)
    logits = torch.randn(2, 4, A) * 3
    gold_b = gold.expand(2, 4, A)
    no_other = torch.zeros(2, A, dtype=torch.bool)
    removed = torch.zeros(2, dtype=torch.bool)
    targets = []
    for t in range(4):
        tgt, removed = dynamic_multi_hot_target(
            logits[:, t], gold_b[:, t], no_other, removed, shift_col=SH, eoa_col=EOA
        )
        assert not removed.any()
        targets.append(tgt)
    targets_t = torch.stack(targets, 1)
    assert torch.equal(targets_t, gold_b)
    mask = torch.ones(2, 4, dtype=torch.bool)
    loss = multi_hot_bce(logits, targets_t, mask)
    assert loss.item() == pytest.approx(_hand_bce(logits, gold_b).mean().item(), rel=1e-6)


def test_other_corpus_columns_have_exactly_zero_gradient_with_coeff_1() -> None:
    torch.manual_seed(1)
    logits = (torch.randn(3, A) * 2).requires_grad_(True)
    with torch.no_grad():
        logits[:, SH] = 5.0  # SH clearly wins: no displacement
    gold = torch.stack([_row(SH), _row(2), _row(3)])
    target, removed = dynamic_multi_hot_target(
        logits, gold, OTHER.expand(3, A), torch.zeros(3, dtype=torch.bool), shift_col=SH, eoa_col=EOA
    )
    assert not target.requires_grad and not removed.any()
    torch.testing.assert_close(target[:, OTHER], torch.sigmoid(logits.detach())[:, OTHER], rtol=0, atol=0)
    multi_hot_bce(logits[:, None], target[:, None], torch.ones(3, 1, dtype=torch.bool)).backward()
    assert torch.count_nonzero(logits.grad[:, OTHER]) == 0
    own = ~OTHER
    assert torch.all(logits.grad[:, own] != 0)


def test_other_corpus_columns_get_gradient_with_coeff_2() -> None:
    logits = torch.tensor([[-3.0, 4.0, -2.0, -2.0, -1.0, -LN3]], requires_grad=True)
    gold = _row(SH)[None]
    target, removed = dynamic_multi_hot_target(
        logits, gold, OTHER[None], torch.zeros(1, dtype=torch.bool), shift_col=SH, eoa_col=EOA, coeff=2.0
    )
    assert not removed.any()
    # col 5: p = 1/4 -> target min(2/4, 1) = 1/2; col 4: p = s(-1) -> 2 s(-1).
    assert target[0, 5].item() == pytest.approx(0.5)
    assert target[0, 4].item() == pytest.approx(2 * torch.sigmoid(torch.tensor(-1.0)).item())
    multi_hot_bce(logits[:, None], target[:, None], torch.ones(1, 1, dtype=torch.bool)).backward()
    # d/du of the row mean = (s(u) - target)/A: (1/4 - 1/2)/6 on col 5.
    assert logits.grad[0, 5].item() == pytest.approx(-0.25 / A)
    assert logits.grad[0, 4].item() < 0
    # coeff saturates at 1: p = 0.75, c = 2 -> target 1.
    big = torch.tensor([[-3.0, 4.0, -2.0, -2.0, LN3, -9.0]])
    t2, _ = dynamic_multi_hot_target(
        big, gold, OTHER[None], torch.zeros(1, dtype=torch.bool), shift_col=SH, eoa_col=EOA, coeff=2.0
    )
    assert t2[0, 4].item() == 1.0


def test_sh_displacement_then_reinsertion() -> None:
    # SH gold row; the other corpus's TR (col 4) scores above SH -> displaced.
    logits = torch.tensor([[-4.0, 0.5, -3.0, -3.0, 2.0, -5.0]], requires_grad=True)
    gold = _row(SH)[None]
    p = torch.sigmoid(logits.detach())
    target, removed = dynamic_multi_hot_target(
        logits, gold, OTHER[None], torch.zeros(1, dtype=torch.bool), shift_col=SH, eoa_col=EOA
    )
    assert removed.tolist() == [True]
    assert not target.requires_grad
    assert target[0, SH].item() == p[0, SH].item()  # sigma(u_SH), detached
    assert torch.equal(target[0, OTHER], p[0, OTHER])
    assert target[0, [EOA, 2, 3]].tolist() == [0.0, 0.0, 0.0]
    multi_hot_bce(logits[:, None], target[:, None], torch.ones(1, 1, dtype=torch.bool)).backward()
    analytic = (p - target) / A  # d/du of BCE-with-logits row mean
    torch.testing.assert_close(logits.grad, analytic, rtol=1e-6, atol=1e-8)
    assert logits.grad[0, SH].item() == 0.0  # no entropy gradient leak (reference bug)

    # Next step: the same gold SH row is re-inserted with removed_prev=True -> SH kept although the other
    # TR still wins; other-corpus targets are still q.
    logits2 = torch.tensor([[-4.0, 0.0, -3.0, -3.0, 3.0, -5.0]])
    target2, removed2 = dynamic_multi_hot_target(
        logits2, gold, OTHER[None], removed, shift_col=SH, eoa_col=EOA
    )
    assert removed2.tolist() == [False]
    assert target2[0, SH].item() == 1.0
    assert torch.equal(target2[0, OTHER], torch.sigmoid(logits2)[0, OTHER])


def test_displacement_needs_strictly_greater_and_an_sh_row() -> None:
    gold = torch.stack([_row(SH), _row(2)])
    # Row 0: other prob == p_SH -> kept. Row 1: a TR row (no SH gold) -> never "removed".
    logits = torch.tensor([[-4.0, 1.0, -3.0, -3.0, 1.0, -5.0], [-4.0, 1.0, 0.0, -3.0, 6.0, -5.0]])
    target, removed = dynamic_multi_hot_target(
        logits, gold, OTHER.expand(2, A), torch.zeros(2, dtype=torch.bool), shift_col=SH, eoa_col=EOA
    )
    assert removed.tolist() == [False, False]
    assert target[:, SH].tolist() == [1.0, 0.0]


def test_an_sh_margin_displaces_sh_once_another_corpus_comes_within_it() -> None:
    # p_SH = sigmoid(1) = 0.731; the other corpus's TR at sigmoid(0.5) = 0.622: kept by the reference rule
    # (0.622 <= 0.731), displaced with a margin of 0.15 (0.622 > 0.581), kept with 0.1 (0.622 <= 0.631)
    logits = torch.tensor([[-4.0, 1.0, -3.0, -3.0, 0.5, -5.0]])
    gold, none = _row(SH)[None], torch.zeros(1, dtype=torch.bool)
    removed = {
        margin: dynamic_multi_hot_target(
            logits, gold, OTHER[None], none, shift_col=SH, eoa_col=EOA, sh_margin=margin
        )[1].item()
        for margin in (0.0, 0.1, 0.15)
    }
    assert removed == {0.0: False, 0.1: False, 0.15: True}
    target, _ = dynamic_multi_hot_target(
        logits, gold, OTHER[None], none, shift_col=SH, eoa_col=EOA, sh_margin=0.15
    )
    assert target[0, SH].item() == torch.sigmoid(logits)[0, SH].item()  # displaced: the detached p_SH


def test_eoa_row_has_zero_other_corpus_targets() -> None:
    logits = torch.tensor([[1.0, -2.0, -3.0, -3.0, 4.0, 4.0]])
    gold = _row(EOA)[None]
    target, removed = dynamic_multi_hot_target(
        logits, gold, OTHER[None], torch.zeros(1, dtype=torch.bool), shift_col=SH, eoa_col=EOA
    )
    assert target.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    assert removed.tolist() == [False]


def test_rows_outside_the_mask_contribute_nothing() -> None:
    torch.manual_seed(2)
    targets = torch.rand(2, 5, A).round()
    mask = torch.tensor([[True, True, False, False, False], [True, True, True, True, False]])
    base = torch.randn(2, 5, A)

    def run(logits: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits.clone().requires_grad_(True)
        loss = multi_hot_bce(logits, targets, mask, normalization=norm)
        loss.backward()
        return loss.detach(), logits.grad

    changed = base.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), A) * 50
    for norm in ("rows", "sentences"):
        l1, g1 = run(base, norm)
        l2, g2 = run(changed, norm)
        assert torch.equal(l1, l2)
        assert torch.equal(g1, g2)
        assert torch.count_nonzero(g1[~mask]) == 0
    # "rows" equals the hand mean over the 6 kept rows.
    hand = _hand_bce(base, targets)[mask].mean().item()
    assert run(base, "rows")[0].item() == pytest.approx(hand, rel=1e-6)


def test_sentence_normalization_hand_example() -> None:
    # Row losses: logits 0 -> ln2 (any target); logits ln3 with target 1 -> ln(4/3), with target 0 -> ln4.
    logits = torch.zeros(3, 2, A)
    targets = torch.zeros(3, 2, A)
    logits[0, 1] = 100.0  # masked garbage row of sentence 0
    logits[1, :] = LN3
    targets[1, 0] = 1.0
    mask = torch.tensor([[True, False], [True, True], [False, False]])  # sentence 2 has no kept row
    l1, l2, l3 = math.log(2), math.log(4 / 3), math.log(4)
    paper = (l1 + (l2 + l3) / 2) / 2
    reference = (l1 + l2 + l3) / 3
    assert paper == pytest.approx((math.log(2) + math.log(16 / 3) / 2) / 2)
    assert reference == pytest.approx(math.log(32 / 3) / 3)
    sentences = multi_hot_bce(logits, targets, mask, normalization="sentences")
    rows = multi_hot_bce(logits, targets, mask, normalization="rows")
    assert sentences.item() == pytest.approx(paper, rel=1e-6)
    assert rows.item() == pytest.approx(reference, rel=1e-6)


def test_empty_mask_gives_zero_not_nan_and_bad_normalization_raises() -> None:
    logits = torch.randn(2, 3, A, requires_grad=True)
    none = torch.zeros(2, 3, dtype=torch.bool)
    for norm in ("rows", "sentences"):
        loss = multi_hot_bce(logits, torch.zeros(2, 3, A), none, normalization=norm)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.count_nonzero(logits.grad) == 0
    with pytest.raises(ValueError):
        multi_hot_bce(logits, torch.zeros(2, 3, A), none, normalization="tokens")


def test_stable_for_large_logits() -> None:
    logits = torch.tensor([[[200.0, -200.0]]], requires_grad=True)
    targets = torch.tensor([[[1.0, 0.0]]])
    loss = multi_hot_bce(logits, targets, torch.ones(1, 1, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-30)
    assert torch.isfinite(logits.grad).all()


def test_soft_sh_target_is_one_minus_the_calibrated_belief_in_another_corpus() -> None:
    # other corpus's TR (col 4) at logit 0.5 with offset log 10 (balanced weighting's TR shift):
    # calibrated q = sigmoid(0.5 - ln 10) = 0.1418; the soft SH target is 1 - 0.1418 = 0.8582, where the
    # hard rule keeps SH at 1 (q_raw = 0.622 <= p_SH = sigmoid(1) = 0.731)
    logits = torch.tensor([[-4.0, 1.0, -3.0, -3.0, 0.5, -5.0], [-4.0, 1.0, 0.0, -3.0, 0.5, -5.0]])
    gold = torch.stack([_row(SH), _row(2)])
    offset = torch.tensor([0.0, 0.0, 0.0, 0.0, math.log(10.0), math.log(10.0)])
    none = torch.zeros(2, dtype=torch.bool)
    hard, _ = dynamic_multi_hot_target(logits, gold, OTHER.expand(2, A), none, shift_col=SH, eoa_col=EOA)
    soft, removed = dynamic_multi_hot_target(
        logits, gold, OTHER.expand(2, A), none, shift_col=SH, eoa_col=EOA, soft_sh_offset=offset
    )
    assert hard[0, SH].item() == 1.0 and removed.tolist() == [False, False]
    want = 1.0 - 1.0 / (1.0 + math.exp(-(0.5 - math.log(10.0))))
    assert soft[0, SH].item() == pytest.approx(want, abs=1e-6)
    assert soft[1, SH].item() == 0.0  # a TR row: SH stays a hard 0
    torch.testing.assert_close(soft[:, OTHER], hard[:, OTHER])  # the other columns are untouched


def test_soft_sh_target_replaces_a_displaced_shs_own_probability() -> None:
    logits = torch.tensor([[-4.0, 0.5, -3.0, -3.0, 2.0, -5.0]])  # q_raw 0.881 > p_SH 0.622: displaced
    gold, none = _row(SH)[None], torch.zeros(1, dtype=torch.bool)
    target, removed = dynamic_multi_hot_target(
        logits, gold, OTHER[None], none, shift_col=SH, eoa_col=EOA, soft_sh_offset=torch.zeros(A)
    )
    assert removed.tolist() == [True]  # the pointer's rule is the reference's
    assert target[0, SH].item() == pytest.approx(1.0 - torch.sigmoid(torch.tensor(2.0)).item(), abs=1e-7)


def test_a_trained_soft_column_gets_the_weighted_bce_gradient_and_the_others_none() -> None:
    from losses import multi_hot_bce_terms

    u = torch.tensor([[[-1.0, 0.3, -2.0, -2.0, 0.7, -3.0]]], requires_grad=True)
    t = torch.tensor([[[0.0, 0.8, 0.0, 0.0, 0.0, 0.0]]])
    t[0, 0, 4] = torch.sigmoid(u.detach()[0, 0, 4])  # another corpus's cell: its own probability
    pos = torch.tensor([10.0, 0.2, 10.0, 10.0, 10.0, 10.0])
    neg = torch.ones(A)
    trained = torch.arange(A) == SH
    total, count = multi_hot_bce_terms(
        u, t, torch.ones(1, 1, dtype=torch.bool), pos_weight=pos, neg_weight=neg, trained_soft=trained
    )
    total.backward()
    s = torch.sigmoid(u.detach()[0, 0])
    # d/du of -(w+ t log s + w- (1 - t) log(1 - s)) / A = (-w+ t (1 - s) + w- (1 - t) s) / A
    want_sh = (-0.2 * 0.8 * (1 - s[SH]) + 1.0 * 0.2 * s[SH]) / A
    assert u.grad[0, 0, SH].item() == pytest.approx(want_sh.item(), rel=1e-5)
    assert u.grad[0, 0, 4].item() == 0.0  # the other corpus's soft cell stays untrained
    assert u.grad[0, 0, 0].item() == pytest.approx((10.0 * 0 + 1.0 * s[0].item()) / A, rel=1e-5)
    # without the mask the SH cell is a soft cell like the others: no gradient
    u.grad = None
    mask = torch.ones(1, 1, dtype=torch.bool)
    multi_hot_bce_terms(u, t, mask, pos_weight=pos, neg_weight=neg)[0].backward()
    assert u.grad[0, 0, SH].item() == 0.0
