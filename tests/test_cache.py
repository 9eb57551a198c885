"""The Arrow cache of tokenized rows: a hit reads nothing, another setting is another key."""

from __future__ import annotations

import pytest
from tiny_corpora import sent

from datamodules import cache
from datamodules.cache import load_or_tokenize
from datamodules.corpora import label_space_of
from datamodules.readers import ReadResult


def test_load_or_tokenize_cache_hit_reads_nothing(tokenizer, tmp_path, monkeypatch):
    ls = label_space_of(["BC5CDR"])
    f = tmp_path / "train.tsv"
    f.write_text("whatever\tO\n")
    sentences = [sent("the cancer", [(1, 2, "Disease")])]
    kw = dict(corpus="BC5CDR", split="train", cache_dir=tmp_path / "cache")
    first, _ = load_or_tokenize(f, lambda: ReadResult(sentences, None), tokenizer, ls, **kw)
    (entry,) = (tmp_path / "cache" / "BC5CDR").iterdir()
    assert entry.name.startswith("train-") and len(entry.name) == len("train-") + 16
    assert (entry / "report.json").is_file()

    def boom(*a, **k):
        raise AssertionError("tokenized on a cache hit")

    monkeypatch.setattr(cache, "tokenize_corpus", boom)
    again, report = load_or_tokenize(f, boom, tokenizer, ls, **kw)
    assert again.to_dict() == first.to_dict() and report.rows == 1
    with pytest.raises(AssertionError, match="cache hit"):  # another cap is another key
        load_or_tokenize(f, lambda: ReadResult(sentences, None), tokenizer, ls, max_subwords=64, **kw)
