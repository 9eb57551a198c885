"""Two SRU-NER heads with the same weights (the autograd loop and the fused one) and a random batch for
them: shared by the tests of the fused loop, bf16 autocast and the GPU path."""

from __future__ import annotations

import copy
import dataclasses

import torch

from lightning_modules.sru_ner.codec import EOA, SHIFT
from lightning_modules.sru_ner.config import SRUNERConfig
from lightning_modules.sru_ner.network import SRUHead

BATCH, SLOTS, HIDDEN, ACTIONS, GOLD_STEPS = 4, 12, 16, 14, 20


def paired_heads(
    omega: str = "softmax", dropout: float = 0.0, dtype: torch.dtype = torch.float32
) -> tuple[SRUHead, SRUHead]:
    cfg = SRUNERConfig(
        half_context=3, omega=omega, loop="autograd",
        dropout_positions=dropout, dropout_latents=dropout, dropout_mlp=dropout,
        token_multiplier=1.3, train_token_multiplier=True,
    )  # fmt: skip
    torch.manual_seed(0)
    plain = SRUHead(cfg, ACTIONS, HIDDEN).train()
    with torch.no_grad():  # non-trivial values everywhere (the reference initialises L to zero)
        plain.read_params.latents.normal_()
        plain.read_params.latent_diag.uniform_(0.5, 1.5)
        plain.read_params.output_diag.uniform_(0.5, 1.5)
        plain.read_params.positions.weight.normal_()
        plain.begin_of_actions.normal_()
    plain.to(dtype)
    fused = copy.deepcopy(plain)
    fused.cfg = dataclasses.replace(cfg, loop="fused")
    return plain, fused


def random_batch(multi: bool, seed: int = 1, dtype: torch.dtype = torch.float32):
    """Slots, word mask (sentences of 10, 6, 3, 8 words: padding and pointers past it), gold rows."""
    g = torch.Generator().manual_seed(seed)
    slots = torch.randn(BATCH, SLOTS, HIDDEN, generator=g)
    lengths = torch.tensor([10, 6, 3, 8])
    word_mask = torch.arange(SLOTS)[None] < (lengths + 2)[:, None]
    gold = torch.zeros(BATCH, GOLD_STEPS, ACTIONS)
    for b, words in enumerate(lengths.tolist()):
        t = 0
        for _ in range(words):
            if torch.rand(1, generator=g) < 0.3 and t < GOLD_STEPS - 3:
                gold[b, t, 2 + torch.randint(0, ACTIONS - 2, (1,), generator=g)] = 1
                t += 1
            gold[b, t, SHIFT] = 1
            t += 1
            if t >= GOLD_STEPS - 1:
                break
        gold[b, t, EOA] = 1
    other = None
    if multi:  # the second half of the TR/RE columns belongs to other corpora
        other = torch.zeros(BATCH, ACTIONS, dtype=torch.bool)
        other[:, ACTIONS // 2 :] = True
    return slots.to(dtype), word_mask, gold.to(dtype), other
