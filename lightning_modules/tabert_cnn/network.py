"""TabERT-CNN as a plain ``nn.Module``: encoder -> word vectors -> n x n word-pair table -> 2D CNN -> logits.

Shapes (B sentences, n = the batch's longest sentence in words, d encoder width, p pair width, H channels)::

    e      = WordEncoder(...)[:, 1 : n + 1]        (B, n, d)   subword max-pooling, CLS/SEP slots dropped
    x      = Linear(d -> p)(e) (optional)          (B, n, p)
    X[i,j] = [x_i ; x_j] * v_i * v_j               (B, 2p, n, n)  v: 1 on real words; padding is 0
    Y      = conv_1(X) -> ReLU -> Dropout2d -> mask -> ... -> conv_L   (B, C_out, n, n)

Every hidden layer is masked to zero on padded rows and columns, so a sentence's logits do not depend
on how much padding its batch has (a padded cell looks exactly like the CNN's own zero border).

The first convolution is linear in ``[x_i ; x_j]``, so it splits exactly into a row term and a column
term (``first_layer="factored"``, the default; spec Part 1 item 3). With W = [W_r | W_c] (H, 2p, k, k),
r = k // 2 and xv = x * v::

    conv_1(X)[h, i, j] = b_h + sum_{a, c} v_{j+c-r} (W_r[:, :, a, c] xv_{i+a-r})_h
                             + sum_{a, c} v_{i+a-r} (W_c[:, :, a, c] xv_{j+c-r})_h

(terms outside the grid are zero, as under the convolution's zero padding). It costs
O(B n k^2 p H) multiply-adds plus one (B, H, n, n) write, against O(B n^2 k^2 2p H) and a (B, 2p, n, n)
input for ``"straightforward"``. The two agree to float precision (``tests/test_tabert_cnn.py``). Pair
dropout differs: the straightforward form drops table cells element-wise (the reference), the factored
form drops elements of the word vectors x (each word's mask is shared by its row and its column).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.encoder import WordEncoder
from lightning_modules.tabert_cnn.config import TabERTCNNConfig


class TableCNN(nn.Module):
    """Word vectors ``(B, n, d)`` and word mask ``(B, n)`` -> cell logits ``(B, out_channels, n, n)``:
    R relation labels (paper mode) or K types (span mode)."""

    def __init__(self, input_dim: int, config: TabERTCNNConfig, out_channels: int):
        super().__init__()
        if out_channels < 1:
            raise ValueError(f"out_channels={out_channels}: must be >= 1")
        self.config = config
        self.out_channels = out_channels
        p = config.pair_dim or input_dim
        self.project = nn.Linear(input_dim, p) if config.pair_dim else nn.Identity()
        self.pair_dropout = nn.Dropout(config.dropout)
        k, h = config.kernel, config.channels
        sizes = [2 * p] + [h] * (config.layers - 1) + [out_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(sizes[n], sizes[n + 1], k, padding=k // 2) for n in range(config.layers)
        )
        self.conv_dropout = nn.Dropout2d(config.conv_dropout)
        if isinstance(self.project, nn.Linear):
            nn.init.normal_(self.project.weight, std=0.02)  # BERT's Linear init (spec B3)
            nn.init.zeros_(self.project.bias)

    def forward(
        self, words: torch.Tensor, word_mask: torch.Tensor, first_layer: str | None = None
    ) -> torch.Tensor:
        x = self.project(words)  # (B, n, p)
        # masks and bias in the activations' dtype (bf16 under autocast): an fp32 factor would promote
        # every (B, H, n, n) activation after it to fp32, twice the memory
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        x, v = x.to(dtype), word_mask.to(dtype)  # (B, n, p), (B, n)
        cell_mask = (v[:, :, None] * v[:, None, :])[:, None]  # (B, 1, n, n)
        if (first_layer or self.config.first_layer) == "factored":
            y = self.factored_first_conv(self.pair_dropout(x), v)
        else:
            y = self.convs[0](self.pair_dropout(pair_table(x, v)))
        for conv in self.convs[1:]:
            if torch.is_grad_enabled():
                y = self.conv_dropout(F.relu(y)) * cell_mask
            else:  # evaluation: in place, so that one (B, H, n, n) activation is alive, not three
                y = self.conv_dropout(F.relu_(y)).mul_(cell_mask)
            y = conv(y)
        return y

    def eval_activation_bytes(self, sentences: int, words: int, element_bytes: int) -> int:
        """Estimated peak of the table's activations in one forward without autograd (where the hidden
        layers run in place): the widest convolution's input, the copy of it that the convolution
        library may make in its own layout (oneDNN's blocked formats, cuDNN's workspace) and its
        output, each (B, channels, n, n); for ``first_layer="straightforward"`` also the (B, 2p, n, n)
        pair table."""
        config = self.config
        p = self.convs[0].in_channels // 2
        h, out = config.channels, self.out_channels
        widest = 2 * h + (h if config.layers > 2 else out)
        if config.first_layer == "straightforward":
            widest = max(widest, 4 * p + h)
        return sentences * words * words * widest * element_bytes

    def factored_first_conv(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``convs[0](pair_table(x, v))`` as a row term plus a column term (module docstring)."""
        conv = self.convs[0]
        b, n, p = x.shape
        k = conv.kernel_size[0]
        r = k // 2
        xv = x * v[:, :, None]  # (B, n, p)
        w_row, w_col = conv.weight[:, :p], conv.weight[:, p:]  # (H, p, k, k) each
        rows = torch.einsum("bmd,hdac->bmach", xv, w_row)  # (B, n, k, k, H): W_r[a, c] xv_m
        cols = torch.einsum("bmd,hdac->bmach", xv, w_col)
        rows = F.pad(rows, (0, 0, 0, 0, 0, 0, r, r))  # zero rows outside the grid: (B, n + 2r, k, k, H)
        cols = F.pad(cols, (0, 0, 0, 0, 0, 0, r, r))
        # S[b, i, c] = sum_a rows[b, i + a - r, a, c];  T[b, j, a] = sum_c cols[b, j + c - r, a, c]
        s = sum(rows[:, a : a + n, a] for a in range(k))  # (B, n, k(c), H)
        t = sum(cols[:, c : c + n, :, c] for c in range(k))  # (B, n, k(a), H)
        vpad = F.pad(v, (r, r))  # (B, n + 2r)
        shifted = torch.stack([vpad[:, a : a + n] for a in range(k)], dim=-1)  # (B, n, k): v_{i+a-r}
        h = s.shape[-1]
        # one batched product over the 2k terms: left (B, H, n, 2k) @ right (B, H, 2k, n)
        left = torch.cat([s, shifted[..., None].expand(-1, -1, -1, h)], dim=2).permute(0, 3, 1, 2)
        right = torch.cat([shifted[..., None].expand(-1, -1, -1, h), t], dim=2).permute(0, 3, 2, 1)
        product = torch.matmul(left, right)  # (B, H, n, n)
        return product.add_(conv.bias.to(product.dtype)[None, :, None, None])


def pair_table(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(B, n, p)`` word vectors -> ``(B, 2p, n, n)`` cells ``[x_i ; x_j] * v_i * v_j``."""
    b, n, p = x.shape
    cells = torch.cat([x[:, :, None, :].expand(b, n, n, p), x[:, None, :, :].expand(b, n, n, p)], dim=-1)
    cells = cells * (v[:, :, None] * v[:, None, :])[..., None]
    return cells.permute(0, 3, 1, 2).contiguous()


class TabERTCNNNetwork(nn.Module):
    """The shared encoder, the table CNN and (paper mode) the entity head on the diagonal.

    ``forward(batch)`` returns ``(cell_logits (B, C_out, n, n), entity_logits (B, n, E) or None)``.
    """

    def __init__(
        self,
        encoder: WordEncoder,
        config: TabERTCNNConfig,
        out_channels: int,
        num_entity_labels: int | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.table = TableCNN(encoder.hidden_size, config, out_channels)
        self.entity_head = nn.Linear(out_channels, num_entity_labels) if num_entity_labels else None
        if self.entity_head is not None:
            nn.init.normal_(self.entity_head.weight, std=0.02)
            nn.init.zeros_(self.entity_head.bias)

    def words(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Word vectors ``(B, n, d)`` and the word mask ``(B, n)`` of a batch."""
        num_slots = batch["word_mask"].shape[1]  # Q = n + 2: CLS, the words, SEP
        slots = self.encoder(batch["input_ids"], batch["attention_mask"], batch["word_index"], num_slots)
        words = slots[:, 1 : num_slots - 1]
        mask = batch["word_mask"][:, 2:]  # slot q + 1 valid <=> word q exists (SEP shifts the mask by 2)
        return words, mask

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        words, mask = self.words(batch)
        logits = self.table(words, mask)  # (B, C_out, n, n)
        if self.entity_head is None:
            return logits, None
        diagonal = torch.diagonal(logits, dim1=2, dim2=3).transpose(1, 2)  # (B, n, C_out)
        return logits, self.entity_head(diagonal)
