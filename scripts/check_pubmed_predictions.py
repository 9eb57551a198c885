"""Check predict.py's JSONL output on PubMed XML: every mention's ``text`` is its document's title and
abstract (``title abstract``, PubTator's text) sliced at its offsets, and names a document of the input.
With ``--pubtator``, the text sliced is the original PubTator file's (the fixture's source) and every
document's text must equal it. Prints counts; exit 1 on any mismatch (the first few are printed).

    python scripts/check_pubmed_predictions.py INPUT... --predictions OUT.jsonl [--pubtator ORIGINAL]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.documents import Document, expand_inputs, iter_documents  # noqa: E402


def document_text(document: Document) -> str:
    """The document's passages at their offsets, the gaps as spaces (PubTator's ``title abstract``)."""
    text = ""
    for passage in document.passages:
        text = text.ljust(passage.offset) + passage.text
    return text


def check(
    inputs: Sequence[str], predictions: str | Path, pubtator: str | Path | None = None
) -> tuple[int, int, list[str]]:
    """``(documents, mentions, problems)`` of the predictions ``predictions`` (JSONL) on the PubMed XML
    ``inputs``; ``pubtator``: the original title and abstract of each document, to slice instead."""
    mentions: dict[str, list[dict]] = defaultdict(list)
    with open(predictions, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                mentions[str(record["doc_id"])].append(record)
    originals = None
    if pubtator is not None:
        originals = {d.id: document_text(d) for d in iter_documents(pubtator, "pubtator")}
    problems: list[str] = []
    documents = checked = 0
    for path in expand_inputs(inputs):
        for document in iter_documents(path, "pubmed"):
            documents += 1
            text = document_text(document)
            if originals is not None and originals.get(document.id) != text:
                problems.append(f"document {document.id}: its text differs from the original")
                continue
            for mention in mentions.pop(document.id, []):
                checked += 1
                start, end = mention["start"], mention["end"]
                if text[start:end] != mention["text"]:
                    problems.append(
                        f"document {document.id}: [{start}, {end}) slices to {text[start:end]!r}, "
                        f"reported {mention['text']!r}"
                    )
    problems += [f"document {doc_id}: mentions, but no such document" for doc_id in mentions]
    return documents, checked, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="PubMed XML files (.xml, .xml.gz), directories or globs")
    parser.add_argument("--predictions", required=True, help="predict.py's JSONL output")
    parser.add_argument("--pubtator", help="the original titles and abstracts (PubTator)")
    args = parser.parse_args(argv)
    documents, mentions, problems = check(args.inputs, args.predictions, args.pubtator)
    for problem in problems[:10]:
        print(problem)
    if problems:
        print(f"{len(problems)} mismatches")
        return 1
    source = "the original PubTator text" if args.pubtator else "its document's title and abstract"
    print(f"{documents} documents, {mentions} mentions, every one slicing {source} to exactly its text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
