"""Tag a JSONL file of ``{"id": ..., "text": ...}`` documents with Ray Data and write the mentions as
Parquet (one file per block under OUT_PARQUET, the columns of ``inference.mention_rows``); prints documents
and mentions per second.

    python scripts/ray_predict.py INPUT_JSONL MODEL_DIR OUT_PARQUET --concurrency K [--num-gpus G]

Each worker holds ``--cpus-per-worker`` CPUs; at least one CPU of the cluster must stay free for reading
and writing (else Ray Data would wait forever), which the script checks before it starts.
Without ``--address`` it starts a Ray of its own on this machine (``--num-cpus``: its CPUs; default all);
``--address auto`` joins a running cluster, whose workers must have bioner-mtl installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from errors import BionerError, report_user_error  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="JSONL, one {id, text} object a line (a file or a directory of them)")
    parser.add_argument("model", help="an export directory (export.py) or a checkpoint")
    parser.add_argument("output", help="a directory for the Parquet files")
    parser.add_argument("--concurrency", type=int, default=1, help="workers, each with its copy of the model")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per worker (0: tag on CPUs)")
    parser.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="CPUs each worker holds (fractions allowed)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="documents per worker call")
    parser.add_argument("--types", choices=("merged", "disjoint"), default="merged")
    parser.add_argument("--corpus", default=None, help="only this corpus's types")
    parser.add_argument("--address", default=None, help="a Ray cluster to join (auto: the running one)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (no --address)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BionerError as err:
        return report_user_error(err)


def run(args: argparse.Namespace) -> int:
    import ray

    from inference.ray_worker import TaggerWorker

    if args.address is None:
        # the local workers import this checkout, as this script does, installed or not
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address=args.address or "local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False
    )
    try:
        spare = ray.cluster_resources().get("CPU", 0) - args.concurrency * args.cpus_per_worker
        if spare < 1:  # workers holding every CPU leave none to the reads and writes: Ray Data waits forever
            raise BionerError(
                f"--concurrency {args.concurrency} x --cpus-per-worker {args.cpus_per_worker} leaves "
                f"{max(spare, 0):g} of the cluster's CPUs to reading and writing; leave at least 1"
            )
        started = time.perf_counter()
        documents = ray.data.read_json(args.input, file_extensions=["jsonl", "json"])
        mentions = documents.map_batches(
            TaggerWorker,
            fn_constructor_args=(str(Path(args.model).resolve()),),
            fn_constructor_kwargs={"types": args.types, "corpus": args.corpus, "id_column": "id"},
            concurrency=args.concurrency,
            num_gpus=args.num_gpus,
            num_cpus=args.cpus_per_worker,
            batch_size=args.batch_size,
            batch_format="numpy",
        )
        try:
            mentions.write_parquet(args.output)
        except Exception as err:  # Ray wraps a worker's error; a BionerError is the user's, one line
            cause = getattr(err, "cause", None) or err.__cause__
            if isinstance(cause, BionerError):
                raise cause from None
            raise
        seconds = time.perf_counter() - started
        n_documents, n_mentions = documents.count(), ray.data.read_parquet(args.output).count()
    finally:
        ray.shutdown()
    print(
        f"{n_documents:,} documents, {n_mentions:,} mentions in {seconds:.1f} s: "
        f"{n_documents / seconds:,.1f} documents/s, {n_mentions / seconds:,.1f} mentions/s -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
