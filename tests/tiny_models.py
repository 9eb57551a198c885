"""Tiny, deterministic encoders and tokenizers for tests (no hub, no files outside tmp)."""

from __future__ import annotations

from pathlib import Path

from transformers import BertConfig, BertTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "of", "and", "in", "a", "was", "with", "human", "mouse", "gene", "protein", "receptor",
    "kinase", "alpha", "beta", "cell", "line", "cancer", "disease", "acid", "levels", "binds", "to",
    "induced", "by", "patients", "##s", "##ing", "x", "y", ".", ",",
]  # fmt: skip


def tiny_tokenizer(directory: Path) -> BertTokenizerFast:
    """A WordPiece tokenizer over a fixed vocabulary (a trained vocab would change order run to run)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))  # AutoTokenizer can then load the directory
    return tokenizer


def tiny_bert_config(
    vocab_size: int = len(SPECIALS) + len(WORDS), hidden: int = 64, layers: int = 2
) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def collate_sentences(directory: Path, sentences: list, label_space, batch_transform=None) -> dict:
    """One batch of ``sentences`` (any corpora of ``label_space``), tokenized with ``tiny_tokenizer``."""
    from datamodules.multi_corpus import Collator
    from datamodules.rows import tokenize_corpus

    tokenizer = tiny_tokenizer(directory / "tok")
    rows = []
    for corpus in label_space.corpora:
        own = [s for s in sentences if s.corpus == corpus]
        if own:
            part, _ = tokenize_corpus(own, tokenizer, label_space, corpus, split="train")
            rows += [{**part[i], "corpus_id": label_space.corpus_index[corpus]} for i in range(len(part))]
    return Collator(tokenizer.pad_token_id, batch_transform)(rows)
