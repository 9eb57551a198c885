"""bf16 autocast, the GPU's training precision, checked on CPU (PyTorch has bf16 autocast there too).

The SRU-NER head computes in fp32 whoever calls it: under autocast it gives bit-for-bit the fp32 result,
for both loops; TabERT-CNN's (B, H, n, n) activations stay in bf16 instead of being promoted to fp32.
"""

from __future__ import annotations

import pytest
import torch
from sru_heads import paired_heads, random_batch

from lightning_modules.sru_ner.fused import fused_teacher_forcing
from lightning_modules.tabert_cnn.config import TabERTCNNConfig
from lightning_modules.tabert_cnn.network import TableCNN
from losses import multi_hot_bce


def _loss_and_grads(head, slots, word_mask, gold, other, *, autocast: bool):
    slots = slots.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = head(slots, word_mask, gold, other)
        loss = multi_hot_bce(out.logits, out.targets, out.row_mask)
    # as Lightning does it: backward outside the autocast region
    grads = torch.autograd.grad(loss, [slots, *head.parameters()], allow_unused=True)
    return out, loss, grads


@pytest.mark.parametrize("loop", ["autograd", "fused"])
@pytest.mark.parametrize("multi", [False, True], ids=["one-corpus", "multi-corpus"])
def test_the_sru_head_under_bf16_autocast_is_exactly_the_fp32_head(loop: str, multi: bool) -> None:
    plain, fused = paired_heads()
    head = fused if loop == "fused" else plain
    batch = random_batch(multi)
    want_out, want_loss, want_grads = _loss_and_grads(head, *batch, autocast=False)
    got_out, got_loss, got_grads = _loss_and_grads(head, *batch, autocast=True)
    assert got_out.logits.dtype == torch.float32
    assert torch.equal(got_out.logits, want_out.logits) and torch.equal(got_out.targets, want_out.targets)
    assert torch.equal(got_loss, want_loss)
    for got, want in zip(got_grads, want_grads, strict=True):
        assert (got is None and want is None) or torch.equal(got, want)

    # bf16 slots (an encoder under autocast): the head still runs in fp32; the gradient comes back in bf16
    slots, *rest = batch
    out, _, grads = _loss_and_grads(head, slots.bfloat16(), *rest, autocast=True)
    reference = head(slots.bfloat16().float(), *rest)
    assert out.logits.dtype == torch.float32 and torch.equal(out.logits, reference.logits)
    assert grads[0].dtype == torch.bfloat16


def test_the_fused_function_called_directly_under_autocast_computes_in_fp32() -> None:
    _, head = paired_heads()
    slots, word_mask, gold, other = random_batch(True)

    def run():
        return fused_teacher_forcing(
            head.weights(), head.read_params, head.cfg, head.workspace, slots, word_mask, gold, other, 4,
            training=head.training,
        )  # fmt: skip

    want_logits, want_targets, _ = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, targets, _ = run()
    assert logits.dtype == torch.float32
    assert torch.equal(logits, want_logits) and torch.equal(targets, want_targets)


def test_the_sru_generation_under_bf16_autocast_is_exactly_the_fp32_generation() -> None:
    plain, fused = paired_heads()
    slots, word_mask, _, _ = random_batch(False)
    for head in (plain.eval(), fused.eval()):
        want = head.generate(slots, word_mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = head.generate(slots, word_mask)
        assert torch.equal(got, want)


@pytest.mark.parametrize("first_layer", ["factored", "straightforward"])
@pytest.mark.parametrize("pair_dim", [8, 0], ids=["projected", "encoder-width"])
def test_tabert_cnn_cell_activations_stay_bf16_under_autocast(first_layer: str, pair_dim: int) -> None:
    torch.manual_seed(0)
    config = TabERTCNNConfig(pair_dim=pair_dim, channels=6, layers=3, first_layer=first_layer)
    net = TableCNN(16, config, out_channels=3).eval()
    inputs: list[torch.dtype] = []
    for conv in net.convs:  # the factored path computes convs[0] itself: its output feeds convs[1]
        conv.register_forward_pre_hook(lambda module, args: inputs.append(args[0].dtype))
    words = torch.randn(2, 7, 16)
    word_mask = torch.arange(7)[None] < torch.tensor([[7], [4]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(words, word_mask)
    assert logits.dtype == torch.bfloat16
    assert inputs and all(dtype == torch.bfloat16 for dtype in inputs), inputs
    with torch.no_grad():  # and the same function: close to the fp32 network (bf16 rounding only)
        torch.testing.assert_close(logits.float(), net(words, word_mask), rtol=0.05, atol=0.05)


def test_ieee_fp32_matmuls_lifts_tf32_on_cuda_only_and_restores_it() -> None:
    from lightning_modules.precision import ieee_fp32_matmuls

    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # as train.py: TF32 on Ampere and later
        with ieee_fp32_matmuls(torch.device("cuda")):  # only flags: no GPU needed
            assert torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.get_float32_matmul_precision() == "high"
        with ieee_fp32_matmuls(torch.device("cpu")):
            assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(previous)


def test_the_sru_head_forward_and_generation_run_without_tf32(monkeypatch) -> None:
    from lightning_modules.sru_ner import network

    seen = []

    class Recording:
        def __init__(self, device):
            self.device = device

        def __enter__(self):
            seen.append(("in", self.device.type))

        def __exit__(self, *exc):
            seen.append(("out", self.device.type))

    monkeypatch.setattr(network, "ieee_fp32_matmuls", Recording)
    _, head = paired_heads()
    slots, word_mask, gold, other = random_batch(True)
    head(slots, word_mask, gold, other)
    head.eval()
    with torch.no_grad():
        head.generate(slots, word_mask)
    assert seen == [("in", "cpu"), ("out", "cpu")] * 2
