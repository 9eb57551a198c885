"""The decomposed memory read equals the straightforward form of spec A3 (dropout off)."""

import torch

from lightning_modules.sru_ner.memory import DecomposedMemory, DenseMemory, SlotReadParameters


def _random_case(seed: int, batch=3, num_slots=9, hidden=16, latents=6, half_context=3, steps=14):
    g = torch.Generator().manual_seed(seed)
    params = SlotReadParameters(
        hidden, latents, half_context, token_multiplier=1.7, train_token_multiplier=True
    )
    with torch.no_grad():  # non-trivial values everywhere (the reference initialises L to zero)
        params.latents.normal_(generator=g)
        params.latent_diag.uniform_(0.5, 1.5, generator=g)
        params.output_diag.uniform_(0.5, 1.5, generator=g)
    params.double()
    slots = torch.randn(batch, num_slots, hidden, generator=g, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([num_slots - 2, 4, 2])[:batch]  # words per sentence; Q = max + 2
    word_mask = torch.arange(num_slots).unsqueeze(0) < (lengths + 2).unsqueeze(1)
    omegas = torch.randn(steps, batch, hidden, generator=g, dtype=torch.double, requires_grad=True)
    # a monotone pointer per sentence that runs past the last valid slot, as in lock-step batches
    moves = torch.randint(0, 2, (steps, batch), generator=g)
    pointers = (1 + moves.cumsum(0)).clamp(max=num_slots - 1)
    return params, slots, word_mask, omegas, pointers


def _run(memory_cls, params, slots, word_mask, omegas, pointers, **kwargs):
    memory = memory_cls(params, slots, word_mask, training=False, **kwargs)
    zero = torch.zeros(slots.shape[0], dtype=torch.long)
    memory.write(omegas[0], zero)  # the BOA write on the CLS slot
    outputs = [memory.read(zero)]
    for omega, pointer in zip(omegas[1:], pointers[1:]):
        memory.write(omega, pointer)
        outputs.append(memory.read(pointer))
    return torch.stack(outputs, 1)


def test_decomposed_read_equals_dense_read_forward_and_backward():
    for seed in range(3):
        params, slots, word_mask, omegas, pointers = _random_case(seed)
        dense = _run(DenseMemory, params, slots, word_mask, omegas, pointers)
        weights = torch.randn_like(dense)
        grads_dense = torch.autograd.grad((dense * weights).sum(), [slots, omegas, *params.parameters()])
        decomposed = _run(
            DecomposedMemory, params, slots, word_mask, omegas, pointers, max_writes=len(omegas)
        )
        grads_decomposed = torch.autograd.grad(
            (decomposed * weights).sum(), [slots, omegas, *params.parameters()]
        )
        torch.testing.assert_close(decomposed, dense, rtol=1e-5, atol=1e-5)
        for got, want in zip(grads_decomposed, grads_dense):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_read_is_not_trivial():
    """Guard against a vacuous comparison: writes and positions do change what is read."""
    params, slots, word_mask, omegas, pointers = _random_case(0)
    with_writes = _run(DecomposedMemory, params, slots, word_mask, omegas, pointers, max_writes=len(omegas))
    without = _run(DecomposedMemory, params, slots, word_mask, omegas * 0, pointers, max_writes=len(omegas))
    assert (with_writes - without).abs().max() > 1e-2
    assert (with_writes[:, 1:] - with_writes[:, :-1]).abs().max() > 1e-2


def test_relative_index_rows():
    params = SlotReadParameters(4, 2, half_context=2)
    word_mask = torch.tensor([[True] * 7 + [False]])
    idx = params.relative_index(torch.tensor([3]), word_mask)
    # centre 3, H = 2: CLS -> row 5; slots 1..5 (offsets -2..2) -> rows 0..4;
    # slot 6 is out of context -> 6; padding -> 7
    assert idx.tolist() == [[5, 0, 1, 2, 3, 4, 6, 7]]
