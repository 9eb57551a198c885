"""Sentences -> the rows the data module caches and batches, and the report of what that took.

One row per (sentence, chunk); chunks come from ``datamodules/splitting.py`` (the subword cap):

===================  ===========================================================================
``input_ids``        subword ids with CLS first and SEP last (int32)
``word_ids``         per subword: the word index within the row (0-based), -1 for CLS/SEP
``num_words``        number of words in the row
``spans``            flattened ``[start, end, type_id] * S`` over the row's words (end exclusive);
                     ``type_id = label_space.type_id(corpus, type)``, the type as the readers give it
                     (renamed by the corpus's spec)
``tokens``           the words (strings) of the row
``doc_id``           the sentence's document id
``sentence_index``   index of the sentence in the original split
``chunk``            0, 1, ... when the sentence was split, else 0
``unreachable``      type ids of gold mentions a hard split cut (on chunk 0; see below), else empty
``relations``        flattened ``[head, tail, relation_id] * R``: head and tail index the row's ``spans``
                     (in their order), ``relation_id = label_space.relation_id(corpus, type)``; a
                     relation whose two mentions land in different chunks is lost (``cut_relations``)
===================  ===========================================================================

A sentence that no mention-preserving split fits under the cap is reported (corpus, split, index,
length) and logged: in ``train`` it is left out; in ``dev``/``test`` it is hard-split at the cap ignoring
mentions, and the mentions that then cross a chunk boundary are counted in the report; they cannot be
predicted, so ``unreachable`` carries their types and the span metrics count them as false negatives.
Words that tokenized to nothing (given the unk token) and single words truncated to the cap are counted
too (``empty_words``, ``truncated_words``); ``tokens`` keeps the original strings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset, Features, List, Value
from tqdm import tqdm

from datamodules.label_space import LabelSpace, qualify
from datamodules.sentence import Sentence
from datamodules.splitting import (
    MAX_SUBWORDS,
    chunk_ids,
    hard_split,
    special_ids,
    split_long_sentence,
    subwords,
)
from errors import CorpusFormatError

log = logging.getLogger(__name__)

FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "word_ids": List(Value("int32")),
        "num_words": Value("int32"),
        "spans": List(Value("int32")),
        "tokens": List(Value("string")),
        "doc_id": Value("string"),
        "sentence_index": Value("int32"),
        "chunk": Value("int32"),
        "unreachable": List(Value("int32")),
        "relations": List(Value("int32")),
    }
)

SpanIds = tuple[int, int, int]  # word start, word end (exclusive), global type id
RelationIds = tuple[int, int, int]  # head, tail (indices into the sentence's spans), global relation id


# --- report ------------------------------------------------------------------------------------
@dataclass
class Unsplittable:
    """A sentence that no mention-preserving split fits under the cap."""

    index: int  # in the original split
    num_words: int
    num_subwords: int  # content subwords, without CLS/SEP
    kept: bool  # True: hard-split (dev/test); False: left out (train)
    cut_mentions: int = 0  # mentions crossing a hard-split boundary (lost, i.e. false negatives)


@dataclass
class TokenizationReport:
    corpus: str
    split: str
    max_subwords: int
    sentences: int = 0  # sentences read
    rows: int = 0  # rows written (chunks)
    mentions: int = 0  # mentions read
    split_sentences: int = 0  # sentences split (mention-preserving or hard) into > 1 row
    empty_words: int = 0  # words that tokenized to nothing, given the unk token
    truncated_words: int = 0  # single words longer than the cap, truncated (hard split only)
    relations: int = 0  # relations read
    cut_relations: int = 0  # relations whose two mentions a split put into different rows (lost)
    unsplittable: list[Unsplittable] = field(default_factory=list)

    @property
    def dropped(self) -> list[Unsplittable]:
        return [u for u in self.unsplittable if not u.kept]

    @property
    def cut_mentions(self) -> int:
        return sum(u.cut_mentions for u in self.unsplittable)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizationReport:
        data = dict(data)
        data["unsplittable"] = [Unsplittable(**u) for u in data.get("unsplittable", [])]
        return cls(**data)

    def log_warnings(self) -> None:
        if self.dropped:
            log.warning(
                "%s/%s: %d sentence(s) longer than %d subwords cannot be split without cutting a mention "
                "and are LEFT OUT of training (index, words, subwords): %s",
                self.corpus,
                self.split,
                len(self.dropped),
                self.max_subwords,
                [(u.index, u.num_words, u.num_subwords) for u in self.dropped[:20]],
            )
        kept = [u for u in self.unsplittable if u.kept]
        if kept:
            log.warning(
                "%s/%s: %d sentence(s) longer than %d subwords were hard-split, cutting %d mention(s) "
                "(false negatives) (index, words, subwords, cut): %s",
                self.corpus,
                self.split,
                len(kept),
                self.max_subwords,
                self.cut_mentions,
                [(u.index, u.num_words, u.num_subwords, u.cut_mentions) for u in kept[:20]],
            )
        if self.empty_words:
            log.warning(
                "%s/%s: %d word(s) tokenized to nothing and were given the unk token",
                self.corpus,
                self.split,
                self.empty_words,
            )

    def summary(self) -> str:
        text = f"{self.corpus}/{self.split}: {self.sentences} sentences -> {self.rows} rows"
        extra = []
        if self.split_sentences:
            extra.append(f"{self.split_sentences} split")
        if self.dropped:
            extra.append(f"{len(self.dropped)} dropped (too long)")
        if self.cut_mentions:
            extra.append(f"{self.cut_mentions} mentions cut")
        if self.empty_words:
            extra.append(f"{self.empty_words} empty words -> unk")
        if self.truncated_words:
            extra.append(f"{self.truncated_words} words truncated")
        return text + (f" ({', '.join(extra)})" if extra else "")


# --- rows --------------------------------------------------------------------------------------
def label_ids(label_space: LabelSpace, corpus: str) -> dict[str, dict[str, int]]:
    """The global ids the rows of ``corpus`` give its qualified types and relation types (they depend on
    the whole label space; the cache key covers them)."""
    return {
        "types": {
            qualify(corpus, t): label_space.type_id(corpus, t) for t in label_space.corpus_types[corpus]
        },
        "relation_types": {
            qualify(corpus, r): label_space.relation_id(corpus, r)
            for r in label_space.corpus_relation_types[corpus]
        },
    }


def tokenize_corpus(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label_space: LabelSpace,
    corpus: str,
    max_subwords: int = MAX_SUBWORDS,
    *,
    split: str = "train",
    progress: bool = False,
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize one split of one corpus into rows (see the module docstring) and a report.

    ``split == "train"`` leaves unsplittable sentences out; any other split hard-splits them.
    ``progress`` shows a bar on a terminal (one ``tokenizing <corpus>/<split>`` line elsewhere)."""
    if max_subwords < 3:
        raise ValueError(f"max_subwords must leave room for CLS, SEP and one subword, got {max_subwords}")
    cls_id, sep_id, _ = special_ids(tokenizer)
    budget = max_subwords - 2
    type_ids = {t: label_space.type_id(corpus, t) for t in label_space.corpus_types[corpus]}
    report = TokenizationReport(corpus=corpus, split=split, max_subwords=max_subwords)
    columns: dict[str, list[Any]] = {k: [] for k in FEATURES}
    pieces: Iterable[tuple[Sentence, tuple[np.ndarray, np.ndarray, int]]]
    pieces = zip(sentences, subwords(tokenizer, sentences), strict=True)  # (strict: the generator ends)
    if progress:
        pieces = _progress(pieces, len(sentences), corpus, split)
    for index, (sentence, (ids, wids, n_empty)) in enumerate(pieces):
        report.sentences += 1
        report.mentions += len(sentence.spans)
        report.empty_words += n_empty
        report.relations += len(sentence.relations)
        relations = _relation_ids(sentence, index, corpus, label_space)
        spans = _span_ids(sentence, index, corpus, type_ids)
        lengths = np.bincount(wids, minlength=len(sentence.tokens))  # (n,) subwords per word
        chunks, cut = _chunks(lengths, spans, budget, index, split, report)
        if chunks is None:
            continue
        if len(chunks) > 1:
            report.split_sentences += 1
            report.cut_relations += _cut_relations(chunks, spans, relations)
        word_start = np.concatenate([[0], np.cumsum(lengths)])  # (n+1,) first subword of each word
        for c, (cs, ce) in enumerate(chunks):
            input_ids, word_ids, truncated = chunk_ids(ids, wids, word_start, cs, ce, budget, cls_id, sep_id)
            report.truncated_words += truncated
            row = _row(sentence, index, c, cs, ce, spans, relations, cut if c == 0 else [])
            row.update(input_ids=input_ids, word_ids=word_ids)
            for key, value in row.items():
                columns[key].append(value)
    report.rows = len(columns["input_ids"])
    report.log_warnings()
    return Dataset.from_dict(columns, features=FEATURES), report


def _progress(pieces: Iterable[Any], total: int, corpus: str, split: str) -> Iterable[Any]:
    if sys.stderr.isatty():
        return tqdm(pieces, total=total, desc=f"tokenizing {corpus}/{split}", unit=" sentences", leave=False)
    print(f"tokenizing {corpus}/{split}: {total} sentences", file=sys.stderr, flush=True)
    return pieces


def _relation_ids(sentence: Sentence, index: int, corpus: str, label_space: LabelSpace) -> list[RelationIds]:
    relations = []
    for rel in sentence.relations:
        if qualify(corpus, rel.type) not in label_space.relation_index:
            known = sorted(label_space.corpus_relation_types[corpus])
            raise CorpusFormatError(
                corpus, None, f"sentence {index}: relation type {rel.type!r} is not one of {known}"
            )
        relations.append((rel.head, rel.tail, label_space.relation_id(corpus, rel.type)))
    return relations


def _span_ids(sentence: Sentence, index: int, corpus: str, type_ids: dict[str, int]) -> list[SpanIds]:
    spans = []
    for sp in sentence.spans:
        if sp.type not in type_ids:
            problem = f"sentence {index}: type {sp.type!r} is not one of {corpus}'s types {sorted(type_ids)}"
            raise CorpusFormatError(corpus, None, problem)
        spans.append((sp.start, sp.end, type_ids[sp.type]))
    return spans


def _chunks(
    lengths: np.ndarray, spans: list[SpanIds], budget: int, index: int, split: str, report: TokenizationReport
) -> tuple[list[tuple[int, int]] | None, list[int]]:
    """The sentence's chunks (None: left out of training) and the type ids of the mentions a hard split cut;
    an unsplittable sentence is added to ``report``."""
    chunks = split_long_sentence(lengths, spans, budget)
    if chunks is not None:
        return chunks, []
    kept = split != "train"
    item = Unsplittable(index, len(lengths), int(lengths.sum()), kept)
    report.unsplittable.append(item)
    if not kept:
        return None, []
    chunks = hard_split(lengths, budget)
    cut = [t for s, e, t in spans if not any(cs <= s and e <= ce for cs, ce in chunks)]
    item.cut_mentions = len(cut)
    return chunks, cut


def _cut_relations(chunks: list[tuple[int, int]], spans: list[SpanIds], relations: list[RelationIds]) -> int:
    """Relations whose two mentions are not inside one chunk."""
    return sum(
        not any(
            cs <= min(spans[h][0], spans[t][0]) and max(spans[h][1], spans[t][1]) <= ce for cs, ce in chunks
        )
        for h, t, _ in relations
    )


def _row(
    sentence: Sentence,
    index: int,
    chunk: int,
    cs: int,
    ce: int,
    spans: list[SpanIds],
    relations: list[RelationIds],
    unreachable: list[int],
) -> dict[str, Any]:
    """Words ``[cs, ce)`` of a sentence as a row, without its subword columns: spans rebased to the row,
    relations re-indexed over the row's spans."""
    inside = [k for k, (s, e, _) in enumerate(spans) if cs <= s and e <= ce]
    row_of = {k: r for r, k in enumerate(inside)}
    kept_relations = [(row_of[h], row_of[t], r) for h, t, r in relations if h in row_of and t in row_of]
    return {
        "num_words": ce - cs,
        "spans": [v for k in inside for v in (spans[k][0] - cs, spans[k][1] - cs, spans[k][2])],
        "relations": [v for rel in kept_relations for v in rel],
        "tokens": list(sentence.tokens[cs:ce]),
        "doc_id": sentence.doc_id,
        "sentence_index": index,
        "chunk": chunk,
        "unreachable": unreachable,  # gold cut by a hard split (chunk 0 only): scored as misses
    }
