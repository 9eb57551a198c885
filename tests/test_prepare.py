"""prepare: fetch through a local file:// mirror, verify sha256, convert CoNLL-2003, clear errors."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from datamodules import prepare as prep
from datamodules.catalog import BIOMEDICAL, CORPORA, CorpusFile, CorpusSpec
from datamodules.corpora import read_split
from errors import BionerError, MissingCorpusError

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(),
    reason=f"shared corpora not found at {SHARED} (set BIONER_SHARED_DATA)",
)

TOY_TRAIN = b"IL-2\tB-DNA\ngene\tI-DNA\n.\tO\n\n"
TOY_TYPES = b'{"entities": {}}\n'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered corpus "Toy" (one split + one extra file) and a mirror holding its files."""
    mirror = tmp_path / "mirror"
    (mirror / "Toy").mkdir(parents=True)
    (mirror / "Toy" / "train.tsv").write_bytes(TOY_TRAIN)
    (mirror / "Toy" / "types.json").write_bytes(TOY_TYPES)
    spec = CorpusSpec(
        "Toy",
        "iob",
        {"train": CorpusFile("train.tsv", "https://example.invalid/toy/train.tsv", sha(TOY_TRAIN))},
        ("DNA",),
        extra_files=(CorpusFile("types.json", "https://example.invalid/toy/types.json", sha(TOY_TYPES)),),
        redistributable=True,
    )
    monkeypatch.setitem(CORPORA, "Toy", spec)
    return mirror


def test_fetch_from_file_mirror_writes_verified_files(tmp_path, toy):
    root = tmp_path / "data"
    log: list[str] = []
    prep.prepare(root, ["Toy"], mirror=toy.as_uri(), log=log.append)
    assert (root / "Toy" / "train.tsv").read_bytes() == TOY_TRAIN
    assert (root / "Toy" / "types.json").read_bytes() == TOY_TYPES
    assert log == [f"fetched  {root / 'Toy' / 'train.tsv'}", f"fetched  {root / 'Toy' / 'types.json'}"]
    assert sorted(p.name for p in (root / "Toy").iterdir()) == ["train.tsv", "types.json"]  # no temp files
    assert [s.tokens for s in read_split(CORPORA["Toy"], root, "train").sentences] == [("IL-2", "gene", ".")]

    # present with the right hash -> skipped (even once the mirror is gone); --force fetches again
    shutil.rmtree(toy / "Toy")
    log.clear()
    prep.prepare(root, ["Toy"], mirror=toy.as_uri(), log=log.append)
    assert [line.split()[0] for line in log] == ["present", "present"]
    with pytest.raises(BionerError, match="cannot download"):
        prep.prepare(root, ["Toy"], mirror=toy.as_uri(), force=True, log=log.append)


def test_plain_directory_mirror_and_bad_existing_file_is_replaced(tmp_path, toy):
    root = tmp_path / "data"
    (root / "Toy").mkdir(parents=True)
    (root / "Toy" / "train.tsv").write_bytes(b"stale\tO\n")
    prep.prepare(root, ["Toy"], mirror=str(toy), log=lambda _: None)
    assert (root / "Toy" / "train.tsv").read_bytes() == TOY_TRAIN


def test_hash_mismatch_is_an_error_and_leaves_no_file(tmp_path, toy):
    root = tmp_path / "data"
    (toy / "Toy" / "train.tsv").write_bytes(TOY_TRAIN.replace(b"B-DNA", b"B-RNA"))
    with pytest.raises(BionerError, match="sha256 mismatch") as err:
        prep.prepare(root, ["Toy"], mirror=toy.as_uri(), log=lambda _: None)
    assert sha(TOY_TRAIN) in str(err.value)
    assert not (root / "Toy" / "train.tsv").exists()
    assert not (root / "Toy").exists() or list((root / "Toy").iterdir()) == []


def test_cli_errors_are_one_line_exit_2(tmp_path, toy, capsys):
    (toy / "Toy" / "train.tsv").write_bytes(b"corrupt\n")
    assert prep.main(["--data-root", str(tmp_path / "d"), "--mirror", toy.as_uri(), "Toy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sha256 mismatch for ") and err.count("\n") == 1
    assert prep.main(["--data-root", str(tmp_path / "d"), "NoSuchCorpus"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown corpus 'NoSuchCorpus'")


def test_groups_expand_in_order_without_duplicates():
    assert [spec.name for spec in prep.expand_corpora(["biomedical", "BC2GM"])] == list(BIOMEDICAL)
    expanded = [spec.name for spec in prep.expand_corpora(["CoNLL04", "all"])]
    assert expanded == ["CoNLL04"] + [n for n in CORPORA if n != "CoNLL04"]


def test_mirror_urls():
    conll_dev = CORPORA["CoNLL2003"].splits["dev"]
    assert prep.source_urls("CoNLL2003", conll_dev, "file:///m/") == [
        "file:///m/CoNLL2003/eng.testa",
        "file:///m/CoNLL2003/original/eng.testa",
    ]
    assert prep.source_urls("BC2GM", CORPORA["BC2GM"].splits["dev"], "https://h/x") == [
        "https://h/x/BC2GM/dev.tsv"
    ]
    assert prep.source_urls("BC2GM", CORPORA["BC2GM"].splits["dev"], None) == [
        CORPORA["BC2GM"].splits["dev"].url
    ]


def test_missing_corpus_error_names_the_fetch_command(tmp_path):
    with pytest.raises(MissingCorpusError) as err:
        read_split(CORPORA["BC5CDR"], tmp_path, "train")
    assert f"python -m datamodules.prepare --data-root {tmp_path} BC5CDR" in str(err.value)


def test_convert_conll2003_small_example():
    original = (
        "-DOCSTART- -X- O O\n\n"
        "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\ncall NN I-NP O\n\n"
        "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\nSmith NNP I-NP B-PER\nin IN I-PP O\n"
        "New NNP I-NP I-LOC\nYork NNP I-NP I-LOC\nTimes NNP I-NP I-ORG\n\n"
        "-DOCSTART- -X- O O\n\n"
        "Ok UH O O\n"
    )
    assert prep.convert_conll2003(original) == (
        "EU\tB-ORG\nrejects\tO\nGerman\tB-MISC\ncall\tO\n\n"
        "Peter\tB-PER\nBlackburn\tI-PER\nSmith\tB-PER\nin\tO\nNew\tB-LOC\nYork\tI-LOC\nTimes\tB-ORG\n\n"
        "Ok\tO\n\n"
    )


@needs_shared
def test_real_corpus_through_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "NCBI-disease", mirror / "NCBI-disease")
    root = tmp_path / "data"
    prep.prepare(root, ["NCBI-disease"], mirror=mirror.as_uri(), log=lambda _: None)
    for split in ("train", "dev", "test"):
        name = f"{split}.tsv"
        assert (root / "NCBI-disease" / name).read_bytes() == (SHARED / "NCBI-disease" / name).read_bytes()


@needs_shared
def test_conll2003_conversion_reproduces_shared_dev_tsv(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "CoNLL2003").mkdir(parents=True)
    shutil.copy(SHARED / "CoNLL2003" / "original" / "eng.testa", mirror / "CoNLL2003" / "eng.testa")
    root = tmp_path / "data"
    status = prep.fetch_file(root, "CoNLL2003", CORPORA["CoNLL2003"].splits["dev"], mirror=mirror.as_uri())
    assert status == "fetched"
    assert (root / "CoNLL2003" / "dev.tsv").read_bytes() == (SHARED / "CoNLL2003" / "dev.tsv").read_bytes()
    assert sha((root / "CoNLL2003" / "dev.tsv").read_bytes()) == CORPORA["CoNLL2003"].splits["dev"].sha256


@needs_shared
def test_prepare_says_where_a_corpus_it_does_not_ship_comes_from(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "CoNLL2003" / "original", mirror / "CoNLL2003")
    lines: list[str] = []
    prep.prepare(tmp_path / "data", ["CoNLL2003"], mirror=mirror.as_uri(), log=lines.append)
    assert lines[0] == (
        "CoNLL2003: research use only (Reuters RCV1 via NIST). This project does not ship it: it is fetched "
        "from https://raw.githubusercontent.com/ZhixiuYe/HSCRF-pytorch/master/data (or --mirror); its use is "
        "yours to clear."
    )
    assert [line.split()[0] for line in lines[1:]] == ["fetched"] * 3
