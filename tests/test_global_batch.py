"""``data.batch_size`` is the global batch (issue 18, part 2; ``docs/global_batch.md``).

- The sampler's global stream is the same on any number of ranks, and each optimiser step loads the same
  sentences whatever the world size and accumulation (fast, in-process).
- Steps per epoch and the learning rate at every step are the same on 1, 2 and 4 processes (fast, with a
  stub trainer), and in real 1- and 2-process runs (slow).
- For each model, dropout off (``tests/grad_capture`` puts the model in eval mode), fp32, the gradients
  right before the first optimiser step (slow, train.py subprocesses):
  1 process x 16 sentences == 2 processes x 8 (to 1e-5 relative); 1 process x 8 x accumulate 2 is the
  mean of the two micro-batch means, each computed by a run on that micro-batch alone, which for
  TabERT-CNN (normalised per sentence) is also the 16-sentence gradient; and the 16-sentence gradient
  is the count-weighted mean of the micro-batch gradients (the baseline's counts are its tagged words).
- A batch that does not split over processes x accumulation is a one-line error, exit 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from train_runner import run_train, tiny_encoder_dir, tiny_run_args

from configs.compose import ConfigError, compose
from datamodules.sampler import InverseSizeSampler

HOOK = Path(__file__).parent / "grad_capture"
CORPORA = "BC5CDR,NCBI-disease"
SAMPLES = 32  # data.samples_per_epoch: 2 optimiser steps of 16 per epoch
MODELS = {
    "baseline": ["model=baseline"],
    "sru_ner": ["model=sru_ner"],
    "tabert_cnn": ["model=tabert_cnn", "model.channels=16", "model.pair_dim=8"],
}
DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]


# --- the stream and the batches ----------------------------------------------------------------------
def _old_global_stream(sizes: list[int], num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The stream as InverseSizeSampler drew it for world_size=1 before the global batch (one call of
    num_samples draws): the documented default-run figures depend on it."""
    sampler = InverseSizeSampler(sizes, num_samples=num_samples, seed=seed)
    g = sampler._generator(epoch)
    if len(sizes) == 1:
        passes = [torch.randperm(sizes[0], generator=g) for _ in range(math.ceil(num_samples / sizes[0]))]
        return torch.cat(passes)[:num_samples]
    corpus = torch.multinomial(sampler.weights, num_samples, replacement=True, generator=g)
    u = torch.rand(num_samples, generator=g, dtype=torch.float64)
    size = sampler.sizes[corpus]
    return sampler.offsets[corpus] + torch.minimum((u * size).long(), size - 1)


@pytest.mark.parametrize("sizes", [[500, 80, 1200], [50]])
def test_the_global_stream_is_the_same_for_every_world_size(sizes):
    n = 37  # not a multiple of 2, 3 or 4
    single = InverseSizeSampler(sizes, num_samples=n, seed=5)
    for epoch in (0, 3):
        reference = single.global_stream(epoch)
        assert torch.equal(reference, _old_global_stream(sizes, n, 5, epoch))  # world size 1: unchanged
        for world in (1, 2, 3, 4):
            ranks = [
                InverseSizeSampler(sizes, num_samples=n, seed=5, rank=r, world_size=world)
                for r in range(world)
            ]
            stream = ranks[0].global_stream(epoch)
            assert len(stream) == math.ceil(n / world) * world
            assert torch.equal(stream[:n], reference), world
            assert torch.equal(stream[n:], reference[: len(stream) - n])  # padding wraps to the start
            merged = torch.empty_like(stream)
            for r, sampler in enumerate(ranks):
                merged[r::world] = sampler.rank_stream(epoch)
            assert torch.equal(merged, stream)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return tiny_encoder_dir(tmp_path_factory.mktemp("global_batch") / "tiny")


def _datamodule(encoder: Path, cache: Path, *extra: str):
    from datamodules.multi_corpus import MultiCorpusDataModule

    cfg = compose([f"encoder.name={encoder}", f"data.cache_dir={cache}", f"data.corpora=[{CORPORA}]", *extra])
    return cfg, MultiCorpusDataModule.from_config(cfg)


def _stub_trainer(world: int, accumulate: int = 1, rank: int = 0, **kw) -> SimpleNamespace:
    return SimpleNamespace(
        world_size=world,
        global_rank=rank,
        accumulate_grad_batches=accumulate,
        max_steps=-1,
        max_epochs=3,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        **kw,
    )


def test_each_optimizer_step_loads_the_same_sentences_on_any_world_size(encoder, tmp_path):
    """The loader batch is batch_size / (world x accumulation); the union over ranks of the micro-batches
    of step s is the step-s batch of one process (draws of the same stream)."""

    def steps(world: int, accumulate: int) -> list[list[int]]:
        per_rank = []
        for rank in range(world):
            _, data = _datamodule(encoder, tmp_path / "cache", "data.samples_per_epoch=99")
            data.trainer = _stub_trainer(world, accumulate, rank)
            loader = data.train_dataloader()
            assert loader.batch_size == 16 // (world * accumulate)
            order = list(loader.sampler)
            micro = [order[i : i + loader.batch_size] for i in range(0, len(order), loader.batch_size)]
            per_rank.append([sum(micro[i : i + accumulate], []) for i in range(0, len(micro), accumulate)])
        assert len({len(p) for p in per_rank}) == 1
        return [sorted(sum(step, [])) for step in zip(*per_rank)]

    one = steps(1, 1)
    assert len(one) == math.ceil(99 / 16) == 7
    for world, accumulate in [(2, 1), (4, 1), (1, 2), (2, 2), (4, 4)]:
        several = steps(world, accumulate)
        assert len(several) == 7
        assert several[:-1] == one[:-1], (world, accumulate)  # the last: 3 sentences (+ padding)
        assert set(one[-1]) <= set(several[-1])


def test_a_batch_that_does_not_split_is_a_one_line_config_error(encoder, tmp_path):
    _, data = _datamodule(encoder, tmp_path / "cache", "data.batch_size=15")
    assert data.micro_batch_size(1, 1) == 15 and data.micro_batch_size(3, 5) == 1
    with pytest.raises(ConfigError) as err:
        data.check_batch_split(2, 1)
    message = str(err.value)
    assert "\n" not in message
    assert "data.batch_size=15" in message and "2 processes x 1" in message
    assert message.endswith("set data.batch_size to a multiple of 2")
    with pytest.raises(ConfigError, match="multiple of 4"):
        data.micro_batch_size(2, 2)


def _learning_rates(plain, data, trainer) -> tuple[int, list[list[float]]]:
    from lightning_modules.registry import build_module
    from training.schedule import schedule_of

    schedule = schedule_of(data, trainer, plain["optim"]["total_steps"])
    module = build_module(plain, data.label_space, schedule=schedule)
    optimizers = module.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    steps_per_epoch, total = schedule.steps_per_epoch, schedule.total_steps
    rates = []
    for _ in range(total + 2):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()  # no gradients: nothing moves
        scheduler.step()
    return steps_per_epoch, rates


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_steps_per_epoch_and_every_learning_rate_are_the_same_on_1_2_and_4_processes(
    encoder, tmp_path, schedule
):
    from omegaconf import OmegaConf

    cfg, data = _datamodule(encoder, tmp_path / "cache", "model=baseline", f"optim.schedule={schedule}")
    plain = OmegaConf.to_container(cfg, resolve=True)
    seen = {}
    for world, accumulate in [(1, 1), (2, 1), (4, 1), (2, 2)]:
        seen[world, accumulate] = _learning_rates(plain, data, _stub_trainer(world, accumulate))
    steps_per_epoch, rates = seen[1, 1]
    assert steps_per_epoch == 1600 // 16  # data.samples_per_epoch / data.batch_size
    assert len(rates) == 3 * 100 + 2 and rates[0][0] == 0.0 and max(r[0] for r in rates) == cfg.encoder.lr
    for key, value in seen.items():
        assert value == (steps_per_epoch, rates), key


# --- real runs -----------------------------------------------------------------------------------------
def _run(tmp_path: Path, encoder: Path, name: str, *args: str, grad_steps: int = 1) -> Path:
    """train.py with the gradient-capture hook; returns its capture directory."""
    out = tmp_path / name
    base = tiny_run_args(tmp_path, out / "run", encoder, CORPORA)
    env = {
        "PYTHONPATH": str(HOOK),
        "BIONER_TEST_GRADS_DIR": str(out / "capture"),
        "BIONER_TEST_GRAD_STEPS": str(grad_steps),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        *base,
        f"data.samples_per_epoch={SAMPLES}",
        "trainer.precision=32-true",
        "test_after_fit=false",
    ]
    proc = run_train([*command, *args], tmp_path, timeout=600, extra_env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out / "capture"


def _load(capture: Path, name: str):
    return torch.load(capture / name, map_location="cpu", weights_only=False)


def _sentences(capture: Path, rank: int, step: int) -> list:
    return sorted(
        s for b in _load(capture, f"batches_rank{rank}.pt") if b["step"] == step for s in b["sentences"]
    )


def _assert_same_gradients(actual: dict, expected: dict, what: str) -> None:
    """Every parameter's gradient to 1e-5 relative; the absolute floor (1e-6 of the largest gradient
    entry of the run) covers gradients that are exactly zero in exact arithmetic (attention key biases)."""
    assert actual.keys() == expected.keys(), what
    atol = 1e-6 * max(float(g.abs().max()) for g in expected.values())
    for name, grad in expected.items():
        torch.testing.assert_close(
            actual[name], grad, rtol=1e-5, atol=atol, msg=lambda m, name=name: f"{what}, {name}: {m}"
        )


def _mix(w: float, first: dict, second: dict) -> dict:
    return {k: w * first[k] + (1 - w) * second[k] for k in first}


def _fitted_weight(target: dict, first: dict, second: dict) -> float:
    """The w that makes w * first + (1 - w) * second closest to target (least squares)."""
    num = sum(float(((target[k] - second[k]) * (first[k] - second[k])).sum()) for k in target)
    den = sum(float(((first[k] - second[k]) ** 2).sum()) for k in target)
    return num / den


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_one_global_batch_gives_the_same_gradient_on_1_or_2_processes_and_under_accumulation(model, tmp_path):
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    args = [*MODELS[model], "trainer.max_steps=-1", "trainer.max_epochs=2"]  # 2 x 2 steps, by epochs
    one = _run(tmp_path, encoder, "one", *args)  # (a) 1 process x 16
    two = _run(tmp_path, encoder, "two", *args, *DDP)  # (b) 2 processes x 8
    accumulated = _run(tmp_path, encoder, "accumulated", *args, "trainer.accumulate_grad_batches=2")  # (c)
    # each micro-batch of (c) alone: steps 0 and 1 of a batch-8 run whose weights cannot move (lr 1e-30)
    tiny_lr = ["encoder.lr=1e-30", "model.lr=1e-30"]
    alone = _run(
        tmp_path,
        encoder,
        "alone",
        *MODELS[model],
        "data.batch_size=8",
        "trainer.max_steps=2",
        *tiny_lr,
        grad_steps=2,
    )

    # the same 16 sentences in the first optimiser step of each run
    batch = _sentences(one, 0, 0)
    assert len(batch) == 16
    assert sorted(_sentences(two, 0, 0) + _sentences(two, 1, 0)) == batch
    assert _sentences(accumulated, 0, 0) == batch
    assert sorted(_sentences(alone, 0, 0) + _sentences(alone, 0, 1)) == batch
    # the same schedule: 4 steps, the same learning rates at each
    rates = _load(one, "lrs.pt")
    assert len(rates) == 2 * SAMPLES // 16
    assert _load(two, "lrs.pt") == rates and _load(accumulated, "lrs.pt") == rates

    # train/loss logs the mean over the global batch (on 2 processes too), each micro-batch's own mean
    # under accumulation, so the mean of the two equals the 16-sentence loss where the counts are equal
    loss16 = _load(one, "losses.pt")[0]
    assert _load(two, "losses.pt")[0] == pytest.approx(loss16, rel=1e-5)
    halves = _load(alone, "losses.pt")
    assert _load(accumulated, "losses.pt")[:2] == pytest.approx(halves, rel=1e-5)

    g16 = _load(one, "grads_step0.pt")
    _assert_same_gradients(_load(two, "grads_step0.pt"), g16, f"{model}: 2 processes x 8 vs 1 x 16")

    first, second = _load(alone, "grads_step0.pt"), _load(alone, "grads_step1.pt")
    g_acc = _load(accumulated, "grads_step0.pt")
    # accumulation: the mean of the micro-batch means (the rule of SpanNERModule)
    _assert_same_gradients(g_acc, _mix(0.5, first, second), f"{model}: accumulate 2 vs the micro-batch means")
    # one global batch: the count-weighted mean of the micro-batch means
    w = _fitted_weight(g16, first, second)
    _assert_same_gradients(g16, _mix(w, first, second), f"{model}: 16 sentences vs a mix of both halves")
    assert loss16 == pytest.approx(w * halves[0] + (1 - w) * halves[1], rel=1e-5)  # the same weights
    if model == "tabert_cnn":  # normalised per sentence: 8 and 8, so accumulation changes nothing
        assert w == pytest.approx(0.5, abs=1e-5)
        _assert_same_gradients(g_acc, g16, f"{model}: accumulate 2 vs 1 x 16")
    else:  # counts known after the forward pass: the halves' counts differ, and so do the two rules
        assert 0.0 < w < 1.0 and abs(w - 0.5) > 1e-3, w
        with pytest.raises(AssertionError):
            _assert_same_gradients(g_acc, g16, "")
    if model == "baseline":  # normalised per tagged word: the weight is the first half's share of them
        counts = [b["tagged_words"] for b in _load(alone, "batches_rank0.pt")[:2]]
        assert w == pytest.approx(counts[0] / sum(counts), abs=1e-5)


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_the_processes_exits_2_with_one_line(tmp_path):
    encoder = tiny_encoder_dir(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    args = [*tiny_run_args(tmp_path, run_dir, encoder, CORPORA), "model=baseline", "data.batch_size=15", *DDP]
    proc = run_train(
        [*args, "trainer.max_steps=1"], tmp_path, timeout=300, extra_env={"OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Initializing distributed" not in proc.stderr  # checked before the second process starts
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "data.batch_size=15" in errors[0] and "set data.batch_size to a multiple of 2" in errors[0]
    assert not list(run_dir.glob("checkpoints/*.ckpt"))  # found before anything was trained
