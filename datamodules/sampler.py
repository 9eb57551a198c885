"""Multi-corpus sampler: P(corpus) = 1/K, uniform within a corpus, with replacement (spec A6).

The order of one epoch is a pure function of ``(seed, epoch)``, the same for every world size: one
global stream of exactly ``num_samples`` draws is generated in one vectorised call, padded to a multiple
of ``world_size`` by wrapping around to its start, and rank ``r`` takes positions ``r::world_size``. So
positions ``s*B .. (s+1)*B - 1`` of the stream are the ``B`` sentences of optimiser step ``s`` on any
number of ranks (``B`` = ``data.batch_size``, the global batch; ``datamodules.multi_corpus``).
The state is ``{"epoch", "yielded"}`` (per-rank count, identical on every rank), so a
``torchdata.stateful_dataloader.StatefulDataLoader`` built over this sampler resumes mid-epoch
bit-for-bit, with or without workers (see ``shared/spec/platform.md``, "Exact resume").
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

WEIGHTINGS = ("inverse_size", "proportional")


class InverseSizeSampler(Sampler[int]):
    """Indices into the concatenation of corpora of sizes ``sizes`` (corpus offset + index within it).

    ``weighting="inverse_size"``: P(corpus k) = 1/K over non-empty corpora (each sentence has weight
    ``1/|D_k|``); ``"proportional"``: P(corpus k) ∝ |D_k|, i.e. uniform over all sentences.
    ``num_samples`` is the length of one epoch summed over ranks (default: mean corpus size, floored);
    ``len(sampler)`` is the per-rank count ``ceil(num_samples / world_size)``.

    With a single corpus the stream is a shuffle without replacement instead (successive seeded
    permutations), so a single-corpus epoch of ``len(corpus)`` draws sees every sentence once.

    ``__iter__`` resumes from ``yielded`` (so loading a state and iterating continues mid-epoch); an
    exhausted epoch restarts from its beginning when iterated again without ``set_epoch``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        num_samples: int | None = None,
        weighting: str = "inverse_size",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not sizes:
            raise ValueError("InverseSizeSampler needs at least one corpus")
        if any(int(s) < 0 for s in sizes):
            raise ValueError(f"corpus sizes must be >= 0, got {list(sizes)}")
        if sum(sizes) == 0:
            raise ValueError("every corpus is empty: nothing to sample")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad rank/world_size: {rank}/{world_size}")
        self.sizes = torch.tensor([int(s) for s in sizes], dtype=torch.long)  # (K,)
        self.offsets = torch.cumsum(self.sizes, 0) - self.sizes  # (K,) first global index of each corpus
        self.num_samples = self.epoch_length(sizes, num_samples)
        self.weighting = weighting
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.per_rank = self.samples_per_rank(sizes, num_samples, self.world_size)
        self.total = self.per_rank * self.world_size  # global stream length
        nonempty = (self.sizes > 0).double()
        if weighting == "inverse_size":
            self.weights = nonempty / nonempty.sum()  # (K,)
        else:
            self.weights = self.sizes.double() / self.sizes.sum()
        self.epoch = 0
        self.yielded = 0

    @staticmethod
    def epoch_length(sizes: Sequence[int], num_samples: int | None = None) -> int:
        """Draws in one epoch over all ranks: ``num_samples``, default the mean corpus size (floored)."""
        if num_samples is None:
            num_samples = sum(int(s) for s in sizes) // len(sizes)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        return int(num_samples)

    @classmethod
    def samples_per_rank(cls, sizes: Sequence[int], num_samples: int | None, world_size: int) -> int:
        """``len(sampler)`` on each of ``world_size`` ranks."""
        return math.ceil(cls.epoch_length(sizes, num_samples) / world_size)

    # --- the stream ---------------------------------------------------------------------------
    def _generator(self, epoch: int) -> torch.Generator:
        # SeedSequence mixes (seed, epoch) into a well-spread 63-bit seed; no two pairs collide in practice.
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, dtype=np.uint32)
        g = torch.Generator()
        g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
        return g

    def global_stream(self, epoch: int | None = None) -> torch.Tensor:
        """All ``total`` draws of an epoch, for every rank: (total,) long global indices.

        The first ``num_samples`` are drawn alone, so they do not depend on ``world_size`` (the generator
        is consumed the same way on any number of ranks); the ``total - num_samples < world_size`` padding
        positions repeat the stream from its start. With ``world_size=1`` there is no padding."""
        stream = self._draw(self.epoch if epoch is None else epoch)  # (num_samples,)
        if self.total == self.num_samples:
            return stream
        return stream.repeat(math.ceil(self.total / self.num_samples))[: self.total]

    def _draw(self, epoch: int) -> torch.Tensor:
        """The ``num_samples`` draws of an epoch: (num_samples,) long global indices."""
        g = self._generator(epoch)
        n = self.num_samples
        if len(self.sizes) == 1:  # one corpus: an ordinary shuffle, each sentence once per pass (A6)
            size = int(self.sizes[0])
            passes = [torch.randperm(size, generator=g) for _ in range(math.ceil(n / size))]
            return torch.cat(passes)[:n]
        corpus = torch.multinomial(self.weights, n, replacement=True, generator=g)  # (n,)
        u = torch.rand(n, generator=g, dtype=torch.float64)  # (n,) in [0, 1)
        size = self.sizes[corpus]
        within = torch.minimum((u * size).long(), size - 1)  # uniform in [0, size)
        return self.offsets[corpus] + within

    def rank_stream(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's draws of an epoch: (per_rank,) long."""
        return self.global_stream(epoch)[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        # A generator: the body (and so the read of `yielded`) runs at the first next(), i.e. after a
        # StatefulDataLoader has loaded its state into this sampler.
        if self.yielded >= self.per_rank:
            self.yielded = 0
        indices = self.rank_stream().tolist()
        for i in range(self.yielded, self.per_rank):
            self.yielded = i + 1
            yield indices[i]

    def __len__(self) -> int:
        return self.per_rank

    # --- epochs and state ---------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every epoch, and again after restoring: reset only on change."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self.yielded = 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        yielded = int(state_dict["yielded"])
        if yielded < 0:
            raise ValueError(f"negative 'yielded' in sampler state: {yielded}")
        self.epoch = int(state_dict["epoch"])
        self.yielded = yielded
        if self.yielded >= self.per_rank:
            # a finished epoch is the start of the next one: a loader iterator built from this state
            # (worker processes prefetch as soon as it exists) must draw the next epoch's order
            self.epoch += 1
            self.yielded = 0

    def corpus_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Corpus number of each global index (same shape as ``indices``)."""
        ends = torch.cumsum(self.sizes, 0)
        return torch.searchsorted(ends, indices, right=True)
