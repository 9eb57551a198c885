"""The fused SRU-NER loop (hand-written backward) equals the autograd loop, and reads nothing on the host.

The autograd loop (``loop=autograd``, ``DecomposedMemory``) is the reference: its gradients come from
autograd, and ``tests/test_sru_memory.py`` checks its read against the straightforward dense form of
spec A3. Here both loops run on the same weights and batches with dropout off (fp32, 1e-5).
"""

from __future__ import annotations

import dataclasses
import gc

import pytest
import torch
from sru_heads import GOLD_STEPS, paired_heads, random_batch

from lightning_modules.sru_ner import network as sru_network
from lightning_modules.sru_ner.codec import EOA, SHIFT
from lightning_modules.sru_ner.fused import FusedTeacherForcing, LoopInputs
from lightning_modules.sru_ner.network import SRUHead
from losses import multi_hot_bce


def _run(head: SRUHead, slots, word_mask, gold, other, soft_sh_offset=None):
    slots = slots.clone().requires_grad_(True)
    out = head(slots, word_mask, gold, other, None, soft_sh_offset)
    loss = multi_hot_bce(out.logits, out.targets, out.row_mask)
    # a second term that weights every logit differently, so no gradient can cancel by symmetry
    weights = torch.randn(out.logits.shape, generator=torch.Generator().manual_seed(5)).to(slots.dtype)
    loss = loss + (out.logits * weights * out.row_mask[..., None]).sum()
    grads = torch.autograd.grad(loss, [slots, *head.parameters()], allow_unused=True)
    return out, loss, grads


# The default Omega (softmax) in fp32 at 1e-5; the paper's unbounded variant (Omega from raw logits) grows
# fp32 rounding to ~1e-5 relative over the recurrence, so it is compared in fp64, where both are exact.
@pytest.mark.parametrize("multi", [False, True], ids=["one-corpus", "multi-corpus"])
@pytest.mark.parametrize(
    ("omega", "dtype", "tol"), [("softmax", torch.float32, 1e-5), ("logits", torch.float64, 1e-10)]
)
def test_fused_loop_equals_autograd_loop(multi: bool, omega: str, dtype: torch.dtype, tol: float) -> None:
    plain, fused = paired_heads(omega, dtype=dtype)
    batch = random_batch(multi, dtype=dtype)
    out_p, loss_p, grads_p = _run(plain, *batch)
    _run(fused, *random_batch(not multi, seed=7, dtype=dtype))  # the workspace's buffers hold another batch
    out_f, loss_f, grads_f = _run(fused, *batch)
    if multi:  # displaced SH rows: more steps than gold rows, so the soft-target path is exercised
        assert out_p.logits.shape[1] > GOLD_STEPS
    assert torch.equal(out_f.row_mask, out_p.row_mask)
    torch.testing.assert_close(out_f.logits, out_p.logits, rtol=tol, atol=tol)
    torch.testing.assert_close(out_f.targets, out_p.targets, rtol=1e-5, atol=1e-5)  # both built in fp32
    torch.testing.assert_close(loss_f, loss_p, rtol=tol, atol=tol)
    names = ["slots", *(name for name, _ in plain.named_parameters())]
    for name, got, want in zip(names, grads_f, grads_p, strict=True):
        assert (got is None) == (want is None), name
        if want is not None:
            assert want.abs().max() > 0, f"{name}: a zero gradient would make this comparison vacuous"
            torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("omega", ["softmax", "logits"])
@pytest.mark.parametrize("every", [1, 3])
def test_fused_generation_equals_autograd_generation(omega: str, every: int, monkeypatch) -> None:
    """``fused_generation`` against the step-by-step loop over ``DecomposedMemory``: without an early
    stop (many reads and writes compared) and with one, checked every step (CPU) or every 3 (GPU)."""
    monkeypatch.setattr(sru_network, "steps_between_checks", lambda cfg, device: every)
    for eoa_bias, long in ((-4.0, True), (3.0, False)):
        plain, fused = paired_heads(omega)
        for head in (plain, fused):
            with torch.no_grad():
                head.weights().b2[EOA] = eoa_bias
            head.eval()
        slots, word_mask, _, _ = random_batch(False)
        expected = plain.generate(slots, word_mask)
        assert (expected.shape[1] >= 10) == long
        torch.testing.assert_close(fused.generate(slots, word_mask), expected)


def test_with_dropout_the_fused_loop_follows_the_seed_and_its_masks_change_the_loss() -> None:
    """Same seed, same loss; another seed, other masks. (That the backward is right with dropout is
    ``test_backward_with_mlp_dropout_matches_finite_differences``.)"""
    _, fused = paired_heads(dropout=0.3)
    batch = random_batch(True)
    torch.manual_seed(3)
    first = _run(fused, *batch)[1]
    torch.manual_seed(3)
    again = _run(fused, *batch)[1]
    torch.manual_seed(4)
    other = _run(fused, *batch)[1]
    assert torch.isfinite(first) and first == again and first != other


def test_backward_with_mlp_dropout_matches_finite_differences() -> None:
    """The dropout factors of the MLP input enter the hand-written backward (the read half per step, the
    slot half and W1 at the end): checked against finite differences in fp64, one-corpus batch."""
    g = torch.Generator().manual_seed(11)
    batch, slots_n, hidden, actions, latents, half = 2, 6, 4, 6, 5, 2
    word_mask = torch.arange(slots_n)[None] < torch.tensor([[5], [4]])
    gold = torch.zeros(batch, 7, actions, dtype=torch.double)
    for b, rows in enumerate([[2, SHIFT, SHIFT, 3, SHIFT, SHIFT, EOA], [SHIFT, 4, SHIFT, EOA, 0, 0, 0]]):
        for t, col in enumerate(rows):
            gold[b, t, col] = 1.0 if (col != 0 or rows.index(EOA) == t) else 0.0
    keep = (torch.rand(7, batch, 2 * hidden, generator=g, dtype=torch.double) > 0.3).double() / 0.7
    run = LoopInputs(word_mask, gold, None, keep, 7, half, True, 1, 1.0)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.double).requires_grad_(True)

    inputs = (
        rand(batch, slots_n, hidden), rand(latents, hidden), rand(2 * half + 4, hidden), rand(()),
        rand(hidden), rand(actions, hidden), rand(2 * hidden, 2 * hidden), rand(2 * hidden),
        rand(actions, 2 * hidden), rand(actions), rand(hidden),
    )  # fmt: skip
    assert torch.autograd.gradcheck(lambda *x: FusedTeacherForcing.apply(*x, run)[0], inputs, atol=1e-6)


class _HostReads:
    """Counts reads of tensor values on the host (bool(), item(), int(), ...) while active."""

    METHODS = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__", "numpy")

    def __init__(self) -> None:
        self.count = 0
        self._saved: dict = {}

    def __enter__(self):
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def counting(tensor, *args, _original=original, **kwargs):
                self.count += 1
                return _original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, counting)
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)


@pytest.mark.parametrize("loop", ["fused", "autograd"])
def test_training_forward_reads_the_host_only_past_the_gold_rows(loop: str, monkeypatch) -> None:
    """As on a GPU (``sync_every`` = 4): no host read for one-corpus batches, and for multi-corpus
    batches one per ``sync_every`` steps past T_gold (and only there)."""
    monkeypatch.setattr(sru_network, "steps_between_checks", lambda cfg, device: cfg.sync_every)
    plain, fused = paired_heads()
    head = fused if loop == "fused" else plain
    head.cfg = dataclasses.replace(head.cfg, sync_every=4)
    slots, word_mask, gold, _ = random_batch(False)
    with _HostReads() as reads:
        out = head(slots, word_mask, gold, None)
    assert reads.count == 0 and out.logits.shape[1] == GOLD_STEPS
    slots, word_mask, gold, other = random_batch(True)
    with _HostReads() as reads:
        out = head(slots, word_mask, gold, other)
    past_gold = out.logits.shape[1] - GOLD_STEPS
    assert past_gold > 0 and reads.count == past_gold // 4 + 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_training_forward_does_not_synchronise_the_gpu_before_the_gold_rows() -> None:
    _, fused = paired_heads()
    fused.cuda()
    slots, word_mask, gold, _ = (t.cuda() if t is not None else None for t in random_batch(False))
    torch.cuda.set_sync_debug_mode("error")
    try:
        fused(slots, word_mask, gold, None)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_workspace_is_lent_to_one_step_at_a_time_and_a_second_backward_is_refused() -> None:
    plain, fused = paired_heads()
    slots, word_mask, gold, other = random_batch(True)
    other_slots = random_batch(True, seed=2)[0]
    out = fused(slots.requires_grad_(True), word_mask, gold, other)
    assert fused.workspace.lent
    overlapping = fused(other_slots.requires_grad_(True), word_mask, gold, other)  # gets its own buffers
    loss = out.logits.sum()
    loss.backward(retain_graph=True)
    assert not fused.workspace.lent
    with pytest.raises(RuntimeError, match="once per forward"):  # the workspace may be re-lent by now
        loss.backward()
    overlapping.logits.sum().backward()
    reference = other_slots.detach().clone().requires_grad_(True)
    plain(reference, word_mask, gold, other).logits.sum().backward()
    torch.testing.assert_close(other_slots.grad, reference.grad, rtol=1e-5, atol=1e-5)


def test_workspace_comes_back_without_a_backward() -> None:
    _, fused = paired_heads()
    slots, word_mask, gold, other = random_batch(True)
    out = fused(slots, word_mask, gold, other)
    assert fused.workspace.lent and not fused.workspace.lend()
    del out  # the graph is freed without a backward
    gc.collect()
    assert fused.workspace.lend()  # free again
    fused.workspace.give_back()
    with pytest.raises(RuntimeError):
        fused(slots, word_mask, gold[:, :, :3], other)  # a forward that fails inside the loop
    assert not fused.workspace.lent
    with torch.no_grad():
        fused(slots, word_mask, gold, other)
    assert not fused.workspace.lent  # no backward can come: never lent


def test_fused_loop_equals_autograd_loop_with_an_sh_margin() -> None:
    plain, fused = paired_heads()
    plain.cfg = dataclasses.replace(plain.cfg, sh_margin=0.2)
    fused.cfg = dataclasses.replace(fused.cfg, sh_margin=0.2)
    batch = random_batch(True)
    out_p, loss_p, grads_p = _run(plain, *batch)
    out_f, loss_f, grads_f = _run(fused, *batch)
    reference = _run(paired_heads()[0], *batch)[0]  # the same weights, margin 0
    assert out_p.logits.shape[1] > reference.logits.shape[1]  # the margin displaces more SH rows
    assert torch.equal(out_f.row_mask, out_p.row_mask)
    torch.testing.assert_close(out_f.logits, out_p.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_f.targets, out_p.targets, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads_f, grads_p, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fused_loop_equals_autograd_loop_with_a_soft_sh_target() -> None:
    plain, fused = paired_heads()
    batch = random_batch(True)
    offset = torch.linspace(-1.0, 2.0, batch[2].shape[-1])
    hard = _run(paired_heads()[0], *batch)[0]
    out_p, _, grads_p = _run(plain, *batch, soft_sh_offset=offset)
    out_f, _, grads_f = _run(fused, *batch, soft_sh_offset=offset)
    assert not torch.equal(out_p.targets, hard.targets)  # the soft target moved some SH cells
    assert torch.equal(out_f.row_mask, out_p.row_mask)
    torch.testing.assert_close(out_f.targets, out_p.targets, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads_f, grads_p, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
