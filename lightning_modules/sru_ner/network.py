"""SRU-NER as a plain ``nn.Module``: encoder -> slot embeddings -> action-generation loop (spec A3).

Sentences of one batch run in lock-step. Training follows the (dynamically modified) gold rows with a
teacher-forced pointer; inference advances the pointer on argmax in {SH, EOA}. Neither loop reads a
tensor value on the host per step: training runs exactly T_gold steps and then checks termination once
every ``sync_every`` steps (only multi-corpus batches can need more steps, for displaced SH rows);
inference checks its stop rule once every ``sync_every`` steps and cuts the output at the exact step.
On CPU a host read costs nothing, so both check every step (``steps_between_checks``): the rows run past
the last EOA are masked out of the loss anyway, so only their cost changes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from lightning_modules.encoder import WordEncoder
from lightning_modules.precision import ieee_fp32_matmuls
from lightning_modules.sru_ner.codec import EOA, SHIFT
from lightning_modules.sru_ner.config import SRUNERConfig
from lightning_modules.sru_ner.fused import fused_teacher_forcing
from lightning_modules.sru_ner.fused_generation import fused_generation
from lightning_modules.sru_ner.fused_memory import SlotMemory
from lightning_modules.sru_ner.memory import DecomposedMemory, DenseMemory, SlotReadParameters
from lightning_modules.sru_ner.workspace import Workspace
from losses import dynamic_multi_hot_target


def steps_between_checks(cfg: SRUNERConfig, device: torch.device) -> int:
    """How often a loop reads its stop condition on the host: every step on CPU (free there), else
    ``sync_every`` (each read waits for the accelerator)."""
    return 1 if device.type == "cpu" else cfg.sync_every


@dataclass
class TrainingOutput:
    logits: torch.Tensor  # (B, T, A)
    targets: torch.Tensor  # (B, T, A), detached
    row_mask: torch.Tensor  # (B, T) bool: rows up to and including each sentence's EOA


def _in_full_precision(method: Callable) -> Callable:
    """``SRUHead.method(slots, ...)`` with the slots in the head's dtype, autocast off and, on CUDA, no
    TF32 in its matmuls (``train.py`` allows TF32 everywhere else): the forward's decisions see true fp32
    logits. The fused backward runs after the block, so its weight gradients may use TF32."""

    @functools.wraps(method)
    def in_full_precision(self: SRUHead, slots: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        device = slots.device
        with torch.autocast(device_type=device.type, enabled=False), ieee_fp32_matmuls(device):
            return method(self, slots.to(self.begin_of_actions.dtype), *args, **kwargs)

    return in_full_precision


class HeadWeights(NamedTuple):
    """The head's weights by name, for the fused loops (the state-dict keys stay ``mlp.1``, ``mlp.3``)."""

    dropout: float  # the MLP input's dropout probability
    w1: torch.Tensor  # (2d, 2d): the MLP's first layer, input [slot at the pointer ; read]
    b1: torch.Tensor
    w2: torch.Tensor  # (A, 2d): the action logits
    b2: torch.Tensor
    embeddings: torch.Tensor  # (A, d): E, the action embeddings Omega mixes
    boa: torch.Tensor  # (d,): BOA, the first write


class SRUHead(nn.Module):
    """The transition loop over the slots. It always computes in its parameters' dtype (fp32 in training)
    with autocast off, whoever calls it and under whatever autocast: its decisions (the displaced SH
    test ``q <= p_SH``, Omega's selection, generation's decisions) compare logits, which bf16 would
    round. Slots come in any dtype; the gradient goes back in theirs."""

    def __init__(self, cfg: SRUNERConfig, num_actions: int, hidden: int):
        super().__init__()
        self.cfg = cfg
        d, a = hidden, num_actions
        self.action_embeddings = nn.Embedding(a, d)  # A-bar, N(0, 1)
        self.begin_of_actions = nn.Parameter(torch.zeros(d))  # BOA
        self.read_params = SlotReadParameters(
            d,
            cfg.action_space_dim * a,
            cfg.half_context,
            token_multiplier=cfg.token_multiplier,
            train_token_multiplier=cfg.train_token_multiplier,
            dropout_positions=cfg.dropout_positions,
            dropout_latents=cfg.dropout_latents,
        )
        self.mlp = nn.Sequential(
            nn.Dropout(cfg.dropout_mlp), nn.Linear(2 * d, 2 * d), nn.Tanh(), nn.Linear(2 * d, a)
        )
        self.workspace = Workspace()  # buffers of the fused loop, kept between steps (not state)

    # state-dict names (under the head) of the parameters with one row per action, for a warm start
    ACTION_ROWS = ("action_embeddings.weight", "mlp.3.weight", "mlp.3.bias")
    LATENT_ROWS = ("read_params.latents",)

    def weights(self) -> HeadWeights:
        dropout, first, _, second = self.mlp
        return HeadWeights(
            dropout.p, first.weight, first.bias, second.weight, second.bias,
            self.action_embeddings.weight, self.begin_of_actions,
        )  # fmt: skip

    # --- pieces shared by both loops ------------------------------------------------------------
    def _start(self, slots: torch.Tensor, word_mask: torch.Tensor, steps: int):
        batch, num_slots, hidden = slots.shape
        if self.cfg.memory == "dense":
            memory = DenseMemory(self.read_params, slots, word_mask, training=self.training)
        else:
            memory = DecomposedMemory(
                self.read_params, slots, word_mask, training=self.training, max_writes=steps + 1
            )
        cls = torch.zeros(batch, dtype=torch.long, device=slots.device)
        memory.write(self.begin_of_actions.expand(batch, hidden), cls)
        read = memory.read(cls)
        pointer = torch.ones_like(cls)
        return memory, read, pointer

    def _start_fused(self, slots: torch.Tensor, word_mask: torch.Tensor):
        p = self.read_params
        queries, table = p.per_batch_dropped(self.training)
        alpha, diag = p.token_multiplier, p.output_diag
        memory = SlotMemory(slots, word_mask, queries, table, alpha, diag, p.half_context)
        cls = torch.zeros(slots.shape[0], dtype=torch.long, device=slots.device)
        memory.write(self.begin_of_actions.expand(slots.shape[0], slots.shape[-1]).clone(), cls)
        return memory, memory.read(cls)[0], torch.ones_like(cls)

    def _omega(self, logits: torch.Tensor) -> torch.Tensor:  # (B, A) -> (B, d)
        weights = logits.softmax(-1) if self.cfg.omega == "softmax" else logits
        weights = weights * (logits >= logits[:, SHIFT : SHIFT + 1])
        return weights @ self.action_embeddings.weight

    @staticmethod
    def _at(slots: torch.Tensor, pointer: torch.Tensor) -> torch.Tensor:  # (B, Q, d), (B,) -> (B, d)
        return slots[torch.arange(slots.shape[0], device=slots.device), pointer]

    # --- training ---------------------------------------------------------------------------------
    @_in_full_precision
    def forward(
        self,
        slots: torch.Tensor,  # (B, Q, d)
        word_mask: torch.Tensor,  # (B, Q) bool
        gold_rows: torch.Tensor,  # (B, Tg, A) multi-hot, zero-padded
        other_mask: torch.Tensor | None = None,  # (B, A) bool: other corpora's TR/RE columns
        decision_offset: torch.Tensor | None = None,  # (A,) c: the SH test reads sigmoid(u - c)
        soft_sh_offset: torch.Tensor | None = None,  # (A,) o of model.sh_target=soft; None: hard
    ) -> TrainingOutput:
        if self.cfg.fused:
            every = steps_between_checks(self.cfg, slots.device)
            return TrainingOutput(
                *fused_teacher_forcing(
                    self.weights(),
                    self.read_params,
                    self.cfg,
                    self.workspace,
                    slots,
                    word_mask,
                    gold_rows,
                    other_mask,
                    every,
                    decision_offset,
                    soft_sh_offset,
                    training=self.training,
                )  # fmt: skip
            )
        batch, num_slots, _ = slots.shape
        gold_steps = gold_rows.shape[1]
        cap = max(gold_steps, math.ceil(self.cfg.train_step_factor * gold_steps))
        memory, read, pointer = self._start(slots, word_mask, cap)
        every = steps_between_checks(self.cfg, slots.device)
        rows = torch.arange(batch, device=slots.device)
        cursor = torch.zeros_like(pointer)
        removed = torch.zeros(batch, dtype=torch.bool, device=slots.device)
        finished = torch.zeros_like(removed)
        logits_seq, target_seq, mask_seq = [], [], []
        for step in range(cap):
            past_gold = other_mask is not None and step >= gold_steps
            # one host read per `every` steps, and only past T_gold (multi-corpus batches only)
            if past_gold and (step - gold_steps) % every == 0 and bool(finished.all()):
                break
            logits = self.mlp(torch.cat([self._at(slots, pointer), read], dim=-1))  # (B, A)
            gold = gold_rows[rows, cursor]  # (B, A)
            if other_mask is None:
                target, removed = gold, torch.zeros_like(removed)
            else:
                target, removed = dynamic_multi_hot_target(
                    logits, gold, other_mask, removed,
                    shift_col=SHIFT, eoa_col=EOA, coeff=self.cfg.project_coeff, sh_margin=self.cfg.sh_margin,
                    decision_offset=decision_offset, soft_sh_offset=soft_sh_offset,
                )  # fmt: skip
            logits_seq.append(logits)
            target_seq.append(target)
            mask_seq.append(~finished)
            memory.write(self._omega(logits), pointer)
            read = memory.read(pointer)
            eoa_row = gold[:, EOA] > 0
            finished = finished | eoa_row
            advance = ((gold[:, SHIFT] > 0) & ~removed) | eoa_row  # the pointer follows the modified gold
            pointer = (pointer + advance.long()).clamp(max=num_slots - 1)
            cursor = (cursor + (~removed).long()).clamp(max=gold_steps - 1)
            if other_mask is None and step + 1 == gold_steps:
                break
        return TrainingOutput(
            torch.stack(logits_seq, 1), torch.stack(target_seq, 1).detach(), torch.stack(mask_seq, 1)
        )

    # --- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    @_in_full_precision
    def generate(
        self, slots: torch.Tensor, word_mask: torch.Tensor, decision_offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Greedy generation; returns the decision logits ``z = u - c`` (B, T, A) up to the stop step,
        ``c`` = ``decision_offset`` (A,) or 0. The pointer advances on ``argmax z``, a sentence has
        reached EOA once ``z_EOA > 0``, and Omega is built from the raw logits ``u``, as in training."""
        batch, num_slots, _ = slots.shape
        cap = math.ceil(self.cfg.infer_step_factor * num_slots)
        every = steps_between_checks(self.cfg, slots.device)
        if self.cfg.fused and not self.training:  # (in train mode, dropout: the step-by-step loop below)
            weights, params = self.weights(), self.read_params
            return fused_generation(weights, params, self.cfg, slots, word_mask, every, decision_offset)
        if self.cfg.fused:
            memory, read, pointer = self._start_fused(slots, word_mask)
        else:
            memory, read, pointer = self._start(slots, word_mask, cap)
        reached = torch.zeros(batch, dtype=torch.bool, device=slots.device)
        decisions_seq, all_reached = [], []
        for step in range(cap):
            logits = self.mlp(torch.cat([self._at(slots, pointer), read], dim=-1))
            decisions = logits if decision_offset is None else logits - decision_offset
            decisions_seq.append(decisions)
            reached = reached | (decisions[:, EOA] > 0)
            all_reached.append(reached.all())
            if (step + 1) % every == 0 and bool(reached.all()):
                break
            memory.write(self._omega(logits), pointer)
            read = memory.read(pointer)
            if self.cfg.fused:
                read = read[0]
            advance = decisions.argmax(-1) <= SHIFT  # EOA = 0, SHIFT = 1
            pointer = (pointer + advance.long()).clamp(max=num_slots - 1)
        done = torch.stack(all_reached).nonzero()
        steps = int(done[0, 0]) + 1 if len(done) else len(decisions_seq)
        return torch.stack(decisions_seq[:steps], 1)


class SRUNERNetwork(nn.Module):
    """Encoder + SRU head; buildable and testable without Lightning."""

    def __init__(self, encoder: WordEncoder, cfg: SRUNERConfig, num_actions: int):
        super().__init__()
        self.encoder = encoder
        self.head = SRUHead(cfg, num_actions, encoder.hidden_size)

    def slots(self, batch: dict) -> torch.Tensor:  # (B, Q, d), in the encoder's (autocast) dtype
        num_slots = batch["word_mask"].shape[1]
        return self.encoder(batch["input_ids"], batch["attention_mask"], batch["word_index"], num_slots)

    def forward(
        self,
        batch: dict,
        decision_offset: torch.Tensor | None = None,
        soft_sh_offset: torch.Tensor | None = None,
    ) -> TrainingOutput:
        slots = self.slots(batch)
        word_mask, gold_rows, other_mask = batch["word_mask"], batch["gold_rows"], batch.get("other_mask")
        return self.head(slots, word_mask, gold_rows, other_mask, decision_offset, soft_sh_offset)

    def generate(self, batch: dict, decision_offset: torch.Tensor | None = None) -> torch.Tensor:
        """The decision logits (B, T, A) of greedy generation (``SRUHead.generate``)."""
        return self.head.generate(self.slots(batch), batch["word_mask"], decision_offset)
