"""IOB / SpERT readers: exact spans, schemes, documents, line ends, paper reading, strict errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datamodules.catalog import CORPORA
from datamodules.corpora import read_split
from datamodules.readers import ReadNotes, read_iob, read_spert_json
from datamodules.sentence import Relation, Span
from errors import CorpusFormatError, MissingCorpusError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "datamodules" / "samples"


def write(tmp_path: Path, text: str | bytes, name: str = "train.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def spans_of(sentences) -> list[list[tuple[int, int, str]]]:
    return [[(s.start, s.end, s.type) for s in sent.spans] for sent in sentences]


IOB2 = (
    "Mutations\tO\nin\tO\nBRCA1\tB-GENE\ngene\tI-GENE\ncause\tO\nbreast\tB-Disease\ncancer\tI-Disease\n.\tO\n"
    "\n\n"  # two blank lines are one separator
    "p53\tB-GENE\nMDM2\tB-GENE\nbind\tO\n"
    "\n"
    "No\tO\nmention\tO\nhere\tI-x\n"  # last sentence: no trailing blank line, ends inside a mention
)


def test_iob2_exact_spans_and_per_sentence_doc_ids(tmp_path):
    path = write(tmp_path, IOB2.replace("here\tI-x", "here\tB-x"))
    sents = read_iob(path, "Toy").sentences
    assert [s.tokens for s in sents] == [
        ("Mutations", "in", "BRCA1", "gene", "cause", "breast", "cancer", "."),
        ("p53", "MDM2", "bind"),
        ("No", "mention", "here"),
    ]
    assert spans_of(sents) == [
        [(2, 4, "GENE"), (5, 7, "Disease")],
        [(0, 1, "GENE"), (1, 2, "GENE")],
        [(2, 3, "x")],
    ]
    assert [s.corpus for s in sents] == ["Toy"] * 3
    assert [s.doc_id for s in sents] == ["train-0", "train-1", "train-2"]  # no -DOCSTART-: one doc each
    assert [s.doc_id for s in read_iob(path, "Toy", doc_prefix="T/dev").sentences] == [
        "T/dev-0",
        "T/dev-1",
        "T/dev-2",
    ]


def test_iobes_spans(tmp_path):
    text = "a\tS-X\nb\tB-Y\nc\tI-Y\nd\tE-Y\ne\tO\nf\tB-X\ng\tE-X\n\nh\tS-X\ni\tS-X\n"
    expected = [[(0, 1, "X"), (1, 4, "Y"), (5, 7, "X")], [(0, 1, "X"), (1, 2, "X")]]
    path = write(tmp_path, text)
    assert spans_of(read_iob(path, "Toy").sentences) == expected
    assert spans_of(read_iob(path, "Toy", scheme="iobes").sentences) == expected


def test_iob1_auto_detected_and_explicit(tmp_path):
    # IOB1: I- starts a mention; B- only splits two adjacent mentions of one type
    text = "a\tI-X\nb\tI-X\nc\tB-X\nd\tO\ne\tI-Y\nf\tI-X\n\ng\tI-Y\n"
    expected = [[(0, 2, "X"), (2, 3, "X"), (4, 5, "Y"), (5, 6, "X")], [(0, 1, "Y")]]
    path = write(tmp_path, text)
    assert spans_of(read_iob(path, "Toy").sentences) == expected
    assert spans_of(read_iob(path, "Toy", scheme="iob1").sentences) == expected
    with pytest.raises(CorpusFormatError) as err:
        read_iob(path, "Toy", scheme="iob2")
    assert str(err.value).startswith(f"{path}:1: I-X at sentence start")


def test_iob1_explicit_accepts_b_after_o(tmp_path):
    path = write(tmp_path, "a\tO\nb\tB-X\nc\tI-X\nd\tI-Y\n")
    assert spans_of(read_iob(path, "Toy", scheme="iob1").sentences) == [[(1, 3, "X"), (3, 4, "Y")]]


def test_docstart_blocks_are_documents_not_sentences(tmp_path):
    text = (
        "pre\tO\n\n"  # before any -DOCSTART-: document 0
        "-DOCSTART-\tO\n\nx\tB-DNA\n\ny\tO\n\n"
        "-DOCSTART-\tO\n\n"
        "-DOCSTART-\tO\n\n"  # an empty document is not counted
        "z\tB-RNA\nw\tI-RNA\n\n"
        "-DOCSTART-\tO\n"  # blank line after it is optional
        "v\tO\n"
    )
    sents = read_iob(write(tmp_path, text), "Toy", doc_prefix="J").sentences
    assert [s.tokens for s in sents] == [("pre",), ("x",), ("y",), ("z", "w"), ("v",)]
    assert [s.doc_id for s in sents] == ["J-0", "J-1", "J-1", "J-2", "J-3"]
    assert spans_of(sents) == [[], [(0, 1, "DNA")], [], [(0, 2, "RNA")], []]
    starting = read_iob(
        write(tmp_path, "-DOCSTART-\tO\n\na\tO\n\n-DOCSTART-\tO\n\nb\tO\n\n", "d.tsv"), "T"
    ).sentences
    assert [s.doc_id for s in starting] == ["d-0", "d-1"]


def test_crlf_and_bom_read_like_lf(tmp_path):
    plain = read_iob(write(tmp_path, IOB2, "lf.tsv"), "Toy", scheme="iob1", doc_prefix="p").sentences
    crlf = IOB2.replace("\n", "\r\n").encode("utf-8")
    for name, data in [
        ("crlf.tsv", crlf),
        ("bom.tsv", b"\xef\xbb\xbf" + IOB2.encode()),
        ("both.tsv", b"\xef\xbb\xbf" + crlf),
    ]:
        assert read_iob(write(tmp_path, data, name), "Toy", scheme="iob1", doc_prefix="p").sentences == plain
    assert plain[0].tokens[0] == "Mutations"  # the BOM does not stick to the first token


def test_paper_reading_drops_sentence_final_and_followed_mentions(tmp_path):
    text = (
        # kept: A (followed by O); dropped: B1 (B- right after it), B2 (sentence-final)
        "a\tB-A\nb\tO\nc\tB-B\nd\tI-B\ne\tB-B\nf\tI-B\n\n"
        # kept: Y (O after it); dropped: X (followed by B-Y of another type)
        "g\tB-X\nh\tB-Y\ni\tO\n\n"
        # sentence-final single-token mention dropped; nothing kept
        "j\tO\nk\tB-Z\n"
    )
    path = write(tmp_path, text)
    assert spans_of(read_iob(path, "Toy").sentences) == [
        [(0, 1, "A"), (2, 4, "B"), (4, 6, "B")],
        [(0, 1, "X"), (1, 2, "Y")],
        [(1, 2, "Z")],
    ]
    paper = read_iob(path, "Toy", reading="paper").sentences
    assert spans_of(paper) == [[(0, 1, "A")], [(1, 2, "Y")], []]
    assert len(paper) == 3  # the last sentence (no trailing blank line) is kept


def test_bad_reading_or_scheme_is_a_value_error(tmp_path):
    path = write(tmp_path, "a\tO\n")
    with pytest.raises(ValueError, match="reading"):
        read_iob(path, "Toy", reading="fast")
    with pytest.raises(ValueError, match="scheme"):
        read_iob(path, "Toy", scheme="bilou")


MALFORMED = [
    # (file bytes, scheme, expected line, problem fragment)
    ("a\tO\nb O\n", "auto", 2, "no TAB"),
    ("a\tO\tNN\n", "auto", 1, "expected 2 TAB-separated columns"),
    ("a\tO\n\nb\t\n", "auto", 3, "missing tag"),
    ("a\tX-GENE\n", "auto", 1, "bad tag 'X-GENE'"),
    ("a\tO\nb\tB-\n", "auto", 2, "empty entity type"),
    ("a\tgene\n", "auto", 1, "bad tag 'gene'"),
    ("a\tO\n\tO\n", "auto", 2, "empty token"),
    ("a\tO\n \tB-X\n", "auto", 2, "whitespace-only token"),
    (b"a\tO\n\nb\xff\tO\n", "auto", 3, "not valid UTF-8"),
    ("a\tO\n-DOCSTART-\tO\n", "auto", 2, "-DOCSTART- inside a sentence"),
    ("a\tO\n\n-DOCSTART-\tB-X\n\nb\tO\n", "auto", 3, "-DOCSTART- line tagged 'B-X'"),
    ("-DOCSTART-\tI-MISC \n\nb\tO\n", "iob1", 1, "-DOCSTART- line tagged 'I-MISC'"),
    ("a\tO\nb\x00c\tB-X\n", "auto", 2, "NUL byte in the token"),
    ("a\tO\n\nb\tB-X\x00\n", "auto", 3, "NUL byte in the tag"),
    ("a\tB-X\nb\tO\n\nc\tO\nd\tI-X\n", "auto", 5, "I-X after O"),  # mixes IOB2 and IOB1 starts
    ("a\tB-X\nb\tI-Y\n", "auto", 2, "I-Y after a X mention"),
    ("a\tB-X\nb\tS-X\n", "iob2", 2, "IOBES tag S-X in an IOB2 file"),
    ("a\tI-X\nb\tE-X\n", "iob1", 2, "IOBES tag E-X in an IOB1 file"),
    ("a\tB-X\nb\tE-X\n\nc\tB-X\nd\tO\n", "auto", 5, "not closed by E-"),
    ("a\tS-X\n\nb\tI-X\nc\tE-X\n", "auto", 3, "I-X without a preceding B-"),
    ("a\tB-X\nb\tI-X\n", "iobes", 1, "not closed by E- before the sentence end"),
    ("a\tO\r\nb O\r\n", "auto", 2, "no TAB"),  # CRLF does not shift line numbers
    (b"\xef\xbb\xbfa\tB_X\n", "auto", 1, "bad tag 'B_X'"),  # nor does a BOM
]


@pytest.mark.parametrize(("data", "scheme", "line", "problem"), MALFORMED)
def test_malformed_files_name_file_and_line(tmp_path, data, scheme, line, problem):
    path = write(tmp_path, data)
    with pytest.raises(CorpusFormatError) as err:
        read_iob(path, "Toy", scheme=scheme)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert problem in err.value.problem


def test_whitespace_only_lines_break_sentences_and_tag_whitespace_is_stripped(tmp_path):
    text = (
        "a\tB-X \nb\tI-X\t\n"  # two tags with trailing whitespace (a space, a TAB)
        "   \n"  # whitespace-only line: a sentence break
        "c\tO\r\n \t\n\n"  # CRLF, then a whitespace-only line with a TAB, then a blank line: one break
        "-DOCSTART-\tO  \n"  # a -DOCSTART- tag with trailing spaces: stripped and counted too
        "d\tB-Y\u3000\n"  # an ideographic space is whitespace as well
    )
    sents, notes = read_iob(write(tmp_path, text), "Toy")
    assert [s.tokens for s in sents] == [("a", "b"), ("c",), ("d",)]
    assert spans_of(sents) == [[(0, 2, "X")], [], [(0, 1, "Y")]]
    assert notes == ReadNotes("iob2", detected=False, whitespace_lines=2, stripped_tags=4)
    assert notes.tolerated
    assert notes.describe() == (
        "2 whitespace-only lines read as sentence breaks, 4 tags with trailing whitespace stripped"
    )
    clean = write(tmp_path, "a\tB-X\nb\tI-X\n\nc\tO\n\n-DOCSTART-\tO\nd\tB-Y\n", "clean.tsv")
    assert (
        read_iob(clean, "Toy").sentences
        == read_iob(tmp_path / "train.tsv", "Toy", doc_prefix="clean").sentences
    )
    assert read_iob(clean, "Toy").notes == ReadNotes("iob2")
    assert not ReadNotes("iob2").tolerated and ReadNotes("iob2").describe() == ""


def test_notes_say_when_iob1_was_detected(tmp_path):
    path = write(tmp_path, "a\tI-X\nb\tB-X\n")
    assert read_iob(path, "Toy").notes == ReadNotes("iob1", detected=True)
    assert read_iob(path, "Toy").notes.describe() == "read as IOB1 (auto-detected)"
    assert read_iob(path, "Toy", scheme="iob1").notes == ReadNotes("iob1", detected=False)
    iobes = write(tmp_path, "a\tS-X\n", "e.tsv")
    assert read_iob(iobes, "Toy").notes == ReadNotes("iobes", detected=True)


@pytest.mark.parametrize("data", ["", "\n\n", "-DOCSTART-\tO\n\n"])
def test_file_without_sentences_is_an_error(tmp_path, data):
    path = write(tmp_path, data)
    with pytest.raises(CorpusFormatError, match="no sentences") as err:
        read_iob(path, "Toy")
    assert err.value.line is None and str(err.value).startswith(f"{path}: ")


def test_stats_cli_reports_malformed_file_in_one_line(tmp_path):
    (tmp_path / "BC2GM").mkdir()
    bad = write(tmp_path / "BC2GM", "a\tO\nb\tB-GENE\tX\n\n")
    proc = subprocess.run(
        [sys.executable, "-m", "datamodules.stats", "--data-root", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {bad}:2: expected 2 TAB-separated columns")
    assert proc.stdout == ""


SPERT = [
    {
        "tokens": ["John", "works", "for", "Acme", "Corp", "."],
        "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Org", "start": 3, "end": 5}],
        "relations": [{"type": "Work_For", "head": 0, "tail": 1}],
        "orig_id": 17,
    },
    {"tokens": ["Nothing", "."], "entities": [], "relations": []},
]


def test_spert_json(tmp_path):
    path = write(tmp_path, json.dumps(SPERT), "toy_train.json")
    sents = read_spert_json(path, "CoNLL04")
    assert sents[0].tokens == ("John", "works", "for", "Acme", "Corp", ".")
    assert sents[0].spans == (Span(0, 1, "Peop"), Span(3, 5, "Org"))
    assert sents[0].relations == (Relation(0, 1, "Work_For"),)
    assert [s.doc_id for s in sents] == ["17", "toy_train-1"]
    assert sents[1].spans == () and sents[1].relations == ()


def _spert_variant(change) -> str:
    docs = json.loads(json.dumps(SPERT))
    change(docs)
    return json.dumps(docs)


SPERT_ERRORS = [
    ('[{"tokens": ["a"],\n "entities": [}]', 2, "invalid JSON"),
    ('{"tokens": []}', None, "expected a JSON list"),
    ("[]", None, "no sentences"),
    (_spert_variant(lambda d: d[1].pop("tokens")), None, "document 1: missing key 'tokens'"),
    (_spert_variant(lambda d: d[0].pop("entities")), None, "document 0: missing key 'entities'"),
    (
        _spert_variant(lambda d: d[0]["entities"][1].update(end=7)),
        None,
        "document 0: entity 1 [3, 7) outside",
    ),
    (
        _spert_variant(lambda d: d[0]["entities"][0].update(start=1)),
        None,
        "document 0: entity 0 [1, 1) outside",
    ),
    (
        _spert_variant(lambda d: d[0]["entities"][0].update(start="0")),
        None,
        "entity 0 start must be an integer",
    ),
    (_spert_variant(lambda d: d[0]["entities"][0].pop("type")), None, "entity 0 needs type, start and end"),
    (_spert_variant(lambda d: d[0]["relations"][0].update(tail=2)), None, "relation 0 tail 2 outside"),
    (
        _spert_variant(lambda d: d[0]["relations"][0].pop("head")),
        None,
        "relation 0 needs type, head and tail",
    ),
    (_spert_variant(lambda d: d[1].update(tokens=["ok", ""])), None, "document 1: token must be a non-empty"),
]


@pytest.mark.parametrize(("text", "line", "problem"), SPERT_ERRORS)
def test_spert_json_errors(tmp_path, text, line, problem):
    path = write(tmp_path, text, "bad.json")
    with pytest.raises(CorpusFormatError) as err:
        read_spert_json(path, "CoNLL04")
    assert err.value.line == line
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_spert_relations_key_is_optional(tmp_path):
    path = write(tmp_path, json.dumps([{"tokens": ["a"], "entities": [{"type": "T", "start": 0, "end": 1}]}]))
    assert read_spert_json(path, "X")[0].relations == ()


def test_read_corpus_dispatches_on_registry_format(tmp_path):
    (tmp_path / "NCBI-disease").mkdir()
    write(tmp_path / "NCBI-disease", "Fanconi\tB-Disease\nanemia\tI-Disease\n.\tO\n\n", "dev.tsv")
    (tmp_path / "CoNLL04").mkdir()
    write(tmp_path / "CoNLL04", json.dumps(SPERT), "conll04_test.json")
    ncbi = read_split(CORPORA["NCBI-disease"], tmp_path, "dev").sentences
    assert spans_of(ncbi) == [[(0, 2, "Disease")]] and ncbi[0].doc_id == "NCBI-disease/dev-0"
    paper = read_split(CORPORA["NCBI-disease"], tmp_path, "dev", reading="paper").sentences
    assert spans_of(paper) == [[(0, 2, "Disease")]]
    conll = read_split(CORPORA["CoNLL04"], tmp_path, "test", reading="paper").sentences  # SpERT: no effect
    assert conll[0].relations == (Relation(0, 1, "Work_For"),) and conll[0].corpus == "CoNLL04"
    with pytest.raises(MissingCorpusError, match="python -m datamodules.prepare"):
        read_split(CORPORA["NCBI-disease"], tmp_path, "train")


def test_types_are_renamed_by_the_map_the_reader_is_given(tmp_path):
    path = write(tmp_path, "IL-2\tB-protein\nT\tB-cell_type\ncells\tI-cell_type\n\nDNA\tB-DNA\n")
    rename = CORPORA["JNLPBA"].rename
    assert spans_of(read_iob(path, "JNLPBA").sentences) == [
        [(0, 1, "protein"), (1, 3, "cell_type")],
        [(0, 1, "DNA")],
    ]
    renamed = read_iob(path, "JNLPBA", rename=rename).sentences
    assert spans_of(renamed) == [[(0, 1, "Gene_or_protein"), (1, 3, "Cell_Type")], [(0, 1, "DNA")]]
    spert = write(
        tmp_path,
        json.dumps([{"tokens": ["a"], "entities": [{"type": "GENE", "start": 0, "end": 1}]}]),
        "x.json",
    )
    assert (
        read_spert_json(spert, "X", rename={"GENE": "Gene_or_protein"})[0].spans[0].type == "Gene_or_protein"
    )
    (tmp_path / "JNLPBA").mkdir()
    (tmp_path / "JNLPBA" / "dev.tsv").write_bytes(path.read_bytes())
    assert spans_of(read_split(CORPORA["JNLPBA"], tmp_path, "dev").sentences) == spans_of(
        renamed
    )  # the spec's
    as_written = read_split(CORPORA["JNLPBA"], tmp_path, "dev", rename_types=False).sentences
    assert spans_of(as_written) == spans_of(read_iob(path, "JNLPBA").sentences)


REDISTRIBUTABLE = ["BC2GM", "BC5CDR", "JNLPBA", "Linnaeus", "NCBI-disease"]


def test_samples_cover_exactly_the_redistributable_corpora():
    assert sorted(n for n, s in CORPORA.items() if s.redistributable) == sorted(REDISTRIBUTABLE)
    assert sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()) == sorted(REDISTRIBUTABLE)
    assert sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.parametrize("name", REDISTRIBUTABLE)
def test_bundled_samples_read_and_have_every_type_in_every_split(name):
    for split, least in [("train", 240), ("dev", 80), ("test", 80)]:
        sents = read_split(CORPORA[name], SAMPLES, split).sentences
        assert least <= len(sents) <= least + 20
        assert {s.type for sent in sents for s in sent.spans} == set(CORPORA[name].unified_types), (
            name,
            split,
        )
