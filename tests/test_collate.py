"""The collate contract: a batch of sentences, by hand."""

from __future__ import annotations

import torch
from tiny_corpora import CLS, ID, PAD, SEP, sent

from datamodules.corpora import label_space_of
from datamodules.multi_corpus import Collator, CorpusRows
from datamodules.rows import tokenize_corpus


def test_collate_two_sentences_by_hand(tokenizer):
    ls = label_space_of(["BC5CDR", "NCBI-disease"])  # BC5CDR/Chemical 0, /Disease 1, NCBI/Disease 2
    sentences = [
        sent("aspirin induced hypertension", [(0, 1, "Chemical"), (2, 3, "Disease")]),
        sent("the cancer", [(1, 2, "Disease")]),
    ]
    rows, report = tokenize_corpus(sentences, tokenizer, ls, "BC5CDR", split="dev")
    assert report.rows == 2 and not report.unsplittable
    a = ID
    assert rows[0]["input_ids"] == [CLS, a["asp"], a["##irin"], a["induced"], a["hyper"], a["##tension"], SEP]
    assert rows[0]["word_ids"] == [-1, 0, 0, 1, 2, 2, -1]
    assert rows[0]["spans"] == [0, 1, 0, 2, 3, 1]
    assert rows[1]["tokens"] == ["the", "cancer"] and rows[1]["num_words"] == 2

    def tag(batch: dict) -> dict:
        batch["extra"] = batch["num_words"] * 10
        return batch

    ds = CorpusRows(rows, corpus_id=0)
    batch = Collator(pad_id=PAD, batch_transform=tag)([ds[0], ds[1]])
    q = 5  # max num_words (3) + 2; slot 5 is the dump slot of padding
    assert torch.equal(
        batch["input_ids"],
        torch.tensor([[CLS, 17, 18, 12, 19, 20, SEP], [CLS, a["the"], a["cancer"], SEP, PAD, PAD, PAD]]),
    )
    assert torch.equal(batch["attention_mask"], torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]]))
    assert torch.equal(batch["word_index"], torch.tensor([[0, 1, 1, 2, 3, 3, 4], [0, 1, 2, 3, q, q, q]]))
    assert torch.equal(batch["num_words"], torch.tensor([3, 2]))
    assert torch.equal(batch["word_mask"], torch.tensor([[True] * 5, [True, True, True, True, False]]))
    assert torch.equal(batch["corpus_id"], torch.tensor([0, 0]))
    assert torch.equal(batch["sentence_index"], torch.tensor([0, 1]))
    assert torch.equal(batch["chunk"], torch.tensor([0, 0]))
    assert [s.tolist() for s in batch["spans"]] == [[[0, 1, 0], [2, 3, 1]], [[1, 2, 1]]]
    assert all(s.dtype == torch.long for s in batch["spans"])
    for key in ("input_ids", "attention_mask", "word_index", "num_words", "corpus_id"):
        assert batch[key].dtype == torch.long
    assert batch["word_mask"].dtype == torch.bool
    assert torch.equal(batch["extra"], torch.tensor([30, 20]))  # batch_transform applied


def test_collate_sentence_without_spans_gives_empty_span_tensor(tokenizer):
    ls = label_space_of(["BC5CDR"])
    rows, _ = tokenize_corpus([sent("the cancer")], tokenizer, ls, "BC5CDR")
    batch = Collator(PAD)([CorpusRows(rows, 0)[0]])
    assert batch["spans"][0].shape == (0, 3)
