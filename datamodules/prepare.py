"""Fetch registered corpora into a data root and verify them against the registry's sha256.

python -m datamodules.prepare --data-root DIR [--mirror BASE_URL] [--force] CORPUS... | all | biomedical

Each file goes to <root>/<Corpus>/<name>: downloaded (http(s):// or file:// URLs), converted when the
registry says so, checked against its sha256 and only then written to a temporary file in the target
directory and renamed into place, so a failed or corrupt download never leaves a file at the final
path. Files already present with the right hash are skipped unless --force is given.

Mirror layout (--mirror BASE): BASE/<Corpus>/<name> holds each file as it is stored in the data root
(e.g. BASE/BC5CDR/train.tsv, BASE/CoNLL04/conll04_train.json). A file that prepare converts is held as
its upstream original under the upstream file name instead: BASE/CoNLL2003/eng.train, eng.testa,
eng.testb (BASE/CoNLL2003/original/eng.* is tried second, so a copy of the shared data directory is a
valid mirror). BASE may also be a plain directory path.

Conversion conll2003: the CoNLL-2003 eng.* file (space-separated columns token POS chunk NER, IOB1)
becomes token<TAB>tag IOB2 without its -DOCSTART- blocks, with a blank line after each sentence; the
registry hash is that of the converted file.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from atomic_output import atomic_output
from datamodules.catalog import BIOMEDICAL, CORPORA, CorpusFile, CorpusSpec
from datamodules.checksums import sha256_bytes, sha256_file
from datamodules.corpora import resolve
from errors import BionerError, CorpusFormatError, report_user_error

GROUPS = {"all": tuple(CORPORA), "biomedical": BIOMEDICAL}
TIMEOUT_S = 120


def convert_conll2003(text: str, source: str = "<conll2003>") -> str:
    """CoNLL-2003 ``eng.*`` (space-separated columns, IOB1 last) to ``token<TAB>tag`` IOB2."""
    out: list[str] = []
    prev = "O"
    in_sentence = False
    skipping = False  # inside a -DOCSTART- block
    lines = text.split("\n")
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if not line.strip():
            if in_sentence:
                out.append("\n")
            in_sentence = skipping = False
            prev = "O"
            continue
        cols = line.split()
        if cols[0] == "-DOCSTART-":
            if in_sentence:
                raise CorpusFormatError(source, lineno, "-DOCSTART- inside a sentence")
            skipping = True
            continue
        if skipping:
            raise CorpusFormatError(source, lineno, "-DOCSTART- not followed by a blank line")
        if len(cols) < 2:
            raise CorpusFormatError(source, lineno, f"expected token ... NER-tag columns, got {line!r}")
        token, tag = cols[0], cols[-1]
        if tag != "O" and (len(tag) < 3 or tag[:2] not in ("B-", "I-")):
            raise CorpusFormatError(source, lineno, f"bad IOB1 tag {tag!r}")
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        prev = tag
        out.append(f"{token}\t{tag}\n")
        in_sentence = True
    if in_sentence:
        out.append("\n")
    return "".join(out)


CONVERTERS: dict[str, Callable[[str, str], str]] = {"conll2003": convert_conll2003}


def source_urls(corpus: str, cfile: CorpusFile, mirror: str | None) -> list[str]:
    """Where to download ``cfile`` from, in the order to try (see the module docstring)."""
    if mirror is None:
        return [cfile.url]
    if "://" not in mirror:  # a plain directory
        mirror = Path(mirror).resolve().as_uri()
    base = f"{mirror.rstrip('/')}/{corpus}"
    if cfile.convert is None:
        return [f"{base}/{cfile.name}"]
    upstream = cfile.url.rsplit("/", 1)[-1]
    return [f"{base}/{upstream}", f"{base}/original/{upstream}"]


def _download(urls: list[str]) -> tuple[str, bytes]:
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                return url, response.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            errors.append(f"{url} ({reason})")
    raise BionerError(f"cannot download {' or '.join(errors)}")


def fetch_file(
    root: Path, corpus: str, cfile: CorpusFile, *, mirror: str | None = None, force: bool = False
) -> str:
    """Fetch one file into ``root/corpus``; returns ``"present"`` or ``"fetched"``."""
    dest = root / corpus / cfile.name
    if not force and dest.is_file() and sha256_file(dest) == cfile.sha256:
        return "present"
    url, data = _download(source_urls(corpus, cfile, mirror))
    if cfile.convert is not None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BionerError(f"{url}: not valid UTF-8, cannot convert ({cfile.convert})") from e
        data = CONVERTERS[cfile.convert](text, url).encode("utf-8")
    actual = sha256_bytes(data)
    if actual != cfile.sha256:
        what = f"{url} converted with {cfile.convert}" if cfile.convert else url
        raise BionerError(f"sha256 mismatch for {what}: expected {cfile.sha256}, got {actual}; not written")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(dest) as temporary:
            temporary.write_bytes(data)
    except OSError as e:
        raise BionerError(f"cannot write {dest}: {e.strerror or e}") from e
    return "fetched"


def expand_corpora(names: Sequence[str]) -> list[CorpusSpec]:
    """The specs of ``names`` with ``all`` / ``biomedical`` expanded, in order, without duplicates; an
    unknown name is a ``MissingCorpusError`` listing the registered ones."""
    out: dict[str, CorpusSpec] = {}
    for name in names:
        for n in GROUPS.get(name, (name,)):
            spec = resolve(n)
            out.setdefault(spec.name, spec)
    return list(out.values())


def prepare(
    root: str | os.PathLike,
    names: Sequence[str],
    *,
    mirror: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> None:
    """Fetch and verify every file (splits and extra files) of the named corpora."""
    root = Path(root)
    for spec in expand_corpora(names):
        if not spec.redistributable:
            origin = sorted({f.url.rsplit("/", 1)[0] for f in spec.all_files()})
            log(
                f"{spec.name}: {spec.licence}. This project does not ship it: it is fetched from "
                f"{', '.join(origin)} (or --mirror); its use is yours to clear."
            )
        for cfile in spec.all_files():
            status = fetch_file(root, spec.name, cfile, mirror=mirror, force=force)
            log(f"{status:8s} {root / spec.name / cfile.name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datamodules.prepare",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-root", required=True, help="where <Corpus>/<file> are written")
    parser.add_argument("--mirror", metavar="BASE_URL", help="fetch from BASE_URL (layout above)")
    parser.add_argument("--force", action="store_true", help="download again even if the file is valid")
    parser.add_argument("corpora", nargs="+", metavar="CORPUS", help=f"{', '.join(CORPORA)}, all, biomedical")
    args = parser.parse_args(argv)
    try:
        prepare(args.data_root, args.corpora, mirror=args.mirror, force=args.force)
    except BionerError as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
