"""Ray Data's ``map_batches(TaggerWorker, ...)`` gives the mention rows of ``inference.load(...).annotate``
(``mention_rows``), whatever the batches; ``TaggerWorker`` called directly: empty batches keep every column
and its type, and a batch without its text or id column is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import ray
from fuzz_cases import make_models

from errors import BionerError
from inference import Document, Passage, load
from inference.mention_rows import COLUMNS, arrow_schema, mention_rows
from inference.ray_worker import TaggerWorker

WORDS = ["aspirin", "causes", "asthma", "in", "patients", "the", "renal", "failure", "cisplatin", "no"]
# 20 documents of 1 to 9 words, some of two sentences, one empty (no mentions)
TEXTS = [
    " ".join(WORDS[(3 * i + k) % len(WORDS)] for k in range(1 + i % 9))
    + (". Then asthma." if i % 4 == 1 else "")
    for i in range(19)
] + [""]
DOCUMENTS = [{"doc_id": f"d{i:02d}", "text": text} for i, text in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_models(tmp_path_factory.mktemp("ray_models")).export


@pytest.fixture(scope="module")
def worker(model: Path) -> TaggerWorker:
    return TaggerWorker(model, device="cpu")


@pytest.fixture(scope="module")
def local_ray():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
        ray.init(
            address="local",  # a cluster of its own, never one another process started
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=100 * 2**20,
            configure_logging=False,
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            yield
        finally:
            ray.shutdown()


def _key(row: dict) -> tuple:
    return tuple(row[c] for c in COLUMNS if c != "score")


@pytest.mark.slow
def test_ray_data_tags_like_the_tagger_in_one_process(model, local_ray):
    mentions = ray.data.from_items(DOCUMENTS).map_batches(
        TaggerWorker,
        fn_constructor_args=(str(model),),
        fn_constructor_kwargs={"device": "cpu"},
        concurrency=2,
        batch_size=5,
        batch_format="numpy",
    )
    got = mentions.take_all()
    assert mentions.schema().names == list(COLUMNS)
    assert mentions.schema().base_schema == arrow_schema()

    tagger = load(model, device="cpu")
    documents = [Document(d["doc_id"], [Passage(0, d["text"])]) for d in DOCUMENTS]
    expected = mention_rows(documents, tagger.annotate(documents), tagger.identity)
    assert len(expected) > len(DOCUMENTS) // 2 and {r["doc_id"] for r in expected} >= {"d00", "d05", "d18"}
    assert sorted(map(_key, got)) == sorted(map(_key, expected))
    scores = {_key(r): r["score"] for r in got}
    assert all(scores[_key(r)] == pytest.approx(r["score"], abs=1e-6) for r in expected)
    assert all(r["text"] == TEXTS[int(r["doc_id"][1:])][r["start"] : r["end"]] for r in got)
    assert {(r["passage"], r["model"], len(r["model_sha256"])) for r in got} == {(0, "export", 64)}


def test_a_batch_without_mentions_keeps_every_column_and_its_type(worker):
    for batch in (
        {"doc_id": np.array([], dtype=object), "text": np.array([], dtype=object)},
        {"doc_id": np.array(["a", "b"]), "text": np.array(["", " \n\t "])},  # no words, so no mentions
    ):
        table = worker(batch)
        assert table.num_rows == 0
        assert table.schema == arrow_schema()
        assert table.column_names == list(COLUMNS)


def test_integer_ids_are_strings_and_mentions_slice_the_text(worker):
    table = worker({"doc_id": np.array([7, 8]), "text": np.array(["the the the", "asthma in patients"])})
    rows = table.to_pylist()
    assert {r["doc_id"] for r in rows} <= {"7", "8"} and rows
    texts = {"7": "the the the", "8": "asthma in patients"}
    assert all(r["text"] == texts[r["doc_id"]][r["start"] : r["end"]] for r in rows)
    assert table.schema.field("score").type == pa.float32()


def test_a_missing_column_or_a_text_that_is_no_string_is_one_clear_error(worker):
    with pytest.raises(BionerError, match="no column 'text' .*its columns: doc_id, body.*text_column="):
        worker({"doc_id": np.array(["a"]), "body": np.array(["aspirin"])})
    with pytest.raises(BionerError, match="no column 'doc_id' .*id_column="):
        worker({"id": np.array(["a"]), "text": np.array(["aspirin"])})
    with pytest.raises(BionerError, match="column 'text' holds a NoneType in row 1"):
        worker({"doc_id": np.array(["a", "b"]), "text": np.array(["aspirin", None], dtype=object)})
    with pytest.raises(BionerError, match="column 'doc_id' holds a float64"):
        worker({"doc_id": np.array([1.5]), "text": np.array(["aspirin"])})


def test_a_corpus_the_model_does_not_know_fails_when_the_worker_starts(model):
    with pytest.raises(BionerError, match="the model knows BC5CDR, not NCBI-disease"):
        TaggerWorker(model, device="cpu", corpus="NCBI-disease")
