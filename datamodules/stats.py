"""Sentence and mention counts of the registered corpora found under a data root.

``python -m datamodules.stats --data-root DIR [--reading paper] [--json] [--corpora A B ...]``

Output (``--json``): ``{corpus: {split: {"sentences": n, "mentions": {type: n}}}}`` with types as written
in the files (sorted) and ``-DOCSTART-`` lines not counted as sentences. Without ``--corpora`` every
registered corpus with at least one split file under DIR is counted and the others are skipped; a corpus
named in ``--corpora`` must be present. User errors print one ``error: ...`` line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from datamodules.errors import BionerError, report_user_error
from datamodules.readers import READINGS, read_corpus
from datamodules.registry import CORPORA, get_spec

Stats = dict[str, dict[str, dict[str, object]]]


def present_splits(root: str | os.PathLike, name: str) -> list[str]:
    """The splits of corpus ``name`` whose files exist under ``root``, in registry order."""
    spec = get_spec(name)
    return [s for s, f in spec.splits.items() if (Path(root) / name / f.name).is_file()]


def corpus_stats(
    root: str | os.PathLike, corpora: Sequence[str] | None = None, *, reading: str = "full"
) -> Stats:
    """Counts per corpus and split; ``corpora=None`` means every registered corpus present under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise BionerError(f"data root {root} is not a directory")
    if corpora is None:
        names = [n for n in CORPORA if present_splits(root, n)]
        if not names:
            raise BionerError(f"no registered corpus found under {root} (known: {', '.join(CORPORA)})")
    else:
        names = list(corpora)
    result: Stats = {}
    for name in names:
        # read_corpus raises MissingCorpusError (with the fetch command) for a requested corpus that is absent
        splits = present_splits(root, name) or list(get_spec(name).splits)
        result[name] = {}
        for split in splits:
            sentences = read_corpus(root, name, split, reading=reading)
            mentions = Counter(span.type for s in sentences for span in s.spans)
            result[name][split] = {"sentences": len(sentences), "mentions": dict(sorted(mentions.items()))}
    return result


def format_table(stats: Stats) -> str:
    """An aligned plain-text table, one row per corpus and split."""
    header = ("corpus", "split", "sentences", "mentions", "by type")
    rows = [header]
    for name, splits in stats.items():
        for split, counts in splits.items():
            mentions: dict[str, int] = counts["mentions"]  # type: ignore[assignment]
            by_type = "  ".join(f"{t}={n}" for t, n in mentions.items())
            rows.append((name, split, str(counts["sentences"]), str(sum(mentions.values())), by_type))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3].rjust(widths[3])]
        lines.append("  ".join([*cells, r[4]]).rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datamodules.stats", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="directory holding <Corpus>/<file>")
    parser.add_argument("--reading", choices=READINGS, default="full", help="paper: reference drops")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--corpora", nargs="+", metavar="NAME", help="only these corpora (registry names)")
    args = parser.parse_args(argv)
    try:
        stats = corpus_stats(args.data_root, args.corpora, reading=args.reading)
    except BionerError as e:
        return report_user_error(e)
    print(json.dumps(stats, indent=2) if args.json else format_table(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
