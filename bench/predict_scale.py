"""Tagging at scale on CPU: documents/s and peak resident memory of ``predict.py --out-dir`` against the
input's size (1x, 10x) and the number of processes (1, 2 under torchrun).

    python bench/predict_scale.py --model EXPORT_OR_CKPT [--documents 400] [--chunk-documents 200]
        [--device cpu] [--processes 1 2] [--tag NAME]

The input is the 40 BC5CDR test abstracts of the PubMed fixture (``tests/fixtures/pubmed``: title + space +
abstract, so it is there on an offline GPU machine too), repeated with new ids up to the size wanted, as
JSONL split into 4 files; the 10x input is 10 times ``--documents``. Each run is
``predict.py MODEL IN_DIR --out-dir OUT`` in a fresh process (``torchrun --nproc-per-node=2`` for 2), timed
from the start of the process to its end (``wall_s``, model load included) and by predict.py's own summary
line (``tagging_s``: reading, tagging and writing; the slowest rank's under torchrun), and measured by the
peak resident set of its largest process (``ru_maxrss`` of the children). Writes
``bench/results/predict_scale-DEVICE.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, arg_parser, command_line, machine, write_result

FILES = 4


def abstracts() -> list[str]:
    """Title + space + abstract of each article of the PubMed fixture's BC5CDR files, in file order."""
    from inference.documents import iter_documents

    texts = []
    for path in sorted((ROOT / "tests" / "fixtures" / "pubmed").glob("pubmed_bc5cdr_*.xml.gz")):
        for document in iter_documents(path, "pubmed"):
            texts.append(" ".join(passage.text for passage in document.passages))
    return texts


def write_inputs(directory: Path, texts: list[str], documents: int) -> None:
    directory.mkdir(parents=True)
    per_file = -(-documents // FILES)
    for f in range(FILES):
        with open(directory / f"part{f}.jsonl", "w", encoding="utf-8") as out:
            for i in range(f * per_file, min(documents, (f + 1) * per_file)):
                out.write(json.dumps({"id": f"d{i}", "text": texts[i % len(texts)]}) + "\n")


SUMMARY = re.compile(r"^(\d+) documents, \d+ mentions in ([\d.]+) s")


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, tagging seconds (the slowest process's, from predict.py's summary line: reading,
    tagging and writing, the model's load excluded) and peak RSS (MiB) of ``argv``, run by a fresh
    interpreter so that no earlier run's peak counts."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(p.stderr)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(p.returncode, time.perf_counter() - t, peak)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=ROOT)
    code, wall, peak_kib = proc.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited with {code}:\n{proc.stderr[-2000:]}")
    summaries = [m for line in proc.stderr.splitlines() if (m := SUMMARY.search(line.split("] ")[-1]))]
    for match in summaries:
        print(f"  {match.string}", flush=True)
    tagging = max(float(m.group(2)) for m in summaries)
    return float(wall), tagging, int(peak_kib) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--model", required=True, help="an export directory or a checkpoint")
    parser.add_argument("--documents", type=int, default=400, help="the 1x input size (default 400)")
    parser.add_argument("--chunk-documents", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="on the 1x input (1 2)")
    parser.add_argument("--tag", default="", help="added to the result's name")
    args = parser.parse_args(argv)
    texts = abstracts()
    runs = [("1x", 1, 1), ("10x", 10, 1), *(("1x", 1, n) for n in args.processes if n > 1)]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="predict_scale-"))
    try:
        for size, multiple, processes in runs:
            documents = args.documents * multiple
            inputs, out = work / f"in-{size}", work / f"out-{size}-{processes}"
            if not inputs.exists():
                write_inputs(inputs, texts, documents)
            launcher = (
                [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}"]
                if processes > 1
                else [sys.executable]
            )
            command = [
                *launcher, str(ROOT / "predict.py"), args.model, str(inputs), "--out-dir", str(out),
                "--chunk-documents", str(args.chunk_documents), "--device", args.device, "--no-progress",
            ]  # fmt: skip
            print(f"{size} ({documents} documents), {processes} process(es)", flush=True)
            wall, tagging, peak = measure(command)
            mentions = sum(1 for p in out.glob("*.jsonl") for _ in p.open())
            rows.append(
                {
                    "input": size,
                    "documents": documents,
                    "processes": processes,
                    "mentions": mentions,
                    "wall_s": round(wall, 1),
                    "tagging_s": round(tagging, 1),
                    "documents_per_s": round(documents / tagging, 2),
                    "documents_per_s_with_startup": round(documents / wall, 2),
                    "peak_rss_mb": round(peak, 1),
                }
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by = {(r["input"], r["processes"]): r for r in rows}
    result = {
        "command": command_line(__file__, argv),
        "machine": machine(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "model": str(args.model),
        "chunk_documents": args.chunk_documents,
        "runs": rows,
        "peak_rss_10x_over_1x": round(by[("10x", 1)]["peak_rss_mb"] / by[("1x", 1)]["peak_rss_mb"], 3),
        "speedup_2_processes": round(by[("1x", 2)]["documents_per_s"] / by[("1x", 1)]["documents_per_s"], 2),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_result(f"predict_scale{'-' + args.tag if args.tag else ''}-{args.device.split(':')[0]}", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
