"""predict.py at scale: documents streamed in chunks, one output per input file with completion records
(``--out-dir``), reruns that do only what is not done, failures that stay with their file, sharding over
torchrun ranks and SLURM array tasks, Parquet output, and no partial file after a crash or a kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stand_in_tagger import EveryWordModule
from tiny_models import tiny_tokenizer

import predict
from errors import BionerError
from inference.documents import read_documents, write_documents
from inference.shards import Shard, local_device, parse_shard, shard_from_env
from inference.tagger import Tagger

ROOT = Path(__file__).resolve().parents[1]
SMALL_CHECKPOINT = ROOT / "tests" / "fixtures" / "checkpoint_0b39895_baseline.ckpt"
WORDS = ["aspirin", "causes", "renal", "failure", "in", "patients", "given", "cisplatin", "with", "asthma"]


def _jsonl(path: Path, first: int, count: int) -> Path:
    lines = []
    for i in range(first, first + count):
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 7)) + "."
        lines.append(json.dumps({"id": f"d{i}", "text": text}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _inputs(directory: Path, files: int, per_file: int) -> list[Path]:
    directory.mkdir(exist_ok=True)
    return [_jsonl(directory / f"part{k}.jsonl", k * per_file, per_file) for k in range(files)]


def _outputs(directory: Path) -> dict[str, bytes]:
    """The outputs of an ``--out-dir``: everything but the records (which hold timings)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if not p.name.endswith(".json")}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@pytest.fixture
def tagger(tmp_path, monkeypatch) -> Tagger:
    """The stand-in model of test_predict (every word a mention), as what predict.py loads."""
    tagger = Tagger(EveryWordModule(), tiny_tokenizer(tmp_path / "tok"), device="cpu")
    monkeypatch.setattr("inference.tagger.load", lambda *args, **kwargs: tagger)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    return tagger


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A real (tiny) model directory written by export.py, for runs in subprocesses."""
    from train_runner import tiny_encoder_dir

    import export

    directory = tmp_path_factory.mktemp("model")
    tiny_encoder_dir(directory / "tiny", hidden=16, layers=1)  # the fixture checkpoint's encoder.name
    before = os.getcwd()
    os.chdir(directory)
    try:
        assert export.main([str(SMALL_CHECKPOINT), str(directory / "exported")]) == 0
    finally:
        os.chdir(before)
    return directory / "exported"


def _predict(*args: str | Path, torchrun: int = 0) -> list[str]:
    launcher = ["-m", "torch.distributed.run", f"--nproc-per-node={torchrun}"] if torchrun else []
    return [sys.executable, *launcher, str(ROOT / "predict.py"), *map(str, args)]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "SLURM_ARRAY_TASK_ID")}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
            "HF_HUB_OFFLINE": "1"}  # fmt: skip


# --- streaming --------------------------------------------------------------------------------------
def test_the_tagger_sees_one_chunk_at_a_time_and_the_output_keeps_input_order(tagger, tmp_path, monkeypatch):
    files = _inputs(tmp_path / "in", 2, 5)
    calls = []
    annotate = tagger.annotate

    def spy(documents, **kwargs):
        calls.append([d.id for d in documents])
        return annotate(documents, **kwargs)

    monkeypatch.setattr(tagger, "annotate", spy)
    out = tmp_path / "out.jsonl"
    assert predict.main(["model", *map(str, files), "--chunk-documents", "3", "-o", str(out)]) == 0
    ids = [f"d{i}" for i in range(10)]
    assert calls == [ids[0:3], ids[3:6], ids[6:9], ids[9:10]]  # chunks run across files, in order
    documents = [d for f in files for d in read_documents(f, "jsonl")]
    whole = io.StringIO()
    write_documents(documents, annotate(documents), "jsonl", whole)
    assert out.read_text() == whole.getvalue()  # what one list of every document gave before
    tagged = [json.loads(line)["doc_id"] for line in out.read_text().splitlines()]
    assert list(dict.fromkeys(tagged)) == ids and tagged == sorted(tagged, key=ids.index)


@pytest.mark.parametrize("kind", ["xml", "json"])
@pytest.mark.parametrize("inputs", [1, 2])
def test_bioc_streamed_a_document_at_a_time_is_byte_identical_to_the_whole_collection(
    tagger, tmp_path, kind, inputs
):
    import bioc
    from bioc import biocjson, biocxml

    paths = []
    for k in range(inputs):
        collection = bioc.BioCCollection()
        collection.source, collection.date, collection.infons = f"src{k}", "2024", {"k": "v \u00e9"}
        for i in range(4):
            document = bioc.BioCDocument()
            document.id = f"{k}-{i}"
            passage = bioc.BioCPassage()
            passage.offset, passage.text = 0, "Aspirin & acid.\nLine <two> \u00e9" if i % 2 else "Acid."
            passage.infons["type"] = "abstract"
            document.add_passage(passage)
            collection.add_document(document)
        paths.append(tmp_path / f"in{k}.{kind}")
        paths[-1].write_text((biocxml if kind == "xml" else biocjson).dumps(collection))
    out = tmp_path / f"out.{kind}"
    argv = ["model", *map(str, paths), "--in-format", "bioc", "--chunk-documents", "3", "-o", str(out)]
    assert predict.main(argv) == 0
    documents = [d for p in paths for d in read_documents(p, "bioc")]
    whole = io.StringIO()
    write_documents(documents, tagger.annotate(documents), "bioc", whole)
    assert out.read_text() == whole.getvalue()


def test_an_empty_input_writes_an_empty_collection_as_before(tagger, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "out.xml"
    assert predict.main(["model", str(empty), "--out-format", "bioc", "-o", str(out)]) == 0
    whole = io.StringIO()
    write_documents([], [], "bioc", whole)
    assert out.read_text() == whole.getvalue()


# --- Parquet --------------------------------------------------------------------------------------
def test_parquet_rows_are_the_jsonl_mentions_with_the_model_identity(tagger, tmp_path):
    import pyarrow.parquet as pq

    from inference.mention_rows import arrow_schema

    files = _inputs(tmp_path / "in", 2, 4)
    jsonl, parquet = tmp_path / "out.jsonl", tmp_path / "out.parquet"
    common = ["model", *map(str, files), "--chunk-documents", "3", "--types", "disjoint"]
    assert predict.main([*common, "-o", str(jsonl)]) == 0
    assert predict.main([*common, "--out-format", "parquet", "-o", str(parquet)]) == 0
    table = pq.read_table(parquet)
    assert table.schema.equals(arrow_schema())
    assert pq.ParquetFile(parquet).metadata.num_row_groups == 3  # one per chunk: 3 + 3 + 2 documents
    mentions = [json.loads(line) for line in jsonl.read_text().splitlines()]
    identity = {"passage": 0, "model": "in-memory", "model_sha256": "", "model_revision": ""}
    assert table.to_pylist() == [{**m, **identity} for m in mentions]
    assert len(mentions) == sum(len(d.passages[0].text.split()) + 2 for f in files
                                for d in read_documents(f, "jsonl"))  # fmt: skip


def test_parquet_to_stdout_is_one_error_line(tagger, tmp_path, capsys):
    (path,) = _inputs(tmp_path / "in", 1, 2)
    assert predict.main(["model", str(path), "--out-format", "parquet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["error: a Parquet output needs -o FILE or --out-dir DIR, not stdout"]


# --- sharding --------------------------------------------------------------------------------------
def test_shard_parsing_and_assignment_by_hand():
    assert parse_shard("1/3") == Shard(1, 3) and parse_shard(" 0 / 1 ") == Shard(0, 1)
    for bad in ("3/3", "1/0", "a/2", "-1/2", "1"):
        with pytest.raises(BionerError, match=f"--shard {bad}"):
            parse_shard(bad)
    files = [f"f{k}" for k in (7, 0, 3, 1, 5, 2, 6, 4)]  # sorted: f0 .. f7
    assert Shard(0, 3).share(files) == ["f0", "f3", "f6"]
    assert Shard(1, 3).share(files) == ["f1", "f4", "f7"]
    assert Shard(2, 3).share(files) == ["f2", "f5"]


def test_the_shard_comes_from_torchrun_and_slurm_array_variables():
    assert shard_from_env({}) == Shard(0, 1)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Shard(1, 2)
    array = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shard_from_env(array) == Shard(2, 4)
    assert shard_from_env({**array, "SLURM_ARRAY_TASK_STEP": "2"}) == Shard(1, 4)  # --array=10-16:2
    assert shard_from_env({**array, "RANK": "1", "WORLD_SIZE": "2"}) == Shard(5, 8)  # task 2 x 2 ranks + 1
    with pytest.raises(BionerError, match="SLURM_ARRAY_TASK_ID=20 is not one of 4 tasks"):
        shard_from_env({**array, "SLURM_ARRAY_TASK_ID": "20"})
    with pytest.raises(BionerError, match="RANK=2 is not below WORLD_SIZE=2"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    assert local_device({"LOCAL_RANK": "1"}) in (None, "cuda:1", "cuda:0")  # cuda:LOCAL_RANK where CUDA is


def test_each_shard_writes_only_its_files_and_several_shards_need_out_dir(
    tagger, tmp_path, monkeypatch, capsys
):
    files = _inputs(tmp_path / "in", 5, 2)
    out = tmp_path / "out"
    assert predict.main(["model", *map(str, files), "--out-dir", str(out), "--shard", "1/2"]) == 0
    assert sorted(_outputs(out)) == ["part1.jsonl", "part3.jsonl"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert predict.main(["model", *map(str, files), "--out-dir", str(out)]) == 0  # task 0 of 2
    assert sorted(_outputs(out)) == [f"part{k}.jsonl" for k in range(5)]
    capsys.readouterr()
    for argv in (["-o", str(tmp_path / "one.jsonl")], [], ["--shard", "1/2"]):
        assert predict.main(["model", *map(str, files), *argv]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: shard ") and "sharding needs --out-dir" in line
    assert not (tmp_path / "one.jsonl").exists()


# --- --out-dir, failures and reruns --------------------------------------------------------------------
def test_out_dir_names_outputs_after_inputs_and_records_each_file(tagger, tmp_path):
    files = _inputs(tmp_path / "in", 2, 3)
    gz_named = tmp_path / "in" / "pubmed24n0001.jsonl.gz.jsonl"
    gz_named.write_text(files[0].read_text())
    out = tmp_path / "out"
    assert predict.main(["model", *map(str, files), "--out-dir", str(out)]) == 0
    record = json.loads((out / "part1.jsonl.done.json").read_text())
    assert (record["documents"], record["deleted"], record["model"]) == (3, [], "in-memory")
    assert record["input_bytes"] == files[1].stat().st_size
    assert record["mentions"] == len((out / "part1.jsonl").read_text().splitlines())
    from inference.completion import output_name

    assert output_name("dir/pubmed24n0001.xml.gz", "jsonl") == "pubmed24n0001.jsonl"
    assert output_name("a/b.c.json", "bioc") == "b.c.json" and output_name("x.txt", "bioc") == "x.xml"
    assert output_name("x", "parquet") == "x.parquet"


def test_a_malformed_file_is_named_the_others_finish_and_a_rerun_retries_only_it(tagger, tmp_path, capsys):
    files = _inputs(tmp_path / "in", 4, 6)
    good_text = files[2].read_text()
    lines = good_text.splitlines()
    files[2].write_text("\n".join([*lines[:3], "{not json", *lines[3:]]) + "\n")
    out = tmp_path / "out"
    argv = ["model", *map(str, files), "--out-dir", str(out), "--chunk-documents", "2"]
    assert predict.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"error: {files[2]}:4: not JSON (Expecting property name enclosed in double quotes)"
    assert err[-1].endswith(f"3 files tagged, 0 already done, 1 failed: {files[2]}")
    assert sorted(_outputs(out)) == ["part0.jsonl", "part1.jsonl", "part3.jsonl"]  # no partial part2
    assert json.loads((out / "part2.jsonl.failed.json").read_text())["error"].startswith(f"{files[2]}:4:")
    assert _leftovers(out) == []
    stats = {name: (out / name).stat() for name in _outputs(out)}

    assert predict.main(argv) == 1  # again: only the bad file is tried
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[-1].endswith(f"0 files tagged, 3 already done, 1 failed: {files[2]}")
    files[2].write_text(good_text)
    assert predict.main(argv) == 0
    assert capsys.readouterr().err.strip().endswith("1 files tagged, 3 already done, 0 failed")
    for name, stat in stats.items():  # the good files were not written again
        assert ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns) == (
            stat.st_ino,
            stat.st_mtime_ns,
        )
    assert not (out / "part2.jsonl.failed.json").exists()
    reference = tmp_path / "reference"
    assert predict.main(["model", *map(str, files), "--out-dir", str(reference)]) == 0
    assert _outputs(out) == _outputs(reference)


def test_a_changed_input_or_model_is_tagged_again(tagger, tmp_path, capsys):
    files = _inputs(tmp_path / "in", 2, 2)
    out = tmp_path / "out"
    argv = ["model", *map(str, files), "--out-dir", str(out)]
    assert predict.main(argv) == 0
    _jsonl(files[1], 100, 3)
    assert predict.main(argv) == 0
    assert capsys.readouterr().err.strip().endswith("1 files tagged, 1 already done, 0 failed")
    assert '"doc_id": "d100"' in (out / "part1.jsonl").read_text()
    assert predict.main([*argv, "--types", "disjoint"]) == 0  # another output: every file again
    assert capsys.readouterr().err.strip().endswith("2 files tagged, 0 already done, 0 failed")


@pytest.mark.parametrize("mode", ["-o", "--out-dir"])
def test_a_crash_after_the_first_chunk_leaves_no_partial_file(tagger, tmp_path, monkeypatch, mode):
    files = _inputs(tmp_path / "in", 2, 4)
    target = tmp_path / ("out.jsonl" if mode == "-o" else "out")
    before = b"an earlier output\n"
    if mode == "-o":
        target.write_bytes(before)
    chunks = []

    def crash_on_the_second_chunk(documents, entities, fmt, out):
        chunks.append(len(documents))
        write_documents(documents, entities, fmt, out)
        out.flush()
        if len(chunks) == 2:
            raise RuntimeError("crash half-way")

    monkeypatch.setattr(predict, "write_documents", crash_on_the_second_chunk)
    with pytest.raises(RuntimeError, match="half-way"):
        predict.main(["model", *map(str, files), "--chunk-documents", "3", mode, str(target)])
    assert chunks == [3, 1] if mode == "--out-dir" else chunks == [3, 3]
    if mode == "-o":
        assert target.read_bytes() == before and _leftovers(tmp_path) == []
    else:  # the first file would have been done after its second chunk: nothing of it stays
        assert sorted(p.name for p in target.iterdir()) == []


def test_bad_arguments_and_a_bad_model_are_exit_2_before_anything_is_written(tmp_path, capsys):
    files = _inputs(tmp_path / "in", 2, 2)
    out = tmp_path / "out"
    cases = [
        (["--chunk-documents", "0"], "--chunk-documents 0: must be >= 1"),
        (
            ["-o", str(tmp_path / "x.jsonl")],
            "-o and --out-dir: give one (--out-dir writes one output per input file)",
        ),
        (["--shard", "2/2"], "--shard 2/2: needs 0 <= i < N"),
    ]
    for extra, message in cases:
        assert predict.main(["model", *map(str, files), "--out-dir", str(out), *extra]) == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
    assert predict.main([str(tmp_path / "none.ckpt"), *map(str, files), "--out-dir", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "none.ckpt" in line
    assert not out.exists() and not (tmp_path / "x.jsonl").exists()


def test_a_bad_corpus_is_one_error_before_any_file(tagger, tmp_path, capsys):
    files = _inputs(tmp_path / "in", 2, 2)
    out = tmp_path / "out"
    assert predict.main(["model", *map(str, files), "--out-dir", str(out), "--corpus", "JNLPBA"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "the model knows BC4CHEMD, BC5CDR, NCBI-disease, not JNLPBA" in line and not out.exists()


# --- processes: torchrun, kill -9 ------------------------------------------------------------------
@pytest.mark.slow
def test_two_torchrun_ranks_write_what_one_process_writes(exported, tmp_path):
    files = _inputs(tmp_path / "in", 5, 7)
    one, two = tmp_path / "D1", tmp_path / "D2"
    common = ["--chunk-documents", "4", "--device", "cpu"]
    subprocess.run(_predict(exported, *files, "--out-dir", one, *common), env=_env(), check=True,
                   cwd=tmp_path, capture_output=True, timeout=300)  # fmt: skip
    run = subprocess.run(_predict(exported, *files, "--out-dir", two, *common, torchrun=2), env=_env(),
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "shard 0/2: 3 of 5 input files" in run.stderr and "shard 1/2: 2 of 5 input files" in run.stderr
    assert len(_outputs(one)) == 5 and _outputs(two) == _outputs(one)
    assert sum(json.loads(p.read_text())["documents"] for p in two.glob("*.done.json")) == 35


@pytest.mark.slow
def test_a_run_killed_half_way_resumes_to_what_an_uninterrupted_run_writes(exported, tmp_path):
    files = _inputs(tmp_path / "in", 6, 400)
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    argv = _predict(exported, *files, "--out-dir", killed, "--chunk-documents", "16", "--device", "cpu")
    process = subprocess.Popen(argv, env=_env(), cwd=tmp_path, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if killed.is_dir() and list(killed.glob("*.done.json")):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    done_when_killed = len(list(killed.glob("*.done.json")))
    assert process.returncode == -signal.SIGKILL and 1 <= done_when_killed < 6
    rerun = subprocess.run(argv, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{done_when_killed} already done" in rerun.stderr
    whole_argv = _predict(exported, *files, "--out-dir", whole, "--chunk-documents", "16", "--device", "cpu")
    subprocess.run(whole_argv, env=_env(), cwd=tmp_path, check=True, capture_output=True, timeout=300)
    assert _outputs(killed) == _outputs(whole) and len(_outputs(whole)) == 6
    assert _leftovers(killed) == []
    for path in files:  # every document once, none missing
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
        tagged = [json.loads(line)["doc_id"] for line in (killed / path.name).read_text().splitlines()]
        assert sorted(set(tagged)) == sorted(set(ids)) and tagged == sorted(tagged, key=ids.index)


def test_a_truncated_pubmed_file_among_good_ones_is_named_and_only_it_is_retried(tagger, tmp_path, capsys):
    fixtures = ROOT / "tests" / "fixtures" / "pubmed"
    inputs = tmp_path / "baseline"
    inputs.mkdir()
    for name in ("pubmed_bc5cdr_0001.xml.gz", "pubmed_bc5cdr_0002.xml.gz"):
        (inputs / name).write_bytes((fixtures / name).read_bytes())
    whole = (fixtures / "pubmed_bc5cdr_0001.xml.gz").read_bytes()
    bad = inputs / "pubmed_bc5cdr_0003.xml.gz"
    bad.write_bytes(whole[: len(whole) // 2])  # a download cut half-way
    out = tmp_path / "out"
    argv = ["model", str(inputs), "--out-dir", str(out), "--chunk-documents", "7"]
    assert predict.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"error: {bad}") and "truncated gzip stream" in err[0], err
    assert err[-1].endswith(f"2 files tagged, 0 already done, 1 failed: {bad}"), err
    assert sorted(_outputs(out)) == ["pubmed_bc5cdr_0001.jsonl", "pubmed_bc5cdr_0002.jsonl"]
    assert _leftovers(out) == []
    stats = {name: (out / name).stat().st_mtime_ns for name in _outputs(out)}

    bad.write_bytes(whole)  # downloaded again
    assert predict.main(argv) == 0
    assert capsys.readouterr().err.strip().endswith("1 files tagged, 2 already done, 0 failed")
    assert {name: (out / name).stat().st_mtime_ns for name in stats} == stats  # not written again
    docs = {
        json.loads(line)["doc_id"] for line in (out / "pubmed_bc5cdr_0003.jsonl").read_text().splitlines()
    }
    assert docs == {
        json.loads(line)["doc_id"] for line in (out / "pubmed_bc5cdr_0001.jsonl").read_text().splitlines()
    }


def test_sigterm_half_way_exits_143_leaving_no_partial_file_and_the_rerun_finishes(
    tagger, tmp_path, monkeypatch
):
    files = _inputs(tmp_path / "in", 3, 4)
    out = tmp_path / "out"
    argv = ["model", *map(str, files), "--chunk-documents", "3", "--out-dir", str(out)]
    reference = tmp_path / "reference"
    assert predict.main(["model", *map(str, files), "--out-dir", str(reference)]) == 0
    chunks = []

    def terminated_in_the_second_file(documents, entities, fmt, stream):
        chunks.append(len(documents))
        write_documents(documents, entities, fmt, stream)
        if len(chunks) == 3:  # the first chunk of the second file: SLURM pre-empts the job
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(predict, "write_documents", terminated_in_the_second_file)
    with pytest.raises(SystemExit) as stopped:
        predict.main(argv)
    assert stopped.value.code == 143
    assert sorted(_outputs(out)) == ["part0.jsonl"] and _leftovers(out) == []  # file 1 whole or absent
    monkeypatch.setattr(predict, "write_documents", write_documents)
    assert predict.main(argv) == 0
    assert _outputs(out) == _outputs(reference)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the job
