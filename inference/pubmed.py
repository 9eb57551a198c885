"""PubMed XML (the baseline and update files, ``pubmed25n0001.xml.gz``) read one article at a time.

A ``PubmedArticle`` is a document: its PMID the id, its title a passage at offset 0 and each
``AbstractText`` (a structured abstract's sections, one each) a passage at the previous passage's offset
plus its length plus one, PubTator's convention, so the passages joined by single spaces are PubTator's
``title abstract`` text and a mention's offsets slice it. Inline markup (``<i>``, ``<sup>``, MathML) is
flattened to its text; a line break inside a text becomes a space, one character for one, so that every
output format can carry it. ``DeleteCitation`` PMIDs go to the caller's ``deleted`` list; book articles
and other elements are skipped.

The file is parsed by ``lxml.etree.iterparse`` with entities, the DTD and the network off (the DOCTYPE
real files carry names a DTD on the web: it is never fetched), and each article is cleared with its
preceding siblings once read, so memory holds one article, not the file (a baseline file has 30,000).
An entity reference left in an article is refused rather than passed on as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from inference.document import Document, Passage
from inference.input_errors import InputFormatError, cut

ROOT = "PubmedArticleSet"
ARTICLE, BOOK, DELETE = "PubmedArticle", "PubmedBookArticle", "DeleteCitation"
_PMID = re.compile(r"\d{1,20}")
_LINE_BREAKS = str.maketrans("\r\n", "  ")


def iter_pubmed(name: str, stream: IO[bytes], deleted: list[str] | None = None) -> Iterator[Document]:
    """The articles of the PubMed XML file ``name`` read from ``stream`` (already decompressed), as
    documents in file order; deleted PMIDs appended to ``deleted`` when given. A malformed file is an
    ``InputFormatError`` naming ``name`` and the line, raised where the parse reaches it."""
    from lxml import etree

    context = etree.iterparse(
        stream,
        events=("end",),
        tag=(ARTICLE, BOOK, DELETE),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    events = iter(context)
    while True:
        try:
            _, element = next(events)
        except StopIteration:
            break
        except etree.XMLSyntaxError as err:
            raise InputFormatError(
                name, err.lineno or None, None, f"not well-formed PubMed XML ({cut(err.msg)})"
            ) from None
        _check_root(name, context.root)
        parent = element.getparent()
        if parent is None or parent.getparent() is not None:
            continue  # nested inside another element: cleared with it
        try:
            if element.tag == ARTICLE:
                yield _article(name, element)
            elif element.tag == DELETE and deleted is not None:
                deleted += [(pmid.text or "").strip() for pmid in element.iter("PMID")]
        finally:
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del parent[0]
    if context.root is not None:
        _check_root(name, context.root)


def _check_root(name: str, root: Any) -> None:
    if root is not None and root.tag != ROOT:
        raise InputFormatError(
            name, root.sourceline, None, f"not PubMed XML (the root element is <{cut(root.tag)}>)"
        )


def _text(element: Any) -> str:
    return "".join(element.itertext()).translate(_LINE_BREAKS)


def _article(name: str, article: Any) -> Document:
    from lxml import etree

    pmid = (article.findtext("MedlineCitation/PMID") or "").strip()
    if not _PMID.fullmatch(pmid):
        problem = f"PMID {cut(pmid)!r} is not a number" if pmid else "no <MedlineCitation>/<PMID>"
        raise InputFormatError(name, article.sourceline, None, f"a <{ARTICLE}> with {problem}")
    for entity in article.iter(etree.Entity):
        raise InputFormatError(
            name,
            entity.sourceline,
            pmid,
            f"an entity reference {cut(entity.text)} (entities are not expanded: write the text)",
        )
    citation = article.find("MedlineCitation/Article")
    title = citation.find("ArticleTitle") if citation is not None else None
    passages = [Passage(0, _text(title) if title is not None else "", {"type": "title"})]
    sections = citation.findall("Abstract/AbstractText") if citation is not None else []
    for section in sections:
        text = _text(section)
        if not text:
            continue
        infons = {"type": "abstract"}
        for attribute, key in (("Label", "label"), ("NlmCategory", "nlm_category")):
            if section.get(attribute):
                infons[key] = section.get(attribute)
        previous = passages[-1]
        passages.append(Passage(previous.offset + len(previous.text) + 1, text, infons))
    return Document(pmid, passages)
