"""Relations through the data layer: label space, tokenized rows, batches; ADE cross-validation folds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_models import tiny_tokenizer

from datamodules.catalog import CORPORA
from datamodules.corpora import label_space_of, read_split, split_path
from datamodules.label_space import LabelSpace
from datamodules.multi_corpus import Collator
from datamodules.rows import tokenize_corpus
from datamodules.sentence import Relation, Sentence, Span
from errors import MissingCorpusError

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "ADE").is_dir(), reason=f"ADE/CoNLL04 not found under {SHARED}"
)


def test_label_space_relation_types_are_qualified_ordered_and_serialised():
    ls = label_space_of(["CoNLL04", "BC5CDR"])
    assert ls.relation_types == (
        "CoNLL04/Kill", "CoNLL04/Live_In", "CoNLL04/Located_In", "CoNLL04/OrgBased_In", "CoNLL04/Work_For",
    )  # fmt: skip
    assert ls.relation_id("CoNLL04", "Work_For") == 4
    assert LabelSpace.from_dict(ls.to_dict()) == ls
    assert ls != LabelSpace(ls.corpus_types)  # same entity types, no relations
    plain = label_space_of(["BC5CDR"])
    assert plain.to_dict() == {"BC5CDR": ["Chemical", "Disease"]}  # the format older checkpoints hold
    assert LabelSpace.from_dict(plain.to_dict()) == plain and plain.relation_types == ()


def test_rows_and_batches_carry_relations_over_row_span_indices(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    ls = LabelSpace({"CoNLL04": ["Loc", "Peop"]}, {"CoNLL04": ["Kill", "Live_In"]})
    spans = (Span(4, 5, "Loc"), Span(0, 1, "Peop"), Span(2, 3, "Peop"))
    sentence = Sentence(("human", "and", "mouse", "in", "cancer"), spans, "CoNLL04",
                        relations=(Relation(1, 0, "Live_In"), Relation(1, 2, "Kill")))  # fmt: skip
    rows, report = tokenize_corpus([sentence], tokenizer, ls, "CoNLL04", split="train")
    assert rows[0]["relations"] == [1, 0, 1, 1, 2, 0] and report.relations == 2
    batch = Collator(tokenizer.pad_token_id)([{**rows[0], "corpus_id": 0}])
    assert batch["relations"][0].tolist() == [[1, 0, 1], [1, 2, 0]]
    assert batch["spans"][0].tolist() == [[4, 5, 0], [0, 1, 1], [2, 3, 1]]


def test_a_split_sentence_keeps_relations_inside_a_row_and_counts_the_cut_ones(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    ls = LabelSpace({"CoNLL04": ["Peop"]}, {"CoNLL04": ["Kill"]})
    words = ("human", "mouse", "gene", "cell", "line", "cancer")
    spans = (Span(0, 1, "Peop"), Span(1, 2, "Peop"), Span(4, 5, "Peop"))
    relations = (Relation(0, 1, "Kill"), Relation(0, 2, "Kill"))
    sentence = Sentence(words, spans, "CoNLL04", relations=relations)
    rows, report = tokenize_corpus([sentence], tokenizer, ls, "CoNLL04", max_subwords=5, split="train")
    assert [r["spans"] for r in rows] == [[0, 1, 0, 1, 2, 0], [1, 2, 0]]  # chunks of 3 words
    assert [r["relations"] for r in rows] == [[0, 1, 0], []]
    assert report.cut_relations == 1


def test_an_unknown_relation_type_names_the_sentence(tmp_path):
    from errors import CorpusFormatError

    tokenizer = tiny_tokenizer(tmp_path / "tok")
    ls = LabelSpace({"CoNLL04": ["Peop"]}, {"CoNLL04": ["Kill"]})
    sentence = Sentence(("human", "mouse"), (Span(0, 1, "Peop"), Span(1, 2, "Peop")), "CoNLL04",
                        relations=(Relation(0, 1, "Loves"),))  # fmt: skip
    with pytest.raises(CorpusFormatError, match="sentence 0: relation type 'Loves'"):
        tokenize_corpus([sentence], tokenizer, ls, "CoNLL04")


def test_ade_folds_name_their_files_and_bad_folds_are_errors(tmp_path):
    spec = CORPORA["ADE"]
    assert sorted(spec.folds) == list(range(10)) and spec.fold_splits(None) == spec.folds[0]
    assert (
        split_path(spec, SHARED, "test", 7).name == "ade_split_7_test.json"
        if (SHARED / "ADE").is_dir()
        else True
    )
    assert len(spec.all_files()) == 21  # 10 x (train, test) + the types file: `prepare` fetches every fold
    with pytest.raises(MissingCorpusError, match="has folds 0..9, not 10"):
        spec.fold_splits(10)
    with pytest.raises(MissingCorpusError, match="no cross-validation folds"):
        CORPORA["BC5CDR"].fold_splits(1)
    with pytest.raises(MissingCorpusError, match="Fetch it with"):
        split_path(spec, tmp_path, "train", 3)


@needs_shared
def test_full_relation_corpora_read_with_every_relation_kept():
    for name, split, fold in (("CoNLL04", "train", None), ("ADE", "test", 4)):
        sentences = read_split(CORPORA[name], SHARED, split, fold=fold).sentences
        ls = label_space_of([name])
        for s in sentences:
            for r in s.relations:
                ls.relation_id(name, r.type)  # every type is registered
        assert sum(len(s.relations) for s in sentences) > 100
    fold3 = read_split(CORPORA["ADE"], SHARED, "train", fold=3).sentences
    fold4 = read_split(CORPORA["ADE"], SHARED, "train", fold=4).sentences
    assert {s.tokens for s in fold3} != {s.tokens for s in fold4}
