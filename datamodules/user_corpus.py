"""Corpora of your own: a directory of ``{train,dev,test}.tsv`` files named by its path.

``data.corpora=[BC5CDR,path/to/MyCorpus]`` (or ``--corpora path/to/MyCorpus`` of the stats command): an
entry with a ``/`` (or starting with ``.`` or ``~``) is a directory, relative to the working directory,
and the corpus is named after it (``MyCorpus``; its types are ``MyCorpus/<type>`` in the label space).

- The directory holds ``train.tsv``, ``dev.tsv`` and ``test.tsv``, each read by
  :func:`datamodules.readers.read_iob` (same format, tolerances and ``file:line`` errors as the
  registered IOB corpora). A missing split, or one that is not a file, is an error.
- Its entity types are the types found in its three files, kept as written (no renaming).
- An optional ``corpus.yaml`` in the directory sets ``scheme:`` (``auto``, the default, ``iob2``,
  ``iob1`` or ``iobes``; see the readers' module docstring). Any other key is an error.
- Every file is read and validated when the entry is resolved (``datamodules.corpora.resolve``, first
  by config validation in ``train.py``), so a malformed file stops a run before training. IOB1
  auto-detection, whitespace-only lines and stripped tags are logged.
- The directory's name must differ from the registered corpora's names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from datamodules.catalog import CORPORA, SPLITS, CorpusFile, CorpusSpec
from datamodules.readers import SCHEMES, read_iob
from errors import CorpusFormatError, MissingCorpusError

log = logging.getLogger(__name__)

CONFIG_FILE = "corpus.yaml"
FILE_NAMES = {split: f"{split}.tsv" for split in SPLITS}


def corpus_directory(entry: str) -> Path:
    """The absolute directory of a ``data.corpora`` path entry (symlinks kept: the name is the one given)."""
    return Path(os.path.abspath(os.path.expanduser(entry)))


def read_scheme(directory: Path) -> str:
    """The ``scheme`` of ``<directory>/corpus.yaml``, ``"auto"`` without that file."""
    path = directory / CONFIG_FILE
    if not path.exists():
        return "auto"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problem = f"cannot read it as YAML ({' '.join(str(err).split())})"
        raise CorpusFormatError(path, None, problem) from None
    if config is None:
        return "auto"
    if not isinstance(config, dict):
        raise CorpusFormatError(path, None, "expected a mapping such as 'scheme: iob1'")
    unknown = sorted(set(map(str, config)) - {"scheme"})
    if unknown:
        raise CorpusFormatError(path, None, f"unknown key(s) {', '.join(unknown)} (known: scheme)")
    scheme = config.get("scheme", "auto")
    if scheme not in SCHEMES:
        raise CorpusFormatError(path, None, f"scheme: {scheme!r}; use one of {', '.join(SCHEMES)}")
    return scheme


def load_user_corpus(entry: str) -> CorpusSpec:
    """The spec of the user corpus at path ``entry``, after reading and validating its three files."""
    directory = corpus_directory(entry)
    name = directory.name
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "not found"
        raise MissingCorpusError(f"corpus directory {entry} {what} (a user corpus is a directory)")
    if name in CORPORA:
        raise MissingCorpusError(
            f"corpus directory {directory} is named like the registered corpus {name}: rename the directory"
        )
    scheme = read_scheme(directory)
    types: set[str] = set()
    for split, file_name in FILE_NAMES.items():
        path = directory / file_name
        if not path.is_file():
            what = "is not a file" if path.exists() else "not found"
            raise MissingCorpusError(f"corpus {name} ({split}): {path} {what}")
        sentences, notes = read_iob(path, name, scheme=scheme, doc_prefix=f"{name}/{split}")
        types.update(span.type for sentence in sentences for span in sentence.spans)
        if notes.tolerated:
            log.warning("%s: %s", path, notes.describe())
    if not types:
        raise CorpusFormatError(directory, None, f"no entity mentions in {', '.join(FILE_NAMES.values())}")
    return CorpusSpec(
        name,
        "iob",
        {split: CorpusFile(file_name, url="", sha256="") for split, file_name in FILE_NAMES.items()},
        tuple(sorted(types)),
        licence="user corpus",
        directory=directory,
        scheme=scheme,
    )
