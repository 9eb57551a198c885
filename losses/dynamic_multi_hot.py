"""Multi-task dynamic multi-hot targets and the masked multi-label BCE of SRU-NER.

Specification: ``shared/spec/sru-ner.md`` Part 1 items 6-7, Part 2 A4. Model-agnostic functions over tensors;
neither syncs the host (no ``.item()``, no Python branch on tensor values), so both can run inside the
per-step training loop and under ``torch.compile``.

Per step ``t`` and sentence ``b`` with original gold row ``g0`` (``A`` columns)::

    p        = sigmoid(u).detach()
    live     = g0[EOA] == 0                           # no soft targets on the EOA row
    q        = live * other_mask * p                  # other corpora's TR/RE columns
    p', q'   = as p, q with sigmoid(u - c)            # c = decision_offset, 0 in the reference
    keep_SH  = removed_prev OR all_a(q'_a <= p'_SH - m)  # m = sh_margin, 0 in the reference
    g        = min(coeff * q, 1) + g0                 # detached
    g[SH]   *= keep_SH
    removed  = (g0[SH] == 1) AND NOT keep_SH          # the SH was displaced: reuse this gold row at t+1
    g[SH]   += removed * p_SH                         # detached (Part 1 item 6; the reference leaks grad)

``model.sh_target=soft`` (``soft_sh_offset`` given) replaces the SH target of every gold-SH row, kept or
displaced, by ``1 - max_a sigmoid(u_a - o_a) * live * other_mask``, ``o`` = the loss weighting's
``log(w+ / w-)``: a sentence of corpus D marks SH where none of D's types starts or ends, which says
nothing about the other corpora's types, so SH's probability is at most one minus the model's own
(calibrated) belief in another corpus's action there. Unlike the other soft cells this one is trained:
the loss weights it and keeps its gradient (``multi_hot_bce_terms(trained_soft=...)``). The SH test that
moves the pointer stays as above.

With ``coeff = 1`` the other-corpus cells have target ``sigmoid(u)`` and hence an exactly zero BCE gradient;
they still count in the ``1/A`` of the row mean.

``decision_offset`` c (``(A,)``) is the shift a weighted loss puts on each column's loss-optimal logit,
``log(w+ / w-)`` (``lightning_modules.decisions``): the SH test is a decision, so it compares the
calibrated probabilities ``sigmoid(u - c)``. The targets themselves keep the model's own ``sigmoid(u)``,
whose gradient is zero whatever the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORMALIZATIONS = ("rows", "sentences")


def dynamic_multi_hot_target(
    logits: torch.Tensor,
    gold_row: torch.Tensor,
    other_mask: torch.Tensor,
    removed_prev: torch.Tensor,
    *,
    shift_col: int,
    eoa_col: int,
    coeff: float = 1.0,
    sh_margin: float = 0.0,
    decision_offset: torch.Tensor | None = None,
    soft_sh_offset: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target row of one decoding step in multi-corpus training (spec A4 with the SH target detached).

    Args:
        logits: ``(B, A)`` action logits ``u_t`` (only their detached sigmoid is used).
        gold_row: ``(B, A)`` float 0/1, the original gold row ``G0[b, k_b]`` at each sentence's cursor.
        other_mask: ``(B, A)`` bool (or broadcastable, e.g. ``(A,)``), TR/RE columns of the other corpora.
        removed_prev: ``(B,)`` bool, the sentence's SH was displaced at the previous step.
        shift_col: SHIFT column index.
        eoa_col: EOA column index.
        coeff: ``project_coeff`` c; 1 masks the other-corpus columns, > 1 self-trains, < 1 suppresses.
        sh_margin: m of ``shift_kept``; 0 is the reference rule.
        decision_offset: ``(A,)`` c, subtracted from the logits for the SH test only; None: 0.
        soft_sh_offset: ``(A,)`` o of the soft SH target (``model.sh_target=soft``); None: the reference's
            hard SH target.

    Returns:
        target: ``(B, A)`` float32, no autograd history.
        removed: ``(B,)`` bool, the SH of this row was displaced (do not advance the cursor; force it next).
    """
    with torch.no_grad():  # few kernels: this runs once per generation step
        p = logits.detach().float().sigmoid()  # (B, A)
        gold = gold_row.detach().float()  # (B, A)
        live = other_mask & (gold[:, eoa_col : eoa_col + 1] == 0)  # (B, A), none on the EOA row
        q = p * live  # (B, A)
        p_sh = p[:, shift_col]  # (B,)
        if decision_offset is None:
            p_dec, q_dec = p, q
        else:
            p_dec = (logits.detach().float() - decision_offset).sigmoid()
            q_dec = p_dec * live
        keep_sh = shift_kept(p_dec, q_dec, removed_prev, shift_col=shift_col, margin=sh_margin)  # (B,)
        removed = (gold[:, shift_col] == 1) & ~keep_sh  # (B,)
        target = (q if coeff == 1.0 else (coeff * q).clamp_(max=1.0)).add_(gold)  # q <= 1 already
        target[:, shift_col] = torch.where(keep_sh, target[:, shift_col], 0.0) + removed * p_sh
        if soft_sh_offset is not None:
            others = ((logits.detach().float() - soft_sh_offset).sigmoid() * live).amax(dim=-1)  # (B,)
            target[:, shift_col] = torch.where(gold[:, shift_col] == 1, 1.0 - others, target[:, shift_col])
    return target, removed


def shift_kept(
    probs: torch.Tensor,
    other_probs: torch.Tensor,
    removed_prev: torch.Tensor,
    *,
    shift_col: int,
    margin: float = 0.0,
) -> torch.Tensor:
    """keep_SH of spec A4: ``removed_prev OR all_a(q_a <= p_SH - margin)`` with ``probs`` = sigmoid(u)
    (B, A) and ``other_probs`` = q (B, A), the probabilities of the other corpora's TR/RE columns (0
    elsewhere and on the EOA row). A loop that only needs where the pointer goes calls this alone, per
    step. ``margin`` (``model.sh_margin``, 0 = the reference): with m > 0 an SH is displaced as soon as
    another corpus's action comes within m of it, so fewer rows teach "no mention" where an
    unannotated type is likely (issue 20)."""
    shift = probs[:, shift_col]
    return removed_prev | (other_probs.amax(dim=-1) <= (shift - margin if margin else shift))


def multi_hot_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    row_mask: torch.Tensor,
    *,
    normalization: str = "rows",
) -> torch.Tensor:
    """Multi-label BCE with logits averaged over the ``A`` columns of each kept row: ``total / count``
    of ``multi_hot_bce_terms`` (the count clamped to at least 1).

    Args:
        logits: ``(B, T, A)`` action logits.
        targets: ``(B, T, A)`` targets in [0, 1] (treated as constants).
        row_mask: ``(B, T)`` bool, rows that count. The caller excludes padding and every row after a
            sentence's EOA row (the reference counts them; Part 1 item 7).
        normalization: ``"rows"`` = mean over all kept rows of the batch (reference default);
            ``"sentences"`` = mean over each sentence's kept rows, then mean over the sentences with at
            least one kept row (paper).

    Returns:
        Scalar float32 loss; 0 when no row is kept.
    """
    total, count = multi_hot_bce_terms(logits, targets, row_mask, normalization=normalization)
    return total / count.clamp(min=1.0)


def multi_hot_bce_terms(
    logits: torch.Tensor,
    targets: torch.Tensor,
    row_mask: torch.Tensor,
    *,
    normalization: str = "rows",
    pos_weight: torch.Tensor | None = None,
    neg_weight: torch.Tensor | None = None,
    trained_soft: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``multi_hot_bce`` as (sum, count), so that a caller can sum the counts over processes first.

    ``"rows"``: the summed row losses (each the mean over its ``A`` columns) and the number of kept rows;
    ``"sentences"``: the summed per-sentence means and the number of sentences with at least one kept row.
    Both scalars float32, on the device of ``logits``; the count is known only after the forward pass.

    ``pos_weight``/``neg_weight`` (``(A,)``, together; SRU-NER's ``model.action_weighting``) weight each
    column's gold cells: a target of exactly 1 by its positive weight, of exactly 0 by its negative one.
    A soft target (the dynamic target's other-corpus columns, a displaced SH) keeps weight 1 and enters
    with its logit detached, so its gradient stays exactly zero (a weighted BCE against ``t = sigmoid(u)``
    would not vanish: ``sigmoid(u) (1 - sigmoid(u)) (w- - w+)``). ``trained_soft`` (``(A,)`` bool, the
    SH column under ``model.sh_target=soft``) names columns whose soft targets are trained instead:
    ``-w+ t log sigmoid(u) - w- (1 - t) log(1 - sigmoid(u))``, the weighted BCE whose hard cases are the
    gold cells' terms above.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if (pos_weight is None) != (neg_weight is None):
        raise ValueError("pos_weight and neg_weight go together")
    targets, logits = targets.detach().float(), logits.float()
    if pos_weight is None:
        per_cell = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # (B, T, A)
    else:
        hard = (targets == 0) | (targets == 1)
        weights = torch.where(hard, torch.where(targets == 1, pos_weight, neg_weight), 1.0)
        trained = logits
        logits = torch.where(hard, logits, logits.detach())
        per_cell = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights
        if trained_soft is not None:
            soft = trained_soft & ~hard
            positive, negative = F.logsigmoid(trained), F.logsigmoid(-trained)
            soft_term = -(pos_weight * targets * positive + neg_weight * (1 - targets) * negative)
            per_cell = torch.where(soft, soft_term, per_cell)
    per_row = per_cell.mean(dim=-1)  # (B, T)
    per_row = torch.where(row_mask, per_row, torch.zeros_like(per_row))  # masked rows: value and grad 0
    kept = row_mask.to(per_row.dtype)  # (B, T)
    if normalization == "rows":
        return per_row.sum(), kept.sum()
    rows_per_sentence = kept.sum(dim=1)  # (B,)
    per_sentence = per_row.sum(dim=1) / rows_per_sentence.clamp(min=1.0)  # (B,); 0 for empty sentences
    has_rows = (rows_per_sentence > 0).to(per_row.dtype)  # (B,)
    return (per_sentence * has_rows).sum(), has_rows.sum()
