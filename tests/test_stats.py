"""Full corpus counts against /work/shared/data/README.md, and the paper reading against Table 8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datamodules.make_samples import make_samples
from datamodules.stats import corpus_stats, format_table
from errors import BionerError, MissingCorpusError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIONER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(),
    reason=f"shared corpora not found at {SHARED} (set BIONER_SHARED_DATA)",
)

# README.md tables: sentences and B- counts per type ("these files").
FULL = {
    "BC2GM": {
        "train": (12574, {"GENE": 15197}),
        "dev": (2519, {"GENE": 3061}),
        "test": (5038, {"GENE": 6325}),
    },
    "BC4CHEMD": {
        "train": (30682, {"Chemical": 29478}),
        "dev": (30639, {"Chemical": 29486}),
        "test": (26364, {"Chemical": 25346}),
    },
    "BC5CDR": {
        "train": (4560, {"Chemical": 5203, "Disease": 4182}),
        "dev": (4581, {"Chemical": 5347, "Disease": 4246}),
        "test": (4797, {"Chemical": 5385, "Disease": 4424}),
    },
    "JNLPBA": {
        "train": (16807, {"DNA": 8481, "RNA": 844, "cell_line": 3430, "cell_type": 6192, "protein": 27803}),
        "dev": (1739, {"DNA": 1052, "RNA": 107, "cell_line": 400, "cell_type": 526, "protein": 2466}),
        "test": (3856, {"DNA": 1056, "RNA": 118, "cell_line": 500, "cell_type": 1921, "protein": 5067}),
    },
    "Linnaeus": {
        "train": (11935, {"Species": 2119}),
        "dev": (4078, {"Species": 711}),
        "test": (7142, {"Species": 1433}),
    },
    "NCBI-disease": {
        "train": (5424, {"Disease": 5134}),
        "dev": (923, {"Disease": 787}),
        "test": (940, {"Disease": 960}),
    },
    "CoNLL2003": {
        "train": (14041, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
        "dev": (3250, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
        "test": (3453, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
    },
    "CoNLL04": {
        "train": (922, {"Loc": 1219, "Org": 616, "Other": 455, "Peop": 1087}),
        "dev": (231, {"Loc": 322, "Org": 170, "Other": 118, "Peop": 283}),
        "test": (288, {"Loc": 427, "Org": 198, "Other": 133, "Peop": 321}),
    },
    "ADE": {
        "train": (3845, {"Adverse-Effect": 5200, "Drug": 4569}),
        "test": (427, {"Adverse-Effect": 576, "Drug": 494}),
    },
}

# README "published" column (SRU-NER Table 8), train/dev/test.
PUBLISHED = {
    "BC2GM": {"GENE": (15035, 3032, 6243)},
    "BC4CHEMD": {"Chemical": (29263, 29305, 25210)},
    "BC5CDR": {"Chemical": (5114, 5239, 5277), "Disease": (4169, 4224, 4394)},
    "JNLPBA": {
        "cell_line": (3369, 389, 490),
        "cell_type": (6162, 522, 1906),
        "DNA": (8416, 1040, 1045),
        "protein": (27015, 2379, 4988),
        "RNA": (844, 106, 118),
    },
    "Linnaeus": {"Species": (2079, 700, 1412)},
    "NCBI-disease": {"Disease": (5111, 779, 952)},
}
# The one published figure the two converter drops do not reach (README: 25,219 vs 25,210; spec A2/A10.1).
PAPER_EXCEPTIONS = {("BC4CHEMD", "test", "Chemical"): 25219}


def expected_full(name: str) -> dict:
    return {split: {"sentences": n, "mentions": types} for split, (n, types) in FULL[name].items()}


@needs_shared
@pytest.mark.parametrize("name", list(FULL))
def test_full_reading_matches_readme_counts(name):
    assert corpus_stats(SHARED, [name]) == {name: expected_full(name)}


@needs_shared
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_paper_reading_matches_published_table8(name):
    stats = corpus_stats(SHARED, [name], reading="paper")[name]
    for i, split in enumerate(("train", "dev", "test")):
        assert stats[split]["sentences"] == FULL[name][split][0]  # drops remove mentions, never sentences
        expected = {
            t: PAPER_EXCEPTIONS.get((name, split, t), counts[i]) for t, counts in PUBLISHED[name].items()
        }
        assert stats[split]["mentions"] == dict(sorted(expected.items())), (name, split)


def test_only_present_corpora_are_counted_and_requested_ones_must_exist(tmp_path):
    (tmp_path / "NCBI-disease").mkdir()
    for split in ("train", "dev"):
        (tmp_path / "NCBI-disease" / f"{split}.tsv").write_text("a\tO\n", encoding="utf-8")
    (tmp_path / "NCBI-disease" / "test.tsv").write_text("a\tB-Disease\nb\tO\n\nc\tO\n", encoding="utf-8")
    (tmp_path / "unrelated").mkdir()
    stats = corpus_stats(tmp_path)
    assert stats == {
        "NCBI-disease": {
            "train": {"sentences": 1, "mentions": {}},
            "dev": {"sentences": 1, "mentions": {}},
            "test": {"sentences": 2, "mentions": {"Disease": 1}},
        }
    }
    assert corpus_stats(tmp_path, reading="paper")["NCBI-disease"]["test"]["mentions"] == {"Disease": 1}
    table = format_table(stats).splitlines()
    assert table[0].split() == ["corpus", "split", "sentences", "mentions", "by", "type"]
    assert table[3].split() == ["NCBI-disease", "test", "2", "1", "Disease=1"]
    with pytest.raises(
        MissingCorpusError, match=f"python -m datamodules.prepare --data-root {tmp_path} BC5CDR"
    ):
        corpus_stats(tmp_path, ["BC5CDR"])
    with pytest.raises(BionerError, match="no registered corpus"):
        corpus_stats(tmp_path / "unrelated")
    with pytest.raises(BionerError, match="not a directory"):
        corpus_stats(tmp_path / "missing")


@needs_shared
def test_stats_cli_json_smoke():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamodules.stats",
            "--data-root",
            str(SHARED),
            "--corpora",
            "NCBI-disease",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"NCBI-disease": expected_full("NCBI-disease")}


@needs_shared
def test_bundled_samples_are_reproducible(tmp_path):
    make_samples(SHARED, tmp_path)
    bundled = REPO / "datamodules" / "samples"
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(bundled) for p in bundled.rglob("*") if p.is_file())
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (bundled / rel).read_bytes(), rel


def _stats_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamodules.stats", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["missing", "directory"])
@pytest.mark.parametrize("scan", [True, False])
def test_stats_cli_fails_on_a_missing_or_non_file_split(tmp_path, how, scan):
    corpus = tmp_path / "NCBI-disease"
    corpus.mkdir()
    for split in ("train", "test"):
        (corpus / f"{split}.tsv").write_text("a\tB-Disease\n", encoding="utf-8")
    if how == "directory":
        (corpus / "dev.tsv").mkdir()
    proc = _stats_cli("--data-root", str(tmp_path), *([] if scan else ["--corpora", "NCBI-disease"]))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    expected = "is not a file" if how == "directory" else "not found at"
    assert proc.stderr.startswith("error: corpus NCBI-disease (dev)") and expected in proc.stderr
    assert str(corpus / "dev.tsv") in proc.stderr


def test_stats_table_and_json_show_tolerated_lines_and_tags(tmp_path):
    corpus = tmp_path / "MyCorpus"
    corpus.mkdir()
    (corpus / "train.tsv").write_text("a\tB-X \nb\tI-X\n \nc\tO\n", encoding="utf-8")  # 1 stripped, 1 blank
    (corpus / "dev.tsv").write_text("a\tI-X\nb\tB-X\n\t\nc\tI-Y\t\n", encoding="utf-8")  # IOB1; 1 and 1
    (corpus / "test.tsv").write_text("a\tB-Y\n", encoding="utf-8")
    stats = corpus_stats(tmp_path / "no-root-needed", [str(corpus)])
    assert stats == {
        "MyCorpus": {
            "train": {"sentences": 2, "mentions": {"X": 1}, "whitespace_lines": 1, "stripped_tags": 1},
            "dev": {
                "sentences": 2,
                "mentions": {"X": 2, "Y": 1},
                "scheme": "iob1",
                "scheme_detected": True,
                "whitespace_lines": 1,
                "stripped_tags": 1,
            },
            "test": {"sentences": 1, "mentions": {"Y": 1}},
        }
    }
    table = format_table(stats).splitlines()
    assert table[1].endswith(
        "X=1  [1 whitespace-only line read as sentence breaks, 1 tag with trailing whitespace stripped]"
    )
    assert "X=2  Y=1  [read as IOB1 (auto-detected), 1 whitespace-only line" in table[2]
    assert table[3].split() == ["MyCorpus", "test", "1", "1", "Y=1"]
    (corpus / "corpus.yaml").write_text("scheme: iob1\n", encoding="utf-8")
    dev = corpus_stats(tmp_path, [str(corpus)])["MyCorpus"]["dev"]
    assert (dev["scheme"], dev["scheme_detected"]) == ("iob1", False)
    assert "[read as IOB1 (corpus.yaml), 1 whitespace-only line" in format_table({"M": {"dev": dev}})
    proc = _stats_cli("--corpora", str(corpus), "--json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(proc.stdout)["MyCorpus"]["dev"] == dev
    (corpus / "test.tsv").write_text("a\tB-Y\x00\n", encoding="utf-8")
    proc = _stats_cli("--corpora", str(corpus))
    assert proc.returncode == 2 and proc.stdout == ""
    expected = (
        f"error: {corpus / 'test.tsv'}:1: NUL byte in the tag (a UTF-16 or binary file? expected UTF-8 text)"
    )
    assert proc.stderr == expected + "\n"
