"""A directory of {train,dev,test}.tsv files as a corpus: read, validated, cached, trained like the others."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from train_runner import run_train, tiny_encoder_dir, tiny_run_args

import train
from datamodules.corpora import label_space_of, read_split, resolve
from datamodules.label_space import LabelSpace
from datamodules.multi_corpus import MultiCorpusDataModule
from datamodules.readers import read_iob
from datamodules.stats import corpus_stats
from errors import BionerError, CorpusFormatError, MissingCorpusError

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(),
    reason=f"shared corpora not found at {SHARED} (set BIONER_SHARED_DATA)",
)
SAMPLES = Path(__file__).resolve().parents[1] / "datamodules" / "samples"

# /work/shared/data/README.md: NCBI-disease sentences and Disease mentions per split
NCBI_COUNTS = {"train": (5424, 5134), "dev": (923, 787), "test": (940, 960)}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return tiny_encoder_dir(tmp_path_factory.mktemp("enc") / "tiny")


def make_corpus(directory: Path, files: dict[str, str], yaml_text: str | None = None) -> Path:
    directory.mkdir(parents=True)
    for split, text in files.items():
        (directory / f"{split}.tsv").write_text(text, encoding="utf-8")
    if yaml_text is not None:
        (directory / "corpus.yaml").write_text(yaml_text, encoding="utf-8")
    return directory


TOY = {
    "train": "Aspirin\tB-Drug\ncauses\tO\nulcers\tB-Harm\n\nNothing\tO\n",
    "dev": "Ibuprofen\tB-Drug\ntablets\tI-Drug\n",
    "test": "rash\tB-Harm\n",
}


def copy_with_renamed_type(source: Path, target: Path, old: str, new: str) -> Path:
    target.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        text = (source / f"{split}.tsv").read_text(encoding="utf-8")
        (target / f"{split}.tsv").write_text(
            text.replace(f"\tB-{old}\n", f"\tB-{new}\n").replace(f"\tI-{old}\n", f"\tI-{new}\n"),
            encoding="utf-8",
        )
    return target


def to_iob1(text: str) -> str:
    """IOB2 -> IOB1: a mention starts with I- unless it directly follows a mention of the same type."""
    out = []
    previous_type = ""
    for line in text.split("\n"):
        token, sep, tag = line.partition("\t")
        if not sep or token == "-DOCSTART-":
            previous_type = ""
            out.append(line)
            continue
        if tag.startswith("B-") and tag[2:] != previous_type:
            tag = "I-" + tag[2:]
        previous_type = tag[2:] if tag != "O" else ""
        out.append(f"{token}\t{tag}")
    return "\n".join(out)


# --- reading ---------------------------------------------------------------------------------------
def test_a_path_is_a_corpus_named_after_its_directory(tmp_path):
    directory = make_corpus(tmp_path / "sub" / "ToyADE", TOY)
    spec = resolve(str(directory))
    assert spec.name == "ToyADE" and spec.types == ("Drug", "Harm") and spec.directory == directory
    assert resolve(str(directory)) == spec  # read again: no process-wide table of user corpora
    with pytest.raises(MissingCorpusError, match="unknown corpus 'ToyADE'"):  # a user corpus is named by path
        resolve("ToyADE")
    relative = os.path.relpath(directory)
    assert resolve(relative).name == "ToyADE" and resolve(f"{directory}/").name == "ToyADE"
    sentences = read_split(spec, "unused-root", "train").sentences
    assert [s.tokens for s in sentences] == [("Aspirin", "causes", "ulcers"), ("Nothing",)]
    assert [[(m.start, m.end, m.type) for m in s.spans] for s in sentences] == [
        [(0, 1, "Drug"), (2, 3, "Harm")],
        [],
    ]
    assert [s.corpus for s in sentences] == ["ToyADE", "ToyADE"]
    assert [s.doc_id for s in sentences] == ["ToyADE/train-0", "ToyADE/train-1"]


def test_label_space_qualifies_user_types_by_directory_name_and_round_trips(tmp_path):
    directory = make_corpus(tmp_path / "ToyADE", TOY)
    space = label_space_of(["BC5CDR", str(directory)])
    assert space.corpora == ("BC5CDR", "ToyADE")
    assert space.types == ("BC5CDR/Chemical", "BC5CDR/Disease", "ToyADE/Drug", "ToyADE/Harm")
    saved = json.loads(json.dumps(space.to_dict()))  # as a checkpoint holds it
    assert saved == {"BC5CDR": ["Chemical", "Disease"], "ToyADE": ["Drug", "Harm"]}
    shutil.rmtree(directory)  # a checkpoint's label space needs no corpus files
    restored = LabelSpace.from_dict(saved)
    assert restored == space and restored.types == space.types
    assert restored.type_id("ToyADE", "Harm") == 3 and restored.merged_types == (
        "Chemical",
        "Disease",
        "Drug",
        "Harm",
    )


USER_CORPUS_ERRORS = [
    # (files, corpus.yaml, split file with the problem or None for the directory, line, problem)
    ({**TOY, "dev": "a\tO\nb\tI-Drug\n\nc\tB-Drug\n"}, None, "dev", 2, "I-Drug after O"),
    ({**TOY, "test": "a\tO\n\nb\x00\tB-Harm\n"}, None, "test", 3, "NUL byte in the token"),
    ({**TOY, "train": "-DOCSTART-\tB-Drug\n\na\tO\n"}, None, "train", 1, "-DOCSTART- line tagged 'B-Drug'"),
    ({**TOY, "train": "a\tB-Drug\tNN\n"}, None, "train", 1, "expected 2 TAB-separated columns"),
    (TOY, "scheme: bio\n", "corpus.yaml", None, "scheme: 'bio'; use one of auto, iob2, iob1, iobes"),
    (TOY, "schema: iob1\n", "corpus.yaml", None, "unknown key(s) schema (known: scheme)"),
    ({s: "a\tO\n" for s in TOY}, None, None, None, "no entity mentions in train.tsv, dev.tsv, test.tsv"),
]


@pytest.mark.parametrize(("files", "yaml_text", "where", "line", "problem"), USER_CORPUS_ERRORS)
def test_malformed_user_corpus_is_a_file_line_error(tmp_path, files, yaml_text, where, line, problem):
    directory = make_corpus(tmp_path / "Bad", files, yaml_text)
    with pytest.raises(CorpusFormatError) as err:
        resolve(str(directory))
    path = directory if where is None else directory / (where if "." in where else f"{where}.tsv")
    assert (err.value.path, err.value.line) == (str(path), line)
    assert problem in err.value.problem


@pytest.mark.parametrize("how", ["missing", "directory"])
def test_every_split_must_be_a_file(tmp_path, how):
    directory = make_corpus(tmp_path / "Partial", {"train": TOY["train"], "test": TOY["test"]})
    if how == "directory":
        (directory / "dev.tsv").mkdir()
    expected = "is not a file" if how == "directory" else "not found"
    with pytest.raises(
        MissingCorpusError, match=f"corpus Partial \\(dev\\): {directory / 'dev.tsv'} {expected}"
    ):
        resolve(str(directory))


def test_names_and_paths_that_are_not_user_corpora(tmp_path, monkeypatch):
    with pytest.raises(MissingCorpusError, match="not found"):
        resolve(str(tmp_path / "Nowhere"))
    (tmp_path / "file").write_text("")
    with pytest.raises(MissingCorpusError, match="is not a directory"):
        resolve(str(tmp_path / "file"))
    clash = make_corpus(tmp_path / "BC5CDR", TOY)
    with pytest.raises(
        MissingCorpusError, match="named like the registered corpus BC5CDR: rename the directory"
    ):
        resolve(str(clash))
    make_corpus(tmp_path / "MyOwn", TOY)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingCorpusError, match=r"your own corpus\? name it by path, e\.g\. \./MyOwn"):
        resolve("MyOwn")
    assert resolve("./MyOwn").name == "MyOwn"
    with pytest.raises(BionerError, match="two corpora named MyOwn"):
        MultiCorpusDataModule(["./MyOwn", str(make_corpus(tmp_path / "x" / "MyOwn", TOY))], SAMPLES, "unused")


def test_iob1_is_detected_and_reported_or_set_in_corpus_yaml(tmp_path, caplog):
    iob1 = {**TOY, "train": "Aspirin\tI-Drug\ncauses\tO\nulcers\tI-Harm\nsores\tB-Harm\n"}
    directory = make_corpus(tmp_path / "Old", iob1)
    with caplog.at_level(logging.WARNING, logger="datamodules.user_corpus"):
        resolve(str(directory))
    assert f"{directory / 'train.tsv'}: read as IOB1 (auto-detected)" in caplog.text
    spans = [
        [(m.start, m.end, m.type) for m in s.spans]
        for s in read_split(resolve(str(directory)), "", "train").sentences
    ]
    assert spans == [[(0, 1, "Drug"), (2, 3, "Harm"), (3, 4, "Harm")]]
    # A file mixing both conventions is an error under "auto"; corpus.yaml can say it is IOB1.
    mixed = {**TOY, "dev": "a\tO\nb\tB-Drug\nc\tI-Drug\n\nd\tI-Harm\n"}
    with pytest.raises(CorpusFormatError, match="I-Harm at sentence start"):
        resolve(str(make_corpus(tmp_path / "Mixed", mixed)))
    declared = make_corpus(tmp_path / "Declared", mixed, "scheme: iob1\n")
    assert resolve(str(declared)).scheme == "iob1"
    spans = [
        [(m.start, m.end, m.type) for m in s.spans]
        for s in read_split(resolve(str(declared)), "", "dev").sentences
    ]
    assert spans == [[(1, 3, "Drug")], [(0, 1, "Harm")]]
    dev = corpus_stats(tmp_path, [str(declared)])["Declared"]["dev"]
    assert (dev["scheme"], dev["scheme_detected"]) == ("iob1", False)


@needs_shared
@pytest.mark.parametrize(
    ("corpus", "split"), [("BC5CDR", "dev"), ("CoNLL2003", "train"), ("NCBI-disease", "test")]
)
def test_iob1_copy_gives_the_same_mentions_as_its_iob2_original(tmp_path, corpus, split):
    original = SHARED / corpus / f"{split}.tsv"
    text = original.read_text(encoding="utf-8")
    converted = to_iob1(text)
    lines = converted.split("\n")
    assert len(lines) == len(text.split("\n"))
    kept_b = sum(line.partition("\t")[2].startswith("B-") for line in lines)
    assert kept_b > 0  # some mentions directly follow one of their type: B- stays there
    assert sum(line.partition("\t")[2].startswith("I-") for line in lines) > kept_b
    iob1 = tmp_path / f"{split}.tsv"
    iob1.write_text(converted, encoding="utf-8")
    with pytest.raises(CorpusFormatError):
        read_iob(iob1, corpus, scheme="iob2")
    expected = read_iob(original, corpus, scheme="iob2").sentences
    detected, notes = read_iob(iob1, corpus)
    assert (notes.scheme, notes.detected) == ("iob1", True)
    assert detected == expected
    assert read_iob(iob1, corpus, scheme="iob1").sentences == expected


# --- cache -----------------------------------------------------------------------------------------
def test_an_edited_user_corpus_file_is_read_and_tokenized_again(tmp_path, encoder):
    directory = make_corpus(tmp_path / "Edited", TOY)
    cache = tmp_path / "cache"

    def dev_spans(corpora: list[str]) -> list[list[int]]:
        dm = MultiCorpusDataModule(corpora, SAMPLES, encoder, cache_dir=cache)
        dm.setup("validate")
        return list(dm.datasets["dev"]["Edited"]["spans"])

    assert dev_spans([str(directory)]) == [[0, 2, 0]]  # Ibuprofen tablets: Edited/Drug = type 0
    assert dev_spans([str(directory)]) == [[0, 2, 0]]  # from the cache
    assert len(list((cache / "Edited").glob("dev-*"))) == 1
    time.sleep(0.01)  # a later modification time
    (directory / "dev.tsv").write_text("Ibuprofen\tB-Harm\ntablets\tI-Harm\n", encoding="utf-8")  # same size
    assert dev_spans([str(directory)]) == [[0, 2, 1]]
    assert len(list((cache / "Edited").glob("dev-*"))) == 2
    # the same files under BC5CDR's label space: other type ids, another cache entry
    assert dev_spans(["BC5CDR", str(directory)]) == [[0, 2, 3]]
    assert len(list((cache / "Edited").glob("dev-*"))) == 3


# --- train.py --------------------------------------------------------------------------------------
def _train_main_error(tmp_path: Path, capsys, *args: str) -> str:
    code = train.main(
        [f"run_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}", "logger=none", *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    assert not (tmp_path / "run" / "checkpoints").exists()
    return err[-1]


@pytest.mark.parametrize(("files", "yaml_text", "where", "line", "problem"), USER_CORPUS_ERRORS[:4])
def test_train_py_stops_at_a_malformed_user_corpus(
    tmp_path, capsys, encoder, files, yaml_text, where, line, problem
):
    directory = make_corpus(tmp_path / "data" / "Bad", files, yaml_text)
    error = _train_main_error(
        tmp_path,
        capsys,
        f"encoder.name={encoder}",
        f"data.root={SAMPLES}",
        f"data.corpora=[BC5CDR,{directory}]",
    )
    assert error.startswith(f"error: {directory / where}.tsv:{line}: ") and problem in error


def test_train_py_rejects_two_corpora_of_one_name_and_a_missing_split(tmp_path, capsys, encoder):
    one = make_corpus(tmp_path / "a" / "Same", TOY)
    two = make_corpus(tmp_path / "b" / "Same", TOY)
    error = _train_main_error(tmp_path, capsys, f"encoder.name={encoder}", f"data.corpora=[{one},{two}]")
    assert f"data.corpora has 2 corpora named Same ({one}, {two})" in error
    (two / "test.tsv").unlink()
    error = _train_main_error(tmp_path, capsys, f"encoder.name={encoder}", f"data.corpora=[{two}]")
    assert error == f"error: corpus Same (test): {two / 'test.tsv'} not found"


@pytest.mark.slow
@needs_shared
def test_user_corpus_trains_validates_and_tests_through_train_py(tmp_path, encoder):
    """NCBI-disease copied as MyNCBI with Disease renamed Illness, next to the BC5CDR samples."""
    directory = copy_with_renamed_type(
        SHARED / "NCBI-disease", tmp_path / "corpora" / "MyNCBI", "Disease", "Illness"
    )
    run_dir = tmp_path / "run"
    args = tiny_run_args(tmp_path, run_dir, encoder, corpora=f"BC5CDR,{directory}")
    args += [
        f"data.root={SAMPLES}",
        "data.samples_per_epoch=32",
        "data.batch_size=8",
        "data.max_subwords=128",
        "trainer.max_steps=4",
        "trainer.limit_test_batches=2",
    ]
    start = time.monotonic()
    proc = run_train(args, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - start < 120

    for split, (sentences, mentions) in NCBI_COUNTS.items():  # the original corpus's counts
        (entry,) = (tmp_path / "cache" / "MyNCBI").glob(f"{split}-*")
        report = json.loads((entry / "report.json").read_text())
        assert (report["corpus"], report["sentences"], report["mentions"]) == ("MyNCBI", sentences, mentions)
        assert report["rows"] >= sentences and not [u for u in report["unsplittable"] if not u["kept"]]

    expected_space = {"BC5CDR": ["Chemical", "Disease"], "MyNCBI": ["Illness"]}
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=False)
        assert checkpoint["hyper_parameters"]["label_space"] == expected_space
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {
        "test/disjoint/MyNCBI/f1",
        "test/merged/MyNCBI/Illness/f1",
        "test/merged/BC5CDR/Disease/f1",
    } <= set(metrics)
    assert metrics["val/merged/macro_f1"] is not None
