"""Does the transformers export of a baseline tag like bioner-mtl? ``predict.py --corpus NAME``'s mentions
(``inference.load(CK).annotate``) against ``pipeline("token-classification", aggregation_strategy=...)``'s on
the same texts, compared as (document, character start, end, type).

    python scripts/check_transformers_export.py CK --corpus BC5CDR [--export-dir DIR] [--unit sentence|text]
        [--aggregation first|average|max] [--permute-rows] [--min-agreement 95] [INPUT ...]

Inputs default to the 40 bundled BC5CDR abstracts (``tests/fixtures/pubmed``, PubMed XML). The export is
written to ``--export-dir`` (or a temporary directory) by ``export.py --format transformers``.
``--unit sentence`` feeds the pipeline the sentences ``predict.py`` encodes (its own sentence splitter),
``text`` each passage (title, abstract) whole. ``--permute-rows`` rolls the exported classifier's rows by
one before tagging: labels no longer match rows, and the agreement must collapse. Prints the counts, the
agreement (equal mentions over the union of both sets) and examples of differences with their reason;
exits 1 when the agreement is under ``--min-agreement``.

Reasons, from the words of both tokenizations: ``word split`` (a mention edge is a word boundary for one
side only), ``subwords`` (a max-pooled model only: a word of the mention, or next to it, has several
subwords, and the pipeline takes the first subword's tag), ``context`` (the pipeline saw the whole passage,
``predict.py`` one sentence), else ``other``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUNDLED = sorted((ROOT / "tests" / "fixtures" / "pubmed").glob("pubmed_bc5cdr_*.xml.gz"))

Mention = tuple[str, int, int, str]  # document id, character start, end, type


@dataclass
class Agreement:
    ours: set[Mention]
    pipeline: set[Mention]

    @property
    def equal(self) -> set[Mention]:
        return self.ours & self.pipeline

    @property
    def only_ours(self) -> set[Mention]:
        return self.ours - self.pipeline

    @property
    def only_pipeline(self) -> set[Mention]:
        return self.pipeline - self.ours

    @property
    def percent(self) -> float:
        """Equal mentions over the union of both sets (100 when neither finds any)."""
        union = self.ours | self.pipeline
        return 100.0 * len(self.equal) / len(union) if union else 100.0


def bundled_abstracts(paths: Sequence[str | Path] = BUNDLED) -> list[Any]:
    """The documents (title and abstract passages) of PubMed XML files."""
    from inference.documents import read_documents

    return [doc for path in paths for doc in read_documents(path, "pubmed")]


def our_mentions(tagger: Any, documents: Sequence[Any], corpus: str) -> set[Mention]:
    """What ``predict.py --corpus corpus`` reports (merged types: the corpus qualifier removed)."""
    found = tagger.annotate(documents, corpus=corpus)
    return {(e.doc_id, e.start, e.end, e.type) for mentions in found for e in mentions}


def _pieces(documents: Sequence[Any], unit: str) -> list[tuple[str, int, str]]:
    """(document id, offset in the document, text) of each piece the pipeline is given."""
    from inference.text import sentences

    pieces = []
    for doc in documents:
        for passage in doc.passages:
            spans = sentences(passage.text) if unit == "sentence" else [(0, len(passage.text))]
            pieces += [(doc.id, passage.offset + s, passage.text[s:e]) for s, e in spans]
    return pieces


def pipeline_mentions(
    model_dir: str | Path, documents: Sequence[Any], *, unit: str = "sentence", aggregation: str = "first"
) -> set[Mention]:
    """The token-classification pipeline's mentions of ``documents``, in document character offsets."""
    from transformers import pipeline

    tagger = pipeline(
        "token-classification", model=str(model_dir), aggregation_strategy=aggregation, device="cpu"
    )
    pieces = _pieces(documents, unit)
    found: set[Mention] = set()
    for (doc_id, offset, _), entities in zip(pieces, tagger([text for _, _, text in pieces], batch_size=16)):
        found |= {(doc_id, offset + e["start"], offset + e["end"], e["entity_group"]) for e in entities}
    return found


def permute_rows(model_dir: str | Path) -> None:
    """Roll the saved classifier's rows (weight and bias) by one: every label gets another label's row."""
    from safetensors.torch import load_file, save_file

    path = Path(model_dir) / "model.safetensors"
    state = load_file(str(path))
    for key in ("classifier.weight", "classifier.bias"):
        state[key] = state[key].roll(1, dims=0).contiguous()
    save_file(state, str(path), metadata={"format": "pt"})


def reasons(
    agreement: Agreement, documents: Sequence[Any], tokenizer: Any, unit: str, *, max_pooled: bool = True
) -> dict[Mention, str]:
    """Why each differing mention differs (module docstring); ``subwords`` only for a ``max_pooled`` model."""
    from inference.text import words

    texts = {doc.id: doc.passages for doc in documents}
    out = {}
    for mention in agreement.only_ours | agreement.only_pipeline:
        doc_id, start, end, _ = mention
        passage = next(p for p in texts[doc_id] if p.offset <= start and end <= p.offset + len(p.text))
        ours = [(a + passage.offset, b + passage.offset) for a, b in words(passage.text)]
        encoding = tokenizer(passage.text, add_special_tokens=False, return_offsets_mapping=True)
        theirs: dict[int, list[int]] = {}  # pipeline word -> [start, end, subwords]
        for word, (a, b) in zip(encoding.word_ids(), encoding["offset_mapping"]):
            entry = theirs.setdefault(word, [a + passage.offset, b + passage.offset, 0])
            entry[1], entry[2] = b + passage.offset, entry[2] + 1
        edges_ours = {a for a, _ in ours} | {b for _, b in ours}
        edges_theirs = {a for a, _, _ in theirs.values()} | {b for _, b, _ in theirs.values()}
        near = [w for w in theirs.values() if w[1] >= start - 1 and w[0] <= end + 1]
        if {start, end} - edges_ours or {start, end} - edges_theirs:
            out[mention] = "word split"
        elif max_pooled and any(n > 1 for _, _, n in near):
            out[mention] = "subwords"
        elif unit == "text":
            out[mention] = "context"
        else:
            out[mention] = "other"
    return out


def report(agreement: Agreement, why: dict[Mention, str], text_of: dict[str, str], examples: int = 6) -> str:
    lines = [
        f"mentions by ours:       {len(agreement.ours)}",
        f"mentions by pipeline:   {len(agreement.pipeline)}",
        f"equal:                  {len(agreement.equal)}",
        f"only ours:              {len(agreement.only_ours)}",
        f"only pipeline:          {len(agreement.only_pipeline)}",
        f"agreement (equal / union): {agreement.percent:.1f} %",
        "differences by reason:  "
        + (", ".join(f"{r} {n}" for r, n in Counter(why.values()).most_common()) or "none"),
    ]
    shown = sorted(why, key=lambda m: (m[0], m[1], m[2]))[:examples]
    for mention in shown:
        doc_id, start, end, kind = mention
        side = "only ours    " if mention in agreement.only_ours else "only pipeline"
        lines.append(
            f"  {side} {doc_id} {start}-{end} {kind:<10} {text_of[doc_id][start:end]!r}: {why[mention]}"
        )
    return "\n".join(lines)


def document_text(document: Any) -> str:
    text = ""
    for passage in document.passages:
        text = text.ljust(passage.offset) + passage.text
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a baseline checkpoint or export.py directory")
    parser.add_argument("inputs", nargs="*", default=[str(p) for p in BUNDLED], help="PubMed XML files")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--export-dir", help="where to write the transformers export (a new directory)")
    parser.add_argument("--unit", choices=("sentence", "text"), default="sentence")
    parser.add_argument("--aggregation", choices=("first", "average", "max"), default="first")
    parser.add_argument("--permute-rows", action="store_true")
    parser.add_argument("--min-agreement", type=float, default=95.0)
    args = parser.parse_args(argv)

    from inference.tagger import load
    from inference.transformers_export import exact, export_transformers

    documents = bundled_abstracts(args.inputs)
    tagger = load(args.checkpoint, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.export_dir or Path(tmp) / "transformers")
        export_transformers(args.checkpoint, model_dir, corpus=args.corpus)
        if args.permute_rows:
            permute_rows(model_dir)
        theirs = pipeline_mentions(model_dir, documents, unit=args.unit, aggregation=args.aggregation)
    agreement = Agreement(our_mentions(tagger, documents, args.corpus), theirs)
    why = reasons(agreement, documents, tagger.tokenizer, args.unit, max_pooled=not exact(tagger.module))
    print(
        f"{len(documents)} documents, corpus {args.corpus}, pipeline given each {args.unit}, aggregation "
        f"{args.aggregation}{', classifier rows permuted' if args.permute_rows else ''}"
    )
    print(report(agreement, why, {doc.id: document_text(doc) for doc in documents}))
    return 0 if agreement.percent >= args.min_agreement else 1


if __name__ == "__main__":
    sys.exit(main())
