"""Bit-identity of runs across a restructuring (issue 28): the same runs at two commits must write the
same checkpoints, tensor for tensor, and the same metrics.

    git worktree add /tmp/before <commit>
    python scripts/bit_identity.py run --repo /tmp/before --out outputs/bit_identity/before \
        --data-root ../shared/data
    python scripts/bit_identity.py run --out outputs/bit_identity/after --data-root ../shared/data
    python scripts/bit_identity.py compare outputs/bit_identity/before outputs/bit_identity/after

``run`` trains each run of ``RUNS`` with ``REPO/train.py`` (this checkout by default), then writes
``OUT/fingerprint.json``: for every run, the SHA-256 of every tensor in ``best.ckpt`` and ``last.ckpt``
(weights, optimizer and scheduler state, RNG states, thresholds), every other checkpoint value with the
run directory and the repository path written as placeholders, and every number in ``metrics.json``
except wall times. ``compare`` lists what differs and exits 1 if anything does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

QUIET = ["logger=csv", "callbacks.rich_progress=false", "trainer.enable_progress_bar=false"]
MT6_50 = [
    "trainer.max_steps=50", "data.samples_per_epoch=800", "test_after_fit=false",
    "data.val_subsample=100", "thresholds.dev_sentences=100",
]  # fmt: skip
# name -> (overrides, processes); {data} is --data-root
RUNS: dict[str, tuple[list[str], int]] = {
    "default": ([], 1),
    "mt6_cpu-sru_ner": (["experiment=mt6_cpu", "model=sru_ner", "data.root={data}", *MT6_50], 1),
    "mt6_cpu-baseline": (["experiment=mt6_cpu", "model=baseline", "data.root={data}", *MT6_50], 1),
    "mt6_cpu-tabert_cnn": (["experiment=mt6_tabert_cpu", "model=tabert_cnn", "data.root={data}", *MT6_50], 1),
    "ddp-2": (
        [
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.max_steps=20",
            "data.samples_per_epoch=160",
            "test_after_fit=false",
        ],
        2,
    ),  # fmt: skip
}
UNTIMED = ("wall", "time", "_s")


def _digest(value: torch.Tensor | np.ndarray) -> str:
    if isinstance(value, np.ndarray):
        raw = np.ascontiguousarray(value).tobytes()
    else:
        flat = value.detach().cpu().contiguous().reshape(-1)
        raw = (flat.to(torch.uint8) if flat.dtype == torch.bool else flat.view(torch.uint8)).numpy().tobytes()
    return f"{value.dtype}{tuple(value.shape)}:" + hashlib.sha256(raw).hexdigest()[:32]


def flatten(value: Any, prefix: str, out: dict[str, str], placeholders: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}/{_text(str(key), placeholders)}", out, placeholders)
    elif isinstance(value, (list, tuple)) and len(value) > 16 and all(type(v) is int for v in value):
        out[prefix] = f"ints[{len(value)}]:" + hashlib.sha256(repr(value).encode()).hexdigest()[:32]
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            flatten(item, f"{prefix}[{i}]", out, placeholders)
    elif isinstance(value, (torch.Tensor, np.ndarray)):
        out[prefix] = _digest(value)
    elif isinstance(value, str):
        out[prefix] = _text(value, placeholders)
    else:
        out[prefix] = repr(value)


def _text(text: str, placeholders: dict[str, str]) -> str:
    for path, name in placeholders.items():
        text = text.replace(path, name)
    return text


def fingerprint(run_dir: Path, repo: Path) -> dict[str, str]:
    placeholders = {  # longest first: the venv may sit inside the repository
        str(Path(sys.prefix).resolve()): "<venv>",
        str(run_dir.resolve()): "<run>",
        str(repo.resolve()): "<repo>",
    }
    out: dict[str, str] = {}
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=False)
        flatten(checkpoint, name, out, placeholders)
    written = run_dir / "metrics.json"  # (a run without a test writes none)
    metrics = json.loads(written.read_text()) if written.is_file() else {}
    for key, value in metrics.items():
        if not any(mark in key for mark in UNTIMED):
            flatten(value, f"metrics/{key}", out, placeholders)
    return out


def run_all(repo: Path, out: Path, data_root: str, only: list[str]) -> None:
    prints: dict[str, dict[str, str]] = {}
    for name, (overrides, processes) in RUNS.items():
        if only and name not in only:
            continue
        run_dir = (out / name).resolve()
        done = out / f"{name}.done"
        if not done.is_file():
            args = [a.replace("{data}", str(Path(data_root).resolve())) for a in overrides]
            command = [
                sys.executable,
                str(repo / "train.py"),
                *args,
                *QUIET,
                f"run_dir={run_dir}",
                f"run_name={name}",
            ]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            if processes > 1:
                env["OMP_NUM_THREADS"] = "1"
            print("+ " + " ".join(command), flush=True)
            log = out / f"{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as handle:
                code = subprocess.call(command, cwd=repo, env=env, stdout=handle, stderr=subprocess.STDOUT)
            if code != 0:
                raise SystemExit(f"error: run {name} exited with {code}; see {log}")
            done.touch()
        prints[name] = fingerprint(run_dir, repo)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=False
    ).stdout.strip()
    (out / "fingerprint.json").write_text(json.dumps({"commit": commit, "runs": prints}, indent=1))
    print(f"{out / 'fingerprint.json'}: {sum(map(len, prints.values()))} values, commit {commit}")


def compare(before: Path, after: Path) -> int:
    a = json.loads((before / "fingerprint.json").read_text())
    b = json.loads((after / "fingerprint.json").read_text())
    differ = 0
    for name in sorted(set(a["runs"]) | set(b["runs"])):
        left, right = a["runs"].get(name, {}), b["runs"].get(name, {})
        keys = sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))
        tensors = sum(1 for v in left.values() if v.startswith("torch."))
        print(f"{name}: {len(left)} values ({tensors} tensors), {len(keys)} differ")
        for key in keys[:20]:
            print(f"  {key}: {left.get(key, '<missing>')} -> {right.get(key, '<missing>')}")
        differ += len(keys)
    print(f"{a['commit'][:10]} vs {b['commit'][:10]}: " + ("identical" if not differ else f"{differ} differ"))
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every run and write OUT/fingerprint.json")
    run.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose train.py runs")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--data-root", required=True, help="the directory holding the six corpora")
    run.add_argument("--only", nargs="*", default=[], choices=sorted(RUNS))
    cmp = sub.add_parser("compare", help="compare two fingerprints; exit 1 if anything differs")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "compare":
        return compare(args.before, args.after)
    run_all(args.repo.resolve(), args.out, args.data_root, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
