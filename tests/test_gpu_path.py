"""The GPU path: each model trains and predicts under bf16 autocast (on the CPU here, where PyTorch has
bf16 autocast too), and, on a machine with CUDA (skipped elsewhere; ``scripts/gpu_acceptance.sh`` runs
them), the fused SRU-NER loop against the autograd loop, generation, a 20-step bf16 training run of each
model and the head's host synchronisations under CUDA's sync-debug mode."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from sru_heads import GOLD_STEPS, paired_heads, random_batch
from tiny_models import collate_sentences, tiny_bert_config

from datamodules.corpora import label_space_of
from datamodules.sentence import Sentence, Span
from lightning_modules.registry import build_module
from losses import multi_hot_bce

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a GPU")
LABELS = label_space_of(["BC5CDR", "NCBI-disease"])
MODELS = {
    "sru_ner": {"name": "sru_ner"},
    "baseline": {"name": "baseline"},
    "tabert_cnn": {"name": "tabert_cnn", "mode": "span", "channels": 16, "pair_dim": 8},
}
SENTENCES = [
    Sentence(("the", "acid", "binds", "the", "receptor", "."), (Span(1, 2, "Chemical"),), "BC5CDR"),
    Sentence(("patients", "with", "cancer", "disease"), (Span(2, 4, "Disease"),), "NCBI-disease"),
    Sentence(("alpha", "kinase", "induced", "by", "acid"), (Span(4, 5, "Chemical"),), "BC5CDR"),
]


def _module_and_batch(model: str, tmp_path, device: str):
    torch.manual_seed(0)
    cfg = {"encoder": {"name": "tiny"}, "model": MODELS[model], "trainer": {"precision": "bf16-mixed"}}
    module = build_module(cfg, LABELS, tiny_bert_config().to_dict()).to(device)
    batch = collate_sentences(tmp_path, SENTENCES, LABELS, module.target_encoder())
    return module, module.transfer_batch_to_device(batch, torch.device(device), 0)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_model_trains_and_predicts_under_cpu_bf16_autocast(model: str, tmp_path) -> None:
    module, batch = _module_and_batch(model, tmp_path, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module.training_loss(batch)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and len(grads) > 0
    assert all(torch.isfinite(g).all() for g in grads)
    module.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = module.predict(batch)
    assert len(prediction.spans) == len(SENTENCES)


# --- CUDA -------------------------------------------------------------------------------------------
def _cuda_run(head, slots, word_mask, gold, other):
    slots = slots.clone().requires_grad_(True)
    out = head(slots, word_mask, gold, other)
    g = torch.Generator().manual_seed(5)
    weights = torch.randn(out.logits.shape, generator=g).to(slots.device)  # no gradient cancels by symmetry
    loss = multi_hot_bce(out.logits, out.targets, out.row_mask)
    loss = loss + (out.logits * weights * out.row_mask[..., None]).sum()
    grads = torch.autograd.grad(loss, [slots, *head.parameters()], allow_unused=True)
    return out, loss, grads


def _on_cuda(batch):
    return tuple(t.cuda() if t is not None else None for t in batch)


@needs_cuda
@pytest.mark.parametrize("multi", [False, True], ids=["one-corpus", "multi-corpus"])
def test_cuda_fused_loop_equals_autograd_loop(multi: bool) -> None:
    plain, fused = (head.cuda() for head in paired_heads())
    batch = _on_cuda(random_batch(multi))
    out_p, loss_p, grads_p = _cuda_run(plain, *batch)
    out_f, loss_f, grads_f = _cuda_run(fused, *batch)
    if multi:
        assert out_p.logits.shape[1] > GOLD_STEPS
    assert torch.equal(out_f.row_mask, out_p.row_mask)
    torch.testing.assert_close(out_f.logits, out_p.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_f.targets, out_p.targets, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-5)
    names = ["slots", *(name for name, _ in plain.named_parameters())]
    for name, got, want in zip(names, grads_f, grads_p, strict=True):
        assert (got is None) == (want is None), name
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@needs_cuda
def test_cuda_fused_generation_equals_autograd_generation() -> None:
    from lightning_modules.sru_ner.codec import EOA

    plain, fused = (head.cuda() for head in paired_heads())
    for head in (plain, fused):
        with torch.no_grad():
            head.weights().b2[EOA] = -4.0  # no early stop: many reads and writes are compared
        head.eval()
    slots, word_mask, _, _ = _on_cuda(random_batch(False))
    with torch.no_grad():
        expected = plain.generate(slots, word_mask)
        torch.testing.assert_close(fused.generate(slots, word_mask), expected)
    assert expected.shape[1] >= 10


@needs_cuda
@pytest.mark.parametrize("model", sorted(MODELS))
def test_cuda_bf16_training_of_each_model_has_a_finite_decreasing_loss(model: str, tmp_path) -> None:
    module, batch = _module_and_batch(model, tmp_path, "cuda")
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = module.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    values = torch.stack(losses).float().cpu().tolist()  # one host read, after the run
    assert all(math.isfinite(v) for v in values)
    assert sum(values[-5:]) < sum(values[:5]), values


@needs_cuda
def test_cuda_head_synchronises_only_where_designed() -> None:
    """One-corpus training step (forward and backward): no synchronisation at all. Multi-corpus forward
    and generation: at most one per ``sync_every`` steps (the stop checks), and nothing else."""
    _, fused = paired_heads()
    fused.cuda()
    every = fused.cfg.sync_every
    slots, word_mask, gold, other = _on_cuda(random_batch(True))
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = fused(slots.clone().requires_grad_(True), word_mask, gold, None)
        multi_hot_bce(out.logits, out.targets, out.row_mask).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")

    def synchronisations(run) -> tuple[int, object]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = run()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught), result

    count, out = synchronisations(lambda: fused(slots, word_mask, gold, other))
    assert count <= (out.logits.shape[1] - GOLD_STEPS) // every + 2
    fused.eval()
    with torch.no_grad():
        count, probs = synchronisations(lambda: fused.generate(slots, word_mask))
    assert count <= probs.shape[1] // every + 2
