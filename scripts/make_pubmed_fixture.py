"""Write BC5CDR's test abstracts as PubMed baseline XML: gzipped files of ``--per-file`` articles, the
format of ``pubmed25n0001.xml.gz`` (its DOCTYPE line, ``MedlineCitation``, ``PubmedData``), the last file
ending with a ``DeleteCitation`` of the first ``--deleted`` PMIDs. The bytes depend on the arguments only
(gzip without a time stamp or a name), so a committed fixture can be rebuilt and compared.

    python scripts/make_pubmed_fixture.py --data-root ../shared/data --out DIR [--limit N] [--per-file K]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.documents import iter_documents  # noqa: E402

PUBTATOR = Path("BC5CDR-PubTator") / "CDR_TestSet.PubTator.txt"
HEADER = (
    '<?xml version="1.0" ?>\n'
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    "<PubmedArticleSet>\n"
)


def article_xml(pmid: str, title: str, abstract: str) -> str:
    """One ``<PubmedArticle>`` as PubMed writes it (the elements a reader needs, and a few it skips)."""
    abstract_xml = (
        f"        <Abstract>\n          <AbstractText>{escape(abstract)}</AbstractText>\n"
        "        </Abstract>\n"
        if abstract
        else ""
    )
    return (
        "<PubmedArticle>\n"
        '    <MedlineCitation Status="MEDLINE" Owner="NLM" IndexingMethod="Manual">\n'
        f'      <PMID Version="1">{pmid}</PMID>\n'
        '      <Article PubModel="Print">\n'
        f"        <ArticleTitle>{escape(title)}</ArticleTitle>\n"
        f"{abstract_xml}"
        "        <Language>eng</Language>\n"
        "      </Article>\n"
        "    </MedlineCitation>\n"
        "    <PubmedData>\n"
        "      <PublicationStatus>ppublish</PublicationStatus>\n"
        "      <ArticleIdList>\n"
        f'        <ArticleId IdType="pubmed">{pmid}</ArticleId>\n'
        "      </ArticleIdList>\n"
        "    </PubmedData>\n"
        "  </PubmedArticle>\n"
    )


def write_fixture(pubtator: Path, out: Path, limit: int, per_file: int, deleted: int) -> list[Path]:
    """Write the files; their paths in order."""
    articles = []
    for document in iter_documents(pubtator, "pubtator"):
        if len(articles) == limit:
            break
        title, abstract = document.passages[0].text, document.passages[1].text
        articles.append((document.id, title, abstract))
    out.mkdir(parents=True, exist_ok=True)
    chunks = [articles[i : i + per_file] for i in range(0, len(articles), per_file)]
    paths = []
    for number, chunk in enumerate(chunks, 1):
        body = "".join("  " + article_xml(*article) for article in chunk)
        if number == len(chunks) and deleted:
            pmids = "".join(f'    <PMID Version="1">{pmid}</PMID>\n' for pmid, _, _ in articles[:deleted])
            body += f"  <DeleteCitation>\n{pmids}  </DeleteCitation>\n"
        path = out / f"pubmed_bc5cdr_{number:04d}.xml.gz"
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as file:
            file.write((HEADER + body + "</PubmedArticleSet>\n").encode("utf-8"))
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=500, help="at most this many abstracts")
    parser.add_argument("--per-file", type=int, default=20, help="articles per file")
    parser.add_argument("--deleted", type=int, default=2, help="PMIDs the last file deletes")
    args = parser.parse_args()
    paths = write_fixture(args.data_root / PUBTATOR, args.out, args.limit, args.per_file, args.deleted)
    for path in paths:
        print(f"{path}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
