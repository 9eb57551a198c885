"""A ``data.corpora`` entry -> its :class:`CorpusSpec`, resolved once; its splits' files; its label space.

An entry is a registered name (the catalog, ``datamodules/catalog.py``) or, when it has a ``/`` or starts with
``.`` or ``~``, the directory of a corpus of your own (``datamodules/user_corpus.py``, read and validated
now). Callers resolve the entries of a run once and pass the spec objects along (data module, label space,
stats, prepare, config validation); nothing looks a spec up by name again, so there is no process-wide table
of user corpora.

:func:`split_source` finds one split's file once (a missing registered corpus is an error that prints
the command fetching it) and binds the readers' function to it (types renamed by the spec): the data module
hands that reading step to the cache, which runs it only on a miss.
:func:`label_space_of` is the label space of a run's entries.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from datamodules.catalog import CORPORA, CorpusSpec
from datamodules.label_space import LabelSpace
from datamodules.readers import READINGS, ReadResult, read_corpus_file
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


@dataclass(frozen=True)
class SplitSource:
    """One split of one corpus with its file found once (``split_source``): what the cache hashes
    (``path``) and, on a miss, reads (``read``: the readers' function bound to the file)."""

    path: Path
    read: Callable[[], ReadResult]


def split_source(
    spec: CorpusSpec,
    root: str | os.PathLike,
    split: str,
    *,
    reading: str = "full",
    fold: int | None = None,
    rename_types: bool = True,
    absent_ok: bool = False,
) -> SplitSource | None:
    """The split of ``spec`` (of fold ``fold``) under ``root``, its file found (``split_path``: a missing
    file is an error that says how to fetch it); ``None`` for a split the corpus does not have when
    ``absent_ok`` (ADE has no dev split). ``rename_types=False`` keeps the types as written (for the
    stats command)."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}; got {reading!r}")
    if absent_ok and split not in spec.fold_splits(fold):
        return None
    path = split_path(spec, root, split, fold)
    read = functools.partial(
        read_corpus_file, path, spec.name, format=spec.format, reading=reading, scheme=spec.scheme,
        doc_prefix=f"{spec.name}/{split}", rename=spec.rename if rename_types else None,
    )  # fmt: skip
    return SplitSource(path, read)


def read_split(
    spec: CorpusSpec,
    root: str | os.PathLike,
    split: str,
    *,
    reading: str = "full",
    fold: int | None = None,
    rename_types: bool = True,
) -> ReadResult:
    """One split's sentences, with the spec's type renames unless ``rename_types=False``, and the file's
    reading notes (None for SpERT JSON)."""
    return split_source(spec, root, split, reading=reading, fold=fold, rename_types=rename_types).read()


def label_space_of_specs(specs: Iterable[CorpusSpec]) -> LabelSpace:
    """The label space of these corpora: each spec's renamed (unified) types and relation types."""
    specs = list(specs)
    return LabelSpace({s.name: s.unified_types for s in specs}, {s.name: s.relation_types for s in specs})


def label_space_of(entries: Iterable[str]) -> LabelSpace:
    """The label space of the resolved ``data.corpora`` entries (names or user corpus paths)."""
    return label_space_of_specs(resolve(entry) for entry in entries)
