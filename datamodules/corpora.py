"""The corpus catalog: a ``data.corpora`` entry -> its :class:`CorpusSpec`, resolved once, and its splits.

An entry is a registered name (``datamodules/registry.py``) or, when it has a ``/`` or starts with ``.``
or ``~``, the directory of a corpus of your own (``datamodules/user_corpus.py``, read and validated
now). Callers resolve the entries of a run once and pass the spec objects along (data module, label
space, stats, prepare, config validation); nothing looks a spec up by name again, so there is no
process-wide table of user corpora.

:func:`split_path` finds one split file of a spec (a missing registered corpus is an error that prints
the command fetching it); :func:`read_split` reads it with the readers, types renamed by the spec.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from datamodules.readers import READINGS, ReadResult, read_iob, read_spert_json
from datamodules.registry import CORPORA, CorpusSpec
from datamodules.user_corpus import load_user_corpus
from errors import BionerError, MissingCorpusError


def is_corpus_path(entry: str) -> bool:
    """Whether a ``data.corpora`` entry names a directory (a user corpus) rather than a registered corpus."""
    return "/" in entry or os.sep in entry or entry.startswith((".", "~"))


def resolve(entry: str | CorpusSpec) -> CorpusSpec:
    """The spec of registered corpus ``entry``, or of the user corpus at path ``entry`` (its three files
    read and validated now); an unknown name is a ``MissingCorpusError`` listing the registered ones. A
    spec (an entry resolved before) is its own answer."""
    if isinstance(entry, CorpusSpec):
        return entry
    if entry in CORPORA:
        return CORPORA[entry]
    if is_corpus_path(entry):
        return load_user_corpus(entry)
    known = ", ".join(CORPORA)
    hint = f" (your own corpus? name it by path, e.g. ./{entry})" if Path(entry).is_dir() else ""
    raise MissingCorpusError(f"unknown corpus {entry!r}; registered corpora: {known}{hint}")


def resolve_all(entries: Iterable[str | CorpusSpec]) -> tuple[CorpusSpec, ...]:
    """The specs of ``entries`` in their order; two entries that resolve to one name are an error."""
    specs: dict[str, CorpusSpec] = {}
    given: dict[str, str] = {}
    for entry in entries:
        spec = resolve(entry)
        if spec.name in specs:
            raise BionerError(f"two corpora named {spec.name}: {given[spec.name]} and {entry}")
        specs[spec.name], given[spec.name] = spec, entry
    return tuple(specs.values())


def fetch_command(name: str, root: str | os.PathLike) -> str:
    return f"python -m datamodules.prepare --data-root {root} {name}"


def split_path(spec: CorpusSpec, root: str | os.PathLike, split: str, fold: int | None = None) -> Path:
    """The file of one split (of cross-validation fold ``fold``), or a ``MissingCorpusError`` that prints
    the command which fetches it. A user corpus's files are in its own directory (``root`` unused)."""
    splits = spec.fold_splits(fold)
    if split not in splits:
        raise MissingCorpusError(f"corpus {spec.name} has no {split!r} split (it has: {', '.join(splits)})")
    directory = spec.directory if spec.directory is not None else Path(root) / spec.name
    path = directory / splits[split].name
    if path.exists() and not path.is_file():
        raise MissingCorpusError(f"corpus {spec.name} ({split}): {path} is not a file")
    if not path.is_file():
        if spec.directory is not None:
            raise MissingCorpusError(f"corpus {spec.name} ({split}) not found: no file {path}")
        raise MissingCorpusError(
            f"corpus {spec.name} ({split}) not found at {path}. Fetch it with:\n"
            f"    {fetch_command(spec.name, root)}"
        )
    return path


def read_split(
    spec: CorpusSpec,
    root: str | os.PathLike,
    split: str,
    *,
    reading: str = "full",
    fold: int | None = None,
    rename_types: bool = True,
) -> ReadResult:
    """One split's sentences, with the spec's type renames unless ``rename_types=False`` (types as written,
    for the stats command), and the file's reading notes (None for SpERT JSON)."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}; got {reading!r}")
    path = split_path(spec, root, split, fold)
    rename = spec.rename if rename_types else None
    if spec.format == "iob":
        prefix = f"{spec.name}/{split}"
        return read_iob(
            path, spec.name, reading=reading, scheme=spec.scheme, doc_prefix=prefix, rename=rename
        )
    if spec.format == "spert":  # ``reading="paper"`` only concerns IOB files (the reference converter's)
        return ReadResult(read_spert_json(path, spec.name, rename=rename), None)
    raise ValueError(f"corpus {spec.name}: unknown format {spec.format!r}")
