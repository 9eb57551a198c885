"""The per-corpus BIO baseline: tag encoding and decoding, the loss (own head only), and an overfit run."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import collate_sentences, tiny_bert_config

from datamodules.corpora import label_space_of
from datamodules.label_space import LabelSpace
from datamodules.sentence import Sentence, Span
from lightning_modules.baseline.codec import IGNORE, BIOLayout, decode_tags, encode_tags, flat_spans
from lightning_modules.baseline.network import PerCorpusTaggerNetwork
from lightning_modules.baseline.targets import BIOTargetEncoder
from lightning_modules.encoder import WordEncoder
from lightning_modules.registry import build_module
from metrics.span_f1 import SpanF1

# BC5CDR/Chemical 0, BC5CDR/Disease 1, JNLPBA/Cell_Line 2, /Cell_Type 3, /DNA 4, /Gene_or_protein 5, /RNA 6,
# NCBI-disease/Disease 7
LS = label_space_of(["BC5CDR", "JNLPBA", "NCBI-disease"])
LAYOUT = BIOLayout(LS)


def test_layout_columns_and_tags():
    assert LAYOUT.num_tags.tolist() == [5, 11, 3] and LAYOUT.total == 19 and LAYOUT.width == 11
    assert LAYOUT.offsets.tolist() == [0, 5, 16]
    assert LAYOUT.columns[2].tolist()[:3] == [16, 17, 18] and LAYOUT.valid[2].sum() == 3
    # JNLPBA's local tags: O, B-Cell_Line, I-Cell_Line, B-Cell_Type, ...
    assert LAYOUT.tag_type[1, :5].tolist() == [-1, 2, 2, 3, 3]
    assert LAYOUT.tag_inside[1, :5].tolist() == [False, False, True, False, True]
    assert LAYOUT.begin_tag.tolist() == [1, 3, 1, 3, 5, 7, 9, 1]


def _random_flat_spans(rng: random.Random, n: int, own: list[int]) -> list[tuple[int, int, int]]:
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.4:
            end = min(n, i + rng.randint(1, 4))
            spans.append((i, end, rng.choice(own)))
            i = end  # the next span may start right here: adjacent mentions, also of the same type
        else:
            i += 1
    return spans


def test_bio_round_trip_on_random_flat_span_sets():
    rng = random.Random(0)
    for _ in range(300):
        batch = rng.randint(1, 6)
        corpora = [rng.randrange(len(LS.corpora)) for _ in range(batch)]
        lengths = [rng.randint(1, 12) for _ in range(batch)]
        gold = [_random_flat_spans(rng, n, LS.type_ids_of(LS.corpora[k])) for k, n in zip(corpora, lengths)]
        tags, dropped = encode_tags(gold, lengths, LAYOUT)
        assert dropped == 0
        assert (tags == IGNORE).sum() == batch * max(lengths) - sum(lengths)
        per_head = np.zeros((batch, max(lengths), len(LS.corpora)), dtype=np.int64)  # other heads say O
        for b, k in enumerate(corpora):
            per_head[b, :, k] = np.where(tags[b] == IGNORE, 0, tags[b])
        assert decode_tags(torch.from_numpy(per_head), torch.tensor(lengths), LAYOUT) == [
            sorted(g) for g in gold
        ]


def test_decoding_repairs_ill_formed_tag_sequences_conlleval_style():
    # BC5CDR head: O=0, B-Chemical=1, I-Chemical=2, B-Disease=3, I-Disease=4
    tags = [[2, 2, 0, 4, 2, 1, 2, 1, 0, 2]]  # I-C I-C O I-D I-C B-C I-C B-C O I-C
    per_head = torch.zeros(1, 10, 3, dtype=torch.long)
    per_head[0, :, 0] = torch.tensor(tags[0])
    per_head[0, 9, 2] = 1  # the NCBI-disease head: B-Disease on the last word, cut by num_words=9
    spans = decode_tags(per_head, [9], LAYOUT)
    assert spans == [[(0, 2, 0), (3, 4, 1), (4, 5, 0), (5, 7, 0), (7, 8, 0)]]
    # every head is decoded: the NCBI-disease head's mention appears with its own type id
    spans = decode_tags(per_head, [10], LAYOUT)
    assert (9, 10, 7) in spans[0] and (9, 10, 0) in spans[0]


def test_overlapping_gold_keeps_the_longest_mention():
    kept, dropped = flat_spans([(2, 3, 1), (0, 4, 0), (3, 5, 1), (5, 6, 1), (0, 4, 0)])
    assert kept == [(0, 4, 0), (5, 6, 1)] and dropped == 2
    tags, dropped = encode_tags([[(2, 3, 1), (0, 4, 0)]], [5], LAYOUT)
    assert tags.tolist() == [[1, 2, 2, 2, 0]] and dropped == 1


def _batch(tmp_path, sentences: list[Sentence], label_space: LabelSpace) -> dict:
    return collate_sentences(tmp_path, sentences, label_space, BIOTargetEncoder(label_space))


def test_loss_is_the_cross_entropy_of_the_own_head_and_leaves_other_heads_without_gradient(tmp_path):
    torch.manual_seed(0)
    chemical_and_disease = (Span(1, 2, "Chemical"), Span(4, 5, "Disease"))
    sentences = [
        Sentence(("the", "acid", "levels", "in", "cancer"), chemical_and_disease, "BC5CDR"),
        Sentence(("patients", "with", "disease"), (Span(2, 3, "Disease"),), "BC5CDR"),
    ]
    batch = _batch(tmp_path, sentences, LS)
    network = PerCorpusTaggerNetwork(WordEncoder(config=tiny_bert_config()), LAYOUT, dropout=0.0)
    loss = network(batch)

    # reference: log-softmax over BC5CDR's 5 columns (0..4), mean over the 8 words of the batch
    logits = network.tag_logits(batch)[..., 0:5]
    gold = [[0, 1, 0, 0, 3], [0, 0, 3]]  # O B-Chemical O O B-Disease | O O B-Disease
    expected = -torch.stack(
        [F.log_softmax(logits[b, i], -1)[tag] for b, tags in enumerate(gold) for i, tag in enumerate(tags)]
    ).mean()
    assert batch["tags"].tolist() == [gold[0], gold[1] + [IGNORE, IGNORE]]
    assert torch.allclose(loss, expected, atol=1e-6)

    loss.backward()
    grad = network.heads.weight.grad  # (19, d): rows 0-4 BC5CDR, 5-15 JNLPBA, 16-18 NCBI-disease
    assert grad[0:5].abs().sum(1).gt(0).all()
    assert torch.equal(grad[5:], torch.zeros_like(grad[5:]))
    assert torch.equal(network.heads.bias.grad[5:], torch.zeros(14))


FILLERS = ["the", "of", "and", "in", "a", "was", "with", "levels", "binds", "to", "induced", "by"]
MENTIONS = [
    (["human", "gene", "receptor"], "DNA"),
    (["alpha", "kinase"], "Gene_or_protein"),
    (["mouse", "cell", "line"], "Cell_Line"),
    (["cancer", "cell"], "Cell_Type"),
    (["beta", "protein"], "Gene_or_protein"),
]


@pytest.mark.slow
def test_tiny_baseline_fits_32_sentences_exactly(tmp_path):
    torch.manual_seed(0)
    rng = random.Random(0)
    sentences = []
    for _ in range(32):
        words, spans = [], []
        for _ in range(rng.randint(1, 3)):
            words += rng.sample(FILLERS, rng.randint(0, 3))
            mention, kind = rng.choice(MENTIONS)
            spans.append(Span(len(words), len(words) + len(mention), kind))
            words += mention
        sentences.append(Sentence(tuple(words), tuple(spans), "JNLPBA"))
    label_space = label_space_of(["JNLPBA"])
    batch = _batch(tmp_path, sentences, label_space)
    assert sum(len(s) for s in batch["spans"]) == sum(len(s.spans) for s in sentences) > 40
    cfg = {"encoder": {"name": "tiny"}, "model": {"name": "baseline", "dropout": 0.1}}
    module = build_module(cfg, label_space, encoder_config=tiny_bert_config().to_dict())
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)

    def training_f1() -> float:
        module.eval()
        metric = SpanF1(label_space)
        metric.update(batch["corpus_id"], batch["spans"], module.predict(batch).spans)
        module.train()
        return float(metric.compute()["disjoint/micro_f1"])

    scores = []
    for _ in range(30):  # at most 300 steps, scored every 10
        for _ in range(10):
            loss = module.training_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scores.append(training_f1())
        if scores[-1] == 100.0:
            break
    assert scores[-1] == 100.0, f"training F1 {scores} (loss {float(loss):.4f})"
