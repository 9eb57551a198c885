"""Tagging inputs of any size in bounded memory: documents are read, tagged and written a chunk at a time.

``predict_to_output``: every input into one output (``-o FILE``, atomic, or stdout); the first chunk is
read before the model loads, so a malformed input fails before the model's cost, and any error ends the
run (exit 2) with ``FILE`` as it was. ``predict_to_dir``: each input file into its own output in a
directory, with completion records (``inference.completion``); a file whose input cannot be read or
written is reported, recorded and skipped, the others go on, and a rerun does only what is not done.
Within a chunk the tagger sorts sentences by length into batches; chunks are written in input order.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from atomic_output import atomic_output
from errors import BionerError
from inference.completion import (
    Target,
    input_stat,
    is_done,
    remove_leftovers,
    targets,
    write_record,
)
from inference.documents import Document, iter_documents, write_documents
from inference.stream_writers import BINARY_FORMATS, WriteDocuments, open_writer

MAX_LISTED_FAILURES = 20


@dataclass(frozen=True)
class JobSettings:
    in_format: str
    out_format: str
    text_unit: str = "file"
    types: str = "merged"
    corpus: str | None = None
    chunk_documents: int = 2000
    progress: bool = False

    def output_settings(self) -> dict[str, Any]:
        """What shapes an output: a completion record is valid only for the same."""
        return {
            "in_format": self.in_format,
            "out_format": self.out_format,
            "text_unit": self.text_unit,
            "types": self.types,
            "corpus": self.corpus,
        }


@dataclass
class Summary:
    device: str = "?"
    documents: int = 0
    mentions: int = 0
    seconds: float = 0.0
    files_done: int = 0
    files_skipped: int = 0
    failed: list[str] = field(default_factory=list)
    per_file: bool = False

    def line(self) -> str:
        rate = self.documents / max(self.seconds, 1e-9)
        text = (
            f"{self.documents} documents, {self.mentions} mentions in {self.seconds:.1f} s "
            f"({rate:.1f} documents/s on {self.device})"
        )
        if self.per_file:
            text += f"; {self.files_done} files tagged, {self.files_skipped} already done"
            text += f", {len(self.failed)} failed"
            if self.failed:
                listed = self.failed[:MAX_LISTED_FAILURES]
                more = len(self.failed) - len(listed)
                text += ": " + " ".join(listed) + (f" and {more} more" if more else "")
        return text


def chunked(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """``documents`` in lists of ``size`` (the last one shorter), read only as each list is asked for."""
    iterator = iter(documents)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def tag_chunks(
    tagger: Any, chunks: Iterable[list[Document]], writer: Any, settings: JobSettings
) -> tuple[int, int]:
    """Tag and write each chunk in turn; (documents, mentions)."""
    documents = mentions = 0
    bar = None
    if settings.progress:
        from tqdm import tqdm

        bar = tqdm(desc="predict", unit="doc")
    try:
        for chunk in chunks:
            entities = tagger.annotate(chunk, types=settings.types, corpus=settings.corpus)
            writer.write(chunk, entities)
            documents += len(chunk)
            mentions += sum(map(len, entities))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return documents, mentions


def check_corpus(tagger: Any, corpus: str | None) -> None:
    if corpus is not None and corpus not in tagger.label_space.corpora:
        raise BionerError(
            f"--corpus {corpus}: the model knows {', '.join(tagger.label_space.corpora)}, not {corpus}"
        )


@contextlib.contextmanager
def open_output(name: str, *, binary: bool = False) -> Iterator[IO]:
    """Stdout, or a temporary file next to ``name`` that replaces it only when the run succeeds: a bad
    model or a failure half-way leaves an earlier output as it was. Opened before the model runs, so an
    unwritable output fails now, not after the work."""
    if name == "-":
        if binary:
            raise BionerError("a Parquet output needs -o FILE or --out-dir DIR, not stdout")
        yield sys.stdout
        return
    if Path(name).is_dir():
        raise BionerError(f"-o {name}: is a directory")
    with atomic_output(name) as temporary:
        try:
            out = open(temporary, "wb") if binary else open(temporary, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as err:
            raise BionerError(f"-o {name}: cannot write ({err.strerror})") from None
        with out:
            yield out


def predict_to_output(
    files: Sequence[str],
    output: str,
    settings: JobSettings,
    load_tagger: Callable[[], Any],
    *,
    write: WriteDocuments = write_documents,
) -> Summary:
    """Every document of ``files`` into ``output`` (``-``: stdout), in input order."""
    documents = (
        d for path in files for d in iter_documents(path, settings.in_format, text_unit=settings.text_unit)
    )
    chunks = chunked(documents, settings.chunk_documents)
    with open_output(output, binary=settings.out_format in BINARY_FORMATS) as out:
        first = next(chunks, None)
        tagger = load_tagger()
        check_corpus(tagger, settings.corpus)
        started = time.perf_counter()
        writer = open_writer(
            settings.out_format,
            out,
            identity=lambda: tagger.identity,
            single_input=len(files) == 1,
            write=write,
        )
        found = tag_chunks(tagger, itertools.chain([first] if first else [], chunks), writer, settings)
        writer.close()
    return Summary(str(tagger.device), *found, time.perf_counter() - started)


class _InputFailed(Exception):
    """An input file that could not be read (its reader's ``BionerError`` or ``OSError``)."""


def _guarded(documents: Iterator[Document]) -> Iterator[Document]:
    try:
        yield from documents
    except (BionerError, OSError) as err:
        raise _InputFailed(" ".join(str(err).split())) from err


def predict_to_dir(
    files: Sequence[str],
    out_dir: str | Path,
    settings: JobSettings,
    tagger: Any,
    *,
    write: WriteDocuments = write_documents,
) -> Summary:
    """Each of ``files`` into its own output in ``out_dir`` (``inference.completion``), skipping those
    done; a file that fails is reported on stderr, recorded and left for the next run."""
    out_dir = Path(out_dir)
    mine = targets(list(files), out_dir, settings.out_format)
    check_corpus(tagger, settings.corpus)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir, mine)
    except OSError as err:
        raise BionerError(f"--out-dir {out_dir}: cannot write ({err.strerror or err})") from None
    identity = tagger.identity
    wanted = settings.output_settings()
    summary = Summary(str(tagger.device), per_file=True)
    started = time.perf_counter()
    for target in mine:
        if is_done(target, identity, wanted):
            summary.files_skipped += 1
            continue
        try:
            record = _tag_file(target, settings, tagger, write)
        except (_InputFailed, BionerError) as err:
            reason = str(err)
            prefix = f"{target.input}: "
            print(
                f"error: {reason if reason.startswith(str(target.input)) else prefix + reason}",
                file=sys.stderr,
            )
            target.done.unlink(missing_ok=True)  # an earlier input's record no longer holds
            write_record(target.failed, {"input": str(target.input), "error": reason})
            summary.failed.append(str(target.input))
            continue
        target.failed.unlink(missing_ok=True)
        summary.files_done += 1
        summary.documents += record["documents"]
        summary.mentions += record["mentions"]
    summary.seconds = time.perf_counter() - started
    return summary


def _tag_file(target: Target, settings: JobSettings, tagger: Any, write: WriteDocuments) -> dict[str, Any]:
    """Tag one input into its output (atomically), then write its completion record; the record."""
    started = time.perf_counter()
    stat = input_stat(target.input)
    deleted: list[str] = []
    documents = _guarded(
        iter_documents(target.input, settings.in_format, text_unit=settings.text_unit, deleted=deleted)
    )
    mode = (
        {"mode": "wb"}
        if settings.out_format in BINARY_FORMATS
        else {"mode": "w", "encoding": "utf-8", "newline": ""}
    )
    with atomic_output(target.output) as temporary, open(temporary, **mode) as out:
        writer = open_writer(
            settings.out_format, out, identity=lambda: tagger.identity, single_input=True, write=write
        )
        found = tag_chunks(tagger, chunked(documents, settings.chunk_documents), writer, settings)
        writer.close()
    record = {
        "input": str(target.input.resolve()),
        **stat,
        "output": target.output.name,
        "output_bytes": target.output.stat().st_size,
        "documents": found[0],
        "mentions": found[1],
        "deleted": deleted,
        "seconds": round(time.perf_counter() - started, 3),
        "model": tagger.identity.name,
        "model_sha256": tagger.identity.sha256,
        "model_revision": tagger.identity.revision,
        "settings": settings.output_settings(),
    }
    write_record(target.done, record)
    return record


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM (SLURM's pre-emption, a time limit, torchrun passing it on) ends the process as an exception
    would: the file being written is discarded and its temporary removed, and the exit status is 143."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
