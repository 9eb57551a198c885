"""Exported models on the Hugging Face Hub, without a network (issue 31, parts 1, 2 and 4; ``inference.hub``).

Loading by id reads a Hub cache laid out on disk as ``snapshot_download`` leaves it
(``models--org--name/{blobs,refs,snapshots/<sha>}``) with ``HF_HUB_OFFLINE`` set; pushing is checked up to
the upload through a stand-in for ``HfApi`` that records its calls. The model card's header is read back
with ``huggingface_hub.ModelCard``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from fuzz_cases import plant
from train_runner import ROOT, clean_env, tiny_encoder_dir

import export
import predict
from errors import BionerError
from inference import hub, hub_ids, load
from inference.documents import Document, Passage
from untrusted import RemoteCodeError

OLD_CHECKPOINT = ROOT / "tests" / "fixtures" / "checkpoint_0b39895_baseline.ckpt"  # BC5CDR, a 16-wide BERT
SHA_MAIN = "a" * 39 + "1"
SHA_DEV = "b" * 39 + "2"
TEXTS = ["Famotidine-associated delirium.", "Cisplatin nephrotoxicity and renal failure in rats."]
# test counts per view and BC5CDR type (tp, fp, fn): corpus F1 of (9, 3, 7) disjoint and (10, 3, 6) merged
TYPE_COUNTS = {
    "disjoint": {"Chemical": (6, 2, 2), "Disease": (3, 1, 5)},
    "merged": {"Chemical": (6, 2, 2), "Disease": (4, 1, 4)},
}
COUNTS = {
    "sentences/BC5CDR": 10,
    **{
        f"{v}/BC5CDR/{t}/{c}": n
        for v, ts in TYPE_COUNTS.items()
        for t, ns in ts.items()
        for c, n in zip(("tp", "fp", "fn"), ns)
    },
}
EXPORT_FILES = [
    "README.md",
    "bioner_model.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """An export of the bundled tiny checkpoint, with a model card as a run's export has."""
    from datamodules.label_space import LabelSpace
    from inference.model_card import write_model_card
    from metrics.span_f1 import score_counts

    root = tmp_path_factory.mktemp("hub")
    encoder = tiny_encoder_dir(root / "tiny", hidden=16, layers=1)
    checkpoint = torch.load(OLD_CHECKPOINT, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["cfg"]["encoder"]["name"] = str(encoder)
    torch.save(checkpoint, root / "model.ckpt")
    assert export.main([str(root / "model.ckpt"), str(root / "export")]) == 0
    plain = checkpoint["hyper_parameters"]["cfg"]
    plain["data"]["root"] = str(root / "data")  # the full corpora, not the bundled samples
    label_space = LabelSpace.coerce(checkpoint["hyper_parameters"]["label_space"])
    metrics = {f"test/{k}": v for k, v in score_counts(COUNTS, label_space).items()}
    write_model_card(root / "export", plain, label_space, ["model=baseline"], metrics)
    return root / "export"


def lay_out_hub_cache(cache: Path, repo_id: str, snapshots: dict[str, Path], refs: dict[str, str]) -> Path:
    """``cache`` as ``snapshot_download`` leaves it: each file once under ``blobs/<sha256>``, each commit's
    files as relative symlinks under ``snapshots/<commit>/``, each branch's commit in ``refs/<branch>``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for commit, directory in snapshots.items():
        (repo / "snapshots" / commit).mkdir(parents=True)
        for file in sorted(directory.iterdir()):
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            (repo / "blobs").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, repo / "blobs" / digest)
            (repo / "snapshots" / commit / file.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    for ref, commit in refs.items():
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return repo


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch, exported) -> Path:
    """``org/name`` in a Hub cache under ``tmp_path``: main at ``SHA_MAIN``, branch dev at ``SHA_DEV``; the
    hub offline (huggingface_hub reads both settings into constants when it is imported)."""
    cache = tmp_path / "hub-cache"
    lay_out_hub_cache(
        cache, "org/name", {SHA_MAIN: exported, SHA_DEV: exported}, {"main": SHA_MAIN, "dev": SHA_DEV}
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_ids_are_told_from_local_paths(tmp_path, monkeypatch):
    assert hub_ids.parse_hub_id("org/name") == ("org/name", None)
    assert hub_ids.parse_hub_id("org/name@v1.0") == ("org/name", "v1.0")
    assert hub_ids.parse_hub_id(f"org/name@{SHA_MAIN}") == ("org/name", SHA_MAIN)
    for not_an_id in ("outputs/best.ckpt", "a/b/c", "name", "org/na--me", "/abs/dir", "org/name@"):
        assert hub_ids.parse_hub_id(not_an_id) is None, not_an_id
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)  # an existing local path wins
    assert not hub_ids.is_hub_id("org/name") and hub_ids.is_hub_id("org/other")


def test_a_model_loaded_by_id_from_the_hub_cache_predicts_as_the_local_export(offline_cache, exported):
    local = load(exported, device="cpu")
    documents = [Document(str(i), [Passage(0, t)]) for i, t in enumerate(TEXTS)]
    expected = local.annotate(documents, types="disjoint")
    for name, commit in (
        ("org/name", SHA_MAIN),
        (f"org/name@{SHA_DEV}", SHA_DEV),  # a commit
        ("org/name@dev", SHA_DEV),  # a branch, pinned to its commit
    ):
        tagger = load(name, device="cpu")
        assert Path(tagger.source) == offline_cache / "models--org--name" / "snapshots" / commit
        assert tagger.annotate(documents, types="disjoint") == expected
        assert (tagger.identity.name, tagger.identity.revision) == ("org/name", commit)
        assert tagger.identity.sha256 == local.identity.sha256 and local.identity.revision == ""


def test_predict_by_id_records_the_pinned_revision(offline_cache, tmp_path, capsys):
    import pyarrow.parquet as pq

    source = tmp_path / "abstracts.txt"
    source.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "mentions.parquet"
    argv = ["org/name@dev", str(source), "--text-unit", "line", "--out-format", "parquet", "-o", str(out)]
    assert predict.main([*argv, "--device", "cpu"]) == 0
    assert f"model org/name@{SHA_DEV} (from " in capsys.readouterr().err
    rows = pq.read_table(out).to_pylist()
    assert rows and {(r["model"], r["model_revision"]) for r in rows} == {("org/name", SHA_DEV)}

    done = tmp_path / "done"
    assert predict.main(["org/name", str(source), "--out-dir", str(done), "--device", "cpu"]) == 0
    record = json.loads(next(done.glob("*.done.json")).read_text())
    assert (record["model"], record["model_revision"]) == ("org/name", SHA_MAIN)


def test_evaluate_by_id_scores_as_the_local_export_and_records_the_revision(
    offline_cache, exported, tmp_path, monkeypatch
):
    import evaluate

    monkeypatch.chdir(tmp_path)
    samples = str(ROOT / "datamodules" / "samples")
    common = ["--data-root", samples, "--match", "none", "--no-wandb", "--device", "cpu"]
    assert evaluate.main([str(exported), "-o", str(tmp_path / "local"), *common]) == 0
    assert evaluate.main(["org/name@dev", *common]) == 0  # default out dir: here, never in the Hub cache
    local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    by_id = json.loads((tmp_path / "eval" / f"org--name-{SHA_DEV[:12]}-test" / "metrics.json").read_text())
    assert by_id["hub"] == {"id": "org/name", "revision": SHA_DEV, "requested": "dev"} and "hub" not in local
    scores = [k for k in local if k.startswith("test/")]
    assert len(scores) > 10 and {k: by_id[k] for k in scores} == {k: local[k] for k in scores}


def test_an_id_not_in_the_cache_offline_is_one_error_line(tmp_path):
    env = {**clean_env(tmp_path), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), "nobody/missing@v2", "-", "--device", "cpu"],
        input="Aspirin.\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len([x for x in lines if x.startswith("error:")]) == 1
    error = next(x for x in lines if x.startswith("error:"))
    assert (
        error.startswith("error: nobody/missing@v2: not a local path; as a Hub model")
        and "HF_HUB_OFFLINE" in error
    )


def _http_error(cls: type, status: int) -> Exception:
    import httpx

    response = httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))
    return cls("refused", response=response)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "RepositoryNotFoundError",
            "no repository org/gone can be read (missing, private or gated): set HF_TOKEN",
        ),
        ("RevisionNotFoundError", "org/gone has no revision 'v9': check the branch, tag or commit"),
        ("HfHubHTTPError", "the Hub answered HTTP 503: set HF_TOKEN"),
    ],
)
def test_hub_failures_name_the_id_and_the_fix(monkeypatch, error, expected):
    from huggingface_hub import errors

    def failing(*args, **kwargs):
        raise _http_error(getattr(errors, error), 503 if error == "HfHubHTTPError" else 404)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(BionerError) as caught:
        load("org/gone@v9", device="cpu")
    assert str(caught.value).startswith("org/gone@v9: not a local path; as a Hub model") and expected in str(
        caught.value
    )


def test_remote_code_in_a_hub_snapshot_is_refused_as_in_a_local_export(tmp_path, monkeypatch, exported):
    evil = tmp_path / "evil"
    shutil.copytree(exported, evil)
    marker = tmp_path / "marker"
    plant(evil, marker, config=False)
    lay_out_hub_cache(tmp_path / "cache", "org/evil", {SHA_MAIN: evil}, {"main": SHA_MAIN})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RemoteCodeError, match="auto_map"):
        load("org/evil", device="cpu")
    assert not marker.exists()


class RecordingApi:
    """A stand-in for ``huggingface_hub.HfApi`` that records what would be sent, and sends nothing."""

    calls: list[tuple[str, tuple, dict]] = []

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        return huggingface_hub.hf_api.RepoUrl(f"https://huggingface.co/{args[0]}")

    def create_branch(self, *args, **kwargs):
        self.calls.append(("create_branch", args, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        sent = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        self.calls.append(("create_commit", (repo_id, sent), kwargs))
        return huggingface_hub.hf_api.CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{SHA_DEV}",
            commit_message=kwargs["commit_message"],
            commit_description="",
            oid=SHA_DEV,
        )


def test_push_checks_the_export_and_sends_only_its_files(tmp_path, monkeypatch, capsys, exported):
    directory = tmp_path / "to-push"
    shutil.copytree(exported, directory)
    (directory / "notes.txt").write_text("mine")
    (directory / "extra.pkl").write_bytes(b"\x80\x04N.")
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    argv = ["push", str(directory), "org/name", "--revision", "v1", "--private", "--commit-message", "first"]

    assert hub.main(argv) == 2  # a pickle in the directory: nothing is sent
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {directory}: refused: extra.pkl may hold a pickle")
    assert RecordingApi.calls == []

    (directory / "extra.pkl").unlink()
    assert hub.main(argv) == 0
    out = capsys.readouterr().out
    assert (
        f"https://huggingface.co/org/name/commit/{SHA_DEV}" in out
        and "left out (not an export's file): notes.txt" in out
    )
    (create, args, kwargs), (branch, _, branch_kwargs), (commit, (repo_id, sent), commit_kwargs) = (
        RecordingApi.calls
    )
    assert (create, args, kwargs) == ("create_repo", ("org/name",), {"private": True, "exist_ok": True})
    assert (branch, branch_kwargs) == ("create_branch", {"branch": "v1", "exist_ok": True})
    assert (commit, repo_id, commit_kwargs) == (
        "create_commit",
        "org/name",
        {"commit_message": "first", "revision": "v1"},
    )
    assert sorted(sent) == EXPORT_FILES
    assert all(sent[name] == (exported / name).read_bytes() for name in EXPORT_FILES)


def test_push_refuses_what_is_not_a_whole_export_and_says_how_to_log_in(
    tmp_path, monkeypatch, capsys, exported
):
    from huggingface_hub.errors import LocalTokenNotFoundError

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    no_card = tmp_path / "no-card"
    shutil.copytree(exported, no_card)
    (no_card / "README.md").unlink()
    assert hub.main(["push", str(no_card), "org/name"]) == 2
    assert f"error: {no_card}: no README.md model card" in capsys.readouterr().err
    assert hub.main(["push", str(tmp_path / "nothing"), "org/name"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert hub.main(["push", str(exported), "org/name@main"]) == 2
    assert "not a Hub repo id" in capsys.readouterr().err
    assert RecordingApi.calls == []

    class NotLoggedIn(RecordingApi):
        def create_repo(self, *args, **kwargs):
            raise LocalTokenNotFoundError("Token is required")

    monkeypatch.setattr(huggingface_hub, "HfApi", NotLoggedIn)
    assert hub.main(["push", str(exported), "org/name"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: push to org/name: not logged in: set HF_TOKEN or run `hf auth login`"]


def test_the_card_header_is_what_the_hub_reads(exported, tmp_path):
    from huggingface_hub import ModelCard

    from inference.hub_card import card_metadata
    from metrics.span_f1 import prf

    card = ModelCard.load(exported / "README.md")
    assert card.data.library_name == "bioner-mtl" and card.data.datasets == ["chintagunta85/BC5CDR"]
    assert card.data.license == "other" and card.data.license_name == "mixed-training-data"
    assert card.data.base_model is None  # a local encoder directory
    (index,) = card.data.to_dict()["model-index"]
    assert [r["dataset"] for r in index["results"]] == [
        {"name": "BC5CDR", "type": "chintagunta85/BC5CDR", "split": "test"}
    ]
    scores = {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert scores == {
        ("BC5CDR", "span F1, exact match (disjoint)"): round(prf(9, 3, 7)[2], 2),
        ("BC5CDR", "span F1, exact match (merged)"): round(prf(10, 3, 6)[2], 2),
    }
    assert all(r.metric_type == "f1" and r.dataset_split == "test" for r in card.data.eval_results)
    assert "- BC5CDR: CC BY 4.0" in card.text

    # a Hub encoder, a corpus without a verified Hub copy and one of the user's own
    metrics = {
        f"test/{v}/{c}/f1": 50.0 for v in ("disjoint", "merged") for c in ("Linnaeus", "NCBI-disease", "Mine")
    }
    meta = card_metadata(
        "run",
        "sru_ner",
        "michiyasunaga/BioLinkBERT-large",
        ["Linnaeus", "NCBI-disease", "/data/Mine"],
        metrics,
    )
    data = ModelCard("---\n" + json.dumps(meta.data) + "\n---\n").data
    assert data.base_model == "michiyasunaga/BioLinkBERT-large" and data.datasets == ["cambridgeltl/linnaeus"]
    assert [(r.dataset_name, r.dataset_type) for r in data.eval_results[::2]] == [
        ("Linnaeus", "cambridgeltl/linnaeus"),
        ("NCBI-disease", "NCBI-disease"),
        ("Mine", "Mine"),
    ]
    assert "No Hub dataset id (no copy with the same splits verified): NCBI-disease, Mine." in meta.text
    same = card_metadata(
        "run", "sru_ner", str(tmp_path / "models--acme--enc/snapshots/abc"), ["BC5CDR"], None
    )
    assert same.data.get("base_model") == "acme/enc" and "model-index" not in same.data


def test_one_licence_id_when_the_corpora_and_the_encoder_share_it(monkeypatch):
    from inference import hub_card

    monkeypatch.setitem(hub_card.ENCODER_LICENCES, "acme/enc", "cc-by-4.0")
    meta = hub_card.card_metadata("run", "baseline", "acme/enc", ["BC5CDR", "Linnaeus"], None)
    assert meta.data["license"] == "cc-by-4.0" and "license_name" not in meta.data
    meta = hub_card.card_metadata("run", "baseline", "acme/enc", ["BC5CDR", "BC4CHEMD"], None)
    assert meta.data["license"] == "other"  # BC4CHEMD: research use only


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="the Hub cache links snapshots to blobs")
def test_the_laid_out_cache_is_what_huggingface_hub_reads(offline_cache):
    from huggingface_hub import scan_cache_dir

    (repo,) = scan_cache_dir(offline_cache).repos
    assert repo.repo_id == "org/name" and {r.commit_hash for r in repo.revisions} == {SHA_MAIN, SHA_DEV}
    assert {ref for r in repo.revisions for ref in r.refs} == {"main", "dev"}


def test_a_dry_run_checks_and_lists_the_files_and_contacts_nothing(tmp_path, monkeypatch, capsys, exported):
    directory = tmp_path / "to-push"
    shutil.copytree(exported, directory)
    (directory / "notes.txt").write_text("mine")
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    assert hub.main(["push", str(directory), "org/name", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"would push {len(EXPORT_FILES)} files to https://huggingface.co/org/name (main): "
        + ", ".join(sorted(EXPORT_FILES)),
        "commit message: Upload to-push with bioner-mtl",
        "left out (not an export's file): notes.txt",
        "dry run: nothing was sent",
    ]
    assert RecordingApi.calls == []
    (directory / "bioner_model.json").write_text("{")  # the same checks as a real push
    assert hub.main(["push", str(directory), "org/name", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_transformers_export_is_pushed_with_its_own_files_and_refused_with_code(
    tmp_path, monkeypatch, capsys
):
    from transformers import BertConfig, BertForTokenClassification

    directory = tmp_path / "tfx"
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=3,
    )  # fmt: skip
    BertForTokenClassification(config).save_pretrained(directory, safe_serialization=True)
    (directory / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (directory / "README.md").write_text("---\nlibrary_name: transformers\n---\n# a token classifier\n")
    (directory / "training_args.txt").write_text("not sent")
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    assert hub.main(["push", str(directory), "org/tfx"]) == 0
    (_, commit) = RecordingApi.calls  # no branch to create on main
    assert sorted(commit[1][1]) == ["README.md", "config.json", "model.safetensors", "vocab.txt"]
    assert "left out (not an export's file): training_args.txt" in capsys.readouterr().out

    RecordingApi.calls = []
    settings = json.loads((directory / "config.json").read_text())
    settings["auto_map"] = {"AutoModelForTokenClassification": "modeling.Evil"}
    (directory / "config.json").write_text(json.dumps(settings))
    assert hub.main(["push", str(directory), "org/tfx"]) == 2
    assert capsys.readouterr().err.startswith("error: ") and RecordingApi.calls == []


def test_a_warm_start_from_a_hub_id_names_the_commit_it_started_from(offline_cache, exported):
    from training.warm_start import read_init_source

    read_init_source.cache_clear()
    source = read_init_source("org/name")
    local = read_init_source(str(exported))
    assert source.path == f"org/name@{SHA_MAIN}"  # the model card's "Started from" and the printed report
    assert source.model == local.model and source.label_space == local.label_space
    assert all(torch.equal(source.state_dict[k], v) for k, v in local.state_dict.items())
    assert read_init_source("org/name@dev").path == f"org/name@{SHA_DEV}"
    with pytest.raises(BionerError, match="org/missing: not a local path; as a Hub model, it is not in the"):
        read_init_source("org/missing")
