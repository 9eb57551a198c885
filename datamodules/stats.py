"""Sentence and mention counts of the registered corpora found under a data root, or of user corpora.

``python -m datamodules.stats [--data-root DIR] [--reading paper] [--json] [--corpora A path/to/B ...]``

Output (``--json``): ``{corpus: {split: {"sentences": n, "mentions": {type: n}}}}`` with types as written
in the files (sorted) and ``-DOCSTART-`` lines not counted as sentences. A split whose file needed more
than the strict format also has ``"scheme"`` (when not IOB2) with ``"scheme_detected"`` (true: the
readers' auto-detection chose it; false: the corpus's ``corpus.yaml`` asked for it),
``"whitespace_lines"`` (whitespace-only lines read as sentence breaks) and ``"stripped_tags"`` (tags with
trailing whitespace), each only when it applies; the table shows them in a last column.

Without ``--corpora`` every registered corpus with a directory holding at least one of its split files
under DIR (default: ``$BIONER_DATA_DIR``, else ``data``) is counted and the others are skipped; an entry of
``--corpora`` is a registered name or the path of a user corpus (``datamodules/user_corpus.py``). Every
split of a counted corpus must be a readable file. User errors print one ``error: ...`` line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from datamodules.catalog import CORPORA, CorpusSpec
from datamodules.corpora import is_corpus_path, read_split, resolve
from datamodules.readers import READINGS, ReadNotes
from datamodules.user_corpus import CONFIG_FILE
from errors import BionerError, report_user_error

Stats = dict[str, dict[str, dict[str, object]]]


def present_splits(root: str | os.PathLike, spec: CorpusSpec) -> list[str]:
    """The splits of registered corpus ``spec`` with anything (a file or not) at their path under ``root``."""
    return [s for s, f in spec.splits.items() if (Path(root) / spec.name / f.name).exists()]


def _notes_counts(notes: ReadNotes | None) -> dict[str, object]:
    if notes is None:
        return {}
    counts: dict[str, object] = {}
    if notes.scheme != "iob2":
        counts.update(scheme=notes.scheme, scheme_detected=notes.detected)
    if notes.whitespace_lines:
        counts["whitespace_lines"] = notes.whitespace_lines
    if notes.stripped_tags:
        counts["stripped_tags"] = notes.stripped_tags
    return counts


def corpus_stats(
    root: str | os.PathLike, corpora: Sequence[str] | None = None, *, reading: str = "full"
) -> Stats:
    """Counts per corpus and split; ``corpora=None`` means every registered corpus present under ``root``.

    Every split of a corpus counted must be a file (else a ``MissingCorpusError`` naming it); ``root`` is
    only needed for registered corpora."""
    root = Path(root)
    entries = list(corpora) if corpora is not None else None
    needs_root = entries is None or not all(is_corpus_path(e) for e in entries)
    if needs_root and not root.is_dir():
        raise BionerError(f"data root {root} is not a directory")
    if entries is None:
        specs = [spec for spec in CORPORA.values() if present_splits(root, spec)]
        if not specs:
            raise BionerError(f"no registered corpus found under {root} (known: {', '.join(CORPORA)})")
    else:
        specs = [resolve(entry) for entry in entries]
    result: Stats = {}
    for spec in specs:
        if spec.name in result:
            raise BionerError(f"two corpora named {spec.name} in --corpora")
        result[spec.name] = {}
        for split in spec.splits:
            # MissingCorpusError for a split that is absent (with the fetch command) or not a file
            sentences, notes = read_split(spec, root, split, reading=reading, rename_types=False)
            mentions = Counter(span.type for s in sentences for span in s.spans)
            result[spec.name][split] = {
                "sentences": len(sentences),
                "mentions": dict(sorted(mentions.items())),
                **_notes_counts(notes),
            }
    return result


def _notes_text(counts: dict[str, object]) -> str:
    scheme = counts.get("scheme")
    notes = ReadNotes(
        str(scheme or "iob2"),
        bool(counts.get("scheme_detected")),
        int(counts.get("whitespace_lines", 0)),  # type: ignore[arg-type]
        int(counts.get("stripped_tags", 0)),  # type: ignore[arg-type]
    )
    text = notes.describe(asked_by=CONFIG_FILE)
    return f"[{text}]" if text else ""


def format_table(stats: Stats) -> str:
    """An aligned plain-text table, one row per corpus and split; notes on the reading in brackets."""
    header = ("corpus", "split", "sentences", "mentions", "by type")
    rows = [header]
    for name, splits in stats.items():
        for split, counts in splits.items():
            mentions: dict[str, int] = counts["mentions"]  # type: ignore[assignment]
            by_type = "  ".join(f"{t}={n}" for t, n in mentions.items())
            by_type = "  ".join(filter(None, [by_type, _notes_text(counts)]))
            rows.append((name, split, str(counts["sentences"]), str(sum(mentions.values())), by_type))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3].rjust(widths[3])]
        lines.append("  ".join([*cells, r[4]]).rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datamodules.stats", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-root",
        default=os.environ.get("BIONER_DATA_DIR", "data"),
        help="directory holding <Corpus>/<file> (default: $BIONER_DATA_DIR, else data)",
    )
    parser.add_argument("--reading", choices=READINGS, default="full", help="paper: reference drops")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--corpora", nargs="+", metavar="NAME", help="only these corpora: registry names or user corpus paths"
    )
    args = parser.parse_args(argv)
    # the table (or JSON) shows what reading each file tolerated; no log lines before it or an error
    logging.getLogger("datamodules.user_corpus").setLevel(logging.ERROR)
    try:
        stats = corpus_stats(args.data_root, args.corpora, reading=args.reading)
    except BionerError as e:
        return report_user_error(e)
    print(json.dumps(stats, indent=2) if args.json else format_table(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
