"""The data module: the cache across setups, per-corpus loaders, missing corpora, mid-epoch resume of
the loader, unreadable and concurrent cache entries, training rows and the label space, loader options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_corpora import TRAIN_BC5, make_dm, sent, write_tsv

from datamodules import cache, corpora
from datamodules.cache import load_or_tokenize
from datamodules.corpora import label_space_of, label_space_of_specs
from datamodules.multi_corpus import MultiCorpusDataModule
from datamodules.readers import ReadResult
from errors import MissingCorpusError


class CountingTokenize:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.real = cache.tokenize_corpus

    def __call__(self, sentences, tokenizer, label_space, corpus, max_subwords=405, *, split="train", **kw):
        self.calls.append((corpus, split))
        return self.real(sentences, tokenizer, label_space, corpus, max_subwords, split=split, **kw)


def test_cache_second_setup_does_no_tokenization_and_invalidates(
    data_root, tokenizer_dir, tmp_path, monkeypatch
):
    counter = CountingTokenize()
    monkeypatch.setattr(cache, "tokenize_corpus", counter)
    dm = make_dm(data_root, tokenizer_dir, tmp_path)
    dm.setup("fit")
    expected = [("BC5CDR", "dev"), ("BC5CDR", "train"), ("NCBI-disease", "dev"), ("NCBI-disease", "train")]
    assert sorted(counter.calls) == expected
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "BC5CDR").iterdir()) == ["dev", "train"]

    def no_read(*a, **k):
        raise AssertionError("corpus parsed on a cache hit")

    counter.calls.clear()
    monkeypatch.setattr(corpora, "read_corpus_file", no_read)
    again = make_dm(data_root, tokenizer_dir, tmp_path)
    again.setup("fit")
    assert counter.calls == []  # second construction: nothing read, nothing tokenized
    for split in ("train", "dev"):
        for c in ("BC5CDR", "NCBI-disease"):
            assert again.datasets[split][c].to_dict() == dm.datasets[split][c].to_dict()
    assert again.summary() == dm.summary()
    assert [(c, s, u.index) for c, s, u in again.dropped] == [("BC5CDR", "train", 3)]
    assert "dropped sentences: 1" in again.summary()

    monkeypatch.undo()
    monkeypatch.setattr(cache, "tokenize_corpus", counter)
    write_tsv(data_root / "BC5CDR" / "train.tsv", TRAIN_BC5 + [[("a", "O")]])  # the file changes
    changed = make_dm(data_root, tokenizer_dir, tmp_path)
    changed.setup("fit")
    assert counter.calls == [("BC5CDR", "train")]
    assert len(changed.datasets["train"]["BC5CDR"]) == len(dm.datasets["train"]["BC5CDR"]) + 1


def test_eval_loaders_are_per_corpus_in_label_space_order(data_root, tokenizer_dir, tmp_path):
    dm = make_dm(data_root, tokenizer_dir, tmp_path)
    assert dm.label_space.corpora == ("BC5CDR", "NCBI-disease")
    dm.setup("validate")
    dm.setup("test")
    for loaders, sizes in ((dm.val_dataloader(), [3, 2]), (dm.test_dataloader(), [3, 2])):
        assert len(loaders) == 2
        for corpus_id, (loader, n) in enumerate(zip(loaders, sizes)):
            batches = list(loader)
            assert all(torch.all(b["corpus_id"] == corpus_id) for b in batches)
            seen = sorted(i for b in batches for i in b["sentence_index"].tolist())
            assert seen == list(range(n))  # every sentence once, order restorable from sentence_index
            lengths = [b["attention_mask"].sum(1) for b in batches]
            flat = torch.cat(lengths).tolist()
            assert flat == sorted(flat, reverse=True)  # length-sorted for efficiency
    sub = make_dm(data_root, tokenizer_dir, tmp_path, val_subsample=2, seed=3)
    picked = [b["sentence_index"].tolist() for b in sub.val_dataloader()[0]]
    other = make_dm(data_root, tokenizer_dir, tmp_path, val_subsample=2, seed=3)
    again = [b["sentence_index"].tolist() for b in other.val_dataloader()[0]]
    assert sum(len(p) for p in picked) == 2 and picked == again


def test_missing_corpus_names_the_fetch_command(tmp_path, tokenizer_dir):
    dm = MultiCorpusDataModule(["BC5CDR"], tmp_path / "nowhere", tokenizer_dir, cache_dir=tmp_path / "c")
    with pytest.raises(MissingCorpusError, match="datamodules.prepare"):
        dm.setup("fit")


def _take(loader, it, n):
    return [next(it) for _ in range(n)]


def _key(batch) -> tuple:
    return (batch["input_ids"].tolist(), batch["corpus_id"].tolist(), batch["sentence_index"].tolist())


class AddLength:  # a picklable batch_transform, as a model would pass
    def __call__(self, batch: dict) -> dict:
        batch["length"] = batch["attention_mask"].sum(1)
        return batch


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_resumes_mid_epoch_in_a_fresh_datamodule(
    data_root, tokenizer_dir, tmp_path, num_workers
):
    kw = dict(samples_per_epoch=30, seed=11, num_workers=num_workers, batch_transform=AddLength())
    reference = make_dm(data_root, tokenizer_dir, tmp_path, **kw)
    loader = reference.train_dataloader()
    assert len(loader) == 8  # ceil(30 / 4)
    expected = [_key(b) for b in loader]
    assert len({c for k in expected for c in k[1]}) == 2  # batches mix both corpora

    interrupted = make_dm(data_root, tokenizer_dir, tmp_path, **kw)
    loader = interrupted.train_dataloader()
    it = iter(loader)
    first = [_key(b) for b in _take(loader, it, 3)]
    state = loader.state_dict()
    del it

    resumed = make_dm(data_root, tokenizer_dir, tmp_path, **kw)
    fresh = resumed.train_dataloader()
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(0)
    rest = list(fresh)
    assert first + [_key(b) for b in rest] == expected
    assert all(torch.equal(b["length"], b["attention_mask"].sum(1)) for b in rest)
    assert resumed.sampler.state_dict() == {"epoch": 0, "yielded": 30}


def _truncate_an_arrow_file(entry: Path) -> Path:
    (arrow,) = entry.glob("*.arrow")
    data = arrow.read_bytes()
    arrow.write_bytes(data[: len(data) // 2])
    return arrow


def test_an_unreadable_cache_entry_is_named_rebuilt_and_the_run_goes_on(
    data_root, tokenizer_dir, tmp_path, capsys
):
    first = make_dm(data_root, tokenizer_dir, tmp_path)
    first.setup("fit")
    expected = {c: first.datasets["train"][c].to_dict() for c in first.corpora}
    (entry,) = (tmp_path / "cache" / "BC5CDR").glob("train-*")
    _truncate_an_arrow_file(entry)
    capsys.readouterr()

    again = make_dm(data_root, tokenizer_dir, tmp_path, samples_per_epoch=8)
    again.setup("fit")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(entry) in warnings[0] and "rebuilding it" in warnings[0], warnings
    assert {c: again.datasets["train"][c].to_dict() for c in again.corpora} == expected
    assert again.summary() == first.summary()
    assert sum(len(b["corpus_id"]) for b in again.train_dataloader()) == 8  # the run goes on
    leftovers = [p.name for p in entry.parent.iterdir() if p.name.startswith((".tmp-", ".broken-"))]
    assert leftovers == []  # no temporary or broken copies beside the entries

    third = make_dm(data_root, tokenizer_dir, tmp_path)
    third.setup("fit")  # the rebuilt entry is a plain cache hit
    assert "warning:" not in capsys.readouterr().err
    assert third.datasets["train"]["BC5CDR"].to_dict() == expected["BC5CDR"]


def test_concurrent_rebuilds_of_one_entry_warn_once_and_agree(tokenizer, tmp_path, capsys):
    from concurrent.futures import ThreadPoolExecutor

    ls = label_space_of(["BC5CDR"])
    f = tmp_path / "train.tsv"
    f.write_text("whatever\tO\n")
    sentences = [sent("the cancer", [(1, 2, "Disease")]), sent("aspirin induced hypertension")] * 50
    kw = dict(corpus="BC5CDR", split="train", cache_dir=tmp_path / "cache")

    def read():
        return ReadResult(sentences, None)

    original, _ = load_or_tokenize(f, read, tokenizer, ls, **kw)
    expected = original.to_dict()
    (entry,) = (tmp_path / "cache" / "BC5CDR").glob("train-*")
    _truncate_an_arrow_file(entry)
    capsys.readouterr()
    with ThreadPoolExecutor(3) as pool:  # as DDP ranks sharing the cache directory would
        results = list(
            pool.map(
                lambda _: load_or_tokenize(f, lambda: ReadResult(sentences, None), tokenizer, ls, **kw)[0],
                range(3),
            )
        )
    assert all(rows.to_dict() == expected for rows in results)
    assert capsys.readouterr().err.count("warning:") == 1


def test_training_rows_load_the_fit_stage_and_the_label_space_comes_from_the_resolved_specs(
    data_root, tokenizer_dir, tmp_path
):
    cfg = {
        "seed": 0,
        "encoder": {"name": str(tokenizer_dir)},
        "data": {
            "corpora": ["NCBI-disease", "BC5CDR"], "root": str(data_root), "reading": "full",
            "max_subwords": 10, "batch_size": 4, "eval_batch_size": 2, "num_workers": 0,
            "samples_per_epoch": None, "weighting": "inverse_size", "cache_dir": str(tmp_path / "cache"),
            "val_subsample": None,
        },
    }  # fmt: skip
    dm = MultiCorpusDataModule.from_config(cfg)
    assert dm.label_space == label_space_of(["BC5CDR", "NCBI-disease"])
    assert dm.label_space == label_space_of_specs(dm.specs.values())
    rows = dm.training_rows()
    assert rows is dm.datasets["train"] and set(rows) == {"BC5CDR", "NCBI-disease"}
    assert len(rows["BC5CDR"]) == 4  # 5 sentences, one too long to split without cutting a mention
    assert "dev" in dm.datasets  # the whole fit stage


class _Trainer:
    """What the data module reads of a Trainer, on one process of the given device type."""

    def __init__(self, device: str):
        self.strategy = type("Strategy", (), {"root_device": torch.device(device)})()
        self.global_rank, self.world_size, self.accumulate_grad_batches = 0, 1, 1


@pytest.mark.parametrize(("device", "num_workers"), [("cpu", 0), ("cpu", 2), ("cuda", 0), ("cuda", 2)])
def test_loaders_pin_memory_on_cuda_and_keep_their_workers(
    data_root, tokenizer_dir, tmp_path, device, num_workers
):
    dm = make_dm(data_root, tokenizer_dir, tmp_path, num_workers=num_workers)
    dm.trainer = _Trainer(device)
    dm.setup("fit")
    dm.setup("test")
    for loader in [dm.train_dataloader(), *dm.val_dataloader(), *dm.test_dataloader()]:
        assert loader.pin_memory is (device == "cuda")
        assert loader.persistent_workers is (num_workers > 0)
        assert loader.num_workers == num_workers
