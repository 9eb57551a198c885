"""SpanF1: disjoint and merged views against hand-computed counts and scores."""

from __future__ import annotations

import pytest
import torch

from datamodules.label_space import LabelSpace
from metrics.span_f1 import SpanF1, prf, score_counts

LS = LabelSpace(
    {
        "BC5CDR": ["Chemical", "Disease"],
        "BC4CHEMD": ["Chemical"],
        "NCBI-disease": ["Disease"],
        "JNLPBA": ["DNA", "RNA", "Cell_Line", "Cell_Type", "Gene_or_protein"],
    }
)
CID = LS.corpus_index


def t(corpus: str, typ: str) -> int:
    return LS.type_id(corpus, typ)


def spans(*rows: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


def view_counts(metric: SpanF1, view: str, corpus: str) -> dict[str, dict[str, int]]:
    c = metric.counts()
    return {
        typ: {k: c[f"{view}/{corpus}/{typ}/{k}"] for k in ("tp", "fp", "fn")}
        for typ in LS.corpus_types[corpus]
    }


def corpus_totals(metric: SpanF1, view: str, corpus: str) -> tuple[int, int, int]:
    per_type = view_counts(metric, view, corpus).values()
    return tuple(sum(d[k] for d in per_type) for k in ("tp", "fp", "fn"))


def test_paper_hand_example() -> None:
    # BC5CDR sentence; gold Chemical[0,1), Disease[2,4), Chemical[5,6)
    gold = spans(
        (0, 1, t("BC5CDR", "Chemical")), (2, 4, t("BC5CDR", "Disease")), (5, 6, t("BC5CDR", "Chemical"))
    )
    pred = spans(
        (0, 1, t("BC5CDR", "Chemical")),
        (5, 6, t("BC4CHEMD", "Chemical")),
        (2, 3, t("NCBI-disease", "Disease")),
        (7, 8, t("BC5CDR", "Disease")),
        (9, 10, t("JNLPBA", "DNA")),
    )
    m = SpanF1(LS)
    m.update([CID["BC5CDR"]], [gold], [pred])

    assert corpus_totals(m, "disjoint", "BC5CDR") == (1, 1, 2)
    assert corpus_totals(m, "merged", "BC5CDR") == (2, 2, 1)
    assert view_counts(m, "disjoint", "BC5CDR") == {
        "Chemical": {"tp": 1, "fp": 0, "fn": 1},
        "Disease": {"tp": 0, "fp": 1, "fn": 1},
    }
    assert view_counts(m, "merged", "BC5CDR") == {
        "Chemical": {"tp": 2, "fp": 0, "fn": 0},
        "Disease": {"tp": 0, "fp": 2, "fn": 1},
    }
    c = m.counts()
    assert c["other_preds/BC5CDR"] == 3  # BC4CHEMD/Chemical, NCBI-disease/Disease, JNLPBA/DNA
    assert c["sentences/BC5CDR"] == 1 and c["sentences/NCBI-disease"] == 0
    # nothing is booked on other corpora's types
    for corpus in ("BC4CHEMD", "NCBI-disease", "JNLPBA"):
        for view in ("disjoint", "merged"):
            assert corpus_totals(m, view, corpus) == (0, 0, 0)

    r = {k: float(v) for k, v in m.compute().items()}
    # disjoint: P 1/2, R 1/3, F1 2·(1/2)(1/3)/(5/6) = 2/5
    assert r["disjoint/BC5CDR/precision"] == pytest.approx(50.0)
    assert r["disjoint/BC5CDR/recall"] == pytest.approx(100 / 3)
    assert r["disjoint/BC5CDR/f1"] == pytest.approx(40.0)
    assert r["disjoint/BC5CDR/Chemical/f1"] == pytest.approx(200 / 3)  # P 100, R 50
    assert r["disjoint/BC5CDR/Disease/f1"] == 0.0
    # merged: P 2/4, R 2/3, F1 4/7
    assert r["merged/BC5CDR/precision"] == pytest.approx(50.0)
    assert r["merged/BC5CDR/recall"] == pytest.approx(200 / 3)
    assert r["merged/BC5CDR/f1"] == pytest.approx(400 / 7, rel=1e-6)
    assert r["merged/BC5CDR/Chemical/f1"] == pytest.approx(100.0)
    assert r["merged/BC5CDR/Disease/precision"] == 0.0
    # only BC5CDR was seen: the macro is its micro F1
    assert r["disjoint/macro_f1"] == pytest.approx(40.0)
    assert r["merged/macro_f1"] == pytest.approx(400 / 7, rel=1e-6)
    assert r["merged/NCBI-disease/f1"] == 0.0


def test_duplicates_count_once() -> None:
    chem = t("BC5CDR", "Chemical")
    m = SpanF1(LS)
    m.update(
        torch.tensor([CID["BC5CDR"]]),
        [spans((0, 2, chem), (0, 2, chem), (4, 5, chem), (4, 5, chem))],
        [spans((0, 2, chem), (0, 2, chem), (7, 9, chem), (7, 9, chem))],
    )
    assert corpus_totals(m, "disjoint", "BC5CDR") == (1, 1, 1)
    assert corpus_totals(m, "merged", "BC5CDR") == (1, 1, 1)


def test_merged_view_collapses_same_type_from_two_corpora() -> None:
    bc5, bc4 = t("BC5CDR", "Chemical"), t("BC4CHEMD", "Chemical")
    m = SpanF1(LS)
    # sentence 1: both corpora's Chemical on the gold span -> one merged TP
    # sentence 2: both corpora's Chemical on a non-gold span -> one merged FP
    m.update(
        [CID["BC5CDR"], CID["BC5CDR"]],
        [spans((0, 1, bc5)), spans()],
        [spans((0, 1, bc5), (0, 1, bc4)), spans((3, 4, bc4), (3, 4, bc5))],
    )
    assert view_counts(m, "merged", "BC5CDR")["Chemical"] == {"tp": 1, "fp": 1, "fn": 0}
    assert view_counts(m, "disjoint", "BC5CDR")["Chemical"] == {"tp": 1, "fp": 1, "fn": 0}
    assert m.counts()["other_preds/BC5CDR"] == 2
    # BC4CHEMD's own counters stay empty: counts are booked on the sentence's corpus
    assert corpus_totals(m, "merged", "BC4CHEMD") == (0, 0, 0)
    # the other direction: BC5CDR/Chemical on a BC4CHEMD sentence counts only in the merged view
    m.update([CID["BC4CHEMD"]], [spans((2, 3, bc4))], [spans((2, 3, bc5))])
    assert view_counts(m, "merged", "BC4CHEMD")["Chemical"] == {"tp": 1, "fp": 0, "fn": 0}
    assert view_counts(m, "disjoint", "BC4CHEMD")["Chemical"] == {"tp": 0, "fp": 0, "fn": 1}


def test_empty_inputs() -> None:
    m = SpanF1(LS)
    m.update([], [], [])
    assert all(v == 0 for v in m.counts().values())
    r = m.compute()
    assert all(float(v) == 0.0 for v in r.values())
    assert r["merged/macro_f1"].dtype == torch.float32

    m.reset()
    # sentences without spans are seen (they enter the macro with F1 0) but book nothing
    m.update(torch.tensor([CID["NCBI-disease"], CID["BC5CDR"]]), [spans(), spans()], [spans(), []])
    c = m.counts()
    assert c["sentences/NCBI-disease"] == 1 and c["sentences/BC5CDR"] == 1
    assert sum(v for k, v in c.items() if not k.startswith("sentences/")) == 0
    assert float(m.compute()["disjoint/macro_f1"]) == 0.0


def test_per_corpus_micro_and_macro() -> None:
    chem, dis, ncbi = t("BC5CDR", "Chemical"), t("BC5CDR", "Disease"), t("NCBI-disease", "Disease")
    m = SpanF1(LS)
    # BC5CDR: Chemical tp 3 fp 1 fn 0; Disease tp 1 fp 1 fn 2 (over two sentences, two update calls)
    m.update(
        [CID["BC5CDR"]],
        [spans((0, 1, chem), (2, 3, chem), (4, 6, dis), (7, 8, dis))],
        [spans((0, 1, chem), (2, 3, chem), (4, 6, dis), (9, 10, dis), (11, 12, chem))],
    )
    # NCBI-disease: tp 1 fp 3 fn 0
    m.update(
        [CID["BC5CDR"], CID["NCBI-disease"]],
        [spans((0, 2, chem), (3, 4, dis)), spans((1, 2, ncbi))],
        [spans((0, 2, chem)), spans((1, 2, ncbi), (3, 4, ncbi), (5, 6, ncbi), (7, 9, ncbi))],
    )
    assert view_counts(m, "disjoint", "BC5CDR") == {
        "Chemical": {"tp": 3, "fp": 1, "fn": 0},
        "Disease": {"tp": 1, "fp": 1, "fn": 2},
    }
    assert corpus_totals(m, "disjoint", "NCBI-disease") == (1, 3, 0)
    r = {k: float(v) for k, v in m.compute().items()}
    # BC5CDR micro: tp 4 fp 2 fn 2 -> P = R = F1 = 66.67
    assert r["disjoint/BC5CDR/precision"] == pytest.approx(200 / 3)
    assert r["disjoint/BC5CDR/recall"] == pytest.approx(200 / 3)
    assert r["disjoint/BC5CDR/f1"] == pytest.approx(200 / 3)
    assert r["disjoint/BC5CDR/Chemical/precision"] == pytest.approx(75.0)
    assert r["disjoint/BC5CDR/Chemical/recall"] == pytest.approx(100.0)
    assert r["disjoint/BC5CDR/Chemical/f1"] == pytest.approx(600 / 7, rel=1e-6)
    assert r["disjoint/BC5CDR/Disease/f1"] == pytest.approx(40.0)  # P 50, R 33.3
    # NCBI-disease: P 25, R 100, F1 40
    assert r["disjoint/NCBI-disease/precision"] == pytest.approx(25.0)
    assert r["disjoint/NCBI-disease/recall"] == pytest.approx(100.0)
    assert r["disjoint/NCBI-disease/f1"] == pytest.approx(40.0)
    # macro over the two seen corpora only (BC4CHEMD and JNLPBA unseen)
    assert r["disjoint/macro_f1"] == pytest.approx((200 / 3 + 40) / 2)
    # global micro: tp 5 fp 5 fn 2 -> P 50, R 71.43, F1 2·.5·(5/7)/(.5+5/7) = 10/17
    assert r["disjoint/micro_f1"] == pytest.approx(1000 / 17, rel=1e-6)
    # no cross-corpus predictions: the merged view equals the disjoint one
    assert all(
        r[k] == pytest.approx(r["disjoint" + k[len("merged") :]]) for k in r if k.startswith("merged/")
    )


def test_reset_and_keys() -> None:
    chem = t("BC5CDR", "Chemical")
    m = SpanF1(LS)
    m.update([CID["BC5CDR"]], [spans((0, 1, chem))], [spans((0, 1, chem))])
    assert float(m.compute()["disjoint/BC5CDR/f1"]) == 100.0
    m.reset()
    assert all(v == 0 for v in m.counts().values())
    m.update([CID["BC5CDR"]], [spans((0, 1, chem))], [spans((1, 2, chem))])
    assert float(m.compute()["disjoint/BC5CDR/f1"]) == 0.0

    keys = set(m.compute())
    assert len(keys) == 2 * (3 * len(LS) + 3 * len(LS.corpora) + 2)
    assert {"merged/macro_f1", "disjoint/micro_f1", "merged/JNLPBA/Cell_Line/recall"} <= keys
    assert "merged/BC4CHEMD/Chemical/f1" in keys and "merged/Chemical/f1" not in keys


def test_plain_lists_and_validation() -> None:
    chem = t("BC5CDR", "Chemical")
    m = SpanF1(LS)
    m.update([CID["BC5CDR"]], [[(0, 1, chem)]], [[[0, 1, chem]]])
    assert corpus_totals(m, "disjoint", "BC5CDR") == (1, 0, 0)
    with pytest.raises(ValueError, match="type id"):
        m.update([CID["BC5CDR"]], [spans((0, 1, len(LS)))], [spans()])
    with pytest.raises(ValueError, match="corpus id"):
        m.update([len(LS.corpora)], [spans()], [spans()])
    with pytest.raises(ValueError, match="batch sizes"):
        m.update([0, 1], [spans()], [spans()])


def test_prf_and_score_counts() -> None:
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf(1, 1, 2) == pytest.approx((50.0, 100 / 3, 40.0))
    m = SpanF1(LS)
    chem = t("BC5CDR", "Chemical")
    m.update([CID["BC5CDR"]], [spans((0, 1, chem))], [spans((0, 1, chem), (2, 3, chem))])
    from_counts = score_counts(m.counts(), LS)
    assert from_counts == pytest.approx({k: float(v) for k, v in m.compute().items()})


def test_results_render_as_the_per_corpus_per_type_table() -> None:
    from metrics.report import render

    chem = t("BC5CDR", "Chemical")
    m = SpanF1(LS)
    m.update([CID["BC5CDR"]], [spans((0, 1, chem))], [spans((0, 1, chem), (2, 3, chem))])
    table = render({f"test/{k}": float(v) for k, v in m.compute().items()}, types=True)
    lines = table.splitlines()
    chem_row = next(line for line in lines if line.startswith("BC5CDR") and "Chemical" in line)
    assert chem_row.split() == ["BC5CDR", "Chemical", "50.00", "100.00", "66.67", "50.00", "100.00", "66.67"]
    assert sum("(micro)" in line for line in lines) == len(LS.corpora)
    # macro F1 over the corpora seen (BC5CDR only): 66.67 in both views
    assert lines[-1].split() == ["macro", "F1", "66.67", "66.67"]
    # header + 9 types + 4 corpus rows + the macro row
    assert len(lines) == 1 + len(LS) + len(LS.corpora) + 1


def test_unreachable_gold_counts_as_false_negatives_in_both_views() -> None:
    # a BC5CDR sentence whose Disease mention was cut by a hard split: only the Chemical is left as gold
    gold = spans((0, 1, t("BC5CDR", "Chemical")))
    pred = spans((0, 1, t("BC5CDR", "Chemical")))
    m = SpanF1(LS)
    m.update([CID["BC5CDR"]], [gold], [pred], unreachable=[torch.tensor([t("BC5CDR", "Disease")])])
    for view in ("disjoint", "merged"):
        assert view_counts(m, view, "BC5CDR") == {
            "Chemical": {"tp": 1, "fp": 0, "fn": 0},
            "Disease": {"tp": 0, "fp": 0, "fn": 1},
        }
    assert m.compute()["merged/BC5CDR/recall"] == pytest.approx(50.0)
