"""Fixtures shared by the test files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_corpora import DEV_BC5, DEV_NCBI, TRAIN_BC5, TRAIN_NCBI, VOCAB, write_tsv
from transformers import BertTokenizerFast

CONLL04_SENTENCES = [
    {
        "tokens": ["John", "Smith", "works", "for", "Acme", "Corp", "in", "Boston", "."],
        "entities": [
            {"type": "Peop", "start": 0, "end": 2},
            {"type": "Org", "start": 4, "end": 6},
            {"type": "Loc", "start": 7, "end": 8},
        ],
        "relations": [
            {"type": "Work_For", "head": 0, "tail": 1},
            {"type": "OrgBased_In", "head": 1, "tail": 2},
        ],
    },
    {
        "tokens": ["Mary", "lives", "in", "Paris", "."],
        "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Loc", "start": 3, "end": 4}],
        "relations": [{"type": "Live_In", "head": 0, "tail": 1}],
    },
]


@pytest.fixture
def conll04_root(tmp_path: Path) -> Path:
    """A data root whose CoNLL04 has the two sentences above in each split."""
    root = tmp_path / "data"
    (root / "CoNLL04").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (root / "CoNLL04" / f"conll04_{split}.json").write_text(json.dumps(CONLL04_SENTENCES))
    return root


EASY_SENTENCES = [
    [
        ("patients", "O"),
        ("given", "O"),
        ("aspirin", "B-Chemical"),
        ("developed", "O"),
        ("asthma", "B-Disease"),
    ],
    [
        ("cisplatin", "B-Chemical"),
        ("causes", "O"),
        ("renal", "B-Disease"),
        ("failure", "I-Disease"),
        (".", "O"),
    ],
    [("no", "O"), ("asthma", "B-Disease"), ("after", "O"), ("aspirin", "B-Chemical"), (".", "O")],
    [("renal", "B-Disease"), ("failure", "I-Disease"), ("with", "O"), ("cisplatin", "B-Chemical")],
]


@pytest.fixture
def easy_corpus(tmp_path: Path) -> Path:
    """A user corpus (``data.corpora=[<path>]``) of four short sentences, the same in each split, that
    a model learns within a few steps: its scores are not all zero."""
    directory = tmp_path / "Easy"
    directory.mkdir()
    text = "".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in EASY_SENTENCES * 4)
    for split in ("train", "dev", "test"):
        (directory / f"{split}.tsv").write_text(text)
    return directory


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # save_pretrained adds tokenizer.json + tokenizer_config.json, so AutoTokenizer (the data module) loads it
    BertTokenizerFast.from_pretrained(str(d)).save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return BertTokenizerFast.from_pretrained(str(tokenizer_dir))


@pytest.fixture()
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    for corpus, train, dev in (("BC5CDR", TRAIN_BC5, DEV_BC5), ("NCBI-disease", TRAIN_NCBI, DEV_NCBI)):
        write_tsv(root / corpus / "train.tsv", train)
        write_tsv(root / corpus / "dev.tsv", dev)
        write_tsv(root / corpus / "test.tsv", dev[::-1])
    return root
