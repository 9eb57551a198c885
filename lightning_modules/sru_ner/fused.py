"""SRU-NER's teacher-forced training loop with a hand-written backward (``loop=fused``, the default).

It computes what ``SRUHead``'s autograd loop over ``DecomposedMemory`` computes (same memory, same reads,
same dynamic targets; ``tests/test_sru_fused.py`` checks logits, targets and every gradient to 1e-5), but:

- the forward runs without autograd on preallocated buffers, with everything that does not depend on the
  step done once per batch: the positional scores of every possible read centre, (Q, J, Q); each action's
  written row [E_a ; alpha Lambda E_a], so that one (B, A) x (A, d + J) product per step gives Omega and
  its score contribution; D1 folded into W1's read half; the biases, and for one-corpus batches the slot
  half of the MLP's first layer for every step at once. A step is then about 17 kernels (two MLP products,
  Omega, two scatters of the write, the read over a memory C = S + M kept in place: index, add, max,
  softmax, product), no copies (``bench/step_ops.py``);
- the backward is one reverse loop that carries only what the recurrence needs (the gradient of the read,
  of the action memory's scores and of the memory itself) and defers every weight gradient to one large
  product over all B x T rows at the end (W1, W2, E, the slot half of the MLP's input, Lambda, the
  position table, D1), instead of T small products that autograd would issue one per step; the incoming
  gradient of the logits reaches the MLP in one product before the loop, and each softmax's backward is
  one kernel (about 16 per step).

The loop's memory is ``fused_memory.SlotMemory``, its buffers come from ``workspace.Workspace``, and it reads
the head's weights by name (``SRUHead.weights``). Notation as in ``memory.py``: B sentences, Q slots, d
hidden, J latents, R position rows, A actions, T steps run. Write 0 is BOA on slot 0, write t + 1 is step t's
Omega on its pointer p_t; read 0 is centred on slot 0 after write 0, read t + 1 on p_t after write t + 1; step
t's MLP input is [S[p_t], read t].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lightning_modules.sru_ner.codec import EOA, SHIFT
from lightning_modules.sru_ner.fused_memory import SlotMemory
from lightning_modules.sru_ner.workspace import Workspace, allocator
from losses import dynamic_multi_hot_target, shift_kept


@dataclass
class LoopInputs:
    """The non-differentiable inputs of one teacher-forced loop."""

    word_mask: torch.Tensor  # (B, Q) bool
    gold_rows: torch.Tensor  # (B, Tg, A)
    other_mask: torch.Tensor | None  # (B, A) bool
    mlp_keep: torch.Tensor | None  # (cap, B, 2d) dropout multipliers of the MLP input (None: no dropout)
    cap: int
    half_context: int
    omega_softmax: bool
    sync_every: int
    project_coeff: float
    workspace: Workspace | None = None  # lent to this loop, or None
    sh_margin: float = 0.0
    decision_offset: torch.Tensor | None = None  # (A,) c: the SH test reads sigmoid(u - c)
    soft_sh_offset: torch.Tensor | None = None  # (A,) o of model.sh_target=soft; None: the hard SH target


def single_corpus_trajectory(gold_rows: torch.Tensor, num_slots: int):
    """Pointers (Tg, B) and row mask (Tg, B) of a batch without other-corpus columns: the pointer follows
    the gold rows alone (SH or EOA advances it), so the whole trajectory is known before the loop."""
    advance = ((gold_rows[..., SHIFT] > 0) | (gold_rows[..., EOA] > 0)).long()  # (B, Tg)
    pointers = (1 + advance.cumsum(1) - advance).clamp(max=num_slots - 1)
    eoa = (gold_rows[..., EOA] > 0).long()
    finished_before = (eoa.cumsum(1) - eoa) > 0
    return pointers.T.contiguous(), (~finished_before).T.contiguous()


class FusedTeacherForcing(torch.autograd.Function):
    """(slots, Lambda, dropped position table, alpha, D1, E, W1, b1, W2, b2, BOA) -> logits (B, T, A),
    targets (B, T, A) and row mask (B, T), as ``SRUHead.forward`` with ``DecomposedMemory``.
    Buffers are time-major, (T, B, ...), so that each step writes whole contiguous slabs."""

    # Under autocast (on either device type) the loop runs in fp32 with autocast off, and its backward
    # in forward's autocast state: ``SRUHead`` already calls it so, these make any caller safe.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(
        ctx, slots, queries, table, alpha, output_diag, embeddings, w1, b1, w2, b2, boa, run: LoopInputs
    ):
        if run.workspace is not None:
            run.workspace.borrowed_by(ctx)
        batch, num_slots, hidden = slots.shape
        num_actions, device = w2.shape[0], slots.device
        cap, gold_steps = run.cap, run.gold_rows.shape[1]
        memory = SlotMemory(slots, run.word_mask, queries, table, alpha, output_diag, run.half_context)
        # step-independent, once: each action's written row [E_a ; alpha Lambda E_a] (so that one product
        # per step gives omega and its score contribution) and W1's read half with D1 folded in
        written_rows = torch.cat([embeddings, embeddings @ memory.scaled_queries.T], dim=1)  # (A, d + J)
        w1_slot, w1_read = w1[:, :hidden], w1[:, hidden:] * output_diag  # (2d, d) each
        flat_slots = slots.reshape(batch * num_slots, hidden)
        new = allocator(run.workspace, slots)
        keep = run.mlp_keep
        slot_inputs = new("slot_inputs", cap, batch, hidden)  # MLP input, slot half (dropout applied)
        values = new("values", cap + 1, batch, hidden)  # u of read t (read 0: after BOA)
        read_inputs = values if keep is None else new("read_inputs", cap + 1, batch, hidden)  # MLP input
        hiddens = new("hiddens", cap, batch, 2 * hidden)
        logits_all = new("logits", cap, batch, num_actions)
        logits_all.copy_(b2.expand_as(logits_all))  # the biases once, so each step's product adds in place
        written = new("written", cap + 1, batch, written_rows.shape[1])  # write 0: BOA
        weights_all = new("weights", cap + 1, batch, num_slots)
        latents = new("latents", cap + 1, batch, num_slots, dtype=torch.long)
        pointers = torch.zeros(cap + 2, batch, dtype=torch.long, device=device)  # [t]: write t, read t
        step_slot_inputs, step_hiddens, step_logits = (
            slot_inputs.unbind(0),
            hiddens.unbind(0),
            logits_all.unbind(0),
        )
        step_written, step_values, step_weights = written.unbind(0), values.unbind(0), weights_all.unbind(0)
        step_read_inputs, step_latents, step_pointers = (
            read_inputs.unbind(0),
            latents.unbind(0),
            pointers.unbind(0),
        )
        keep_slot = keep[..., :hidden].unbind(0) if keep is not None else None
        keep_read = keep[..., hidden:].unbind(0) if keep is not None else None

        boa_row = torch.cat([boa, memory.scaled_queries @ boa])
        step_written[0].copy_(boa_row.expand(batch, -1))
        memory.write_row(step_written[0], step_pointers[0])
        memory.read(step_pointers[0], out=(step_values[0], step_weights[0], step_latents[0]))
        if keep is not None:
            torch.mul(step_values[0], keep_read[0], out=step_read_inputs[0])
        single = run.other_mask is None
        if single:  # the trajectory follows the gold rows alone: the slot half of every step at once
            steps = gold_steps
            pointers[1 : steps + 1], row_mask = single_corpus_trajectory(run.gold_rows, num_slots)
            flat_slot = memory.flat_rows + pointers
            step_index = memory.scatter_index(pointers).unbind(0)
            torch.index_select(
                flat_slots, 0, flat_slot[1 : steps + 1].reshape(-1), out=slot_inputs[:steps].view(-1, hidden)
            )
            if keep is not None:
                slot_inputs[:steps].mul_(keep[:steps, :, :hidden])
            torch.addmm(
                b1, slot_inputs[:steps].view(-1, hidden), w1_slot.T, out=hiddens[:steps].view(-1, 2 * hidden)
            )
        else:  # a displaced SH holds the pointer: only the SH/EOA flags and q are needed per step
            steps = cap
            hiddens.copy_(b1.expand_as(hiddens))
            row_mask = torch.empty(cap, batch, dtype=torch.bool, device=device)
            step_row_mask = row_mask.unbind(0)
            cursors = torch.zeros(cap, batch, dtype=torch.long, device=device)  # flat gold row per step
            removed_all = torch.zeros(cap + 1, batch, dtype=torch.bool, device=device)  # [t]: before step t
            step_cursors, step_removed = cursors.unbind(0), removed_all.unbind(0)
            gold_flat = run.gold_rows.reshape(batch * gold_steps, num_actions)
            shift_flags, eoa_flags = gold_flat[:, SHIFT] > 0, gold_flat[:, EOA] > 0
            other_live = (run.other_mask.repeat_interleave(gold_steps, 0) & ~eoa_flags.unsqueeze(1)).float()
            last_row = memory.rows * gold_steps + gold_steps - 1
            torch.mul(memory.rows, gold_steps, out=step_cursors[0])
            step_pointers[1].fill_(1)
            finished = torch.zeros(batch, dtype=torch.bool, device=device)
        w1_read_t, w2_t = w1_read.T, w2.T
        for step in range(cap):
            pointer = step_pointers[step + 1]
            h = step_hiddens[step]
            if single:
                if step == steps:
                    break
                slot_rows, index = flat_slot[step + 1], step_index[step + 1]
            else:
                if step >= gold_steps and (step - gold_steps) % run.sync_every == 0 and bool(finished.all()):
                    steps = step
                    break
                slot_rows, index = memory.flat_rows + pointer, None
                slot_input = torch.index_select(flat_slots, 0, slot_rows, out=step_slot_inputs[step])
                if keep is not None:
                    slot_input.mul_(keep_slot[step])
                h.addmm_(slot_input, w1_slot.T)
            h.addmm_(step_read_inputs[step], w1_read_t).tanh_()
            logits = step_logits[step].addmm_(h, w2_t)
            dropped = (
                logits < logits[:, SHIFT : SHIFT + 1]
            )  # Omega keeps the actions at least as likely as SH
            weights = (logits.softmax(-1) if run.omega_softmax else logits.clone()).masked_fill_(dropped, 0)
            row = torch.mm(weights, written_rows, out=step_written[step + 1])  # [omega ; alpha Lambda omega]
            memory.write_row(row, pointer, slot_rows, index)
            value = memory.read(
                pointer, out=(step_values[step + 1], step_weights[step + 1], step_latents[step + 1])
            )
            if keep is not None and step + 1 < cap:  # the read goes straight into the next MLP input
                torch.mul(value, keep_read[step + 1], out=step_read_inputs[step + 1])
            if not single:  # where the pointer and the gold cursor go (the targets follow after the loop)
                cursor = step_cursors[step]
                probs = (  # as dynamic_multi_hot_target's SH test, in fp32
                    logits.float() if run.decision_offset is None else logits.float() - run.decision_offset
                ).sigmoid()
                kept = shift_kept(
                    probs, probs * other_live.index_select(0, cursor), step_removed[step], shift_col=SHIFT,
                    margin=run.sh_margin,
                )  # fmt: skip
                shift, eoa = shift_flags.index_select(0, cursor), eoa_flags.index_select(0, cursor)
                torch.logical_and(shift, ~kept, out=step_removed[step + 1])
                torch.logical_not(finished, out=step_row_mask[step])
                finished |= eoa
                advance = (shift & kept) | eoa  # the pointer follows the modified gold
                torch.add(pointer, advance, out=step_pointers[step + 2]).clamp_(max=num_slots - 1)
                if step + 1 < cap:
                    torch.minimum(cursor + ~step_removed[step + 1], last_row, out=step_cursors[step + 1])
        if single:
            targets = run.gold_rows
        else:  # every row at once: dynamic_multi_hot_target is row-wise given each row's removed_prev
            flat_targets, _ = dynamic_multi_hot_target(
                logits_all[:steps].reshape(-1, num_actions),
                gold_flat.index_select(0, cursors[:steps].reshape(-1)),
                run.other_mask.repeat(steps, 1),
                removed_all[:steps].reshape(-1),
                shift_col=SHIFT,
                eoa_col=EOA,
                coeff=run.project_coeff,
                sh_margin=run.sh_margin,
                decision_offset=run.decision_offset,
                soft_sh_offset=run.soft_sh_offset,
            )
            targets = flat_targets.view(steps, batch, num_actions).transpose(0, 1)

        if run.workspace is not None and not any(ctx.needs_input_grad):
            run.workspace.give_back()  # no backward will come; the outputs below are copies
        ctx.run, ctx.steps, ctx.memory, ctx.done = run, steps, memory, False
        ctx.buffers = (slot_inputs, read_inputs, hiddens, logits_all, written, weights_all, latents, pointers)
        ctx.params = (
            slots,
            queries,
            table,
            alpha,
            output_diag,
            embeddings,
            w1,
            w2,
            boa,
            written_rows,
            w1_read,
        )
        out_targets, out_mask = targets.detach().contiguous(), row_mask[:steps].T.contiguous()
        ctx.mark_non_differentiable(out_targets, out_mask)
        logits = logits_all[:steps].transpose(0, 1).clone(memory_format=torch.contiguous_format)
        return logits, out_targets, out_mask

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_logits, _grad_targets, _grad_mask):
        if ctx.run.workspace is not None and ctx.done:  # its buffers may hold a later step by now
            raise RuntimeError(
                "the fused SRU-NER loop with a workspace can be differentiated once per forward "
                "(retain_graph): use model.loop=autograd for higher-order or repeated backward passes"
            )
        try:
            return FusedTeacherForcing._backward(ctx, grad_logits)
        finally:
            ctx.done = True
            if ctx.run.workspace is not None:
                ctx.run.workspace.give_back()

    @staticmethod
    def _backward(ctx, grad_logits):
        run, steps, memory = ctx.run, ctx.steps, ctx.memory
        slot_inputs, read_inputs, hiddens, logits_all, written, weights_all, latents, pointers = ctx.buffers
        slots, queries, table, alpha, output_diag, embeddings, w1, w2, boa, written_rows, w1_read = ctx.params
        batch, num_slots, hidden = slots.shape
        num_latents, keep = queries.shape[0], run.mlp_keep
        flat_rows = memory.flat_rows
        memory_state = memory.memory.clone()  # C after every write; writes are taken back one by one below
        state = memory_state.view(batch * num_slots, hidden)
        state_t = memory_state.transpose(1, 2)  # (B, d, Q) view of the same storage
        pointers = pointers[: steps + 1]
        flat_slot = flat_rows + pointers  # (T + 1, B)

        logits = logits_all[:steps]
        selected = logits >= logits[..., SHIFT : SHIFT + 1]
        probs = logits.softmax(-1) if run.omega_softmax else None
        omega_weights = (probs if run.omega_softmax else logits) * selected  # (T, B, A)
        selected = selected.to(logits.dtype)
        new = allocator(run.workspace, slots)
        tanh_grad = torch.mul(
            hiddens[:steps], hiddens[:steps], out=new("tanh_grad", steps, batch, 2 * hidden)
        )
        tanh_grad.neg_().add_(1)  # 1 - h^2
        read_keep = keep[:steps, :, hidden:].unbind(0) if keep is not None else None

        # the logits' gradient = the incoming one + what Omega's use of them adds (``grad_omega``, per step);
        # the incoming part reaches the MLP in one product before the loop
        incoming = grad_logits.transpose(0, 1)  # (T, B, A)
        grad_omega = new("grad_omega", steps, batch, grad_logits.shape[-1])
        grad_z = new("grad_z", steps, batch, 2 * hidden)
        torch.mm(incoming.reshape(-1, incoming.shape[-1]), w2, out=grad_z.view(-1, 2 * hidden))
        grad_read = new("grad_read", steps, batch, hidden)  # w.r.t. u of read t; read T is unused
        grad_rows = new("grad_rows", steps + 1, batch, written.shape[-1])  # w.r.t. each written row
        grad_best = new("grad_best", steps + 1, batch, num_slots)  # w.r.t. max_j scores, per read
        grad_best[steps].zero_()
        grad_memory = new(
            "grad_memory", batch * num_slots, hidden
        ).zero_()  # sum over the reads done of w (x) g_u
        grad_memory_3d = grad_memory.view(batch, num_slots, hidden)
        grad_scores = slots.new_zeros(batch, num_latents, num_slots)  # sum over the reads done

        s_flat_slot, s_written = flat_slot.unbind(0), written[..., :hidden].unbind(0)
        s_index = memory.scatter_index(pointers).unbind(0)
        s_grad_omega = grad_rows[..., :hidden].unbind(0)
        s_grad_contribution = grad_rows[..., hidden:].unsqueeze(-1).unbind(0)
        s_grad_omega_l, s_grad_z, s_grad_rows = grad_omega.unbind(0), grad_z.unbind(0), grad_rows.unbind(0)
        s_grad_read, s_grad_best = grad_read.unbind(0), grad_best.unbind(0)
        s_probs = probs.unbind(0) if probs is not None else None
        s_selected, s_tanh_grad = selected.unbind(0), tanh_grad.unbind(0)
        s_w = weights_all.unsqueeze(-1).unbind(0)
        s_latent = latents.unsqueeze(2).unbind(0)
        written_rows_t = written_rows.T

        def write_backward(k: int) -> torch.Tensor:  # the gradient w.r.t. written row k, (B, d + J)
            rows = s_flat_slot[k]
            torch.index_select(grad_memory, 0, rows, out=s_grad_omega[k])
            torch.gather(grad_scores, 2, s_index[k], out=s_grad_contribution[k])
            state.index_add_(0, rows, s_written[k], alpha=-1)  # C before write k
            return s_grad_rows[k]

        for t in range(steps - 1, -1, -1):
            grad_weights = write_backward(t + 1) @ written_rows_t  # (B, A); reads t + 1 .. T - 1 are done
            if run.omega_softmax:  # d(softmax * selected)
                torch.ops.aten._softmax_backward_data.out(
                    grad_weights.mul_(s_selected[t]),
                    s_probs[t],
                    -1,
                    logits.dtype,
                    grad_input=s_grad_omega_l[t],
                )
            else:
                torch.mul(grad_weights, s_selected[t], out=s_grad_omega_l[t])
            grad_z_t = s_grad_z[t].addmm_(s_grad_omega_l[t], w2).mul_(s_tanh_grad[t])
            grad_u = torch.mm(grad_z_t, w1_read, out=s_grad_read[t])  # D1 is in w1_read
            if read_keep is not None:
                grad_u.mul_(read_keep[t])
            # read t (centred on pointers[t], over C after writes 0..t)
            grad_u = grad_u.unsqueeze(1)  # (B, 1, d)
            w = s_w[t]  # (B, Q, 1)
            grad_w = torch.matmul(grad_u, state_t).squeeze(1)  # (B, Q)
            grad_memory_3d.addcmul_(w, grad_u)  # w (x) g_u
            grad_m = torch.ops.aten._softmax_backward_data.out(
                grad_w, w.squeeze(-1), -1, grad_w.dtype, grad_input=s_grad_best[t]
            )
            grad_scores.scatter_add_(1, s_latent[t], grad_m.unsqueeze(1))
        grad_boa_row = write_backward(0).sum(0)  # (d + J)

        # every weight gradient at once, over the T x B rows
        flat_z = grad_z.view(-1, 2 * hidden)
        flat_l = grad_omega.add_(incoming).view(-1, grad_omega.shape[-1])
        grad_w1_read = flat_z.T @ read_inputs[:steps].reshape(-1, hidden)  # w.r.t. W1's read half x D1
        grad_w1 = torch.cat([flat_z.T @ slot_inputs[:steps].view(-1, hidden), grad_w1_read * output_diag], 1)
        grad_diag = (grad_w1_read * w1[:, hidden:]).sum(0)
        grad_b1 = flat_z.sum(0)
        grad_w2 = flat_l.T @ hiddens[:steps].view(-1, 2 * hidden)
        grad_b2 = flat_l.sum(0)
        # the written rows [E ; E (alpha Lambda)^T] of steps 1..T, and BOA's row
        grad_written_rows = omega_weights.view(-1, omega_weights.shape[-1]).T @ grad_rows[1:].view(
            -1, grad_rows.shape[-1]
        )  # (A, d + J)
        scaled_queries = memory.scaled_queries
        grad_embeddings = grad_written_rows[:, :hidden] + grad_written_rows[:, hidden:] @ scaled_queries
        grad_boa = grad_boa_row[:hidden] + grad_boa_row[hidden:] @ scaled_queries
        grad_scaled_queries = grad_written_rows[:, hidden:].T @ embeddings + torch.outer(
            grad_boa_row[hidden:], boa
        )  # (J, d)

        grad_slots = (
            grad_memory_3d + alpha * torch.einsum("bjq,jd->bqd", grad_scores, queries)
        ) * memory.valid.unsqueeze(-1)
        grad_x_slot = torch.mm(flat_z, w1[:, :hidden], out=new("grad_x_slot", steps * batch, hidden))
        if keep is not None:
            grad_x_slot.view(steps, batch, hidden).mul_(keep[:steps, :, :hidden])
        grad_slots.view(-1, hidden).index_add_(0, flat_slot[1:].reshape(-1), grad_x_slot)

        # position scores: read t's best latent per slot, at the row of (centre_t, slot)
        num_rows = table.shape[0]
        flat_index = latents[: steps + 1] * num_rows + memory.position_rows[pointers]  # (T + 1, B, Q)
        grad_position_scores = table.new_zeros(num_latents * num_rows)
        grad_position_scores.index_add_(0, flat_index.view(-1), grad_best.view(-1))
        grad_position_scores = grad_position_scores.view(num_latents, num_rows)  # (J, R)
        grad_table = grad_position_scores.T @ queries
        grad_queries = (
            grad_position_scores @ table
            + alpha * torch.einsum("bjq,bqd->jd", grad_scores, memory.masked_slots)
            + alpha * grad_scaled_queries
        )
        grad_alpha = None
        if ctx.needs_input_grad[3]:
            unscaled = torch.einsum("jd,bqd->bjq", queries, memory.masked_slots)
            grad_alpha = (grad_scores * unscaled).sum() + (grad_scaled_queries * queries).sum()
        return (
            grad_slots, grad_queries, grad_table, grad_alpha, grad_diag, grad_embeddings,
            grad_w1, grad_b1, grad_w2, grad_b2, grad_boa, None,
        )  # fmt: skip


def fused_teacher_forcing(
    weights, params, cfg, pool: Workspace, slots, word_mask, gold_rows, other_mask, every: int,
    decision_offset=None, soft_sh_offset=None, *, training: bool,
):  # fmt: skip
    """``SRUHead.forward`` through ``FusedTeacherForcing``; returns (logits, targets, row_mask).
    ``weights``: the head's ``HeadWeights``; ``params``: its ``SlotReadParameters``; ``cfg``: its config;
    ``pool``: its workspace, lent to this loop when free; ``every``: steps between two host reads of the
    stop condition; ``training``: the head's mode (dropout)."""
    gold_steps = gold_rows.shape[1]
    cap = max(gold_steps, math.ceil(cfg.train_step_factor * gold_steps))
    queries, table = params.per_batch_dropped(training)
    drop = weights.dropout
    lend = slots.device.type == "cpu" and torch.is_grad_enabled()  # under no_grad no backward returns it
    workspace = pool if lend and pool.lend() else None
    keep = None
    if training and drop > 0:
        keep = allocator(workspace, slots)("keep", cap, slots.shape[0], 2 * slots.shape[-1])
        keep.uniform_().lt_(1 - drop).div_(1 - drop)  # = bernoulli_(1 - drop), in half the time on CPU
    run = LoopInputs(
        word_mask, gold_rows, other_mask, keep, cap, params.half_context, cfg.omega == "softmax",
        every, cfg.project_coeff, workspace, cfg.sh_margin, decision_offset, soft_sh_offset,
    )  # fmt: skip
    try:
        return FusedTeacherForcing.apply(
            slots, queries, table, params.token_multiplier, params.output_diag, weights.embeddings,
            weights.w1, weights.b1, weights.w2, weights.b2, weights.boa, run,
        )  # fmt: skip
    except BaseException:
        if workspace is not None:
            workspace.give_back()
        raise
