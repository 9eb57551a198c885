"""metrics.report renders metrics.json (as train.py writes it) into per-corpus tables."""

import json

from metrics.report import main, render

METRICS = {
    "val/merged/macro_f1": 61.0,
    "test/disjoint/macro_f1": 55.5,
    "test/merged/macro_f1": 60.25,
    "test/disjoint/micro_f1": 50.0,
    "test/disjoint/BC5CDR/precision": 80.0,
    "test/disjoint/BC5CDR/recall": 60.0,
    "test/disjoint/BC5CDR/f1": 68.57,
    "test/merged/BC5CDR/precision": 90.0,
    "test/merged/BC5CDR/recall": 60.0,
    "test/merged/BC5CDR/f1": 72.0,
    "test/disjoint/BC5CDR/Chemical/f1": 70.0,
    "test/merged/BC5CDR/Chemical/f1": 75.0,
    "test/disjoint/NCBI-disease/f1": 42.43,
    "test/merged/NCBI-disease/f1": 48.5,
}


def test_markdown_table_per_corpus_and_type():
    lines = render(METRICS, markdown=True, types=True).splitlines()
    assert lines[0] == (
        "| corpus | type | disjoint P | disjoint R | disjoint F1 | merged P | merged R | merged F1 |"
    )
    assert lines[2] == "| BC5CDR | Chemical | - | - | 70.00 | - | - | 75.00 |"
    assert lines[3] == "| BC5CDR | (micro) | 80.00 | 60.00 | 68.57 | 90.00 | 60.00 | 72.00 |"
    assert lines[4] == "| NCBI-disease | (micro) | - | - | 42.43 | - | - | 48.50 |"
    assert lines[5] == "| **macro F1** |  |  |  | **55.50** |  |  | **60.25** |"


def test_text_table_and_cli_errors(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["corpus", "disjoint", "P", "disjoint", "R", "disjoint", "F1", "merged", "P"] + [
        "merged",
        "R",
        "merged",
        "F1",
    ]
    assert out[1].split() == ["BC5CDR", "80.00", "60.00", "68.57", "90.00", "60.00", "72.00"]
    assert out[-1].split() == ["macro", "F1", "55.50", "60.25"]
    assert main([str(tmp_path / "missing")]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_a_joint_run_adds_ner_re_and_re_plus_rows():
    joint = {**METRICS}
    for key, micro, macro in (("ner", 88.0, 80.5), ("re", 70.25, 60.0), ("re_plus", 69.0, 58.75)):
        joint[f"test/{key}/micro_f1"], joint[f"test/{key}/macro_f1"] = micro, macro
    text = render(joint).splitlines()
    assert text[-3:] == [
        "NER  micro F1  88.00  macro F1  80.50",
        "RE   micro F1  70.25  macro F1  60.00",
        "RE+  micro F1  69.00  macro F1  58.75",
    ]
    assert render(joint, markdown=True).splitlines()[-1] == "| RE+ | 69.00 | 58.75 |"
    assert "RE+" not in render(METRICS)
