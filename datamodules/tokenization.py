"""Words -> subwords, the 405-subword cap with mention-preserving splitting (spec A2), and an Arrow cache.

One output row per (sentence, chunk):

===================  ===========================================================================
``input_ids``        subword ids with CLS first and SEP last (int32)
``word_ids``         per subword: the word index within the row (0-based), -1 for CLS/SEP
``num_words``        number of words in the row
``spans``            flattened ``[start, end, type_id] * S`` over the row's words (end exclusive);
                     ``type_id = label_space.type_id(corpus, spec.unified_type(raw))``
``tokens``           the words (strings) of the row
``doc_id``           the sentence's document id
``sentence_index``   index of the sentence in the original split
``chunk``            0, 1, ... when the sentence was split, else 0
``unreachable``      type ids of gold mentions a hard split cut (on chunk 0; see below), else empty
``relations``        flattened ``[head, tail, relation_id] * R``: head and tail index the row's ``spans``
                     (in their order), ``relation_id = label_space.relation_id(corpus, type)``; a
                     relation whose two mentions land in different chunks is lost (``cut_relations``)
===================  ===========================================================================

Empty words. A word that the tokenizer turns into nothing (e.g. ``"\\u200b"``, a soft hyphen) would
silently shift every later word; such a word is given the tokenizer's unk token instead (one subword),
and counted in the report (``empty_words``). ``tokens`` keeps the original string.

Length cap. ``max_subwords`` counts CLS and SEP. A longer sentence is split greedily at word boundaries
into chunks of at most ``max_subwords - 2`` subwords, never inside a mention (nested or overlapping
mentions included). A sentence that cannot be split that way is reported (corpus, split, index,
length) and logged: in ``train`` it is left out; in ``dev``/``test`` it is hard-split at the cap
ignoring mentions, and the mentions that then cross a chunk boundary are counted in the report; they
cannot be predicted, so ``unreachable`` carries their types and the span metrics count them as false
negatives. A single word longer than the cap is truncated to the cap (``truncated_words``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import Dataset, Features, List, Value, load_from_disk

from datamodules.checksums import sha256_bytes, sha256_file
from datamodules.label_space import LabelSpace, qualify
from datamodules.registry import get_spec
from datamodules.sentence import Sentence
from errors import BionerError, CorpusFormatError

log = logging.getLogger(__name__)

MAX_SUBWORDS = 405
CACHE_FORMAT = 3  # bump when the row layout or the splitting rules change
TOKENIZER_BATCH = 1024  # sentences per tokenizer call

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


# --- splitting ---------------------------------------------------------------------------------
def _bounds(span: Any) -> tuple[int, int]:
    if hasattr(span, "start"):
        return int(span.start), int(span.end)
    return int(span[0]), int(span[1])


def split_long_sentence(
    sentence_word_lengths: Sequence[int], spans: Sequence[Any], max_content_tokens: int
) -> list[tuple[int, int]] | None:
    """Chunks ``[(word_start, word_end), ...]`` (end exclusive) covering every word, each of at most
    ``max_content_tokens`` subwords, such that no span crosses a chunk boundary; None if impossible.

    ``spans`` are ``Span`` objects or ``(start, end, ...)`` tuples over words. A cut between words
    ``b-1`` and ``b`` is allowed iff no span has ``start < b < end``; overlapping and nested mentions thus
    form one unbreakable block (their union). Blocks are packed greedily, which gives the fewest chunks.
    """
    n = len(sentence_word_lengths)
    if n == 0:
        return [(0, 0)]
    lengths = np.asarray(sentence_word_lengths, dtype=np.int64)
    if lengths.sum() <= max_content_tokens:
        return [(0, n)]
    # covered[b] > 0 iff some span has start < b < end (cut before word b forbidden), b in 0..n
    diff = np.zeros(n + 2, dtype=np.int64)
    for span in spans:
        s, e = _bounds(span)
        if e - s >= 2:
            diff[s + 1] += 1
            diff[e] -= 1
    covered = np.cumsum(diff)[: n + 1]
    cuts = np.flatnonzero(covered[1:n] == 0) + 1  # allowed cut positions, 1..n-1
    block_bounds = np.concatenate([[0], cuts, [n]])  # (nb+1,)
    csum = np.concatenate([[0], np.cumsum(lengths)])
    block_len = csum[block_bounds[1:]] - csum[block_bounds[:-1]]  # (nb,)
    if (block_len > max_content_tokens).any():
        return None
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for b, length in enumerate(block_len.tolist()):
        if used + length > max_content_tokens:
            end = int(block_bounds[b])
            chunks.append((start, end))
            start, used = end, 0
        used += length
    chunks.append((start, n))
    return chunks


def _hard_split(lengths: np.ndarray, max_content_tokens: int) -> list[tuple[int, int]]:
    """Greedy word-boundary split ignoring mentions; a word longer than the cap gets a chunk of its own."""
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for w, length in enumerate(lengths.tolist()):
        if used + length > max_content_tokens and w > start:
            chunks.append((start, w))
            start, used = w, 0
        used += length
    chunks.append((start, len(lengths)))
    return chunks


def chunk_ids(
    ids: np.ndarray,
    wids: np.ndarray,
    word_start: np.ndarray,
    cs: int,
    ce: int,
    budget: int,
    cls_id: int,
    sep_id: int,
) -> tuple[list[int], list[int], bool]:
    """Words ``[cs, ce)`` of a sentence as one row: subword ids with CLS and SEP, each subword's word
    index within the row (-1 for CLS/SEP), and whether a single over-long word was truncated to ``budget``."""
    lo, hi = int(word_start[cs]), int(word_start[ce])
    truncated = hi - lo > budget  # one word longer than the cap (hard split only)
    hi = lo + budget if truncated else hi
    return [cls_id, *ids[lo:hi].tolist(), sep_id], [-1, *(wids[lo:hi] - cs).tolist(), -1], truncated


def window_rows(
    sentences: Sequence[Sentence], tokenizer: Any, max_subwords: int = MAX_SUBWORDS
) -> list[dict[str, Any]]:
    """Unannotated sentences (prediction) as rows: each cut at word boundaries into windows of at most
    ``max_subwords`` (CLS and SEP included), as evaluation hard-splits. A row has ``input_ids``,
    ``word_ids``, ``num_words``, ``sentence_index`` and ``first_word`` (its first word in the sentence)."""
    cls_id, sep_id, _ = _special_ids(tokenizer)
    budget = max_subwords - 2
    rows = []
    for index, (sentence, (ids, wids, _)) in enumerate(zip(sentences, _subwords(tokenizer, sentences))):
        lengths = np.bincount(wids, minlength=len(sentence.tokens))
        word_start = np.concatenate([[0], np.cumsum(lengths)])
        for cs, ce in _hard_split(lengths, budget):  # one window when the sentence fits
            input_ids, word_ids, _ = chunk_ids(ids, wids, word_start, cs, ce, budget, cls_id, sep_id)
            rows.append(
                {"input_ids": input_ids, "word_ids": word_ids, "num_words": ce - cs, "sentence_index": index,
                 "first_word": cs}
            )  # fmt: skip
    return rows


# --- tokenization ------------------------------------------------------------------------------
def _special_ids(tokenizer: Any) -> tuple[int, int, int]:
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    unk_id = tokenizer.unk_token_id
    if cls_id is None or sep_id is None or unk_id is None:
        raise BionerError(f"tokenizer {type(tokenizer).__name__} lacks a CLS/BOS, SEP/EOS or unk token")
    return int(cls_id), int(sep_id), int(unk_id)


def _subwords(tokenizer: Any, sentences: Sequence[Sentence]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per sentence: content subword ids (T,), their word index (T,), and the number of empty words."""
    if not getattr(tokenizer, "is_fast", False):
        raise BionerError(f"a fast tokenizer (with word_ids()) is needed, got {type(tokenizer).__name__}")
    _, _, unk_id = _special_ids(tokenizer)
    out: list[tuple[np.ndarray, np.ndarray, int]] = []
    for b in range(0, len(sentences), TOKENIZER_BATCH):
        batch = sentences[b : b + TOKENIZER_BATCH]
        words = [list(s.tokens) for s in batch]
        nonempty = [i for i, w in enumerate(words) if w]
        enc = (
            tokenizer([words[i] for i in nonempty], is_split_into_words=True, add_special_tokens=False)
            if nonempty
            else None
        )
        encoded: dict[int, int] = {i: j for j, i in enumerate(nonempty)}
        for i, w in enumerate(words):
            if i not in encoded:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.int64), 0))
                continue
            j = encoded[i]
            ids = np.asarray(enc["input_ids"][j], dtype=np.int64)
            wids = np.asarray(enc.word_ids(j), dtype=np.int64)
            counts = np.bincount(wids, minlength=len(w))
            empty = np.flatnonzero(counts == 0)
            if len(empty):  # give each empty word one unk subword at its place
                pos = np.concatenate([[0], np.cumsum(counts)])[empty]
                ids = np.insert(ids, pos, unk_id)
                wids = np.insert(wids, pos, empty)
            out.append((ids, wids, len(empty)))
    return out


def _type_ids(label_space: LabelSpace, corpus: str) -> dict[str, int]:
    """Raw type as written in the corpus files -> global type id."""
    spec = get_spec(corpus)
    raw_types = set(spec.types) | set(spec.rename)
    out = {}
    for raw in raw_types:
        unified = spec.unified_type(raw)
        if qualify(corpus, unified) in label_space.type_index:
            out[raw] = label_space.type_id(corpus, unified)
    return out


def tokenize_corpus(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label_space: LabelSpace,
    corpus: str,
    max_subwords: int = MAX_SUBWORDS,
    *,
    split: str = "train",
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize one split of one corpus into rows (see the module docstring) and a report.

    ``split == "train"`` leaves unsplittable sentences out; any other split hard-splits them.
    """
    if max_subwords < 3:
        raise ValueError(f"max_subwords must leave room for CLS, SEP and one subword, got {max_subwords}")
    cls_id, sep_id, _ = _special_ids(tokenizer)
    budget = max_subwords - 2
    spec = get_spec(corpus)
    type_of = _type_ids(label_space, corpus)
    report = TokenizationReport(corpus=corpus, split=split, max_subwords=max_subwords)
    cols: dict[str, list[Any]] = {k: [] for k in FEATURES}
    for index, (sentence, (ids, wids, n_empty)) in enumerate(zip(sentences, _subwords(tokenizer, sentences))):
        report.sentences += 1
        report.mentions += len(sentence.spans)
        report.empty_words += n_empty
        report.relations += len(sentence.relations)
        n = len(sentence.tokens)
        relations = []
        for rel in sentence.relations:
            if qualify(corpus, rel.type) not in label_space.relation_index:
                known = sorted(label_space.corpus_relation_types[corpus])
                raise CorpusFormatError(
                    corpus, None, f"sentence {index}: relation type {rel.type!r} is not one of {known}"
                )
            relations.append((rel.head, rel.tail, label_space.relation_id(corpus, rel.type)))
        spans = []
        for sp in sentence.spans:
            if sp.type not in type_of:
                raise CorpusFormatError(
                    corpus,
                    None,
                    f"sentence {index}: type {sp.type!r} is not one of {spec.name}'s types {sorted(type_of)}",
                )
            spans.append((sp.start, sp.end, type_of[sp.type]))
        lengths = np.bincount(wids, minlength=n)  # (n,) subwords per word
        chunks = split_long_sentence(lengths, spans, budget)
        if chunks is None:
            kept = split != "train"
            item = Unsplittable(index, n, int(lengths.sum()), kept)
            report.unsplittable.append(item)
            if not kept:
                continue
            chunks = _hard_split(lengths, budget)
            cut = [t for s, e, t in spans if not any(cs <= s and e <= ce for cs, ce in chunks)]
            item.cut_mentions = len(cut)
        else:
            cut = []
        if len(chunks) > 1:
            report.split_sentences += 1
            report.cut_relations += sum(
                not any(
                    cs <= min(spans[h][0], spans[t][0]) and max(spans[h][1], spans[t][1]) <= ce
                    for cs, ce in chunks
                )
                for h, t, _ in relations
            )
        word_start = np.concatenate([[0], np.cumsum(lengths)])  # (n+1,) first subword of each word
        for c, (cs, ce) in enumerate(chunks):
            input_ids, word_ids, truncated = chunk_ids(ids, wids, word_start, cs, ce, budget, cls_id, sep_id)
            report.truncated_words += truncated
            cols["input_ids"].append(input_ids)
            cols["word_ids"].append(word_ids)
            cols["num_words"].append(ce - cs)
            inside = [k for k, (s, e, _) in enumerate(spans) if cs <= s and e <= ce]
            cols["spans"].append(
                [v for k in inside for v in (spans[k][0] - cs, spans[k][1] - cs, spans[k][2])]
            )
            row_of = {k: r for r, k in enumerate(inside)}
            kept_rel = [(row_of[h], row_of[t], r) for h, t, r in relations if h in row_of and t in row_of]
            cols["relations"].append([v for rel in kept_rel for v in rel])
            cols["tokens"].append(list(sentence.tokens[cs:ce]))
            cols["doc_id"].append(sentence.doc_id)
            cols["sentence_index"].append(index)
            cols["chunk"].append(c)
            cols["unreachable"].append(cut if c == 0 else [])  # gold cut by a hard split: scored as misses
    report.rows = len(cols["input_ids"])
    report.log_warnings()
    return Dataset.from_dict(cols, features=FEATURES), report


# --- cache -------------------------------------------------------------------------------------
def tokenizer_identity(tokenizer: Any) -> str:
    """Class name + sha256 of the fast tokenizer's serialisation (vocab, normaliser, pre-tokenizer, model,
    post-processor). Its ``truncation``/``padding`` entries are left out: calling the tokenizer changes
    them, and this module never uses either."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    backend.pop("truncation", None)
    backend.pop("padding", None)
    text = json.dumps(backend, sort_keys=True, ensure_ascii=False)
    return f"{type(tokenizer).__name__}:{sha256_bytes(text)}"


def cache_key(
    corpus_path: str | os.PathLike,
    *,
    tokenizer: Any,
    label_space: LabelSpace,
    corpus: str,
    split: str,
    reading: str,
    max_subwords: int,
    scheme: str = "auto",
) -> str:
    """sha256 over: the corpus file's sha256 (an edited file is tokenized again), the tokenizer identity,
    the cap, the reading, the split, this corpus's qualified types with their global ids (ids depend on
    the whole label space) and, when not ``"auto"``, the tagging scheme a user corpus asks for."""
    payload = {
        "format": CACHE_FORMAT,
        "file": sha256_file(corpus_path),
        "tokenizer": tokenizer_identity(tokenizer),
        "max_subwords": int(max_subwords),
        "reading": reading,
        "split": split,
        "types": {
            qualify(corpus, t): label_space.type_id(corpus, t) for t in label_space.corpus_types[corpus]
        },
        "relation_types": {
            qualify(corpus, r): label_space.relation_id(corpus, r)
            for r in label_space.corpus_relation_types[corpus]
        },
    }
    if scheme != "auto":  # keeps the keys of the registered corpora (always "auto") as they were
        payload["scheme"] = scheme
    return sha256_bytes(json.dumps(payload, sort_keys=True))


def cache_path(cache_dir: str | os.PathLike, corpus: str, split: str, key: str) -> Path:
    return Path(cache_dir) / corpus / f"{split}-{key[:16]}"


def load_or_tokenize(
    corpus_path: str | os.PathLike,
    sentences_fn: Callable[[], Sequence[Sentence]],
    tokenizer: Any,
    label_space: LabelSpace,
    *,
    corpus: str,
    split: str,
    reading: str = "full",
    max_subwords: int = MAX_SUBWORDS,
    cache_dir: str | os.PathLike | None = ".cache/bioner",
    scheme: str = "auto",
) -> tuple[Dataset, TokenizationReport]:
    """The tokenized split from ``<cache_dir>/<corpus>/<split>-<key[:16]>`` when present (the corpus file is
    only hashed, never read), else ``tokenize_corpus(sentences_fn(), ...)`` saved there atomically.

    The directory holds the ``datasets`` Arrow files plus ``report.json``. ``cache_dir=None`` disables
    the cache. Concurrent writers (DDP ranks) are safe: each writes a private temporary directory and
    renames it into place; the loser of the race discards its copy.
    """
    if cache_dir is None:
        return tokenize_corpus(sentences_fn(), tokenizer, label_space, corpus, max_subwords, split=split)
    key = cache_key(
        corpus_path,
        tokenizer=tokenizer,
        label_space=label_space,
        corpus=corpus,
        split=split,
        reading=reading,
        max_subwords=max_subwords,
        scheme=scheme,
    )
    final = cache_path(cache_dir, corpus, split, key)
    if (final / "report.json").is_file():
        report = TokenizationReport.from_dict(json.loads((final / "report.json").read_text()))
        report.log_warnings()
        return load_from_disk(str(final)), report
    dataset, report = tokenize_corpus(
        sentences_fn(), tokenizer, label_space, corpus, max_subwords, split=split
    )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            dataset.save_to_disk(str(tmp))
        finally:
            if bars:
                datasets.enable_progress_bars()
        (tmp / "report.json").write_text(json.dumps(report.to_dict(), indent=1))
        try:
            os.rename(tmp, final)
        except OSError:  # another process renamed its copy first
            if not (final / "report.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_from_disk(str(final)), report
