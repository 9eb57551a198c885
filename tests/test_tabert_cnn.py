"""TabERT-CNN: the factored first convolution, table round trips, decoding rules, losses by hand, the
dynamic target on the span head, and (slow) overfitting of 32 sentences (span mode) and 16 CoNLL04
sentences (paper mode)."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import collate_sentences, tiny_bert_config

from datamodules.corpora import label_space_of
from datamodules.label_space import LabelSpace
from datamodules.multi_corpus import Collator
from datamodules.rows import tokenize_corpus
from datamodules.sentence import Relation, Sentence, Span
from lightning_modules.registry import build_module
from lightning_modules.tabert_cnn.codec import (
    IGNORE,
    decode_bilou,
    decode_relations,
    decode_span_table,
    encode_paper_targets,
    span_cells,
)
from lightning_modules.tabert_cnn.config import TabERTCNNConfig
from lightning_modules.tabert_cnn.network import TableCNN
from metrics.relation_f1 import RelationF1, gold_relation_tuples
from metrics.span_f1 import SpanF1

SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CONLL = LabelSpace({"CoNLL04": ["Loc", "Org", "Other", "Peop"]}, {"CoNLL04": ["Kill", "Live_In", "Work_For"]})


# --- the first convolution ---------------------------------------------------------------------
@pytest.mark.parametrize("kernel,layers", [(3, 2), (5, 3)])
def test_factored_first_convolution_equals_the_straightforward_table(kernel, layers):
    torch.manual_seed(0)
    config = TabERTCNNConfig(
        pair_dim=16, channels=24, kernel=kernel, layers=layers, dropout=0.0, conv_dropout=0.0
    )
    cnn = TableCNN(20, config, out_channels=7).double()
    words = torch.randn(3, 9, 20, dtype=torch.double, requires_grad=True)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] + [0] * 8], dtype=torch.bool)
    cells = (mask[:, :, None] & mask[:, None, :])[:, None]  # logits of padded cells are never read

    inputs = [words, *cnn.parameters()]
    factored = cnn(words, mask, "factored") * cells
    grads_factored = torch.autograd.grad(factored.square().sum(), inputs)
    plain = cnn(words, mask, "straightforward") * cells
    grads_plain = torch.autograd.grad(plain.square().sum(), inputs)
    assert torch.allclose(factored, plain, atol=1e-10)
    for a, b in zip(grads_factored, grads_plain, strict=True):  # the words and every parameter
        assert torch.allclose(a, b, atol=1e-9)


def test_a_sentence_gets_the_same_logits_with_or_without_batch_padding():
    torch.manual_seed(1)
    cnn = TableCNN(12, TabERTCNNConfig(pair_dim=8, channels=16, dropout=0, conv_dropout=0), 5).eval()
    words = torch.randn(2, 10, 12)
    mask = torch.tensor([[1] * 10, [1] * 4 + [0] * 6], dtype=torch.bool)
    batched = cnn(words, mask)
    alone = cnn(words[1:, :4], mask[1:, :4])
    assert torch.allclose(batched[1:, :, :4, :4], alone, atol=1e-6)


# --- paper mode tables -------------------------------------------------------------------------
def _random_entities(rng: random.Random, n: int, num_types: int) -> list[tuple[int, int, int]]:
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.4:
            length = rng.randint(1, min(4, n - i))
            spans.append((i, i + length, rng.randrange(num_types)))
            i += length
        i += rng.randint(0, 2)
    return spans


def test_bilou_and_relation_table_round_trip_on_random_sentences():
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        n = rng.randint(1, 25)
        spans = _random_entities(rng, n, 4)
        pairs = [(h, t) for h in range(len(spans)) for t in range(len(spans)) if h != t]
        rng.shuffle(pairs)
        relations, used = [], set()
        for h, t in pairs[: rng.randint(0, 4)]:
            if frozenset((h, t)) not in used:  # one relation per entity pair: the table holds one label
                used.add(frozenset((h, t)))
                relations.append((h, t, rng.randrange(3)))
        ner, table, dropped = encode_paper_targets(spans, relations, n)
        assert dropped == 0
        table_with_ner = table.copy()
        np.fill_diagonal(table_with_ner, ner)
        entities = decode_bilou(ner[None], np.array([n]))
        assert entities == [sorted(spans)]
        decoded = decode_relations(table[None], entities, 1 + 2 * 3)[0]
        assert sorted(decoded) == sorted((*spans[h], *spans[t], r) for h, t, r in relations)
        index = {s: k for k, s in enumerate(spans)}
        again = [(index[d[:3]], index[d[3:6]], d[6]) for d in decoded]
        ner2, table2, _ = encode_paper_targets(spans, again, n)
        assert np.array_equal(ner, ner2) and np.array_equal(table, table2)
        checked += len(relations)
    assert checked > 300


def test_relation_labels_are_directional_on_every_word_pair():
    # "Smith killed John Doe": Peop(0,1) --Kill--> Peop(2,4); R-k = 1 + 2k, L-k = 2 + 2k, Kill = 0
    ner, table, _ = encode_paper_targets([(0, 1, 3), (2, 4, 3)], [(0, 1, 0)], 4)
    assert ner.tolist() == [4 * 3 + 4, 0, 4 * 3 + 1, 4 * 3 + 3]  # U-Peop O B-Peop L-Peop
    assert table[0, 2] == table[0, 3] == 1 and table[2, 0] == table[3, 0] == 2
    assert table.sum() == 1 + 1 + 2 + 2
    # the reverse direction: the tail comes first in the sentence -> L-k in the upper triangle
    _, table, _ = encode_paper_targets([(0, 1, 3), (2, 4, 3)], [(1, 0, 2)], 4)
    assert table[0, 2] == 2 + 2 * 2 and decode_relations(table[None], [[(0, 1, 3), (2, 4, 3)]], 7) == [
        [(2, 4, 3, 0, 1, 3, 2)]
    ]


def test_bilou_decoding_keeps_only_well_formed_entities():
    def lab(tag: str, t: int) -> int:
        return 1 + 4 * t + "BILU".index(tag)

    rows = [
        [lab("B", 3), lab("I", 1), lab("L", 0)],  # B-Peop I-Org L-Loc: the reference emits Loc(0,3)
        [lab("I", 0), lab("L", 0), 0],  # no B
        [lab("B", 2), lab("I", 2), lab("L", 2)],
        [lab("U", 1), lab("B", 1), lab("L", 1)],
        [lab("B", 0), 0, lab("L", 0)],  # interrupted
    ]
    got = decode_bilou(np.array(rows), np.array([3, 3, 3, 3, 3]))
    assert got == [[], [], [(0, 3, 2)], [(0, 1, 1), (1, 3, 1)], []]
    assert decode_bilou(np.array([[lab("U", 0), lab("U", 0)]]), np.array([1])) == [[(0, 1, 0)]]  # padding


def test_relation_vote_over_the_block_and_ties_go_to_none():
    e1, e2 = (0, 2, 3), (3, 5, 0)
    table = np.zeros((1, 5, 5), dtype=np.int64)
    table[0, 0:2, 3:5] = [[1, 1], [1, 0]]  # 3 x R-Kill, 1 x None: (e1 -> e2, Kill)
    assert decode_relations(table, [[e1, e2]], 7) == [[(*e1, *e2, 0)]]
    table[0, 0:2, 3:5] = [[1, 0], [3, 0]]  # None twice, R-0 and R-1 once each -> None
    assert decode_relations(table, [[e1, e2]], 7) == [[]]
    table[0, 0:2, 3:5] = [[1, 1], [0, 0]]  # tie between None and R-0 -> None (lower label)
    assert decode_relations(table, [[e1, e2]], 7) == [[]]


def test_overlapping_gold_entities_leave_the_target_but_not_the_evaluation():
    spans = [(0, 3, 0), (1, 2, 1), (4, 5, 1)]  # ADE-style: an entity inside another
    ner, table, dropped = encode_paper_targets(spans, [(1, 2, 0), (0, 2, 0)], 6)
    assert dropped == 1 and ner.tolist() == [1, 2, 3, 0, 8, 0]
    assert table[0, 4] == 1 and table[1, 4] == 1  # (0,3) -> (4,5) kept; (1,2) -> (4,5) left out
    metric = SpanF1(LabelSpace({"ADE": ["Adverse-Effect", "Drug"]}))
    metric.update([0], [torch.tensor(spans)], [decode_bilou(ner[None], np.array([6]))[0]])
    assert float(metric.compute()["disjoint/micro_f1"]) == pytest.approx(100 * 2 * 2 / (2 * 2 + 0 + 1))


# --- span mode tables --------------------------------------------------------------------------
def test_span_table_round_trip_with_nested_mentions():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 20)
        spans = set()
        for _ in range(rng.randint(0, 6)):
            s = rng.randrange(n)
            e = rng.randint(s + 1, min(n, s + 6))
            t = rng.randrange(5)
            crossing = any(t == t2 and (s < s2 < e < e2 or s2 < s < e2 < e) for s2, e2, t2 in spans)
            if not crossing:
                spans.add((s, e, t))
        cells = span_cells([torch.tensor(sorted(spans), dtype=torch.long).view(-1, 3)]).numpy()
        decoded, _ = decode_span_table(cells, np.ones(len(cells)), 1)
        assert decoded == [sorted(spans)]


def test_span_decoding_resolves_same_type_crossings_by_score():
    # cells (i, j inclusive, type): A = words 0..2 (0.9), B = 1..3 type 0 (0.7) crosses A, C = 1..3 type 1
    cells = np.array([[0, 0, 2, 0], [0, 1, 3, 0], [0, 1, 3, 1], [0, 1, 1, 0]])
    scores = np.array([0.9, 0.7, 0.6, 0.8])
    assert decode_span_table(cells, scores, 1) == ([[(0, 3, 0), (1, 2, 0), (1, 4, 1)]], [[0.9, 0.8, 0.6]])


# --- losses ------------------------------------------------------------------------------------
def _module(label_space: LabelSpace, **model):
    cfg = {
        "encoder": {"name": "tiny"},
        "model": {
            "name": "tabert_cnn",
            "dropout": 0.0,
            "conv_dropout": 0.0,
            "channels": 16,
            "pair_dim": 8,
            **model,
        },
    }
    return build_module(cfg, label_space, encoder_config=tiny_bert_config().to_dict())


def _batch(tmp_path, sentences: list[Sentence], label_space: LabelSpace, module) -> dict:
    return collate_sentences(tmp_path, sentences, label_space, module.target_encoder())


def test_paper_loss_is_the_sum_of_both_cross_entropies_per_sentence(tmp_path):
    torch.manual_seed(0)
    module = _module(CONLL)
    assert module.mode == "paper"
    sentences = [
        Sentence(("human", "gene", "binds", "alpha"), (Span(0, 2, "Peop"), Span(3, 4, "Loc")), "CoNLL04",
                 relations=(Relation(0, 1, "Live_In"),)),
        Sentence(("the", "cell"), (Span(1, 2, "Org"),), "CoNLL04"),
    ]  # fmt: skip
    batch = _batch(tmp_path, sentences, CONLL, module)
    loss = module.training_loss(batch)
    logits, entity_logits = module.network(batch)  # (B, 7, n, n), (B, n, 17)
    # by hand: gold BILOU per word, R-Live_In (1 + 2 * 1) on (0,3) and (1,3), None elsewhere above
    peop, loc, org = 3, 0, 1
    ner_gold = [[1 + 4 * peop, 3 + 4 * peop, 0, 4 + 4 * loc], [0, 4 + 4 * org]]
    total = 0.0
    for b, tags in enumerate(ner_gold):
        for i, tag in enumerate(tags):
            total -= F.log_softmax(entity_logits[b, i].double(), -1)[tag]
        n = len(tags)
        for i in range(n):
            for j in range(i + 1, n):
                gold = 3 if (b == 0 and i in (0, 1) and j == 3) else 0
                total -= F.log_softmax(logits[b, :, i, j].double(), -1)[gold]
    assert batch["rel_labels"][0, 0, 3] == 3 and batch["rel_labels"][0, 3, 0] == IGNORE
    assert loss.item() == pytest.approx(total.item() / 2, rel=1e-5)


def test_paper_loss_avoids_nll_loss2d_which_has_no_deterministic_cuda_kernel(tmp_path):
    module = _module(CONLL)
    sentences = [Sentence(("human", "gene", "binds"), (Span(0, 2, "Peop"),), "CoNLL04")]
    batch = _batch(tmp_path, sentences, CONLL, module)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        module.training_loss(batch)
    ops = {event.key for event in prof.key_averages()}
    assert "aten::nll_loss_forward" in ops  # both cross-entropies over flat (cells, classes) rows
    assert not [op for op in ops if "nll_loss2d" in op], ops


def test_span_loss_dynamic_target_gives_other_corpora_types_exactly_zero_gradient(tmp_path):
    torch.manual_seed(0)
    ls = label_space_of(["BC5CDR", "NCBI-disease"])  # types: BC5CDR/Chemical, BC5CDR/Disease, NCBI/Disease
    module = _module(ls)
    assert module.mode == "span"
    sentences = [
        Sentence(("the", "acid", "levels", "in", "cancer"), (Span(1, 2, "Chemical"), Span(4, 5, "Disease")),
                 "BC5CDR"),
        Sentence(("patients", "with", "disease"), (Span(2, 3, "Disease"),), "NCBI-disease"),
    ]  # fmt: skip
    batch = _batch(tmp_path, sentences, ls, module)
    logits = torch.randn(2, 3, 5, 5, requires_grad=True)  # (B, K, n, n)
    loss = module.span_loss(logits, batch)
    loss.backward()
    grad = logits.grad
    cells = module.cell_mask(batch)  # (B, n, n)
    # BC5CDR sentence: NCBI's type (2) has exactly zero gradient, its own types (0, 1) do not
    assert torch.equal(grad[0, 2], torch.zeros(5, 5))
    assert grad[0, :2][:, cells[0]].abs().gt(0).all()
    assert torch.equal(grad[1, :2], torch.zeros(2, 5, 5))
    assert grad[1, 2][cells[1]].abs().gt(0).all()
    assert torch.equal(grad[:, :, ~cells.any(0)], torch.zeros_like(grad[:, :, ~cells.any(0)]))
    # the value: own types' BCE summed over valid cells; other types contribute the entropy of p (constant)
    p = torch.sigmoid(logits.detach().double())
    gold = torch.zeros(2, 3, 5, 5, dtype=torch.double)
    gold[0, 0, 1, 1] = gold[0, 1, 4, 4] = gold[1, 2, 2, 2] = 1
    own = torch.tensor([[1, 1, 0], [0, 0, 1]], dtype=torch.bool)[:, :, None, None]
    target = torch.where(own, gold, p)
    bce = -(target * p.log() + (1 - target) * (1 - p).log())
    expected = (bce * cells[:, None]).sum()  # training_loss divides this by the batch size
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_welt_weights_by_hand_and_in_the_cross_entropy(tmp_path):
    from losses import welt_binary_weights, welt_class_weights

    # counts None 8, R 1, L 1 -> 3 * softmax(0.2, 0.9, 0.9)
    e2, e9 = math.exp(0.2), math.exp(0.9)
    expected = [3 * e2 / (e2 + 2 * e9), 3 * e9 / (e2 + 2 * e9), 3 * e9 / (e2 + 2 * e9)]
    assert welt_class_weights(torch.tensor([8, 1, 1])).tolist() == pytest.approx(expected, rel=1e-6)
    assert float(welt_class_weights(torch.tensor([8, 1, 1])).mean()) == pytest.approx(1.0)
    # one type, 1 positive cell and 3 negative ones -> 2 * softmax(1 - 3/4, 1 - 1/4) = (neg, pos)
    pos, neg = welt_binary_weights(torch.tensor([1]), torch.tensor([3]))
    a, b = math.exp(0.25), math.exp(0.75)
    assert (neg.item(), pos.item()) == pytest.approx((2 * a / (a + b), 2 * b / (a + b)), rel=1e-6)
    with pytest.raises(ValueError):
        welt_class_weights(torch.tensor([0, 0]))

    # in the paper loss: each cell's cross-entropy times the weight of its gold label, no renormalisation
    torch.manual_seed(0)
    module = _module(CONLL, class_weighting="welt")
    module.relation_class_weights.copy_(torch.arange(1, 8, dtype=torch.float32))
    module.entity_class_weights.copy_(torch.full((17,), 2.0))
    sentences = [Sentence(("human", "gene", "binds"), (Span(0, 1, "Peop"), Span(2, 3, "Loc")), "CoNLL04",
                          relations=(Relation(1, 0, "Kill"),))]  # fmt: skip
    batch = _batch(tmp_path, sentences, CONLL, module)
    logits, entity_logits = module.network(batch)
    ner = [4 + 4 * 3, 0, 4 + 4 * 0]
    total = -2 * sum(F.log_softmax(entity_logits[0, i].double(), -1)[t] for i, t in enumerate(ner))
    rel = {(0, 1): 0, (0, 2): 2, (1, 2): 0}  # Loc(2) -> Peop(0) Kill: L-Kill = 2 on (0, 2)
    total -= sum((g + 1) * F.log_softmax(logits[0, :, i, j].double(), -1)[g] for (i, j), g in rel.items())
    assert module.training_loss(batch).item() == pytest.approx(total.item(), rel=1e-5)


def test_relation_metric_separates_boundaries_from_strict():
    metric = RelationF1(CONLL)
    gold = [gold_relation_tuples(torch.tensor([[0, 1, 3], [2, 4, 0]]), torch.tensor([[0, 1, 1]]))]
    assert gold == [{(0, 1, 3, 2, 4, 0, 1)}]
    metric.update([0], gold, [[(0, 1, 1, 2, 4, 0, 1)]])  # right spans and type, wrong head type
    scores = {k: float(v) for k, v in metric.compute().items()}
    assert scores["re/micro_f1"] == 100.0 and scores["re_plus/micro_f1"] == 0.0
    assert scores["re/CoNLL04/Live_In/f1"] == 100.0 and scores["re/macro_f1"] == pytest.approx(100 / 3)


# --- overfitting (slow) --------------------------------------------------------------------------
def _fit(module, batch, steps: int, score, lr: float = 2e-3, encoder_lr: float | None = None) -> list[float]:
    encoder = list(module.network.encoder.parameters())
    in_encoder = {id(p) for p in encoder}
    head = [p for p in module.parameters() if id(p) not in in_encoder]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": encoder_lr or lr}, {"params": head, "lr": lr}])
    scores = []
    for _ in range(steps // 10):
        module.train()
        for _ in range(10):
            loss = module.training_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        module.eval()
        scores.append(score())
        if scores[-1] == (100.0, 100.0):
            break
    return scores


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "CoNLL04").is_dir(), reason=f"CoNLL04 not found under {SHARED}")
def test_paper_mode_fits_16_conll04_sentences(tmp_path):
    from transformers import AutoTokenizer

    from configs.compose import _minilm_path
    from datamodules.catalog import CORPORA
    from datamodules.corpora import read_split

    torch.manual_seed(0)
    # the first 16 training sentences of at most 25 words that hold a relation: 100/100 within 300 steps,
    # about 1.5 min on 2 CPU cores (32 sentences took about 2.5)
    train = read_split(CORPORA["CoNLL04"], SHARED, "train").sentences
    sentences = [s for s in train if s.relations and len(s.tokens) <= 25][:16]
    ls = label_space_of(["CoNLL04"])
    cfg = {
        "encoder": {"name": _minilm_path()},
        "model": {"name": "tabert_cnn", "channels": 128, "pair_dim": 64},
    }
    module = build_module(cfg, ls)
    tokenizer = AutoTokenizer.from_pretrained(_minilm_path())
    part, _ = tokenize_corpus(sentences, tokenizer, ls, "CoNLL04", split="train")
    batch = Collator(tokenizer.pad_token_id, module.target_encoder())(
        [{**part[i], "corpus_id": 0} for i in range(16)]
    )

    def score() -> tuple[float, float]:
        ner, rel = SpanF1(ls), RelationF1(ls)
        predicted = module.predict(batch)
        ner.update(batch["corpus_id"], batch["spans"], predicted.spans)
        gold = [gold_relation_tuples(s, r) for s, r in zip(batch["spans"], batch["relations"])]
        rel.update(batch["corpus_id"], gold, predicted.relations)
        return float(ner.compute()["disjoint/micro_f1"]), float(rel.compute()["re_plus/micro_f1"])

    assert sum(len(r) for r in batch["relations"]) >= 16
    scores = _fit(module, batch, 300, score, lr=3e-3, encoder_lr=2e-4)
    assert scores[-1] == (100.0, 100.0), scores


@pytest.mark.slow
def test_span_mode_fits_32_nested_mention_sentences(tmp_path):
    torch.manual_seed(0)
    rng = random.Random(0)
    words = ["the", "of", "and", "in", "with", "human", "mouse", "gene", "protein", "receptor", "kinase"]
    ls = label_space_of(["JNLPBA"])  # DNA, Gene_or_protein, Cell_Line, Cell_Type, RNA
    sentences = []
    for _ in range(32):
        tokens, spans = [], []
        for _ in range(rng.randint(1, 3)):
            tokens += rng.sample(words[:5], rng.randint(0, 2))
            start = len(tokens)
            tokens += ["human", rng.choice(["gene", "protein"]), "receptor"]
            spans.append(Span(start, start + 3, "DNA"))  # outer mention
            spans.append(Span(start + 1, start + 2, "Gene_or_protein"))  # nested inner mention
        sentences.append(Sentence(tuple(tokens), tuple(spans), "JNLPBA"))
    module = _module(ls, channels=32, pair_dim=16)
    batch = _batch(tmp_path, sentences, ls, module)

    def score() -> tuple[float, float]:
        metric = SpanF1(ls)
        metric.update(batch["corpus_id"], batch["spans"], module.predict(batch).spans)
        f1 = float(metric.compute()["disjoint/micro_f1"])
        return f1, f1

    scores = _fit(module, batch, 600, score, lr=3e-3)
    assert scores[-1] == (100.0, 100.0), scores


def test_welt_in_the_span_bce_and_the_class_counts_by_hand():
    from lightning_modules.tabert_cnn.codec import BILOULayout
    from lightning_modules.tabert_cnn.module import class_counts_paper, class_counts_span
    from losses import masked_bce_sum

    # BCE with per-type weights: -(w+ t log s + w- (1 - t) log(1 - s)) over the masked cells only
    logits = torch.tensor([[[0.0, 2.0], [1.0, -1.0]]])  # (1 cell row, 2 cells, K = 2)
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[True, False]])
    got = masked_bce_sum(
        logits, target, mask, pos_weight=torch.tensor([3.0, 5.0]), neg_weight=torch.tensor([7.0, 11.0])
    )
    expected = -(3.0 * math.log(0.5) + 11.0 * math.log(1 - 1 / (1 + math.exp(-2.0))))
    assert got.item() == pytest.approx(expected, rel=1e-6)

    # span counts: BC5CDR rows of 3 and 2 words = 6 + 3 cells; 2 Chemical and 1 Disease mention
    ls = label_space_of(["BC5CDR", "NCBI-disease"])
    train = {"BC5CDR": {"num_words": [3, 2], "spans": [[0, 1, 0, 1, 3, 1], [1, 2, 0]]},
             "NCBI-disease": {"num_words": [4], "spans": [[]]}}  # fmt: skip
    pos, neg = class_counts_span(train, ls)
    assert pos.tolist() == [2, 1, 0] and neg.tolist() == [7, 8, 10]

    # paper counts: one 3-word sentence, U-Peop O U-Loc with Peop -> Loc Kill: 3 upper cells, one R-Kill
    layout = BILOULayout(len(CONLL), len(CONLL.relation_types))
    ner, rel = class_counts_paper({"CoNLL04": {"num_words": [3], "spans": [[0, 1, 3, 2, 3, 0]],
                                               "relations": [[0, 1, 0]]}}, layout)  # fmt: skip
    assert ner[0] == 1 and ner[4 + 4 * 3] == 1 and ner[4 + 4 * 0] == 1 and ner.sum() == 3
    assert rel.tolist() == [2, 1, 0, 0, 0, 0, 0]
