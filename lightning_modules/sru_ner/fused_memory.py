"""The slot memory of SRU-NER's fused loops (``fused.py``, ``fused_generation.py``): the decomposed read of
``memory.DecomposedMemory`` without autograd, on tensors updated in place.

Notation as in ``memory.py``: B sentences, Q slots, d hidden, J latents, R position rows.
"""

from __future__ import annotations

import torch

from lightning_modules.sru_ner.memory import NEG_INF


def centred_position_rows(num_slots: int, half_context: int, device: torch.device) -> torch.Tensor:
    """(Q centres, Q slots) rows of the position table, as ``SlotReadParameters.relative_index`` with
    every slot valid (invalid slots are masked out of the scores anyway)."""
    q = torch.arange(num_slots, device=device)
    rel = q.unsqueeze(0) - q.unsqueeze(1)  # [centre, slot]
    rows = torch.where(
        rel.abs() <= half_context, rel + half_context, torch.full_like(rel, 2 * half_context + 2)
    )
    rows[:, 0] = 2 * half_context + 1  # CLS
    return rows


class SlotMemory:
    """The decomposed read of ``memory.DecomposedMemory`` without autograd, updated in place.

    ``memory`` holds C = S + M (the masked slots plus every write so far), so a read is one (B, Q) x (B, Q, d)
    product; ``scores`` holds alpha * Lambda C^T = ``slot_scores + action_scores`` of ``DecomposedMemory``,
    with NEG_INF on invalid slots. A write adds a row [omega ; alpha Lambda omega] (B, d + J): omega to C
    at the slot, its score contribution to ``scores`` there.
    """

    def __init__(self, slots, word_mask, queries, table, alpha, output_diag, half_context: int):
        batch, num_slots, hidden = slots.shape
        self.hidden = hidden
        self.rows = torch.arange(batch, device=slots.device)
        self.flat_rows = self.rows * num_slots  # row of slot (b, 0) in the (B*Q, d) views
        self.output_diag = output_diag
        self.valid = word_mask.to(slots.dtype)
        self.scaled_queries = alpha * queries  # (J, d)
        self.masked_slots = slots * word_mask.unsqueeze(-1)  # S
        self.memory = self.masked_slots.clone()  # C
        self.flat_memory = self.memory.view(batch * num_slots, hidden)
        self.position_rows = centred_position_rows(num_slots, half_context, slots.device)  # (Q, Q)
        position_scores = queries @ table.T  # (J, R)
        self.centred_scores = position_scores[:, self.position_rows].transpose(0, 1).contiguous()  # (Q, J, Q)
        slot_scores = alpha * torch.einsum("jd,bqd->bjq", queries, self.masked_slots)  # (B, J, Q)
        self.scores = slot_scores.masked_fill_(~word_mask.unsqueeze(1), NEG_INF)
        self._best = slots.new_empty(batch, num_slots)
        self._scores = torch.empty_like(self.scores)  # scratch of one read (reused: no allocation per step)

    def scatter_index(self, slot: torch.Tensor) -> torch.Tensor:  # (..., B) -> (..., B, J, 1)
        return slot.unsqueeze(-1).unsqueeze(-1).expand(*slot.shape, self.scores.shape[1], 1)

    def write(self, omega: torch.Tensor, slot: torch.Tensor) -> None:
        """Adds omega (B, d) at slot (B,). Unlike ``DecomposedMemory.write`` a write on an invalid slot is
        not zeroed: it changes neither a read (an invalid slot's score stays about NEG_INF, so its weight
        stays exactly 0) nor a gradient (every gradient reaching it is a multiple of those zero weights)."""
        self.write_row(torch.cat([omega, omega @ self.scaled_queries.T], dim=1), slot)

    def write_row(self, row: torch.Tensor, slot: torch.Tensor, flat_slot=None, index=None) -> None:
        """Adds a written row [omega ; alpha Lambda omega] (B, d + J) at slot (B,); ``flat_slot`` (B,) and
        ``index`` (B, J, 1) can be passed when known beforehand."""
        index = self.scatter_index(slot) if index is None else index
        self.scores.scatter_add_(2, index, row[:, self.hidden :].unsqueeze(-1))
        flat_slot = self.flat_rows + slot if flat_slot is None else flat_slot
        self.flat_memory.index_add_(0, flat_slot, row[:, : self.hidden])

    def read(self, centre: torch.Tensor, out: tuple | None = None):
        """-> read (B, d), its pre-D1 value u (B, d), weights w (B, Q), argmax latent per slot (B, Q);
        ``out`` = (u, w, latent) buffers to fill instead (one kernel each: index, add, max, softmax,
        product), and then only u is returned: D1 is folded into the weights that use it."""
        if out is None:
            scores = self.centred_scores.index_select(0, centre).add_(self.scores)  # (B, J, Q)
            best, latent = scores.max(dim=1)
            weights = best.softmax(dim=-1)
            value = torch.bmm(weights.unsqueeze(1), self.memory).squeeze(1)  # u = w^T C
            return value * self.output_diag, value, weights, latent
        value, weights, latent = out
        scores = torch.index_select(self.centred_scores, 0, centre, out=self._scores).add_(self.scores)
        torch.max(scores, 1, out=(self._best, latent))
        torch.softmax(self._best, -1, out=weights)
        torch.bmm(weights.unsqueeze(1), self.memory, out=value.unsqueeze(1))
        return value
