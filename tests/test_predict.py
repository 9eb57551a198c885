"""Prediction on documents: sentence and word splitting with character offsets, windows over long
sentences, the merged-type rule, PubTator/BioC in and out, malformed inputs, and the predict.py CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from stand_in_tagger import LS, PUBTATOR, SHARED, EveryWordModule
from tiny_models import tiny_tokenizer

from errors import BionerError
from inference.documents import Document, InputFormatError, Passage, read_documents, write_documents
from inference.tagger import Tagger, _resolve_merged
from inference.text import sentences, words


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> Tagger:
    return Tagger(EveryWordModule(), tiny_tokenizer(tmp_path_factory.mktemp("tok")), device="cpu")


def test_words_and_sentences_follow_the_corpora_by_hand():
    text = "Famotidine-associated delirium. A series of 2.5 mg/kg (IDM) cases, e.g. Fig. 2.\n\nNext? Yes"
    assert [text[s:e] for s, e in sentences(text)] == [
        "Famotidine-associated delirium.",
        "A series of 2.5 mg/kg (IDM) cases, e.g. Fig. 2.",
        "Next?",
        "Yes",
    ]
    assert [text[s:e] for s, e in words(text, 0, 31)] == ["Famotidine", "-", "associated", "delirium", "."]
    assert words(text, 32, 58)[3:9] == [
        (44, 45),
        (45, 46),
        (46, 47),
        (48, 50),
        (50, 51),
        (51, 53),
    ]  # 2 . 5 mg / kg


@pytest.mark.skipif(not PUBTATOR.is_file(), reason=f"{PUBTATOR} not found")
def test_sentence_and_word_splitting_agree_with_the_bc5cdr_test_split():
    gold, current = [], []
    for line in (SHARED / "BC5CDR" / "test.tsv").read_text().splitlines():
        if line.strip():
            current.append(line.split("\t")[0])
        elif current:
            gold.append(tuple(current))
            current = []
    ours = []
    for document in read_documents(PUBTATOR, "pubtator"):
        for passage in document.passages:
            t = passage.text
            ours += [tuple(t[a:b] for a, b in words(t, s, e)) for s, e in sentences(t)]
    assert sum(map(len, ours)) == sum(map(len, gold)) == 124_750  # the same words
    remaining = list(gold)
    matched = 0
    for sentence in ours:
        if sentence in remaining:
            remaining.remove(sentence)
            matched += 1
    assert matched / len(gold) > 0.99  # 4752 of 4797 when written; the rest are the corpus's own quirks


def test_mentions_slice_the_original_text_word_by_word(tagger):
    text = "  Famotidine-associated delirium.\tA series of 2.5 mg/kg (IDM) cases.  "
    (found,) = tagger.predict([text], types="disjoint")
    chemicals = [(e.start, e.end, e.text) for e in found if e.corpus_type == "BC5CDR/Chemical"]
    assert chemicals == [(s, e, text[s:e]) for s, e in words(text)]
    assert chemicals[:3] == [(2, 12, "Famotidine"), (12, 13, "-"), (13, 23, "associated")]
    diseases = [(e.start, e.end, e.text) for e in found if e.type == "NCBI-disease/Disease"]
    assert diseases == [(2, 33, "Famotidine-associated delirium."), (34, 68, text[34:68])]
    assert text[34:68] == "A series of 2.5 mg/kg (IDM) cases."
    assert all(e.score is None for e in found)  # the stand-in reports no confidence


def test_a_sentence_over_the_encoder_cap_is_windowed_without_losing_a_word(tagger):
    text = " ".join(["receptor"] * 900)  # 900 one-subword words: 3 windows of at most 403
    (found,) = tagger.predict(text, types="disjoint")
    chemicals = sorted((e.start, e.end) for e in found if e.corpus_type == "BC5CDR/Chemical")
    assert chemicals == words(text)
    windows = sorted((e.start, e.end) for e in found if e.corpus_type == "NCBI-disease/Disease")
    assert [len(words(text, s, e)) for s, e in windows] == [403, 403, 94]


def test_merged_types_resolve_overlaps_between_corpora_only():
    bc4, bc5, ncbi = (LS.type_id(c, t) for c, t in [("BC4CHEMD", "Chemical"), ("BC5CDR", "Chemical"),
                                                      ("NCBI-disease", "Disease")])  # fmt: skip
    spans = [
        (0, 10, bc5, 0.9), (0, 12, bc4, 0.8),  # overlap, two corpora: the higher score stays
        (20, 30, bc5, 0.7), (20, 30, bc4, 0.7),  # a tie: the longer, then the corpus first by name
        (40, 50, bc5, 0.6), (42, 45, bc5, 0.9),  # nested, one corpus: both stay
        (40, 50, ncbi, 0.5),  # another merged type: untouched
    ]  # fmt: skip
    kept = sorted(_resolve_merged(spans, LS))
    assert kept == sorted([(0, 10, bc5, 0.9), (20, 30, bc4, 0.7), (40, 50, bc5, 0.6), (42, 45, bc5, 0.9),
                           (40, 50, ncbi, 0.5)])  # fmt: skip


@pytest.mark.skipif(not PUBTATOR.is_file(), reason=f"{PUBTATOR} not found")
def test_pubtator_in_pubtator_out_keeps_every_document_byte_for_byte(tagger, tmp_path):
    documents = read_documents(PUBTATOR, "pubtator")
    assert len(documents) == 500
    found = tagger.annotate(documents[:40])
    out = io.StringIO()
    write_documents(documents[:40], found, "pubtator", out)
    written = tmp_path / "out.pubtator"
    written.write_text(out.getvalue())
    again = read_documents(written, "pubtator")
    source_lines = PUBTATOR.read_text().splitlines()
    for before, after, entities in zip(documents, again, found):
        assert (after.id, after.source.title_line, after.source.abstract_line) == (
            before.id, before.source.title_line, before.source.abstract_line,
        )  # fmt: skip
        assert f"{before.id}|t|{before.passages[0].text}" in source_lines
        added = after.source.annotation_lines[len(before.source.annotation_lines) :]
        assert len(added) == len(entities) > 0
        text = after.passages[0].text + " " + after.passages[1].text
        for line in added:
            doc_id, start, end, mention, _type, _ = line.rstrip("\n").split("\t")
            assert doc_id == before.id and text[int(start) : int(end)] == mention


@pytest.mark.skipif(not PUBTATOR.is_file(), reason=f"{PUBTATOR} not found")
@pytest.mark.parametrize("kind", ["xml", "json"])
def test_bioc_in_bioc_out_keeps_ids_and_texts(tagger, tmp_path, kind):
    import bioc
    from bioc import biocjson, biocxml

    collection = bioc.BioCCollection()
    for document in read_documents(PUBTATOR, "pubtator")[:20]:
        collection.add_document(document.to_bioc())
    source = tmp_path / f"in.{kind}"
    source.write_text((biocxml if kind == "xml" else biocjson).dumps(collection))
    documents = read_documents(source, "bioc")
    out = io.StringIO()
    write_documents(documents, tagger.annotate(documents), "bioc", out)
    result = (biocxml if kind == "xml" else biocjson).loads(out.getvalue())
    assert [d.id for d in result.documents] == [d.id for d in collection.documents]
    for before, after in zip(collection.documents, result.documents):
        assert [(p.offset, p.text) for p in after.passages] == [(p.offset, p.text) for p in before.passages]
        for passage in after.passages:
            assert passage.annotations
            for annotation in passage.annotations:
                location = annotation.locations[0]
                start = location.offset - passage.offset
                assert passage.text[start : start + location.length] == annotation.text


MALFORMED_PUBTATOR = [
    ("1|t|Title\n1|a|Abstract\n1\tx\t5\tTitle\tChemical\tD1\n", "in.pubtator:3: document 1: mention offsets"),
    ("1|t|Title\n\n", "in.pubtator:2: document 1: a title line without an abstract line"),
    ("1|t|Title\n2|a|Other\n", "in.pubtator:2: document 2: an abstract line that does not follow its title"),
    (
        "1|t|T\n1|a|A\n2\t0\t1\tT\tChemical\n",
        "in.pubtator:3: document 2: an annotation line inside document 1",
    ),
]


@pytest.mark.parametrize(("content", "message"), MALFORMED_PUBTATOR)
def test_malformed_pubtator_is_one_line_naming_the_document(tmp_path, content, message, capsys):
    import predict

    path = tmp_path / "in.pubtator"
    path.write_text(content)
    with pytest.raises(InputFormatError) as err:
        read_documents(path, "pubtator")
    assert str(err.value).startswith(f"{path.parent}/{message}")
    assert predict.main([str(tmp_path / "no-model.ckpt"), str(path)]) == 2  # fails before loading a model
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<collection><document><id>7</id><passage><offset>x</offset><text>a</text></passage></document>"
         "</collection>", "in.xml:1: document 7: passage 0: offset 'x' is not an integer"),
        ("<collection>\n<document><id>7</id>\n<passage><offset>0</offset></document></collection>",
         "in.xml:3: document 7: not well-formed BioC XML"),
        ('{"documents": [{"id": "9", "passages": [{"offset": "0", "text": "a"}]}]}',
         "in.xml: document 9: passage 0: 'offset' is not an integer"),
    ],
)  # fmt: skip
def test_malformed_bioc_is_one_line_naming_the_document(tmp_path, content, message):
    path = tmp_path / "in.xml"
    path.write_text(content)
    with pytest.raises(InputFormatError) as err:
        read_documents(path, "bioc")
    assert str(err.value).startswith(f"{path.parent}/{message}")
    assert "\n" not in str(err.value)


def test_jsonl_and_text_inputs(tmp_path, tagger):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "Aspirin helps."}\n\n{"id": "b", "text": "No. Yes."}\n')
    documents = read_documents(path, "jsonl")
    assert [(d.id, d.passages[0].text) for d in documents] == [("a", "Aspirin helps."), ("b", "No. Yes.")]
    out = io.StringIO()
    write_documents(documents, tagger.annotate(documents, types="disjoint", corpus="BC5CDR"), "jsonl", out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {r["corpus_type"] for r in records} == {"BC5CDR/Chemical"}  # --corpus BC5CDR: its types only
    expected = [
        ("a", "Aspirin"),
        ("a", "helps"),
        ("a", "."),
        ("b", "No"),
        ("b", "."),
        ("b", "Yes"),
        ("b", "."),
    ]
    assert [(r["doc_id"], r["text"]) for r in records] == expected
    path.write_text('{"id": "a", "text": 3}\n')
    with pytest.raises(InputFormatError, match=r"docs.jsonl:1: document a: expected an object"):
        read_documents(path, "jsonl")
    lines = tmp_path / "lines.txt"
    lines.write_text("first doc\n\nsecond doc\n")
    assert [d.id for d in read_documents(lines, "text", text_unit="line")] == ["lines:1", "lines:3"]
    with pytest.raises(BionerError, match="the model knows BC4CHEMD, BC5CDR, NCBI-disease, not JNLPBA"):
        tagger.predict("x", corpus="JNLPBA")


def test_documents_from_other_formats_are_written_as_pubtator(tagger):
    document = Document("d1", [Passage(0, "Aspirin")])
    out = io.StringIO()
    write_documents(
        [document], tagger.annotate([document], types="disjoint", corpus="BC5CDR"), "pubtator", out
    )
    assert out.getvalue() == "d1|t|Aspirin\nd1|a|\nd1\t0\t7\tAspirin\tBC5CDR/Chemical\t-\n\n"


def test_sru_span_score_is_the_lower_of_its_tr_and_re_probabilities():
    from lightning_modules.sru_ner.codec import ActionVocabulary, decode_batch

    vocab = ActionVocabulary(1)  # EOA 0, SH 1, TR 2, RE 3
    probs = torch.tensor(
        [[[0.1, 0.2, 0.8, 0.1],  # TR (p .8) at word 0
          [0.0, 0.9, 0.0, 0.0],  # SH
          [0.0, 0.9, 0.0, 0.0],  # SH
          [0.1, 0.2, 0.1, 0.6],  # RE (p .6) at word 2: the span [0, 2)
          [0.9, 0.0, 0.0, 0.0]]]  # EOA
    )  # fmt: skip
    assert decode_batch(torch.logit(probs), [3], vocab) == ([[(0, 2, 0)]], [[pytest.approx(0.6)]])


@pytest.mark.parametrize("model", ["baseline", "tabert_cnn"])
def test_models_report_a_score_per_span(tmp_path, model):
    from tiny_models import collate_sentences, tiny_bert_config

    from datamodules.sentence import Sentence, Span
    from lightning_modules.registry import build_module

    torch.manual_seed(0)
    settings = {"name": model, **({"mode": "span", "threshold": 1e-6} if model == "tabert_cnn" else {})}
    module = build_module({"encoder": {"name": "tiny"}, "model": settings}, LS, tiny_bert_config().to_dict())
    sentences = [
        Sentence(("the", "acid", "binds", "the", "receptor"), (Span(1, 2, "Chemical"),), "BC5CDR")
    ] * 2
    batch = collate_sentences(tmp_path, sentences, LS, module.target_encoder())
    with torch.no_grad():
        prediction = module.eval().predict(batch)
    assert [len(s) for s in prediction.scores] == [len(s) for s in prediction.spans]
    assert sum(map(len, prediction.spans)) > 0
    assert all(0.0 < score <= 1.0 for found in prediction.scores for score in found)


def test_bioc_edge_cases_several_inputs_sentence_level_minimal_json_and_to_pubtator(tagger, tmp_path):
    from bioc import biocxml

    first = tmp_path / "a.xml"
    first.write_text(
        "<collection><source>s</source><document><id>A</id><passage><offset>0</offset>"
        "<text>Aspirin works.</text></passage></document></collection>"
    )
    second = tmp_path / "b.xml"  # text at sentence level, passages at offsets 0 and 100
    second.write_text(
        "<collection><document><id>B</id><passage><offset>0</offset><sentence><offset>0</offset>"
        "<text>Acid binds.</text></sentence></passage><passage><offset>100</offset>"
        "<text>Beta receptor.</text></passage></document></collection>"
    )
    documents = read_documents(first, "bioc") + read_documents(second, "bioc")
    assert [[(p.offset, p.text) for p in d.passages] for d in documents] == [
        [(0, "Aspirin works.")], [(0, "Acid binds."), (100, "Beta receptor.")],
    ]  # fmt: skip
    found = tagger.annotate(documents, types="disjoint", corpus="BC5CDR")
    out = io.StringIO()
    write_documents(documents, found, "bioc", out)
    result = biocxml.loads(out.getvalue())
    assert [d.id for d in result.documents] == ["A", "B"]  # both inputs' documents
    assert [a.text for a in result.documents[1].passages[0].sentences[0].annotations] == [
        "Acid",
        "binds",
        ".",
    ]

    pubtator = io.StringIO()
    write_documents(documents[1:], found[1:], "pubtator", pubtator)
    lines = pubtator.getvalue().splitlines()
    assert lines[:2] == ["B|t|Acid binds.", "B|a|Beta receptor."]
    text = "Acid binds. Beta receptor."
    for line in filter(None, lines[2:]):
        _, start, end, mention, _, _ = line.split("\t")
        assert text[int(start) : int(end)] == mention
    assert "B\t12\t16\tBeta\tBC5CDR/Chemical\t-" in lines  # 100 in BioC, 12 in "title abstract"

    minimal = tmp_path / "m.json"
    minimal.write_text('{"documents": [{"id": "1", "passages": [{"offset": 0, "text": "Acid."}]}]}')
    assert [d.passages[0].text for d in read_documents(minimal, "bioc")] == ["Acid."]


def test_pubtator_text_may_hold_unicode_line_separators(tmp_path):
    path = tmp_path / "u.pubtator"
    path.write_text("1|t|Title\u2028more\r\n1|a|Abs\x85tract\r\n1\t0\t5\tTitle\tChemical\tD1\r\n\r\n")
    (document,) = read_documents(path, "pubtator")
    assert [p.text for p in document.passages] == ["Title\u2028more", "Abs\x85tract"]
    assert document.passages[1].offset == len("Title\u2028more") + 1
    out = io.StringIO()
    write_documents([document], [[]], "pubtator", out)
    assert out.getvalue() == path.read_bytes().decode().replace("\r\n\r\n", "\r\n") + "\n"  # lines as read


def test_predict_cli_user_errors_are_one_line(tmp_path, capsys):
    import predict

    text = tmp_path / "in.txt"
    text.write_text("Aspirin.")
    not_export = tmp_path / "dir"
    not_export.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "bioner_model.json").write_text("{")
    cases = [
        ([str(tmp_path / "none.ckpt"), str(text)], "none.ckpt"),
        ([str(not_export), str(text)], "not an exported model (no bioner_model.json"),
        ([str(corrupt), str(text)], "not a readable exported model (JSONDecodeError"),
        ([str(not_export), str(text), "-o", str(tmp_path / "missing" / "out.jsonl")], "cannot write"),
        ([str(not_export), str(tmp_path / "absent.txt")], "absent.txt: no such file"),
    ]
    for argv, message in cases:
        assert predict.main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_sru_scores_stay_with_their_spans():
    from lightning_modules.sru_ner.codec import ActionVocabulary, decode_batch

    vocab = ActionVocabulary(2)  # EOA 0, SH 1, TR(0) 2, RE(0) 3, TR(1) 4, RE(1) 5
    rows = [
        [0, 0, 0.9, 0, 0.7, 0],  # TR(0) .9 and TR(1) .7 at word 0
        [0, 0.9, 0, 0, 0, 0],  # SH
        [0, 0, 0, 0.8, 0, 0],  # RE(0) .8: type 0 [0, 1), score .8
        [0, 0.9, 0, 0, 0, 0],  # SH
        [0, 0, 0, 0, 0, 0.6],  # RE(1) .6: type 1 [0, 2), score .6
        [0.9, 0, 0, 0, 0, 0],  # EOA
    ]
    spans, scores = decode_batch(torch.logit(torch.tensor([rows])), [2], vocab)
    assert spans == [[(0, 2, 1), (0, 1, 0)]]
    assert scores == [[pytest.approx(0.6), pytest.approx(0.8)]]


def test_prediction_batches_stay_within_the_memory_budget(tmp_path):
    """Sentences of 1, 3 and 12 words at 4 bytes per n x n cell, at most 8 per batch and 1,024 bytes: the
    greedy cut along the length order gives 8 of the short ones (8 x 3 x 3 x 4 = 288 B), the last two
    3-word ones (a 12-word one with them: 3 x 144 x 4 = 1,728 B), then each 12-word one alone (576 B;
    two: 1,152 B)."""
    module = EveryWordModule()
    tagger = Tagger(module, tiny_tokenizer(tmp_path), device="cpu", batch_size=8, memory_mb=1024 / 2**20)
    texts = ["A"] * 5 + ["b c d"] * 5 + [" ".join("abcdefghijkl")] * 3
    found = tagger.predict(texts)
    assert [len(f) for f in found] == [2] * 5 + [4] * 5 + [13] * 3  # every sentence predicted once
    assert [(b, n) for b, n, _ in module.batches] == [(8, 3), (2, 3), (1, 12), (1, 12), (1, 12)]
    assert all(b * n * n * 4 <= 1024 for b, n, _ in module.batches)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_predict_output_survives_a_bad_model_byte_for_byte(tmp_path, capsys):
    import predict

    text = tmp_path / "in.txt"
    text.write_text("Aspirin.")
    out = tmp_path / "out.jsonl"
    before = b'{"doc_id": "earlier", "start": 0}\n'
    out.write_bytes(before)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    for model in (bad, tmp_path / "missing.ckpt"):
        assert predict.main([str(model), str(text), "-o", str(out)]) == 2
        assert capsys.readouterr().err.startswith("error: ")
        assert out.read_bytes() == before
        assert _leftovers(tmp_path) == []


def test_predict_output_survives_a_failure_after_the_model_loaded(tagger, tmp_path, monkeypatch, capsys):
    import predict

    monkeypatch.setattr("inference.tagger.load", lambda *args, **kwargs: tagger)
    monkeypatch.setattr(tagger.module, "settings", SimpleNamespace(precision="32-true"), raising=False)
    xml, json_ = tmp_path / "a.xml", tmp_path / "b.json"
    xml.write_text("<collection><document><id>A</id><passage><offset>0</offset><text>Acid.</text></passage>"
                   "</document></collection>")  # fmt: skip
    json_.write_text('{"documents": [{"id": "B", "passages": [{"offset": 0, "text": "Acid."}]}]}')
    out = tmp_path / "out.xml"
    before = b"<collection>an earlier output</collection>\n"
    out.write_bytes(before)
    argv = ["model", str(xml), str(json_), "--in-format", "bioc", "--out-format", "bioc", "-o", str(out)]
    assert predict.main(argv) == 2  # the model ran; the writer refuses mixed BioC kinds
    assert "BioC inputs in XML and in JSON" in capsys.readouterr().err
    assert out.read_bytes() == before and _leftovers(tmp_path) == []

    def half_then_crash(documents, entities, out_format, handle):  # a failure while the output streams
        handle.write('{"doc_id": "half"}\n')
        handle.flush()
        raise RuntimeError("crash half-way")

    to_jsonl = ["model", str(xml), "--in-format", "bioc", "--out-format", "jsonl", "-o", str(out)]
    monkeypatch.setattr(predict, "write_documents", half_then_crash)
    with pytest.raises(RuntimeError, match="half-way"):
        predict.main(to_jsonl)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []

    monkeypatch.setattr(predict, "write_documents", write_documents)
    assert predict.main(to_jsonl) == 0
    assert out.read_text().startswith('{"doc_id": "A"') and _leftovers(tmp_path) == []


def _xml(body: str, doctype: str = "") -> str:
    document = f"<document><id>7</id><passage><offset>0</offset>{body}</passage></document>"
    return f"{doctype}<collection>{document}</collection>"


UNTRUSTED_INPUTS = {  # name: (file name, content, what the one line says)
    "an external entity": (
        "in.xml",
        _xml("<text>&x;</text>", '<!DOCTYPE collection [<!ENTITY x SYSTEM "file://{secret}">]>'),
        "in.xml:1: document 7: an entity reference &x;",
    ),
    "an entity inside <offset>": (
        "in.xml",
        '<!DOCTYPE collection [<!ENTITY o "0">]><collection><document><id>7</id><passage>'
        "<offset>&o;</offset><text>a</text></passage></document></collection>",
        "document 7: an entity reference &o;",
    ),
    "an annotation without an id": (
        "in.xml",
        _xml("<text>a</text><annotation><text>a</text></annotation>"),
        "in.xml:1: document 7: passage 0: annotation 0: a <annotation> without the attribute 'id'",
    ),
    "an infon without a key": (
        "in.xml",
        _xml("<infon>title</infon><text>a</text>"),
        "document 7: passage 0: <infon>: a <infon> without the attribute 'key'",
    ),
    "a non-numeric location": (
        "in.xml",
        _xml('<text>a</text><annotation id="1"><location offset="x" length="1"/></annotation>'),
        "document 7: passage 0: annotation 0: location offset 'x' is not an integer",
    ),
    "XML nested 100,000 deep": (
        "in.xml",
        "<collection>" + "<a>" * 100_000,
        "in.xml:1: not well-formed BioC XML",
    ),
    "BioC JSON that is not UTF-8": (
        "in.json",
        b'{"documents": [{"id": "\xff"}]}',
        "in.json:1: not UTF-8 (byte 23)",
    ),
    "an integer where the documents belong": (
        "in.json",
        '{"documents": 5}',
        "'documents' is a JSON int, not a list",
    ),
    "an integer where the passages belong": (
        "in.json",
        '{"documents": [{"id": "9", "passages": 5}]}',
        "in.json: document 9: the document: 'passages' is a JSON int, not a list",
    ),
    "an integer where the locations belong": (
        "in.json",
        '{"documents": [{"id": "9", "passages": [{"offset": 0, "annotations": [{"id": "a", "locations": 3}]'
        "}]}]}",
        "document 9: passage 0: annotation 0: 'locations' is a JSON int, not a list",
    ),
    "BioC JSON nested 100,000 deep": (
        "in.json",
        '{"documents": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "in.json: not BioC JSON (nested too deeply)",
    ),
    "JSONL nested 100,000 deep": (
        "in.jsonl",
        "[" * 100_000 + "]" * 100_000,
        "in.jsonl:1: not JSON of a document",
    ),
    "a 5 MB malformed PubTator line": (
        "in.pubtator",
        "x" * 5_000_000 + "\n",
        f"in.pubtator:1: document {'x' * 77}...: expected 'ID|t|title'",
    ),
}


@pytest.mark.parametrize("case", sorted(UNTRUSTED_INPUTS))
def test_a_malformed_or_hostile_input_is_one_short_line(tmp_path, capsys, case):
    import predict

    file_name, content, message = UNTRUSTED_INPUTS[case]
    secret = tmp_path / "secret.txt"
    secret.write_text("the content of a file the input must not read")
    path = tmp_path / file_name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("{secret}", str(secret)))
    fmt = {".xml": "bioc", ".json": "bioc", ".jsonl": "jsonl", ".pubtator": "pubtator"}[path.suffix]
    with pytest.raises(InputFormatError) as err:
        read_documents(path, fmt)
    assert str(err.value).startswith(f"{tmp_path}/") and message in str(err.value), str(err.value)
    assert predict.main([str(tmp_path / "no-model.ckpt"), str(path)]) == 2  # fails before loading a model
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines[-1][:300]
    assert len(lines[0]) < 400 and "must not read" not in lines[0]


def test_bioc_xml_with_its_dtd_named_predefined_entities_infons_and_relations_reads_as_before(tmp_path):
    path = tmp_path / "in.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE collection SYSTEM "BioC.dtd">'
        '<collection><source>PubMed</source><infon key="k">v</infon><document><id>7</id>'
        '<passage><infon key="type">title</infon><offset>0</offset><text>A &amp; B &#233;</text>'
        '<annotation id="T1"><infon key="type">Chemical</infon><location offset="0" length="1"/>'
        '<text>A</text></annotation><relation id="R1"><node refid="T1" role="x"/></relation></passage>'
        "</document></collection>"
    )
    (document,) = read_documents(path, "bioc")
    assert (document.id, [(p.offset, p.text) for p in document.passages]) == ("7", [(0, "A & B \u00e9")])
    collection, bioc_document, kind = document.source
    assert (collection.source, collection.infons, kind) == ("PubMed", {"k": "v"}, "xml")
    (passage,) = bioc_document.passages
    (annotation,) = passage.annotations
    assert (annotation.id, annotation.infons, annotation.text) == ("T1", {"type": "Chemical"}, "A")
    assert [(loc.offset, loc.length) for loc in annotation.locations] == [(0, 1)]
    assert [(n.refid, n.role) for n in passage.relations[0].nodes] == [("T1", "x")]
    out = io.StringIO()
    write_documents([document], [[]], "bioc", out)
    assert '<annotation id="T1">' in out.getvalue() and "A &amp; B" in out.getvalue()
