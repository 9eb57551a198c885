"""SRU-NER's greedy generation without autograd on preallocated buffers (``loop=fused``, in eval mode).

It computes what ``SRUHead.generate``'s step-by-step loop computes (``tests/test_sru_fused.py`` compares
the probabilities), with what does not depend on the step done once per batch: every slot's term of the
MLP's first layer (b1 + W1_slot S_q, one product over all B x Q slots, then one row gather per step), D1
folded into W1's read half, each action's written row [E_a ; alpha Lambda E_a] (one product per step
gives Omega and its score contribution), the output biases written once. Per step: the two MLP products,
the decision logits and stop flags, Omega, the write (two scatters) and the read (``SlotMemory.read``: five
kernels), and the pointer's move.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lightning_modules.sru_ner.codec import EOA, SHIFT
from lightning_modules.sru_ner.fused_memory import SlotMemory


@torch.no_grad()
def fused_generation(
    weights: Any,
    params: Any,
    cfg: Any,
    slots: torch.Tensor,
    word_mask: torch.Tensor,
    every: int,
    decision_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decision logits ``u - c`` (B, T, A) up to the step where every sentence has reached EOA, as
    ``SRUHead.generate``, from the head's ``HeadWeights``, ``SlotReadParameters`` and config; ``every``:
    steps between two host reads of the stop condition; ``c``: ``decision_offset`` (A,) or 0."""
    batch, num_slots, hidden = slots.shape
    device = slots.device
    cap = math.ceil(cfg.infer_step_factor * num_slots)
    queries, table = params.per_batch_dropped(False)
    memory = SlotMemory(
        slots, word_mask, queries, table, params.token_multiplier, params.output_diag, params.half_context
    )
    w1, w2, embeddings, boa = weights.w1, weights.w2, weights.embeddings, weights.boa
    written_rows = torch.cat([embeddings, embeddings @ memory.scaled_queries.T], dim=1)  # (A, d + J)
    w1_read_t, w2_t = (w1[:, hidden:] * params.output_diag).T, w2.T
    slot_terms = torch.addmm(weights.b1, slots.reshape(-1, hidden), w1[:, :hidden].T)  # (B * Q, 2d)

    logits_all = weights.b2.expand(cap, batch, -1).clone()  # (T, B, A), the biases once
    decisions_all = logits_all if decision_offset is None else torch.empty_like(logits_all)
    reached_all = torch.zeros(cap + 1, batch, dtype=torch.bool, device=device)  # [t + 1]: EOA by step t
    h = slots.new_empty(batch, 2 * hidden)
    row = slots.new_empty(batch, written_rows.shape[1])
    value, weights = slots.new_empty(batch, hidden), slots.new_empty(batch, num_slots)
    latent = torch.empty(batch, num_slots, dtype=torch.long, device=device)
    read = (value, weights, latent)

    cls = torch.zeros(batch, dtype=torch.long, device=device)
    memory.write_row(torch.cat([boa, memory.scaled_queries @ boa]).expand(batch, -1), cls)
    memory.read(cls, out=read)
    pointer = torch.ones_like(cls)
    steps = cap
    for step in range(cap):
        flat_slot = memory.flat_rows + pointer
        torch.index_select(slot_terms, 0, flat_slot, out=h).addmm_(value, w1_read_t).tanh_()
        logits = logits_all[step].addmm_(h, w2_t)
        decisions = logits
        if decision_offset is not None:
            decisions = torch.sub(logits, decision_offset, out=decisions_all[step])
        reached = torch.logical_or(reached_all[step], decisions[:, EOA] > 0, out=reached_all[step + 1])
        if (step + 1) % every == 0 and bool(reached.all()):
            steps = step + 1
            break
        dropped = logits < logits[:, SHIFT : SHIFT + 1]  # Omega keeps the actions at least as likely as SH
        omega_weights = logits.softmax(-1) if cfg.omega == "softmax" else logits.clone()
        torch.mm(omega_weights.masked_fill_(dropped, 0), written_rows, out=row)
        memory.write_row(row, pointer, flat_slot)
        memory.read(pointer, out=read)
        advance = decisions.argmax(-1) <= SHIFT  # EOA = 0, SHIFT = 1
        pointer = torch.add(pointer, advance).clamp_(max=num_slots - 1)
    done = reached_all[1 : steps + 1].all(1).nonzero()  # the first step by which all had reached EOA
    if len(done):
        steps = int(done[0, 0]) + 1
    return decisions_all[:steps].transpose(0, 1).contiguous()
