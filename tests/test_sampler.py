"""InverseSizeSampler: 1/K corpus shares, epoch length, rank sharding, exact mid-epoch resume."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from datamodules.sampler import InverseSizeSampler

REAL_TRAIN_SIZES = [12574, 30682, 4560, 16807, 11935, 5424]  # BC2GM BC4CHEMD BC5CDR JNLPBA Linnaeus NCBI


def test_each_corpus_gets_one_kth_of_the_draws():
    sampler = InverseSizeSampler(REAL_TRAIN_SIZES, num_samples=60_000, seed=3)
    draws = torch.tensor(list(sampler))
    assert len(draws) == 60_000
    shares = torch.bincount(sampler.corpus_of(draws), minlength=6).double() / len(draws)
    assert torch.all((shares - 1 / 6).abs() < 0.01), shares  # within 1 percentage point
    # uniform within a corpus: every draw is inside its corpus, and the large corpus is widely covered
    ends = torch.cumsum(torch.tensor(REAL_TRAIN_SIZES), 0)
    assert draws.min() >= 0 and draws.max() < ends[-1]
    in_bc4 = draws[sampler.corpus_of(draws) == 1] - ends[0]
    assert in_bc4.float().mean().item() == pytest.approx(REAL_TRAIN_SIZES[1] / 2, rel=0.03)


def test_proportional_weighting_is_uniform_over_sentences():
    sampler = InverseSizeSampler(REAL_TRAIN_SIZES, num_samples=60_000, weighting="proportional")
    shares = torch.bincount(sampler.corpus_of(sampler.global_stream()), minlength=6).double() / 60_000
    expected = torch.tensor(REAL_TRAIN_SIZES, dtype=torch.double) / sum(REAL_TRAIN_SIZES)
    assert torch.all((shares - expected).abs() < 0.01)


def test_epoch_length_is_mean_train_size():
    sampler = InverseSizeSampler(REAL_TRAIN_SIZES)
    assert len(sampler) == sum(REAL_TRAIN_SIZES) // 6 == 13663
    assert len(list(sampler)) == 13663
    two = InverseSizeSampler(REAL_TRAIN_SIZES, rank=1, world_size=2)
    assert len(two) == 6832  # ceil(13663 / 2): the global stream is rounded up to a multiple of 2


def test_ranks_partition_the_single_process_stream():
    kw = dict(num_samples=1000, seed=7)
    single = InverseSizeSampler(REAL_TRAIN_SIZES, **kw)
    ranks = [InverseSizeSampler(REAL_TRAIN_SIZES, rank=r, world_size=2, **kw) for r in range(2)]
    for s in (single, *ranks):
        s.set_epoch(4)
    streams = [list(r) for r in ranks]
    assert len(streams[0]) == len(streams[1]) == 500
    # disjoint position sets r::2 whose union (interleaved) is exactly the world_size=1 stream
    merged = [None] * 1000
    merged[0::2], merged[1::2] = streams
    assert merged == list(single)


def test_order_is_a_function_of_seed_and_epoch():
    a, b, c = (InverseSizeSampler(REAL_TRAIN_SIZES, num_samples=500, seed=s) for s in (1, 1, 2))
    assert list(a) == list(b)
    assert list(a) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


def test_set_epoch_resets_only_on_change_and_state_round_trips():
    s = InverseSizeSampler([10, 20], num_samples=12)
    it = iter(s)
    first = [next(it) for _ in range(5)]
    assert s.state_dict() == {"epoch": 0, "yielded": 5}
    s.set_epoch(0)  # Lightning calls it again after restoring: no reset
    assert s.state_dict()["yielded"] == 5
    fresh = InverseSizeSampler([10, 20], num_samples=12)
    fresh.load_state_dict(s.state_dict())
    rest = list(it)
    assert list(fresh) == rest  # resumes where the first left off
    full = list(InverseSizeSampler([10, 20], num_samples=12))
    assert first + rest == full
    assert list(fresh) == full  # an exhausted epoch iterated again restarts from its beginning
    fresh.set_epoch(1)
    assert fresh.state_dict() == {"epoch": 1, "yielded": 0}


class _Indices(Dataset):
    def __len__(self) -> int:
        return 77

    def __getitem__(self, i: int) -> int:
        return i


def _loader(num_workers: int) -> StatefulDataLoader:
    sampler = InverseSizeSampler([50, 20, 7], num_samples=62, seed=5)
    return StatefulDataLoader(_Indices(), batch_size=4, sampler=sampler, num_workers=num_workers)


def _epoch(loader: StatefulDataLoader, epoch: int) -> list[list[int]]:
    loader.sampler.set_epoch(epoch)
    return [b.tolist() for b in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_dataloader_resumes_mid_epoch_exactly(num_workers):
    reference = _loader(num_workers)
    expected = [_epoch(reference, 0), _epoch(reference, 1)]
    assert len(expected[0]) == 16 and expected[0] != expected[1]

    interrupted = _loader(num_workers)
    interrupted.sampler.set_epoch(0)
    it = iter(interrupted)
    seen = [next(it).tolist() for _ in range(6)]
    state = interrupted.state_dict()
    del it

    resumed = _loader(num_workers)  # fresh loader, fresh sampler
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(0)  # as Lightning does after restoring: same epoch, no reset
    rest = [b.tolist() for b in resumed]
    assert seen + rest == expected[0]
    assert _epoch(resumed, 1) == expected[1]


def test_single_corpus_is_a_shuffle_without_replacement():
    sampler = InverseSizeSampler([50], num_samples=120, seed=3)
    stream = sampler.global_stream(0)
    assert len(stream) == 120
    for start in (0, 50):  # each full pass is a permutation of the corpus
        assert sorted(stream[start : start + 50].tolist()) == list(range(50))
    assert len(set(stream[100:].tolist())) == 20  # the cut last pass has no repeats either
    assert stream[:50].tolist() != list(range(50))  # shuffled
    assert not torch.equal(sampler.global_stream(1), stream)  # a new order every epoch
    ranks = [InverseSizeSampler([50], num_samples=100, rank=r, world_size=2, seed=3) for r in (0, 1)]
    assert sorted(ranks[0].rank_stream(0).tolist() + ranks[1].rank_stream(0).tolist()) == sorted(
        InverseSizeSampler([50], num_samples=100, seed=3).global_stream(0).tolist()
    )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_state_saved_at_the_end_of_an_epoch_continues_with_the_next_epoch(num_workers):
    """A loader iterator built from an exhausted epoch's state (workers prefetch at once) draws the next
    epoch's order, as the uninterrupted loader does after set_epoch(1)."""
    reference = _loader(num_workers)
    expected = [_epoch(reference, 0), _epoch(reference, 1)]

    interrupted = _loader(num_workers)
    interrupted.sampler.set_epoch(0)
    it = iter(interrupted)
    assert [next(it).tolist() for _ in range(16)] == expected[0]
    state = interrupted.state_dict()
    del it

    resumed = _loader(num_workers)
    resumed.load_state_dict(state)
    it = iter(resumed)  # before set_epoch, as Lightning builds it while restoring (loads the state)
    assert resumed.sampler.epoch == 1  # (workers may already have drawn from it)
    resumed.sampler.set_epoch(1)
    assert [b.tolist() for b in it] == expected[1]
