"""SRU-NER can fit 32 sentences with nested mentions exactly (training F1 = 100) with a tiny encoder."""

import random

import pytest
import torch
from tiny_models import tiny_bert_config, tiny_tokenizer

from datamodules.corpora import label_space_of
from datamodules.multi_corpus import Collator
from datamodules.rows import tokenize_corpus
from datamodules.sentence import Sentence, Span
from lightning_modules.encoder import WordEncoder
from lightning_modules.sru_ner.codec import ActionVocabulary, decode_batch
from lightning_modules.sru_ner.config import SRUNERConfig
from lightning_modules.sru_ner.network import SRUNERNetwork
from lightning_modules.sru_ner.targets import SRUTargetEncoder
from losses import multi_hot_bce
from metrics.span_f1 import SpanF1

FILLERS = ["the", "of", "and", "in", "a", "was", "with", "levels", "binds", "to", "induced", "by"]
# (words, spans relative to the pattern start): nested, same start, same end, same-type nesting
PATTERNS = [
    (["human", "gene", "receptor"], [(0, 3, "DNA"), (1, 2, "Gene_or_protein")]),
    (["alpha", "kinase"], [(0, 2, "Gene_or_protein"), (0, 1, "Gene_or_protein")]),
    (["mouse", "cell", "line"], [(0, 3, "Cell_Line"), (1, 3, "Cell_Type")]),
    (["beta", "protein", "gene"], [(0, 3, "DNA"), (0, 2, "Gene_or_protein"), (1, 2, "Gene_or_protein")]),
    (["cancer", "cell"], [(0, 2, "Cell_Type")]),
]


def nested_sentences(n: int, seed: int = 0) -> list[Sentence]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words, spans = [], []
        for _ in range(rng.randint(1, 3)):
            words += rng.sample(FILLERS, rng.randint(0, 3))
            pattern_words, pattern_spans = rng.choice(PATTERNS)
            spans += [Span(len(words) + s, len(words) + e, t) for s, e, t in pattern_spans]
            words += pattern_words
        if rng.random() < 0.5:
            words += rng.sample(FILLERS, rng.randint(1, 2))  # else the last mention ends at the last word
        sentences.append(Sentence(tuple(words), tuple(spans), "JNLPBA"))
    return sentences


@pytest.mark.slow
def test_tiny_sru_ner_fits_nested_mentions_exactly(tmp_path):
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    label_space = label_space_of(["JNLPBA"])
    sentences = nested_sentences(32)
    assert sum(len(s.spans) for s in sentences) > 60
    rows, _ = tokenize_corpus(sentences, tokenizer, label_space, "JNLPBA", split="train")
    collate = Collator(tokenizer.pad_token_id, SRUTargetEncoder(label_space.to_dict()))
    batch = collate([{**rows[i], "corpus_id": 0} for i in range(len(rows))])
    assert sum(len(s) for s in batch["spans"]) == sum(len(s.spans) for s in sentences)

    vocab = ActionVocabulary(len(label_space))
    network = SRUNERNetwork(WordEncoder(config=tiny_bert_config()), SRUNERConfig(half_context=20), vocab.size)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    best = 0.0
    for step in range(400):
        network.train()
        out = network(batch)
        loss = multi_hot_bce(out.logits, out.targets, out.row_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 19:
            network.eval()
            metric = SpanF1(label_space)
            predicted, _ = decode_batch(network.generate(batch), batch["num_words"], vocab)
            metric.update(batch["corpus_id"], batch["spans"], predicted)
            best = float(metric.compute()["disjoint/micro_f1"])
            if best == 100.0:
                break
    assert best == 100.0, f"training F1 {best:.2f} after {step + 1} steps (loss {float(loss):.4f})"


CHEMICAL_PATTERNS = [
    (["acid"], [(0, 1, "Chemical")]),
    (["beta", "acid"], [(0, 2, "Chemical")]),
    (["cancer", "disease"], [(0, 2, "Disease")]),
    (["disease"], [(0, 1, "Disease")]),
]


def bc5cdr_sentences(n: int, seed: int = 1) -> list[Sentence]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words, spans = [], []
        for _ in range(rng.randint(1, 2)):
            words += rng.sample(FILLERS, rng.randint(1, 3))
            pattern_words, pattern_spans = rng.choice(CHEMICAL_PATTERNS)
            spans += [Span(len(words) + s, len(words) + e, t) for s, e, t in pattern_spans]
            words += pattern_words
        sentences.append(Sentence(tuple(words), tuple(spans), "BC5CDR"))
    return sentences


@pytest.mark.slow
@pytest.mark.parametrize(
    ("weighting", "sh_target"), [("none", "soft"), ("balanced", "soft"), ("balanced", "hard")]
)
def test_tiny_sru_ner_fits_two_corpora_with_disjoint_types(tmp_path, weighting, sh_target):
    """Two corpora with disjoint types (JNLPBA's nested mentions, BC5CDR's Chemical and Disease), trained
    through the module (the dynamic multi-hot target, the weighting, calibrated decisions): each corpus
    reaches training F1 >= 95 in the disjoint view, with the weighting off and on."""
    from tiny_models import collate_sentences

    from lightning_modules.registry import build_module

    torch.manual_seed(0)
    label_space = label_space_of(["BC5CDR", "JNLPBA"])
    sentences = nested_sentences(16) + bc5cdr_sentences(16)
    cfg = {
        "encoder": {"name": "tiny"},
        "model": {
            "name": "sru_ner",
            "half_context": 20,
            "action_weighting": weighting,
            "dropout_mlp": 0.0,
            "sh_target": sh_target,
        },
    }
    module = build_module(cfg, label_space, tiny_bert_config().to_dict())
    batch = collate_sentences(tmp_path, sentences, label_space, module.target_encoder())
    rows: dict = {}
    for sentence in sentences:
        corpus = rows.setdefault(sentence.corpus, {"spans": [], "num_words": []})
        corpus["num_words"].append(len(sentence.tokens))
        corpus["spans"].append(
            [
                v
                for s in sentence.spans
                for v in (s.start, s.end, label_space.type_id(sentence.corpus, s.type))
            ]
        )
    module.learn_from_training_rows(rows)
    assert (module.action_pos_weight > 1).any() == (weighting == "balanced")
    optimizer = torch.optim.AdamW(module.network.parameters(), lr=3e-3)
    scores: dict[str, float] = {}
    for step in range(600):
        module.train()
        loss = module.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 24:
            module.eval()
            metric = SpanF1(label_space)
            with torch.no_grad():
                metric.update(batch["corpus_id"], batch["spans"], module.predict(batch).spans)
            results = metric.compute()
            scores = {c: float(results[f"disjoint/{c}/f1"]) for c in label_space.corpora}
            if min(scores.values()) >= 95.0:
                break
    assert min(scores.values()) >= 95.0, (
        f"training F1 {scores} after {step + 1} steps ({weighting}, {sh_target})"
    )
