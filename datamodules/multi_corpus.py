"""LightningDataModule over several corpora: cached tokenization, the 1/K sampler, per-corpus eval loaders.

Batch contract (``Collator``), B sentences, L subwords, Q = max(num_words) + 2 word slots:

==================  ==========  ===================================================================
``input_ids``       (B, L) long  CLS + subwords + SEP, right-padded with the tokenizer's pad id
``attention_mask``  (B, L) long  1 on real subwords
``word_index``      (B, L) long  slot of each subword: CLS -> 0, word i (0-based) -> i + 1,
                                 SEP -> num_words + 1, padding -> Q (a dump slot the encoder discards,
                                 so pooling needs Q + 1 slots)
``num_words``       (B,) long
``word_mask``       (B, Q) bool  slots 0 .. num_words + 1 are valid (CLS and SEP included)
``corpus_id``       (B,) long    index into ``label_space.corpora``
``spans``           list of B (S_b, 3) long tensors: word start, word end (exclusive), global type id
``sentence_index``  (B,) long    index of the sentence in its corpus split
``chunk``           (B,) long    chunk number of a split sentence (0 otherwise)
``unreachable``     list of B (U_b,) long tensors: type ids of gold mentions cut by a hard split
                                 (dev/test only; the metrics count them as false negatives)
``relations``       list of B (R_b, 3) long tensors: head and tail (indices into the sentence's
                                 ``spans`` rows) and the global relation type id
==================  ==========  ===================================================================

then ``batch_transform(batch)`` when given (runs inside the collate, so in the loader workers).

Batch size: ``batch_size`` (``data.batch_size``) is the global batch, the number of training sentences
per optimiser step over all ranks and all gradient-accumulation micro-batches. Each process loads
micro-batches of ``micro_batch_size(world_size, accumulate_grad_batches)`` = ``batch_size / (world_size x
accumulate_grad_batches)`` sentences; a ``batch_size`` that does not divide is a ``ConfigError``
(``check_batch_split``, called right after the Trainer is built). Steps per epoch, and hence warmup and
decay, are then the same on any number of processes. ``eval_batch_size`` stays per process.

Distributed use: set ``Trainer(use_distributed_sampler=False)``. The training sampler is rank-aware;
eval loaders are sharded without padding (rank r evaluates rows r::world_size of each corpus), so every
dev/test sentence is seen exactly once over all ranks: metric states must be sum-reduced.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pyarrow.compute as pc
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import ConcatDataset, DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from datamodules.cache import load_or_tokenize
from datamodules.catalog import CorpusSpec
from datamodules.corpora import label_space_of_specs, resolve_all, split_path, split_source
from datamodules.eval_batches import DEFAULT_EVAL_MEMORY_MB, BatchCost, budget_batches
from datamodules.label_space import LabelSpace
from datamodules.rows import FEATURES, TokenizationReport, Unsplittable
from datamodules.sampler import InverseSizeSampler
from datamodules.splitting import MAX_SUBWORDS
from errors import BionerError, ConfigError
from untrusted import pretrained

BATCH_COLUMNS = [
    "input_ids", "word_ids", "num_words", "spans", "sentence_index", "chunk", "unreachable", "relations",
]  # fmt: skip


class CorpusRows(TorchDataset):
    """The rows of one tokenized split (only the columns a batch needs), tagged with the corpus id."""

    def __init__(self, rows: Any, corpus_id: int) -> None:
        # (N,) subwords per row, read from the Arrow column without decoding rows
        self.lengths = pc.list_value_length(rows.data.column("input_ids")).to_numpy(zero_copy_only=False)
        self.num_words = rows.data.column("num_words").to_numpy()  # (N,) words per row
        self.rows = rows.select_columns(BATCH_COLUMNS).with_format("numpy")
        self.corpus_id = corpus_id

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = dict(self.rows[int(i)])
        row["corpus_id"] = self.corpus_id
        return row


class Collator:
    """Rows -> the batch dict of the module docstring. Picklable (loader workers)."""

    def __init__(self, pad_id: int, batch_transform: Callable[[dict], dict] | None = None) -> None:
        self.pad_id = int(pad_id)
        self.batch_transform = batch_transform

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        b = len(rows)
        lengths = np.fromiter((len(r["input_ids"]) for r in rows), dtype=np.int64, count=b)  # (B,)
        num_words = np.fromiter((int(r["num_words"]) for r in rows), dtype=np.int64, count=b)  # (B,)
        width = int(lengths.max())
        q = int(num_words.max()) + 2
        positions = np.arange(width)  # (L,)
        real = positions[None, :] < lengths[:, None]  # (B, L)
        input_ids = np.full((b, width), self.pad_id, dtype=np.int64)
        input_ids[real] = np.concatenate([r["input_ids"] for r in rows])  # row-major fill = row order
        word_ids = np.full((b, width), -1, dtype=np.int64)
        word_ids[real] = np.concatenate([r["word_ids"] for r in rows])
        word_index = word_ids + 1  # words -> i + 1, specials -> 0
        trailing = real & (word_ids < 0) & (positions[None, :] > 0)  # SEP (specials after CLS)
        word_index = np.where(trailing, (num_words + 1)[:, None], word_index)
        word_index[~real] = q
        batch: dict[str, Any] = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "word_index": torch.from_numpy(word_index),
            "num_words": torch.from_numpy(num_words),
            "word_mask": torch.from_numpy(np.arange(q)[None, :] < (num_words + 2)[:, None]),
            "corpus_id": torch.tensor([int(r["corpus_id"]) for r in rows], dtype=torch.long),
            "spans": [torch.as_tensor(np.asarray(r["spans"], dtype=np.int64)).view(-1, 3) for r in rows],
            "sentence_index": torch.tensor([int(r["sentence_index"]) for r in rows], dtype=torch.long),
            "chunk": torch.tensor([int(r["chunk"]) for r in rows], dtype=torch.long),
            "unreachable": [torch.as_tensor(np.asarray(r["unreachable"], dtype=np.int64)) for r in rows],
            "relations": [
                torch.as_tensor(np.asarray(r["relations"], dtype=np.int64)).view(-1, 3) for r in rows
            ],
        }
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        return batch


_STAGE_SPLITS = {
    "fit": ("train", "dev"),
    "validate": ("dev",),
    "test": ("test",),
    "predict": ("test",),
    None: ("train", "dev", "test"),
}


class MultiCorpusDataModule(pl.LightningDataModule):
    def __init__(
        self,
        corpora: Sequence[str | CorpusSpec],
        data_root: str | os.PathLike,
        tokenizer_name_or_path: str | os.PathLike,
        reading: str = "full",
        max_subwords: int = MAX_SUBWORDS,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        eval_memory_mb: float | None = None,
        num_workers: int = 0,
        samples_per_epoch: int | None = None,
        weighting: str = "inverse_size",
        seed: int = 0,
        cache_dir: str | os.PathLike | None = ".cache/bioner",
        val_subsample: int | None = None,
        batch_transform: Callable[[dict], dict] | None = None,
        sort_eval_by_length: bool = True,
        label_space: LabelSpace | None = None,
        fold: int | None = None,
    ) -> None:
        super().__init__()
        if not corpora:
            raise BionerError("MultiCorpusDataModule needs at least one corpus")
        # the ``data.corpora`` entries (registered names or user corpus paths), resolved once here: corpus
        # name -> spec. An unknown name -> MissingCorpusError listing the registered corpora
        self.specs: dict[str, CorpusSpec] = {spec.name: spec for spec in resolve_all(corpora)}
        self.corpora = tuple(self.specs)
        self.data_root = Path(data_root)
        self.tokenizer_name_or_path = str(tokenizer_name_or_path)
        self.reading = reading
        self.max_subwords = int(max_subwords)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        # evaluation batches stay within this estimate of activation memory when a model's estimate is
        # given (``eval_cost``: (sentences, words, subwords) -> bytes, set like ``batch_transform``)
        self.eval_memory_mb = eval_memory_mb
        self.eval_cost: BatchCost | None = None
        self.num_workers = int(num_workers)
        self.samples_per_epoch = samples_per_epoch
        self.weighting = weighting
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.val_subsample = val_subsample
        self.batch_transform = batch_transform
        self.sort_eval_by_length = sort_eval_by_length
        self.fold = fold  # cross-validation fold of the corpora that have folds (ADE)
        if label_space is not None and label_space.corpora != tuple(sorted(self.corpora)):
            raise ValueError(f"label space corpora {label_space.corpora} differ from {sorted(self.corpora)}")
        self.label_space = (
            label_space if label_space is not None else label_space_of_specs(self.specs.values())
        )
        self._tokenizer: Any = None
        # split -> corpus -> datasets.Dataset (rows of datamodules.rows.FEATURES)
        self.datasets: dict[str, dict[str, Any]] = {}
        self.reports: dict[tuple[str, str], TokenizationReport] = {}
        self.sampler: InverseSizeSampler | None = None

    # --- basics ---------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        cfg: Any,
        batch_transform: Callable[[dict], dict] | None = None,
        label_space: LabelSpace | None = None,
        specs: Sequence[CorpusSpec] | None = None,
    ) -> MultiCorpusDataModule:
        """From a run config (``configs.schema.RunCfg``, as a DictConfig or a plain dict). Without
        ``label_space`` the data module builds it from the specs it resolved (``datamodule.label_space``);
        a given one must have the same corpora. ``specs``: ``data.corpora`` already resolved (by
        ``configs.validation.check_config``), so that nothing is resolved twice."""
        data = cfg["data"]
        return cls(
            corpora=list(specs) if specs is not None else list(data["corpora"]),
            data_root=data["root"],
            tokenizer_name_or_path=cfg["encoder"]["name"],
            reading=data["reading"],
            max_subwords=data["max_subwords"],
            batch_size=data["batch_size"],
            eval_batch_size=data["eval_batch_size"],
            eval_memory_mb=data.get("eval_memory_mb", DEFAULT_EVAL_MEMORY_MB),
            num_workers=data["num_workers"],
            samples_per_epoch=data["samples_per_epoch"],
            weighting=data["weighting"],
            seed=cfg["seed"],
            cache_dir=data["cache_dir"],
            val_subsample=data["val_subsample"],
            batch_transform=batch_transform,
            label_space=label_space,
            fold=data.get("fold"),
        )

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = pretrained(AutoTokenizer.from_pretrained, self.tokenizer_name_or_path)
            if not getattr(self._tokenizer, "is_fast", False):
                raise BionerError(f"{self.tokenizer_name_or_path}: a fast tokenizer (word_ids()) is needed")
        return self._tokenizer

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def loader_options(self) -> dict[str, Any]:
        """Worker and memory options of every loader: page-locked batches when the Trainer runs on CUDA (the
        ``non_blocking`` copies of ``transfer_batch_to_device`` overlap with compute only from pinned
        memory), and workers kept between epochs when there are any, so that each validation over the
        corpora's dev loaders does not start ``corpora x num_workers`` processes again. Workers only read
        and collate rows (the sampler and every random draw stay in the main process), so keeping them
        changes no batch: exact resume holds."""
        trainer = getattr(self, "trainer", None)
        on_cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return {
            "num_workers": self.num_workers,
            "pin_memory": on_cuda,
            "persistent_workers": self.num_workers > 0,
        }

    def _is_rank_zero(self) -> bool:
        # before a trainer is attached, the rank the launcher set (RANK, LOCAL_RANK, SLURM_PROCID, ...)
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank if trainer is not None else rank_zero_only.rank) == 0

    @property
    def dropped(self) -> list[tuple[str, str, Unsplittable]]:
        """Sentences left out (too long to split without cutting a mention): (corpus, split, info)."""
        return [(c, s, u) for (c, s), r in self.reports.items() for u in r.dropped]

    def summary(self) -> str:
        lines = [r.summary() for _, r in sorted(self.reports.items())]
        total = len(self.dropped)
        cut = sum(r.cut_mentions for r in self.reports.values())
        lines.append(f"dropped sentences: {total}; mentions cut by hard splits: {cut}")
        return "\n".join(lines)

    def check_files(self) -> None:
        """Every split of every corpus is a readable file; else a one-line error naming it (and, for a
        missing corpus, the command that fetches it). Run before training, not when a split is needed."""
        for corpus, spec in self.specs.items():
            for split in spec.fold_splits(self.fold_of(corpus)):
                path = split_path(spec, self.data_root, split, self.fold_of(corpus))
                try:
                    with open(path, "rb") as fh:
                        fh.read(1)
                except OSError as err:
                    raise BionerError(
                        f"{path}: cannot read corpus {corpus} ({split}): {err.strerror}"
                    ) from None

    def fold_of(self, corpus: str) -> int | None:
        """``fold`` for a corpus with cross-validation folds, None for the others."""
        return self.fold if self.specs[corpus].folds else None

    # --- loading --------------------------------------------------------------------------------
    def _load_split(self, corpus: str, split: str) -> Any:
        spec = self.specs[corpus]
        # the file found once (MissingCorpusError with the fetch command); read only on a cache miss
        source = split_source(
            spec, self.data_root, split, reading=self.reading, fold=self.fold_of(corpus), absent_ok=True
        )
        if source is None:  # e.g. ADE has no dev split: an empty set keeps loader indices
            from datasets import Dataset

            self.reports[(corpus, split)] = TokenizationReport(corpus, split, self.max_subwords)
            return Dataset.from_dict({k: [] for k in FEATURES}, features=FEATURES)
        rows, report = load_or_tokenize(
            source.path,
            source.read,
            self.tokenizer,
            self.label_space,
            corpus=corpus,
            split=split,
            reading=self.reading,
            max_subwords=self.max_subwords,
            cache_dir=self.cache_dir,
            scheme=spec.scheme,
            progress=self._is_rank_zero(),
        )
        self.reports[(corpus, split)] = report
        return rows

    def setup(self, stage: str | None = None) -> None:
        for split in _STAGE_SPLITS.get(stage, ("train", "dev", "test")):
            if split in self.datasets:
                continue
            self.datasets[split] = {c: self._load_split(c, split) for c in self.label_space.corpora}

    def _rows(self, split: str) -> list[CorpusRows]:
        if split not in self.datasets:
            self.setup({"train": "fit", "dev": "validate", "test": "test"}[split])
        ls = self.label_space
        return [CorpusRows(self.datasets[split][c], ls.corpus_index[c]) for c in ls.corpora]

    def training_rows(self) -> dict[str, Any]:
        """The training split's rows per corpus (``corpus -> datasets.Dataset`` of ``rows.FEATURES``),
        loading the ``fit`` stage on first use; e.g. for a model's class counts."""
        if "train" not in self.datasets:
            self.setup("fit")
        return self.datasets["train"]

    # --- the global batch -----------------------------------------------------------------------
    def micro_batch_size(self, world_size: int = 1, accumulate_grad_batches: int = 1) -> int:
        """Training sentences per loader batch on each process: the global ``batch_size`` split over
        ``world_size`` processes x ``accumulate_grad_batches`` micro-batches. ``ConfigError`` (one line)
        when it does not divide."""
        split = int(world_size) * int(accumulate_grad_batches)
        if split < 1 or self.batch_size < 1 or self.batch_size % split:
            raise ConfigError(
                f"data.batch_size={self.batch_size} (sentences per optimiser step over all processes) does "
                f"not split over {world_size} processes x {accumulate_grad_batches} accumulation "
                f"micro-batches = {split}: set data.batch_size to a multiple of {split}"
            )
        return self.batch_size // split

    def check_batch_split(self, world_size: int, accumulate_grad_batches: int) -> None:
        """Raise the ``ConfigError`` of ``micro_batch_size`` now (before training starts) when the global
        batch does not split over the Trainer's ``world_size`` x ``accumulate_grad_batches``."""
        self.micro_batch_size(world_size, accumulate_grad_batches)

    def train_steps_per_epoch(self, world_size: int = 1, accumulate_grad_batches: int = 1) -> int:
        """Optimiser steps in one training epoch, ``ceil(epoch length / batch_size)`` (loads the train
        split): the same for every world size and accumulation, which are only checked to split the batch.

        Exact for the loaders: each rank draws ``ceil(N / W)`` sentences (``InverseSizeSampler``) in
        ``ceil(ceil(N / W) / m)`` micro-batches of ``m = B / (W A)``, and Lightning steps after every ``A``
        of them and after the last: ``ceil(ceil(ceil(N / W) / m) / A) = ceil(N / (W m A)) = ceil(N / B)``
        (``ceil(ceil(x) / k) = ceil(x / k)`` for a whole ``k``)."""
        self.micro_batch_size(world_size, accumulate_grad_batches)
        if "train" not in self.datasets:
            self.setup("fit")
        sizes = [len(self.datasets["train"][c]) for c in self.label_space.corpora]
        epoch = InverseSizeSampler.epoch_length(sizes, self.samples_per_epoch)
        return max(1, math.ceil(epoch / self.batch_size))

    # --- loaders --------------------------------------------------------------------------------
    def collator(self) -> Collator:
        pad = self.tokenizer.pad_token_id
        return Collator(0 if pad is None else pad, self.batch_transform)

    def train_dataloader(self) -> StatefulDataLoader:
        """Micro-batches of ``micro_batch_size`` for the attached Trainer's world size and accumulation
        (1 and 1 without a Trainer); rank r loads positions r::world_size of the epoch's global stream."""
        parts = self._rows("train")
        rank, world = self._rank_world()
        trainer = getattr(self, "trainer", None)
        accumulate = int(trainer.accumulate_grad_batches) if trainer is not None else 1
        micro = self.micro_batch_size(world, accumulate)
        self.sampler = InverseSizeSampler(
            [len(p) for p in parts],
            num_samples=self.samples_per_epoch,
            weighting=self.weighting,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )
        return StatefulDataLoader(
            ConcatDataset(parts),
            batch_size=micro,
            sampler=self.sampler,
            **self.loader_options(),
            collate_fn=self.collator(),
            generator=self._loader_generator(),
        )

    def _loader_generator(self) -> torch.Generator:
        # A loader iterator draws its base seed from this generator; without one it would draw from the
        # global RNG, so creating an iterator (e.g. after a resume) would shift every later dropout mask.
        return torch.Generator().manual_seed(self.seed)

    def eval_order(self, rows: CorpusRows, *, subsample: int | None = None) -> list[int]:
        """Row order of one eval loader on this rank: optional seeded subsample, length-sorted (longest
        first, stable), then rows r::world_size. Rows carry ``sentence_index``/``chunk``, so the corpus
        order is restorable."""
        order = np.arange(len(rows))
        if subsample is not None and subsample < len(rows):
            g = torch.Generator().manual_seed(self.seed)
            order = np.sort(torch.randperm(len(rows), generator=g)[:subsample].numpy())
        if self.sort_eval_by_length:
            order = order[np.argsort(-rows.lengths[order], kind="stable")]
        rank, world = self._rank_world()
        return order[rank::world].tolist()

    def eval_batches(self, rows: CorpusRows, *, subsample: int | None = None) -> list[list[int]]:
        """This rank's evaluation batches of ``rows``: ``eval_order`` cut by ``eval_batch_size`` and, with a
        model's ``eval_cost``, by ``eval_memory_mb`` (``datamodules.eval_batches``)."""
        budget = None if self.eval_memory_mb is None else float(self.eval_memory_mb) * 2**20
        return budget_batches(
            self.eval_order(rows, subsample=subsample),
            rows.num_words,
            rows.lengths,
            max_sentences=self.eval_batch_size,
            cost=self.eval_cost,
            budget_bytes=budget,
        )

    def _eval_loaders(self, split: str, subsample: int | None) -> list[DataLoader]:
        collate = self.collator()
        return [
            DataLoader(
                rows,
                batch_sampler=self.eval_batches(rows, subsample=subsample),
                **self.loader_options(),
                collate_fn=collate,
                generator=self._loader_generator(),
            )
            for rows in self._rows(split)
        ]

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per corpus in ``label_space.corpora`` order: dataloader_idx == corpus index."""
        return self._eval_loaders("dev", self.val_subsample)

    def dev_dataloaders(self, subsample: int | None) -> list[DataLoader]:
        """One loader per corpus over a seeded subsample of at most ``subsample`` dev sentences (None:
        all), as validation's; for tuning decisions on dev (``training/thresholds.py``)."""
        return self._eval_loaders("dev", subsample)

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test", None)
