"""Tag documents with a trained model: raw text, JSONL, PubTator or BioC in; JSONL, PubTator or BioC out.

    python predict.py CKPT_OR_EXPORT_DIR INPUT... [--in-format text|jsonl|pubtator|bioc]
        [--out-format jsonl|pubtator|bioc] [--types merged|disjoint] [--corpus NAME] [-o OUT]
        [--trust-checkpoint]

``INPUT`` is a file or ``-`` (stdin). Raw text is one document per file (``--text-unit line``: one per
non-empty line). Every mention carries character offsets into the original text:
``{"doc_id", "start", "end", "text", "type", "corpus_type", "score"}`` with ``text == doc[start:end]``.
PubTator and BioC outputs keep the input documents as they were and add the predicted annotations.
``-o OUT`` is replaced only when the whole run succeeded: a failure leaves an earlier ``OUT`` as it was.
The same from Python: ``from inference import load; load(CKPT).predict(["text", ...])``.
A checkpoint is read as plain data only; one that needs more (it could run code) is refused with exit 2
unless ``--trust-checkpoint`` says the file is trusted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from atomic_output import atomic_output
from datamodules.eval_batches import DEFAULT_EVAL_MEMORY_MB
from errors import BionerError, report_user_error
from inference.documents import FORMATS_IN, FORMATS_OUT, guess_format, read_documents, write_documents


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a training checkpoint (.ckpt) or a directory written by export.py")
    parser.add_argument("inputs", nargs="+", help="input files, or - for stdin")
    parser.add_argument(
        "--in-format", choices=FORMATS_IN, help="default: from the file name (text otherwise)"
    )
    parser.add_argument("--out-format", choices=FORMATS_OUT, help="default: the input's format, else jsonl")
    parser.add_argument("--types", choices=("merged", "disjoint"), default="merged")
    parser.add_argument("--corpus", help="annotate as this training corpus would (only its types)")
    parser.add_argument(
        "--text-unit", choices=("file", "line"), default="file", help="raw text: a document is"
    )
    parser.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    parser.add_argument("--batch-size", type=int, default=32, help="at most this many sentences per batch")
    parser.add_argument("--memory-mb", type=float, default=DEFAULT_EVAL_MEMORY_MB,
                        help="and at most this much activation memory per batch, by the model's estimate "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
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
    in_formats = {args.in_format or guess_format(path) for path in args.inputs}
    if len(in_formats) > 1:
        raise BionerError(f"inputs in several formats ({', '.join(sorted(in_formats))}): pass --in-format")
    in_format = in_formats.pop()
    out_format = args.out_format or (in_format if in_format in FORMATS_OUT else "jsonl")
    documents = [d for path in args.inputs for d in read_documents(path, in_format, text_unit=args.text_unit)]
    with _output(args.output) as out:
        tagger = load(
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            memory_mb=args.memory_mb,
            trust_checkpoint=args.trust_checkpoint,
        )
        started = time.perf_counter()
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        entities = tagger.annotate(documents, types=args.types, corpus=args.corpus, progress=progress)
        seconds = time.perf_counter() - started
        write_documents(documents, entities, out_format, out)
    mentions = sum(len(e) for e in entities)
    print(
        f"{len(documents)} documents, {mentions} mentions in {seconds:.1f} s "
        f"({len(documents) / max(seconds, 1e-9):.1f} documents/s on {tagger.device})",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _output(name: str) -> Iterator[TextIO]:
    """Stdout, or a temporary file next to ``name`` that replaces it only when the run succeeds: a bad
    model or a failure half-way leaves an earlier output as it was. Opened before the model runs, so an
    unwritable output fails now, not after the work."""
    if name == "-":
        yield sys.stdout
        return
    if Path(name).is_dir():
        raise BionerError(f"-o {name}: is a directory")
    with atomic_output(name) as temporary:
        try:
            out = open(temporary, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as err:
            raise BionerError(f"-o {name}: cannot write ({err.strerror})") from None
        with out:
            yield out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BionerError as err:
        return report_user_error(err)


if __name__ == "__main__":
    sys.exit(main())
