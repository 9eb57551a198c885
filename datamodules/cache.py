"""The Arrow cache of tokenized splits: ``<cache_dir>/<corpus>/<split>-<key[:16]>``.

An entry is a ``datasets`` Arrow directory plus ``report.json`` (the split's ``TokenizationReport``). The
key (:func:`cache_key`) covers everything the rows depend on, so an entry is never stale, only absent
or unreadable. A hit hashes the corpus file but never reads it.

Writes are atomic and safe for DDP ranks sharing the directory: each process writes a private
temporary directory and renames it into place; the loser of a race discards its copy. An entry that
cannot be read (a truncated ``.arrow`` file, a missing or garbled ``report.json``) is rebuilt under a
file lock next to it: checked again (another rank may have rebuilt it meanwhile), then one ``warning:``
line on stderr names it, and it is tokenized, written aside and swapped in by two renames.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets import Dataset, load_from_disk
from filelock import FileLock

from datamodules.checksums import sha256_bytes, sha256_file
from datamodules.label_space import LabelSpace
from datamodules.readers import ReadResult
from datamodules.rows import TokenizationReport, label_ids, tokenize_corpus
from datamodules.splitting import MAX_SUBWORDS

CACHE_FORMAT = 3  # bump when the row layout or the splitting rules change
REPORT = "report.json"
# what reading a damaged entry raises: pyarrow (truncated IPC stream), json, a report of other fields
UNREADABLE = (OSError, ValueError, KeyError, TypeError, pa.ArrowException)


def tokenizer_identity(tokenizer: Any) -> str:
    """Class name + sha256 of the fast tokenizer's serialisation (vocab, normaliser, pre-tokenizer, model,
    post-processor). Its ``truncation``/``padding`` entries are left out: calling the tokenizer changes
    them, and the row building never uses either."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    backend.pop("truncation", None)
    backend.pop("padding", None)
    text = json.dumps(backend, sort_keys=True, ensure_ascii=False)
    return f"{type(tokenizer).__name__}:{sha256_bytes(text)}"


def cache_key(
    corpus_path: str | os.PathLike,
    *,
    tokenizer: Any,
    label_space: LabelSpace,
    corpus: str,
    split: str,
    reading: str,
    max_subwords: int,
    scheme: str = "auto",
) -> str:
    """sha256 over: the corpus file's sha256 (an edited file is tokenized again), the tokenizer identity,
    the cap, the reading, the split, this corpus's qualified types with their global ids (ids depend on
    the whole label space) and, when not ``"auto"``, the tagging scheme a user corpus asks for."""
    payload = {
        "format": CACHE_FORMAT,
        "file": sha256_file(corpus_path),
        "tokenizer": tokenizer_identity(tokenizer),
        "max_subwords": int(max_subwords),
        "reading": reading,
        "split": split,
        **label_ids(label_space, corpus),
    }
    if scheme != "auto":  # keeps the keys of the registered corpora (always "auto") as they were
        payload["scheme"] = scheme
    return sha256_bytes(json.dumps(payload, sort_keys=True))


def cache_path(cache_dir: str | os.PathLike, corpus: str, split: str, key: str) -> Path:
    return Path(cache_dir) / corpus / f"{split}-{key[:16]}"


def load_or_tokenize(
    corpus_path: str | os.PathLike,
    read: Callable[[], ReadResult],
    tokenizer: Any,
    label_space: LabelSpace,
    *,
    corpus: str,
    split: str,
    reading: str = "full",
    max_subwords: int = MAX_SUBWORDS,
    cache_dir: str | os.PathLike | None = ".cache/bioner",
    scheme: str = "auto",
    progress: bool = False,
) -> tuple[Dataset, TokenizationReport]:
    """The tokenized split from its cache entry when there is one (the corpus file is only hashed, never
    read), else ``tokenize_corpus(read().sentences, ...)`` saved there (module docstring); ``read``: the
    reader bound to the file (``datamodules.corpora.SplitSource.read``).
    ``cache_dir=None`` disables the cache; ``progress`` is passed to ``tokenize_corpus``."""

    def tokenize() -> tuple[Dataset, TokenizationReport]:
        return tokenize_corpus(
            read().sentences, tokenizer, label_space, corpus, max_subwords, split=split, progress=progress
        )

    if cache_dir is None:
        return tokenize()
    key = cache_key(
        corpus_path,
        tokenizer=tokenizer,
        label_space=label_space,
        corpus=corpus,
        split=split,
        reading=reading,
        max_subwords=max_subwords,
        scheme=scheme,
    )
    entry = cache_path(cache_dir, corpus, split, key)
    if entry.exists():
        try:
            rows, report = read_entry(entry)
        except UNREADABLE as err:
            return _rebuild(entry, err, tokenize)
        report.log_warnings()
        return rows, report
    rows, report = tokenize()
    _publish(_write_aside(entry, rows, report), entry)
    try:
        return _load_rows(entry, report.rows), report
    except UNREADABLE as err:  # the copy another process put there first is damaged
        return _rebuild(entry, err, tokenize)


def read_entry(entry: Path) -> tuple[Dataset, TokenizationReport]:
    """The rows and report of a cache entry; raises one of ``UNREADABLE`` when it is damaged."""
    report = TokenizationReport.from_dict(json.loads((entry / REPORT).read_text()))
    return _load_rows(entry, report.rows), report


def _load_rows(entry: Path, expected: int) -> Dataset:
    rows = load_from_disk(str(entry))
    if len(rows) != expected:  # a file cut at a record batch boundary reads without an error
        raise ValueError(f"{len(rows)} rows where its report counts {expected}")
    return rows


def _write_aside(entry: Path, rows: Dataset, report: TokenizationReport) -> Path:
    """``rows`` and ``report`` saved to a new private directory next to ``entry``."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            rows.save_to_disk(str(tmp))
        finally:
            if bars:
                datasets.enable_progress_bars()
        (tmp / REPORT).write_text(json.dumps(report.to_dict(), indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _publish(tmp: Path, entry: Path) -> None:
    """Rename ``tmp`` to ``entry``; when another process's copy got there first, discard ``tmp``."""
    try:
        os.rename(tmp, entry)
    except OSError:
        if not entry.is_dir():
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _rebuild(
    entry: Path, err: BaseException, tokenize: Callable[[], tuple[Dataset, TokenizationReport]]
) -> tuple[Dataset, TokenizationReport]:
    """Replace the unreadable ``entry``. The lock makes "still unreadable? then swap" one step across
    processes, so no rank moves away an entry another rank has just rebuilt."""
    with FileLock(str(entry.parent / f".{entry.name}.lock")):
        try:
            rows, report = read_entry(entry)
        except UNREADABLE as still:
            err = still
        else:  # rebuilt by another process while this one waited
            report.log_warnings()
            return rows, report
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        print(
            f"warning: cache entry {entry} cannot be read ({reason}); rebuilding it",
            file=sys.stderr,
            flush=True,
        )
        rows, report = tokenize()
        tmp = _write_aside(entry, rows, report)
        broken = entry.parent / f".broken-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            if entry.exists():
                os.rename(entry, broken)
            _publish(tmp, entry)
        finally:
            shutil.rmtree(broken, ignore_errors=True)
        return _load_rows(entry, report.rows), report
