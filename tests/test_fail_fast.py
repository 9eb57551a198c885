"""Every bad input is one ``error: ...`` line and exit 2, found before training starts (nothing trained)."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest
import yaml
from train_runner import ROOT, run_train, tiny_encoder_dir

import train
from configs.compose import compose
from training.logger import wandb_online_problem

SAMPLES = ROOT / "datamodules" / "samples"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return tiny_encoder_dir(tmp_path_factory.mktemp("enc") / "tiny")


def _corpus_copy(root: Path, broken_split: str, how: str) -> Path:
    corpus = root / "BC5CDR"
    corpus.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        if split != broken_split:
            (corpus / f"{split}.tsv").write_bytes((SAMPLES / "BC5CDR" / f"{split}.tsv").read_bytes())
    target = corpus / f"{broken_split}.tsv"
    if how == "directory":
        target.mkdir()
    elif how == "unreadable":
        target.write_text("x\tO\n")
        target.chmod(0)
    return root


def _main(tmp_path: Path, capsys, *args: str) -> str:
    """train.main(args) must return 2 quickly, with one error line and no run started."""
    start = time.monotonic()
    code = train.main(
        [f"run_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}", "logger=none", *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("error: "), err
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "run").exists()  # nothing created by a run that fails its checks
    assert time.monotonic() - start < 60
    return err[-1]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["trainer.accelerator=tpux"], "invalid accelerator name"),
        (["trainer.precision=bogus"], "Precision 'bogus' is invalid"),
        (["data.reading=foo"], "data.reading=foo: use one of full, paper"),
        (["data.weighting=foo"], "data.weighting=foo: use one of inverse_size, proportional"),
        (["model.loss_normalization=foo"], "model.loss_normalization=foo: use one of rows, sentences"),
        (["model.omega=foo"], "model.omega must be 'softmax' or 'logits'"),
        (["model=baseline", "model.dropout=1.5"], "model.dropout=1.5"),
        (["data.batch_size=0"], "data.batch_size=0: must be >= 1"),
        (["data.corpora=[]"], "data.corpora is empty"),
        (["data.corpora=[BC5CDR,BC5CDR]"], "data.corpora names BC5CDR 2 times"),
        (["data.corpora=[BC5CDR,Nope]"], "unknown corpus 'Nope'"),
        (["logger=tensorboard"], "logger=tensorboard: use one of wandb, csv, none"),
        (["model=basline"], "unknown model 'basline'. Did you mean 'baseline'?"),
        (["model.half_contex=3"], "Did you mean: 'half_context'?"),
        (["model=baseline", "model.half_context=3"], "not in 'BaselineConfig'"),
        (["experiment=single_corpus"], "experiment=single_corpus needs data.corpora=..."),
        (["data.fold=3"], "data.fold=3: none of data.corpora has cross-validation folds"),
        (["data.corpora=[ADE]", "data.fold=10"], "data.fold=10: ADE has folds 0, 1, 2"),
        (
            ["model=tabert_cnn", "model.mode=paper"],
            "model.mode=paper needs exactly one corpus with relations",
        ),
        (["model=tabert_cnn", "model.kernel=4"], "model.kernel=4: an odd size"),
        (["model=tabert_cnn", "model.first_layer=fast"], "model.first_layer=fast: use one of factored"),
        (
            ["data.batch_size=0", "data.reading=foo"],
            "data.reading=foo: use one of full, paper; data.batch_size",
        ),
    ],
)
def test_bad_config_values(tmp_path, capsys, encoder, args, expected):
    assert expected in _main(tmp_path, capsys, f"encoder.name={encoder}", *args)


def test_bad_encoder_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = _main(tmp_path, capsys, f"encoder.name={tmp_path / 'empty'}")
    assert line.startswith(f"error: encoder.name={tmp_path / 'empty'}: cannot load the encoder")


@pytest.mark.parametrize(
    "split, how, expected",
    [
        ("test", "directory", "is not a file"),
        ("dev", "missing", "python -m datamodules.prepare --data-root"),
        ("test", "unreadable", "cannot read corpus BC5CDR (test)"),
    ],
)
def test_every_corpus_split_is_checked_before_training(tmp_path, capsys, encoder, split, how, expected):
    import os

    if how == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    root = _corpus_copy(tmp_path / "data", split, how)
    line = _main(tmp_path, capsys, f"encoder.name={encoder}", f"data.root={root}", "data.corpora=[BC5CDR]")
    assert expected in line and f"{root / 'BC5CDR' / split}" in line


def test_run_dir_under_a_regular_file(tmp_path, capsys, encoder):
    (tmp_path / "file").write_text("")
    code = train.main([f"run_dir={tmp_path / 'file' / 'run'}", f"encoder.name={encoder}", "logger=none"])
    assert code == 2
    assert "cannot write there" in capsys.readouterr().err


def test_resume_last_or_auto_needs_a_run_directory(capsys, monkeypatch):
    for variable in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"):  # a cluster job has a stable run directory
        monkeypatch.delenv(variable, raising=False)
    for value in ("last", "auto"):
        assert train.main([f"resume={value}", "logger=none"]) == 2
        assert f"resume={value} needs the run to continue" in capsys.readouterr().err


class _RejectingWandbServer(http.server.BaseHTTPRequestHandler):
    """Answers /healthz, refuses every API call as a server does for an unknown key."""

    def do_GET(self) -> None:
        self._answer(200, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(401, b'{"errors": [{"message": "invalid api key"}]}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("server", ["unreachable", "rejects the key"])
def test_wandb_trouble_falls_back_to_offline_in_bounded_time(tmp_path, encoder, server):
    from train_runner import free_port

    port = free_port()
    if server == "rejects the key":
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _RejectingWandbServer)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    start = time.monotonic()
    proc = run_train(
        [
            f"run_dir={tmp_path / 'run'}",
            f"encoder.name={encoder}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.corpora=[BC5CDR]",
            "data.val_subsample=8",
            "trainer.max_steps=5",
            "trainer.limit_test_batches=1",
            "callbacks.rich_progress=false",
            "logger=wandb",
        ],
        tmp_path,
        timeout=300,
        extra_env={"WANDB_BASE_URL": f"http://127.0.0.1:{port}", "WANDB_API_KEY": "a" * 40},
    )
    if server == "rejects the key":
        httpd.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - start < 120
    expected = "is unreachable" if server == "unreachable" else "invalid api key"
    assert "W&B: cannot log online:" in proc.stdout and expected in proc.stdout
    assert "logging offline under" in proc.stdout
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_malformed_wandb_key_falls_back_to_offline(tmp_path, monkeypatch):
    from train_runner import free_port

    monkeypatch.setenv("WANDB_API_KEY", "short")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")  # never the real server
    assert wandb_online_problem("short", timeout=1.0) == "API key must have 40+ characters, has 5"


@pytest.mark.slow
def test_a_sweep_trial_command_line_runs_through_train_py(tmp_path, encoder):
    sweep = yaml.safe_load((ROOT / "configs" / "sweeps" / "mt6_cpu_lr.yaml").read_text())
    assert sweep["program"] == "train.py" and sweep["metric"]["name"] == "val/merged/macro_f1"
    trial = {"encoder.lr": 3.0e-5, "model.lr": 4.0e-4, "model.warmup_epochs": 0.2}
    assert trial.keys() == sweep["parameters"].keys()
    fixed = [a for a in sweep["command"] if not a.startswith("${") and a != "python"]
    args = [*fixed, *(f"{k}={v}" for k, v in trial.items())]  # what ${args_no_hyphens} expands to
    assert compose(args).encoder.lr == 3.0e-5
    small = [
        f"encoder.name={encoder}",
        f"data.root={ROOT / 'datamodules' / 'samples'}",
        "data.corpora=[BC5CDR]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.val_subsample=8",
        "trainer.max_steps=2",
        "trainer.limit_test_batches=1",
        "callbacks.rich_progress=false",
        f"run_dir={tmp_path / 'trial'}",
    ]
    proc = run_train([*args, *small], tmp_path, timeout=300)  # no W&B key: the trial logs offline
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no API key found, logging offline" in proc.stdout
    saved = yaml.safe_load((tmp_path / "trial" / "config.yaml").read_text())
    assert (saved["encoder"]["lr"], saved["model"]["lr"], saved["experiment"]) == (3.0e-5, 4.0e-4, "mt6_cpu")
