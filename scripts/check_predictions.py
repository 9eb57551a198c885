"""Check a predict.py output against its input: documents' text and ids unchanged, every added mention's
offsets slicing the text to exactly its reported text. Prints counts; exit 1 on the first mismatch.

    python scripts/check_predictions.py INPUT OUTPUT --format pubtator|bioc
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.documents import read_documents  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--format", choices=("pubtator", "bioc"), required=True)
    args = parser.parse_args()
    before, after = read_documents(args.input, args.format), read_documents(args.output, args.format)
    if [d.id for d in before] != [d.id for d in after]:
        print("document ids differ")
        return 1
    mentions = 0
    for a, b in zip(before, after):
        if [(p.offset, p.text) for p in a.passages] != [(p.offset, p.text) for p in b.passages]:
            print(f"document {a.id}: passages differ")
            return 1
        if args.format == "pubtator":
            if (a.source.title_line, a.source.abstract_line) != (b.source.title_line, b.source.abstract_line):
                print(f"document {a.id}: title or abstract line differs")
                return 1
            text = b.passages[0].text + " " + b.passages[1].text
            added = [
                line.rstrip("\n").split("\t")
                for line in b.source.annotation_lines[len(a.source.annotation_lines) :]
            ]
            spans = [(int(f[1]), int(f[2]), f[3]) for f in added]
            slices = [text[s:e] for s, e, _ in spans]
        else:
            _, bioc_document, _ = b.source
            spans, slices = [], []
            for passage in bioc_document.passages:
                for annotation in passage.annotations:
                    if annotation.infons.get("annotator") != "bioner-mtl":
                        continue
                    location = annotation.locations[0]
                    start = location.offset - passage.offset
                    spans.append((location.offset, location.end, annotation.text))
                    slices.append(passage.text[start : start + location.length])
        for (s, e, reported), sliced in zip(spans, slices):
            if sliced != reported:
                print(f"document {a.id}: [{s}, {e}) slices to {sliced!r}, reported {reported!r}")
                return 1
        mentions += len(spans)
    print(
        f"{len(before)} documents: ids, passages and text lines unchanged; {mentions} added mentions, "
        f"every one slicing its document to exactly its text"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
