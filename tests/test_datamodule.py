"""Tokenization (cap, splitting, empty words), the Arrow cache, the collate contract and the data module."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
import torch
from tiny_corpora import CLS, ID, PAD, SEP, TRAIN_BC5, UNK, make_dm, write_tsv

from datamodules import cache, corpora
from datamodules.cache import load_or_tokenize
from datamodules.corpora import label_space_of, label_space_of_specs
from datamodules.multi_corpus import Collator, CorpusRows, MultiCorpusDataModule
from datamodules.readers import ReadResult
from datamodules.rows import tokenize_corpus
from datamodules.sentence import Sentence, Span
from datamodules.splitting import split_long_sentence
from errors import MissingCorpusError


def sent(words: str, spans=(), corpus="BC5CDR") -> Sentence:
    return Sentence(tuple(words.split()), tuple(Span(*s) for s in spans), corpus, doc_id="d")


# --- collate -----------------------------------------------------------------------------------
def test_collate_two_sentences_by_hand(tokenizer):
    ls = label_space_of(["BC5CDR", "NCBI-disease"])  # BC5CDR/Chemical 0, /Disease 1, NCBI/Disease 2
    sentences = [
        sent("aspirin induced hypertension", [(0, 1, "Chemical"), (2, 3, "Disease")]),
        sent("the cancer", [(1, 2, "Disease")]),
    ]
    rows, report = tokenize_corpus(sentences, tokenizer, ls, "BC5CDR", split="dev")
    assert report.rows == 2 and not report.unsplittable
    a = ID
    assert rows[0]["input_ids"] == [CLS, a["asp"], a["##irin"], a["induced"], a["hyper"], a["##tension"], SEP]
    assert rows[0]["word_ids"] == [-1, 0, 0, 1, 2, 2, -1]
    assert rows[0]["spans"] == [0, 1, 0, 2, 3, 1]
    assert rows[1]["tokens"] == ["the", "cancer"] and rows[1]["num_words"] == 2

    def tag(batch: dict) -> dict:
        batch["extra"] = batch["num_words"] * 10
        return batch

    ds = CorpusRows(rows, corpus_id=0)
    batch = Collator(pad_id=PAD, batch_transform=tag)([ds[0], ds[1]])
    q = 5  # max num_words (3) + 2; slot 5 is the dump slot of padding
    assert torch.equal(
        batch["input_ids"],
        torch.tensor([[CLS, 17, 18, 12, 19, 20, SEP], [CLS, a["the"], a["cancer"], SEP, PAD, PAD, PAD]]),
    )
    assert torch.equal(batch["attention_mask"], torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]]))
    assert torch.equal(batch["word_index"], torch.tensor([[0, 1, 1, 2, 3, 3, 4], [0, 1, 2, 3, q, q, q]]))
    assert torch.equal(batch["num_words"], torch.tensor([3, 2]))
    assert torch.equal(batch["word_mask"], torch.tensor([[True] * 5, [True, True, True, True, False]]))
    assert torch.equal(batch["corpus_id"], torch.tensor([0, 0]))
    assert torch.equal(batch["sentence_index"], torch.tensor([0, 1]))
    assert torch.equal(batch["chunk"], torch.tensor([0, 0]))
    assert [s.tolist() for s in batch["spans"]] == [[[0, 1, 0], [2, 3, 1]], [[1, 2, 1]]]
    assert all(s.dtype == torch.long for s in batch["spans"])
    for key in ("input_ids", "attention_mask", "word_index", "num_words", "corpus_id"):
        assert batch[key].dtype == torch.long
    assert batch["word_mask"].dtype == torch.bool
    assert torch.equal(batch["extra"], torch.tensor([30, 20]))  # batch_transform applied


def test_collate_sentence_without_spans_gives_empty_span_tensor(tokenizer):
    ls = label_space_of(["BC5CDR"])
    rows, _ = tokenize_corpus([sent("the cancer")], tokenizer, ls, "BC5CDR")
    batch = Collator(PAD)([CorpusRows(rows, 0)[0]])
    assert batch["spans"][0].shape == (0, 3)


# --- splitting ---------------------------------------------------------------------------------
def _check_chunks(lengths, spans, cap, chunks):
    assert chunks[0][0] == 0 and chunks[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    assert all(sum(lengths[s:e]) <= cap for s, e in chunks)
    for s, e in spans:
        assert any(cs <= s and e <= ce for cs, ce in chunks), (s, e, chunks)


def test_split_long_sentence_hand_examples():
    assert split_long_sentence([1, 2, 3], [], 6) == [(0, 3)]  # fits
    # a 4-subword mention over words 1-2 is never cut: the chunk ends before it
    assert split_long_sentence([2, 2, 2, 2, 2], [(1, 3)], 5) == [(0, 1), (1, 3), (3, 5)]
    # overlapping mentions (0,2) and (1,4) form one block; greedy fills the rest
    assert split_long_sentence([1] * 6, [(0, 2), (1, 4)], 4) == [(0, 4), (4, 6)]
    # a mention starting inside another and ending later: no cut inside the union (0,3)
    assert split_long_sentence([1, 1, 1, 1, 1], [(0, 2), (1, 3)], 3) == [(0, 3), (3, 5)]
    assert split_long_sentence([3, 3], [(0, 2)], 5) is None  # the mention alone exceeds the budget
    assert split_long_sentence([6, 1], [], 5) is None  # one word exceeds the budget
    assert split_long_sentence([2, 2, 2, 2], [Span(2, 4, "X")], 4) == [(0, 2), (2, 4)]  # Span objects


def _fewest_chunks(lengths, spans, cap) -> int | None:
    """Brute-force oracle: the fewest chunks under ``cap`` with no mention cut (None if impossible)."""
    n = len(lengths)
    allowed = [b for b in range(n + 1) if not any(s < b < e for s, e in spans)]
    best = {0: 0}
    for b in allowed[1:]:
        options = [best[a] + 1 for a in best if a < b and sum(lengths[a:b]) <= cap]
        if options:
            best[b] = min(options)
    return best.get(n)


def test_split_long_sentence_random_cases_never_cut_a_mention():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 20)
        lengths = [rng.randint(1, 3) for _ in range(n)]
        spans = []
        for _ in range(rng.randint(0, 5)):
            s = rng.randrange(n)
            spans.append((s, rng.randint(s + 1, min(n, s + 4))))
        cap = rng.randint(3, 12)
        chunks = split_long_sentence(lengths, spans, cap)
        fewest = _fewest_chunks(lengths, spans, cap)
        if chunks is None:
            assert fewest is None
        else:
            _check_chunks(lengths, spans, cap, chunks)
            assert len(chunks) == fewest  # greedy packing of unbreakable blocks is optimal


def test_long_sentence_split_rebases_spans(tokenizer):
    ls = label_space_of(["BC5CDR"])
    # 8 words, 10 subwords: "aspirin" and "hypertension" have 2 each; cap 9 -> budget 7
    s = sent(
        "the aspirin in the patients with the hypertension",
        [(1, 2, "Chemical"), (6, 8, "Disease")],
    )
    rows, report = tokenize_corpus([s], tokenizer, ls, "BC5CDR", max_subwords=9)
    assert report.split_sentences == 1 and report.rows == 2 and not report.unsplittable
    assert rows["chunk"] == [0, 1] and rows["sentence_index"] == [0, 0]
    assert rows["tokens"] == [["the", "aspirin", "in", "the", "patients", "with"], ["the", "hypertension"]]
    assert rows["spans"] == [[1, 2, 0], [0, 2, 1]]  # the Disease mention starts at word 6: not cut
    assert rows["word_ids"][1] == [-1, 0, 1, 1, -1]
    assert all(len(x) <= 9 for x in rows["input_ids"])


def test_unsplittable_sentence_is_reported_not_lost(tokenizer, caplog):
    ls = label_space_of(["BC5CDR"])
    sentences = [
        sent("the cancer", [(1, 2, "Disease")]),
        # one 6-subword mention does not fit a budget of 5 (cap 7)
        sent("aspirin hypertension cisplatin and the", [(0, 3, "Chemical"), (4, 5, "Chemical")]),
    ]
    with caplog.at_level(logging.WARNING, logger="datamodules.rows"):
        rows, report = tokenize_corpus(sentences, tokenizer, ls, "BC5CDR", max_subwords=7, split="train")
    assert rows["sentence_index"] == [0]  # left out of training...
    assert len(report.dropped) == 1  # ...but counted: index, words, subwords
    u = report.dropped[0]
    assert (u.index, u.num_words, u.num_subwords, u.kept) == (1, 5, 8, False)
    assert "LEFT OUT" in caplog.text and "BC5CDR/train" in caplog.text

    rows, report = tokenize_corpus(sentences, tokenizer, ls, "BC5CDR", max_subwords=7, split="test")
    assert not report.dropped and len(report.unsplittable) == 1 and report.unsplittable[0].kept
    assert report.cut_mentions == 1  # the long mention crosses the hard split (a false negative)
    assert rows["sentence_index"] == [0, 1, 1]
    assert sum(rows["num_words"][1:]) == 5  # every word kept
    assert rows["tokens"][1:] == [["aspirin", "hypertension"], ["cisplatin", "and", "the"]]
    assert rows["spans"][1:] == [[], [2, 3, 0]]  # the short mention survives, rebased
    assert rows["unreachable"] == [[], [0], []]  # the cut one is carried (type id 0) to be scored as a miss
    assert all(len(x) <= 7 for x in rows["input_ids"])


def test_word_that_tokenizes_to_nothing_gets_unk(tokenizer):
    ls = label_space_of(["BC5CDR"])
    s = Sentence(("the", "\u200b", "cancer", "\u200b"), (Span(2, 3, "Disease"),), "BC5CDR")
    assert tokenizer(["\u200b"], is_split_into_words=True, add_special_tokens=False)["input_ids"] == []
    rows, report = tokenize_corpus([s], tokenizer, ls, "BC5CDR")
    assert report.empty_words == 2
    assert rows[0]["input_ids"] == [CLS, ID["the"], UNK, ID["cancer"], UNK, SEP]
    assert rows[0]["word_ids"] == [-1, 0, 1, 2, 3, -1]  # every word keeps its own slot
    assert rows[0]["tokens"] == ["the", "\u200b", "cancer", "\u200b"]


# --- cache -------------------------------------------------------------------------------------
def test_load_or_tokenize_cache_hit_reads_nothing(tokenizer, tmp_path, monkeypatch):
    ls = label_space_of(["BC5CDR"])
    f = tmp_path / "train.tsv"
    f.write_text("whatever\tO\n")
    sentences = [sent("the cancer", [(1, 2, "Disease")])]
    kw = dict(corpus="BC5CDR", split="train", cache_dir=tmp_path / "cache")
    first, _ = load_or_tokenize(f, lambda: ReadResult(sentences, None), tokenizer, ls, **kw)
    (entry,) = (tmp_path / "cache" / "BC5CDR").iterdir()
    assert entry.name.startswith("train-") and len(entry.name) == len("train-") + 16
    assert (entry / "report.json").is_file()

    def boom(*a, **k):
        raise AssertionError("tokenized on a cache hit")

    monkeypatch.setattr(cache, "tokenize_corpus", boom)
    again, report = load_or_tokenize(f, boom, tokenizer, ls, **kw)
    assert again.to_dict() == first.to_dict() and report.rows == 1
    with pytest.raises(AssertionError, match="cache hit"):  # another cap is another key
        load_or_tokenize(f, lambda: ReadResult(sentences, None), tokenizer, ls, max_subwords=64, **kw)


# --- the data module ---------------------------------------------------------------------------
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
