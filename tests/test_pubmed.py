"""Issue 30's inputs: PubMed XML read article by article (offsets, structured abstracts, deletions,
bounded memory, hostile files), streaming and gzipped line formats, ``expand_inputs``, and predict.py on
the PubMed fixture checked by ``scripts/check_pubmed_predictions.py``."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest
from stand_in_tagger import PUBTATOR, EveryWordModule
from tiny_models import tiny_tokenizer

from errors import BionerError
from inference.documents import (
    Document,
    InputFormatError,
    Passage,
    expand_inputs,
    guess_format,
    iter_documents,
    read_documents,
    write_documents,
)
from inference.tagger import Tagger

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from check_pubmed_predictions import check  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "pubmed"
BC5CDR_FILES = [FIXTURE / "pubmed_bc5cdr_0001.xml.gz", FIXTURE / "pubmed_bc5cdr_0002.xml.gz"]
STRUCTURED = FIXTURE / "pubmed_structured.xml"
HEADER = (
    '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January '
    '2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n'
)


def _article(pmid: str, title: str, *abstracts: str) -> str:
    sections = "".join(f"<AbstractText>{a}</AbstractText>" for a in abstracts)
    abstract = f"<Abstract>{sections}</Abstract>" if abstracts else ""
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
        f"<Article><ArticleTitle>{title}</ArticleTitle>{abstract}</Article></MedlineCitation>"
        "<PubmedData><PublicationStatus>ppublish</PublicationStatus></PubmedData></PubmedArticle>\n"
    )


def _pubmed(*articles: str, tail: str = "") -> str:
    return HEADER + "".join(articles) + tail + "</PubmedArticleSet>\n"


def _passages(document: Document) -> list[tuple[int, str]]:
    return [(p.offset, p.text) for p in document.passages]


def test_two_articles_title_at_zero_and_the_abstract_one_after_it(tmp_path):
    path = tmp_path / "pubmed_two.xml"
    path.write_text(
        _pubmed(
            _article("101", "Aspirin &amp; ulcers.", "Aspirin causes ulcers."),
            _article("102", "Heparin<sup>2</sup> and <i>bleeding</i>", "Bleeding.\nOften."),
        )
    )
    first, second = read_documents(path, "pubmed")
    assert (first.id, _passages(first)) == ("101", [(0, "Aspirin & ulcers."), (18, "Aspirin causes ulcers.")])
    # "Heparin2 and bleeding" is 21 characters; the line break becomes a space, one for one
    assert (second.id, _passages(second)) == ("102", [(0, "Heparin2 and bleeding"), (22, "Bleeding. Often.")])
    assert first.passages[0].infons == {"type": "title"} and first.passages[1].infons == {"type": "abstract"}


def test_a_structured_abstract_is_one_passage_per_section_with_its_label():
    deleted: list[str] = []
    documents = list(iter_documents(STRUCTURED, guess_format(STRUCTURED), deleted=deleted))
    assert [d.id for d in documents] == ["90000001", "90000003"]  # the book article skipped
    assert deleted == []
    structured, title_only = documents
    # title 48 characters; then 29, 46 and 16: offsets 0, 49, 49 + 29 + 1 = 79, 79 + 46 + 1 = 126
    assert _passages(structured) == [
        (0, "Cisplatin-induced nephrotoxicity in rats & mice."),
        (49, "Cisplatin damages the kidney."),
        (79, "Rats got 5 mg/kg of cis-DDP; CO2 was measured."),
        (126, "Creatinine rose."),
    ]
    assert [p.infons for p in structured.passages[1:]] == [
        {"type": "abstract", "label": label, "nlm_category": label}
        for label in ("BACKGROUND", "METHODS", "RESULTS")
    ]
    assert _passages(title_only) == [(0, "Lithium and tremor: a title without an abstract.")]
    bioc_document = structured.to_bioc()
    assert [(p.offset, p.infons.get("type"), p.infons.get("label")) for p in bioc_document.passages] == [
        (0, "title", None), (49, "abstract", "BACKGROUND"), (79, "abstract", "METHODS"),
        (126, "abstract", "RESULTS"),
    ]  # fmt: skip


def test_the_fixture_gives_the_pmids_in_order_and_the_deleted_ones():
    deleted: list[str] = []
    documents = [
        d for path in expand_inputs([str(FIXTURE)]) for d in iter_documents(path, "pubmed", deleted=deleted)
    ]
    assert len(documents) == 40 + 2
    assert [d.id for d in documents[:3]] == ["8701013", "439781", "22836123"]
    assert documents[-2:][0].id == "90000001"
    assert deleted == ["8701013", "439781"]
    if PUBTATOR.is_file():
        originals = read_documents(PUBTATOR, "pubtator")[:40]
        assert [d.id for d in documents[:40]] == [d.id for d in originals]
        assert [_passages(d) for d in documents[:40]] == [_passages(d) for d in originals]


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_stays_bounded_over_a_20000_article_file(tmp_path):
    """RSS, not tracemalloc: the tree is libxml2's memory, which tracemalloc does not see. Kept whole,
    the 18,000 articles after the 2,000th would add ~30 MB."""
    path = tmp_path / "big.xml.gz"
    abstract = "Cisplatin induced nephrotoxicity in rats was measured by serum creatinine. " * 3
    articles = (_article(str(i), f"Article {i} on <i>lithium</i>.", abstract) for i in range(1, 20_001))
    path.write_bytes(gzip.compress((HEADER + "".join(articles) + "</PubmedArticleSet>").encode(), 1))
    rss, last = {}, None
    for n, document in enumerate(iter_documents(path, "pubmed"), 1):
        last = document.id
        if n in (2_000, 20_000):
            rss[n] = _rss_kib()
    assert last == "20000"
    assert rss[20_000] - rss[2_000] < 4_000, rss


def test_a_truncated_gzip_yields_the_articles_before_the_cut_then_one_error(tmp_path):
    articles = [_article(str(n), f"Title {n}.", "Abstract " * 200) for n in range(1, 301)]
    whole = gzip.compress(_pubmed(*articles).encode(), compresslevel=9)
    path = tmp_path / "pubmed_cut.xml.gz"
    path.write_bytes(whole[: len(whole) // 2])
    seen = []
    with pytest.raises(InputFormatError) as err:
        for document in iter_documents(path, guess_format(path)):
            seen.append(document.id)
    assert str(err.value) == f"{path}: truncated gzip stream (the file ends too early)"
    assert 0 < len(seen) < 300 and seen == [str(n) for n in range(1, len(seen) + 1)]
    path.write_bytes(b"\x1f\x8b" + bytes(range(100)))  # a gzip magic, then garbage
    with pytest.raises(InputFormatError, match=r"pubmed_cut.xml.gz: corrupt gzip stream"):
        read_documents(path, "pubmed")


HOSTILE = {  # name: (content, what the one error says)
    "an internal entity": (
        '<!DOCTYPE PubmedArticleSet [<!ENTITY x "boom">]><PubmedArticleSet>'
        + _article("7", "a &x; b")
        + "</PubmedArticleSet>",
        "in.xml:1: document 7: an entity reference &x;",
    ),
    "an external entity": (
        '<!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "file://{secret}">]><PubmedArticleSet>'
        + _article("7", "&x;")
        + "</PubmedArticleSet>",
        "document 7: an entity reference &x;",
    ),
    "billion laughs": (
        '<!DOCTYPE PubmedArticleSet [<!ENTITY l0 "ha"><!ENTITY l1 "&l0;&l0;&l0;&l0;&l0;&l0;&l0;&l0;">'
        '<!ENTITY l2 "&l1;&l1;&l1;&l1;&l1;&l1;&l1;&l1;"><!ENTITY l3 "&l2;&l2;&l2;&l2;&l2;&l2;">]>'
        "<PubmedArticleSet>" + _article("7", "&l3;") + "</PubmedArticleSet>",
        "document 7: an entity reference &l3;",
    ),
    "not XML": ("just text\n", "in.xml:1: not well-formed PubMed XML"),
    "no PMID": (
        "<PubmedArticleSet>\n<PubmedArticle><MedlineCitation><Article><ArticleTitle>T</ArticleTitle>"
        "</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>",
        "in.xml:2: a <PubmedArticle> with no <MedlineCitation>/<PMID>",
    ),
    "a PMID that is no number": (
        _pubmed(_article("7\n8", "T")),
        "a <PubmedArticle> with PMID '7\\n8' is not a number",
    ),
    "BioC, not PubMed": (
        "<collection><document><id>1</id></document></collection>",
        "in.xml:1: not PubMed XML (the root element is <collection>)",
    ),
    "nested 100,000 deep": ("<PubmedArticleSet>" + "<a>" * 100_000, "in.xml:1: not well-formed PubMed XML"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_pubmed_file_is_one_error_naming_the_file(tmp_path, case, capsys):
    import predict

    content, message = HOSTILE[case]
    secret = tmp_path / "secret.txt"
    secret.write_text("the content of a file the input must not read")
    path = tmp_path / "in.xml"
    path.write_text(content.replace("{secret}", str(secret)))
    with pytest.raises(InputFormatError) as err:
        read_documents(path, "pubmed")
    assert str(err.value).startswith(f"{tmp_path}/") and message in str(err.value), str(err.value)
    assert "must not read" not in str(err.value) and "haha" not in str(err.value)
    argv = [str(tmp_path / "no-model.ckpt"), str(path), "--in-format", "pubmed"]
    assert predict.main(argv) == 2  # fails before loading a model
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_guess_format_knows_pubmed_files_and_the_suffix_before_gz():
    assert [
        guess_format(name)
        for name in (
            "pubmed25n0001.xml.gz", "pubmed25n1500.xml", "updates/x.xml.gz", "a.xml", "a.json", "a.jsonl.gz",
            "CDR.PubTator.txt.gz", "a.txt.gz", "a.pubtator", "notes.txt",
        )
    ] == ["pubmed", "pubmed", "pubmed", "bioc", "bioc", "jsonl", "pubtator", "text", "pubtator",
          "text"]  # fmt: skip


def test_expand_inputs_directories_globs_duplicates_and_missing_paths(tmp_path):
    for name in ("b.jsonl", "a.xml.gz", ".hidden.jsonl", "notes.md", "c.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jsonl").write_text("x")
    os.mkfifo(tmp_path / "pipe.jsonl")
    d = str(tmp_path)
    assert expand_inputs([d]) == [f"{d}/a.xml.gz", f"{d}/b.jsonl", f"{d}/c.txt"]
    assert expand_inputs([f"{d}/*.jsonl", "-", f"{d}/sub", f"{d}/b.jsonl", d]) == [
        f"{d}/b.jsonl", f"{d}/pipe.jsonl", "-", f"{d}/sub/d.jsonl", f"{d}/a.xml.gz", f"{d}/c.txt",
    ]  # fmt: skip
    assert expand_inputs([f"{d}/notes.md"]) == [f"{d}/notes.md"]  # a file named is read as named
    for missing in (f"{d}/absent.jsonl", f"{d}/*.parquet"):
        with pytest.raises(BionerError, match=f"^{re.escape(missing)}: no such file, directory or matching"):
            expand_inputs([missing])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BionerError, match="empty: no input files in it"):
        expand_inputs([f"{d}/empty"])


def test_gzipped_jsonl_streams_and_fails_where_the_file_does(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(
        gzip.compress(b'{"id": "a", "text": "Aspirin."}\n\n{"id": 2, "text": "No."}\n{"id": "a"')
    )
    documents = iter_documents(path, guess_format(path))
    assert [(d.id, _passages(d)) for d in [next(documents), next(documents)]] == [
        ("a", [(0, "Aspirin.")]),
        ("2", [(0, "No.")]),
    ]
    with pytest.raises(InputFormatError, match=r"docs.jsonl.gz:4: not JSON"):
        next(documents)
    path.write_bytes(gzip.compress(b'{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n'))
    with pytest.raises(InputFormatError, match=r"docs.jsonl.gz:2: document a: the id appears twice"):
        read_documents(path, "jsonl")
    path.write_bytes(gzip.compress(b"".join(b'{"id": %d, "text": "x"}\n' % i for i in range(5000)))[:-20])
    with pytest.raises(InputFormatError, match=r"docs.jsonl.gz: truncated gzip stream"):
        read_documents(path, "jsonl")


def test_stdin_is_read_line_by_line(monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO("1|t|Acid.\n1|a|Base.\n\n2|t|Salt\n2|a|\u2028x\n".encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    documents = list(iter_documents("-", "pubtator"))
    assert [(d.id, _passages(d)) for d in documents] == [
        ("1", [(0, "Acid."), (6, "Base.")]),
        ("2", [(0, "Salt"), (5, "\u2028x")]),
    ]


def _digest(documents: list[Document]) -> str:
    digest = hashlib.sha256()
    for d in documents:
        source = d.source
        if hasattr(source, "title_line"):
            source = [source.title_line, source.abstract_line, source.annotation_lines]
        record = [d.id, [(p.offset, p.text) for p in d.passages], source]
        digest.update(json.dumps(record, ensure_ascii=False).encode())
    return digest.hexdigest()


@pytest.mark.skipif(not PUBTATOR.is_file(), reason=f"{PUBTATOR} not found")
def test_streaming_readers_give_the_documents_the_whole_file_readers_gave(tmp_path):
    """The digests are of the whole-file readers' documents (before issue 30), on these same inputs."""
    documents = read_documents(PUBTATOR, "pubtator")
    assert len(documents) == 500
    assert _digest(documents) == "14a5b02485ed88f768d0f6501b2dff002221dd6d56918f4683e47609f4da5fc5"
    lines = []
    for i, d in enumerate(documents):
        text = d.passages[0].text + " " + d.passages[1].text
        record = [{"id": d.id, "text": text}, {"id": int(d.id), "text": text}, {"text": text}][i % 3]
        lines.append(json.dumps(record, ensure_ascii=i % 2 == 0) + ("\r" if i % 5 == 0 else ""))
        if i % 7 == 0:
            lines.append("  ")
    jsonl, text = tmp_path / "cdr.jsonl", tmp_path / "cdr.txt"
    jsonl.write_bytes("\n".join(lines).encode())
    text.write_bytes(("\n".join(json.loads(x)["text"] if x.strip() else x for x in lines) + "\n").encode())
    assert _digest(read_documents(jsonl, "jsonl")) == (
        "ccf352181de05f68b765e322ce8ee08b10855e07dd52f07af44cda0a0f8589e0"
    )
    assert _digest(read_documents(text, "text", text_unit="line")) == (
        "64fde1de795b0c6820edbbba89d4259358d6694d6fb2caf35557ad9c45bdfaed"
    )
    assert _digest(read_documents(text, "text")) == (
        "7ccace4be0df9b2aa052ca8386a39f0bf977fbf99590f3e52ccb7c8c67f78d84"
    )
    gzipped = tmp_path / "cdr.pubtator.gz"
    gzipped.write_bytes(gzip.compress(PUBTATOR.read_bytes()))
    assert _digest(read_documents(gzipped, guess_format(gzipped))) == _digest(documents)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Tagger:
    return Tagger(EveryWordModule(), tiny_tokenizer(tmp_path_factory.mktemp("tok")), device="cpu")


def test_predict_on_pubmed_gives_mentions_slicing_the_original_abstracts(
    tagger, tmp_path, monkeypatch, capsys
):
    import predict

    monkeypatch.setattr("inference.tagger.load", lambda *args, **kwargs: tagger)
    out = tmp_path / "out.jsonl"
    inputs = [str(FIXTURE / "pubmed_bc5cdr_*.xml.gz")]
    assert predict.main(["model", *expand_inputs(inputs), "--types", "disjoint", "-o", str(out)]) == 0
    assert "40 documents" in capsys.readouterr().err  # the structured file is not in the glob
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["doc_id"] for r in records} == {d.id for p in BC5CDR_FILES for d in read_documents(p, "pubmed")}
    pubtator = PUBTATOR if PUBTATOR.is_file() else None
    documents, mentions, problems = check(inputs, out, pubtator)
    assert (documents, problems) == (40, []) and mentions == len(records) > 1000
    first = next(r for r in records if r["corpus_type"] == "BC5CDR/Chemical")
    assert (first["doc_id"], first["start"], first["end"], first["text"]) == ("8701013", 0, 10, "Famotidine")

    changed = records[5]
    sliced, changed["text"] = changed["text"], "changed"  # the check can fail
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert check(inputs, out)[2] == [
        f"document 8701013: [{changed['start']}, {changed['end']}) slices to {sliced!r}, reported 'changed'"
    ]


def test_pubmed_input_written_as_pubtator_and_bioc(tagger):
    from bioc import biocxml

    (document, _) = read_documents(STRUCTURED, "pubmed")
    found = tagger.annotate([document], types="disjoint", corpus="BC5CDR")
    out = io.StringIO()
    write_documents([document], found, "pubtator", out)
    lines = out.getvalue().splitlines()
    title, abstract = lines[0].split("|t|")[1], lines[1].split("|a|")[1]
    assert (
        abstract
        == "Cisplatin damages the kidney. Rats got 5 mg/kg of cis-DDP; CO2 was measured. Creatinine rose."
    )
    text = title + " " + abstract
    for line in filter(None, lines[2:]):
        _, start, end, mention, _, _ = line.split("\t")
        assert text[int(start) : int(end)] == mention
    assert "90000001\t126\t136\tCreatinine\tBC5CDR/Chemical\t-" in lines
    out = io.StringIO()
    write_documents([document], found, "bioc", out)
    (bioc_document,) = biocxml.loads(out.getvalue()).documents
    assert [p.infons.get("label") for p in bioc_document.passages] == [
        None,
        "BACKGROUND",
        "METHODS",
        "RESULTS",
    ]
    for passage in bioc_document.passages:
        for annotation in passage.annotations:
            location = annotation.locations[0]
            assert passage.text[location.offset - passage.offset :][: location.length] == annotation.text
    assert Passage(0, "x").infons == {}
