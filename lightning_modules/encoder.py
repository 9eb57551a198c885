"""Shared encoder wrapper: a Hugging Face encoder followed by subword -> word max-pooling (or, with
``pooling="first"``, each word's first subword, as a transformers token classifier reads words).

Slots per sentence: 0 = [CLS], 1..N = words, N+1 = [SEP]; Q = max N + 2 over the batch. The collate
puts every padding subword into slot Q (a dump slot that is dropped), so padding never leaks into a
real slot (the reference pools it into the longest sentence's SEP slot).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from untrusted import pretrained


class WordEncoder(nn.Module):
    def __init__(self, name_or_path: str | None = None, *, config: PretrainedConfig | None = None):
        super().__init__()
        if config is not None:  # tests and benchmarks: a randomly initialised encoder, no files needed
            self.model = AutoModel.from_config(config, trust_remote_code=False)
        else:
            config = pretrained(AutoConfig.from_pretrained, name_or_path)
            self.model = pretrained(AutoModel.from_pretrained, name_or_path, config=config)
        if getattr(self.model, "pooler", None) is not None:
            # BERT-style poolers feed nothing here: unused parameters would make DDP fail at step 2
            self.model.pooler = None
        self.model.train()  # from_pretrained returns eval mode, and Lightning keeps module modes as found
        self.hidden_size: int = self.model.config.hidden_size

    def eval_activation_bytes(self, sentences: int, subwords: int, element_bytes: int) -> int:
        """Estimated peak of the activations of one forward without autograd (weights excluded): inside
        one layer, the FFN's intermediate and its activation (B, L, 2 x ffn) next to three (B, L, d)
        hidden states, plus the pooled slots. Eager attention also holds the (B, heads, L, L) scores
        and their softmax; SDPA (the default) does not materialise them."""
        config = self.model.config
        width = config.hidden_size
        ffn = getattr(config, "intermediate_size", 4 * width)
        cells = sentences * subwords * (2 * ffn + 4 * width)
        if getattr(config, "_attn_implementation", "sdpa") == "eager":
            cells += 2 * sentences * config.num_attention_heads * subwords * subwords
        return cells * element_bytes

    @staticmethod
    def config_of(name_or_path: str) -> PretrainedConfig:
        return pretrained(AutoConfig.from_pretrained, name_or_path)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, L)
        attention_mask: torch.Tensor,  # (B, L)
        word_index: torch.Tensor,  # (B, L) slot of each subword; padding -> Q
        num_slots: int,  # Q
        pooling: str = "max",  # or "first": the slot's first subword
    ) -> torch.Tensor:  # (B, Q, d) pooled slot embeddings; empty slots are zero
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        batch, length, dim = hidden.shape
        if pooling == "first":
            position = torch.arange(length, device=hidden.device).expand(batch, -1)
            first = position.new_full((batch, num_slots + 1), length)  # an empty slot points past the end
            first = first.scatter_reduce(1, word_index, position, reduce="amin")
            padded = torch.cat([hidden, hidden.new_zeros(batch, 1, dim)], dim=1)  # (B, L + 1, d)
            return padded.gather(1, first[:, :num_slots, None].expand(-1, -1, dim))
        pooled = hidden.new_zeros(batch, num_slots + 1, dim)
        index = word_index.unsqueeze(-1).expand(-1, -1, dim)
        pooled = pooled.scatter_reduce(1, index, hidden, reduce="amax", include_self=False)
        return pooled[:, :num_slots]
