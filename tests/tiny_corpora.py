"""A tiny word-piece vocabulary and two tiny corpora (BC5CDR, NCBI-disease) for the data-layer tests;
their fixtures are in ``conftest.py``."""

from __future__ import annotations

from pathlib import Path

from datamodules.multi_corpus import MultiCorpusDataModule
from datamodules.sentence import Sentence, Span

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "of", "in", "and", "a", "with", "patients", "induced", "disease", "cancer", "renal", "failure",
    "asp", "##irin", "hyper", "##tension", "cis", "##platin", "tumor", "##s", ".", ",",
]  # fmt: skip
CLS, SEP, PAD, UNK = 2, 3, 0, 1
ID = {w: i for i, w in enumerate(VOCAB)}


TRAIN_BC5 = [
    [("aspirin", "B-Chemical"), ("induced", "O"), ("hypertension", "B-Disease"), (".", "O")],
    [("the", "O"), ("cancer", "B-Disease")],
    [("cisplatin", "B-Chemical"), ("and", "O"), ("renal", "B-Disease"), ("failure", "I-Disease")],
    # one 9-subword mention: cannot fit max_subwords=10 (budget 8) -> left out of training
    [("the", "O")] + [(w, "B-Chemical" if i == 0 else "I-Chemical") for i, w in enumerate(
        ["aspirin", "cisplatin", "hypertension", "the", "tumors"])],
    [("patients", "O"), ("with", "O"), ("tumors", "B-Disease")],
]  # fmt: skip
DEV_BC5 = [
    [("the", "O"), ("aspirin", "B-Chemical")],
    [("hypertension", "B-Disease"), ("in", "O"), ("patients", "O"), ("with", "O"), ("cancer", "B-Disease")],
    [("a", "O")],
]
TRAIN_NCBI = [
    [("renal", "B-Disease"), ("failure", "I-Disease"), ("in", "O"), ("patients", "O")],
    [("tumors", "B-Disease"), ("of", "O"), ("the", "O"), ("disease", "O")],
    [("a", "O"), ("cancer", "B-Disease")],
]
DEV_NCBI = [[("cancer", "B-Disease"), ("patients", "O")], [("the", "O"), ("tumors", "B-Disease")]]


def write_tsv(path: Path, sentences) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n")


def make_dm(data_root, tokenizer_dir, tmp_path, **kw) -> MultiCorpusDataModule:
    args = dict(max_subwords=10, batch_size=4, eval_batch_size=2, cache_dir=tmp_path / "cache")
    args.update(kw)
    return MultiCorpusDataModule(["NCBI-disease", "BC5CDR"], data_root, tokenizer_dir, **args)


def sent(words: str, spans=(), corpus: str = "BC5CDR") -> Sentence:
    """A sentence of space-separated ``words`` with ``(start, end, type)`` spans."""
    return Sentence(tuple(words.split()), tuple(Span(*s) for s in spans), corpus, doc_id="d")
