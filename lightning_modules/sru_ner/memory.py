"""The slot-based recurrent memory of SRU-NER and its read (spec A3), in two equivalent forms.

Notation: B sentences, Q word slots (0 = CLS, 1..N words, N+1 = SEP), d hidden size, J latents,
R = 2H + 4 rows of the relative-position table, T generation steps.

The memory is C_t = S + M_t: the encoder's slot embeddings S plus the action memory M_t, where every
step writes its action summary Omega_t into the slot under the pointer. The read centred at slot c is

    Cpos  = alpha * C + P[idx(q - c)]                  (B, Q, d)
    Att   = Lambda @ Cpos^T,  Lambda = L * D2          (B, J, Q)   invalid slots -> -1e12
    w     = softmax_q(max_j Att)                       (B, Q)
    h     = sum_q w_q (C_q * D1)                       (B, d)

``DenseMemory`` computes exactly that, keeping one (B, Q, d) copy of C per step for backward: O(T·B·Q·d)
activations (the reference implementation's cost, tens of GB for long sentences).

``DecomposedMemory`` never materialises C. Because Att is linear in C and only one slot changes per
step, it splits into three terms:

    Att = alpha * Lambda S^T      (computed once per sequence)
        + alpha * Lambda M_t^T    (accumulated: each write adds Lambda Omega_t to one slot column)
        + (Lambda P^T)[:, idx]    (a (J, R) table computed once, gathered per step)

and the output into h = D1 * (w^T S + sum_{t' <= t} w[slot(t')] Omega_t'). The last sum runs over the
*history* of writes, kept in an append-only buffer with a hand-written backward (``ActionHistory``), so
per step autograd keeps only O(B·(J·Q + T + d)) values. A test checks both forms agree (dropout off).

Dropout: the decomposed form needs Lambda and the position table fixed within the loop, so their
dropout masks are drawn once per batch (variational dropout, shared across steps and sentences)
instead of once per step as in the reference; the dense form draws them per step like the reference.
docs/results.md ("Dropout masks") compares the two in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NEG_INF = -1e12


class SlotReadParameters(nn.Module):
    """Trained parameters of the read: latents L, diagonals D2/D1, position table P, multiplier alpha."""

    def __init__(
        self,
        hidden: int,
        num_latents: int,
        half_context: int,
        *,
        token_multiplier: float = 1.0,
        train_token_multiplier: bool = False,
        dropout_positions: float = 0.2,
        dropout_latents: float = 0.2,
    ):
        super().__init__()
        self.half_context = half_context
        self.latents = nn.Parameter(torch.zeros(num_latents, hidden))  # L, zeros as in the reference
        self.latent_diag = nn.Parameter(torch.ones(hidden))  # D2
        self.output_diag = nn.Parameter(torch.ones(hidden))  # D1
        # rows: 0..2H relative offsets -H..H, 2H+1 CLS, 2H+2 out of context, 2H+3 padding (zero, frozen)
        self.positions = nn.Embedding(2 * half_context + 4, hidden, padding_idx=2 * half_context + 3)
        self.token_multiplier = nn.Parameter(
            torch.tensor(float(token_multiplier)), requires_grad=train_token_multiplier
        )
        self.dropout_positions = dropout_positions
        self.dropout_latents = dropout_latents

    @property
    def cls_row(self) -> int:
        return 2 * self.half_context + 1

    def relative_index(self, center: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(B,) centre slots, (B, Q) valid slots -> (B, Q) rows of the position table."""
        h = self.half_context
        q = torch.arange(word_mask.shape[1], device=word_mask.device)
        rel = q.unsqueeze(0) - center.unsqueeze(1)  # (B, Q)
        idx = torch.where(rel.abs() <= h, rel + h, torch.full_like(rel, 2 * h + 2))
        idx[:, 0] = self.cls_row
        return idx.masked_fill(~word_mask, 2 * h + 3)

    def latent_queries(self, training: bool) -> torch.Tensor:  # (J, d) Lambda
        return F.dropout(self.latents, self.dropout_latents, training) * self.latent_diag

    def per_batch_dropped(self, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Lambda (J, d) and the position table (R, d), each with one dropout mask for the whole loop of
        a batch (the decomposed and fused forms; the dense form draws per step)."""
        queries = self.latent_queries(training)
        return queries, F.dropout(self.positions.weight, self.dropout_positions, training)


class DenseMemory:
    """The straightforward form of A3: C materialised and re-read in full at every step."""

    def __init__(
        self, params: SlotReadParameters, slots: torch.Tensor, word_mask: torch.Tensor, *, training: bool
    ):
        self.p, self.word_mask, self.training = params, word_mask, training
        self.memory = slots * word_mask.unsqueeze(-1)  # (B, Q, d) C^0 = S

    def write(self, omega: torch.Tensor, slot: torch.Tensor) -> None:
        """omega (B, d) added at slot (B,); writes into invalid slots vanish (C * valid)."""
        update = torch.zeros_like(self.memory).scatter_add(
            1, slot.view(-1, 1, 1).expand(-1, 1, omega.shape[-1]), omega.unsqueeze(1)
        )
        self.memory = (self.memory + update) * self.word_mask.unsqueeze(-1)

    def read(self, center: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, d)
        p = self.p
        positions = F.dropout(
            p.positions(p.relative_index(center, self.word_mask)), p.dropout_positions, self.training
        )
        keyed = p.token_multiplier * self.memory + positions  # (B, Q, d)
        scores = torch.einsum("jd,bqd->bjq", p.latent_queries(self.training), keyed)
        scores = scores.masked_fill(~self.word_mask.unsqueeze(1), NEG_INF)
        weights = scores.max(dim=1).values.softmax(dim=-1)  # (B, Q)
        return torch.bmm(weights.unsqueeze(1), self.memory).squeeze(1) * p.output_diag


class DecomposedMemory:
    """The same read without materialising C (see module docstring); O(B·(J·Q + T + d)) per step."""

    def __init__(
        self,
        params: SlotReadParameters,
        slots: torch.Tensor,  # (B, Q, d)
        word_mask: torch.Tensor,  # (B, Q) bool
        *,
        training: bool,
        max_writes: int,
    ):
        self.p, self.word_mask = params, word_mask
        self.slots = slots * word_mask.unsqueeze(-1)
        self.queries, table = params.per_batch_dropped(training)  # (J, d), (R, d)
        self.position_scores = self.queries @ table.T  # (J, R)
        alpha = params.token_multiplier
        self.slot_scores = alpha * torch.einsum("jd,bqd->bjq", self.queries, self.slots)  # (B, J, Q)
        self.action_scores = torch.zeros_like(self.slot_scores)  # alpha * Lambda M^T, (B, J, Q)
        self.history = ActionHistory(slots.shape[0], max_writes, slots.shape[-1], slots)

    def write(self, omega: torch.Tensor, slot: torch.Tensor) -> None:
        omega = omega * self.word_mask.gather(1, slot.unsqueeze(1)).to(omega.dtype)  # C * valid
        contribution = self.p.token_multiplier * (omega @ self.queries.T)  # (B, J)
        index = slot.view(-1, 1, 1).expand(-1, contribution.shape[1], 1)
        self.action_scores = self.action_scores.scatter_add(2, index, contribution.unsqueeze(-1))
        self.history.append(omega, slot)

    def read(self, center: torch.Tensor) -> torch.Tensor:
        batch, num_latents, num_slots = self.slot_scores.shape
        rows = self.p.relative_index(center, self.word_mask).reshape(-1)  # (B*Q,)
        positional = self.position_scores.index_select(1, rows).view(num_latents, batch, num_slots)
        scores = self.slot_scores + self.action_scores + positional.transpose(0, 1)
        scores = scores.masked_fill(~self.word_mask.unsqueeze(1), NEG_INF)
        weights = scores.max(dim=1).values.softmax(dim=-1)  # (B, Q)
        from_slots = torch.bmm(weights.unsqueeze(1), self.slots).squeeze(1)
        return (from_slots + self.history.read(weights)) * self.p.output_diag


class ActionHistory:
    """Append-only buffer of written action summaries with a hand-written backward.

    ``read(w)`` returns sum_t' w[b, slot[b, t']] * omega[b, t'] over the writes so far. Autograd would
    keep a copy of the growing buffer per step; instead the buffer is shared and gradients for the
    stored omegas are accumulated into ``grad`` by each read's backward, then handed to the omegas by
    their append's backward. A token chained through every append orders the backward correctly:
    append t runs after every read that saw it.
    """

    def __init__(self, batch: int, capacity: int, hidden: int, like: torch.Tensor):
        self.values = like.new_zeros(batch, capacity, hidden)
        self.slot_of = torch.zeros(batch, capacity, dtype=torch.long, device=like.device)
        self.grad: torch.Tensor | None = None
        self.length = 0
        self.token = like.new_zeros(())

    def append(self, omega: torch.Tensor, slot: torch.Tensor) -> None:
        if self.length >= self.values.shape[1]:
            raise RuntimeError(f"action history full ({self.length} writes)")
        self.slot_of[:, self.length] = slot
        self.token = _Append.apply(omega, self.token, self, self.length)
        self.length += 1

    def read(self, weights: torch.Tensor) -> torch.Tensor:  # (B, Q) -> (B, d)
        return _Read.apply(weights, self.token, self, self.length)

    def grad_buffer(self) -> torch.Tensor:
        if self.grad is None:
            self.grad = torch.zeros_like(self.values)
        return self.grad


class _Append(torch.autograd.Function):
    @staticmethod
    def forward(ctx, omega, token, history: ActionHistory, position: int):
        history.values[:, position] = omega.detach()
        ctx.history, ctx.position = history, position
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):
        grad_omega = ctx.history.grad_buffer()[:, ctx.position].clone()
        return grad_omega, grad_token, None, None


class _Read(torch.autograd.Function):
    """sum_t' weights[b, slot[b, t']] * values[b, t']; saves only the (B, Q) weights."""

    @staticmethod
    def forward(ctx, weights, token, history: ActionHistory, length: int):
        ctx.save_for_backward(weights)
        ctx.history, ctx.length = history, length
        gathered = weights.gather(1, history.slot_of[:, :length])  # (B, n)
        return torch.bmm(gathered.unsqueeze(1), history.values[:, :length]).squeeze(1)

    @staticmethod
    def backward(ctx, grad_out):  # grad_out (B, d)
        (weights,) = ctx.saved_tensors
        history, length = ctx.history, ctx.length
        slot_of = history.slot_of[:, :length]  # entries < length never change after the read
        gathered = weights.gather(1, slot_of)
        grad_gathered = torch.bmm(history.values[:, :length], grad_out.unsqueeze(-1)).squeeze(-1)
        grad_weights = torch.zeros_like(weights).scatter_add_(1, slot_of, grad_gathered)
        grad_values = history.grad_buffer()[:, :length]
        grad_values.baddbmm_(gathered.unsqueeze(-1), grad_out.unsqueeze(1))  # in place, no (B, n, d) temp
        return grad_weights, grad_out.new_zeros(()), None, None
