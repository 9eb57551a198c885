"""Tag documents with a trained model: raw text, JSONL, PubTator, BioC or PubMed XML in; JSONL, PubTator,
BioC or Parquet out.

    python predict.py CKPT_OR_EXPORT_DIR_OR_HUB_ID INPUT... [--in-format FORMAT] [--out-format FORMAT]
        [--types merged|disjoint] [--corpus NAME] [-o OUT | --out-dir DIR] [--shard i/N]
        [--chunk-documents N] [--trust-checkpoint]

``INPUT`` is a file, a directory or glob (``inference.documents.expand_inputs``) or ``-`` (stdin).
Documents are read, tagged and written ``--chunk-documents`` at a time: memory does not grow with the
input (``inference.prediction_job``). Raw text is one document per file (``--text-unit line``: one per
non-empty line). Every mention carries character offsets into the original text:
``{"doc_id", "start", "end", "text", "type", "corpus_type", "score"}`` with ``text == doc[start:end]``.
PubTator and BioC outputs keep the input documents as they were and add the predicted annotations.
``-o OUT`` is replaced only when the whole run succeeded: a failure leaves an earlier ``OUT`` as it was.
``--out-dir DIR`` writes one output per input file with a completion record each; a rerun (a requeued
job) skips the files done and retries the ones that failed, and a malformed file is reported and skipped
(exit 1 at the end) while the others go on (``inference.completion``). With ``--out-dir``, processes
share the files: ``--shard i/N``, or what torchrun and a SLURM job array say (``inference.shards``;
``scripts/slurm_predict.sbatch``).
The same from Python: ``from inference import load; load(CKPT).predict(["text", ...])``.
A checkpoint is read as plain data only; one that needs more (it could run code) is refused with exit 2
unless ``--trust-checkpoint`` says the file is trusted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from datamodules.eval_batches import DEFAULT_EVAL_MEMORY_MB
from errors import BionerError, report_user_error
from inference.documents import FORMATS_IN, expand_inputs, guess_format, write_documents
from inference.prediction_job import JobSettings, predict_to_dir, predict_to_output, terminate_as_exit
from inference.shards import WHOLE, local_device, parse_shard, shard_from_env
from inference.stream_writers import STREAM_FORMATS_OUT

DEFAULT_CHUNK_DOCUMENTS = 2000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model_help = "a checkpoint (.ckpt), a directory written by export.py, or one on the Hub: ORG/NAME[@REV]"
    parser.add_argument("model", help=model_help)
    parser.add_argument("inputs", nargs="+", help="input files, directories or globs, or - for stdin")
    parser.add_argument(
        "--in-format", choices=FORMATS_IN, help="default: from the file name (text otherwise)"
    )
    parser.add_argument(
        "--out-format", choices=STREAM_FORMATS_OUT, help="default: the input's format, else jsonl"
    )
    parser.add_argument("--types", choices=("merged", "disjoint"), default="merged")
    parser.add_argument("--corpus", help="annotate as this training corpus would (only its types)")
    parser.add_argument(
        "--text-unit", choices=("file", "line"), default="file", help="raw text: a document is"
    )
    parser.add_argument("-o", "--output", default=None, help="output file (default: stdout)")
    parser.add_argument("--out-dir", help="one output per input file here, with completion records; "
                        "a rerun does only the files not done")  # fmt: skip
    parser.add_argument("--shard", help="i/N: only file k of the sorted inputs with k %% N == i "
                        "(default: from torchrun, a SLURM job array; --out-dir only)")  # fmt: skip
    parser.add_argument("--chunk-documents", type=int, default=DEFAULT_CHUNK_DOCUMENTS,
                        help="read, tag and write this many documents at a time (%(default)s)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="at most this many sentences per batch")
    parser.add_argument("--memory-mb", type=float, default=DEFAULT_EVAL_MEMORY_MB,
                        help="and at most this much activation memory per batch, by the model's estimate "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK under torchrun, "
                        "else cuda when available)")  # fmt: skip
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load a checkpoint that needs more than plain data; it may run code: "
                        "only a file you trust")  # fmt: skip
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress bar on stderr (default: when stderr is a terminal)")  # fmt: skip
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from inference.tagger import load

    if args.batch_size < 1:
        raise BionerError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.memory_mb <= 0:
        raise BionerError(f"--memory-mb {args.memory_mb:g}: must be > 0")
    if args.chunk_documents < 1:
        raise BionerError(f"--chunk-documents {args.chunk_documents}: must be >= 1")
    if args.output is not None and args.out_dir is not None:
        raise BionerError("-o and --out-dir: give one (--out-dir writes one output per input file)")
    shard = parse_shard(args.shard) if args.shard is not None else shard_from_env()
    if shard.count > 1 and args.out_dir is None:
        raise BionerError(
            f"shard {shard} of several: sharding needs --out-dir (one output per input file), "
            "not -o or stdout"
        )
    files = expand_inputs(args.inputs)
    if not files:
        raise BionerError(f"no input files in {' '.join(args.inputs)}")
    in_formats = {args.in_format or guess_format(path) for path in files}
    if len(in_formats) > 1:
        raise BionerError(f"inputs in several formats ({', '.join(sorted(in_formats))}): pass --in-format")
    in_format = in_formats.pop()
    settings = JobSettings(
        in_format=in_format,
        out_format=args.out_format or (in_format if in_format in STREAM_FORMATS_OUT else "jsonl"),
        text_unit=args.text_unit,
        types=args.types,
        corpus=args.corpus,
        chunk_documents=args.chunk_documents,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
    )

    def load_tagger():
        tagger = load(
            args.model,
            device=args.device or local_device(),
            batch_size=args.batch_size,
            memory_mb=args.memory_mb,
            trust_checkpoint=args.trust_checkpoint,
        )
        if tagger.hub is not None:  # the commit a branch or tag resolved to, for the record
            print(f"model {tagger.hub.pinned} (from {tagger.source})", file=sys.stderr)
        return tagger

    if args.out_dir is None:
        summary = predict_to_output(files, args.output or "-", settings, load_tagger, write=write_documents)
    else:
        mine = shard.share(files) if shard != WHOLE else sorted(files)
        tagger = load_tagger()
        with terminate_as_exit():
            summary = predict_to_dir(mine, args.out_dir, settings, tagger, write=write_documents)
        if shard != WHOLE:
            print(f"shard {shard}: {len(mine)} of {len(files)} input files", file=sys.stderr)
    print(summary.line(), file=sys.stderr)
    return 1 if summary.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BionerError as err:
        return report_user_error(err)


if __name__ == "__main__":
    sys.exit(main())
