"""The synthetic-halves check (``scripts/synthetic_halves.py``) and the recall of unannotated types it
feeds (``training/unannotated_recall.py``), by hand."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from datamodules.label_space import LabelSpace
from errors import ConfigError
from lightning_modules.outputs import Prediction
from training.unannotated_recall import UnannotatedRecall

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIONER_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "scripts"))

import synthetic_halves  # noqa: E402

SPACE = LabelSpace({"BC5CDR-chem": ["Chemical"], "BC5CDR-dis": ["Disease"]})
CHEM, DIS = SPACE.type_id("BC5CDR-chem", "Chemical"), SPACE.type_id("BC5CDR-dis", "Disease")


class _Module(SimpleNamespace):
    def log(self, name, value, **kwargs):
        self.logged[name] = value


def test_recall_and_precision_of_the_lacking_type_by_hand(tmp_path):
    gold = {"BC5CDR-chem": {"type": "Disease", "sentences": {"0": [[0, 2], [3, 4]], "1": [[1, 2]]}}}
    (tmp_path / "gold.json").write_text(json.dumps(gold))
    callback = UnannotatedRecall(tmp_path / "gold.json")
    trainer = SimpleNamespace(sanity_checking=False, strategy=SimpleNamespace(reduce=lambda t, reduce_op: t))
    module = _Module(label_space=SPACE, device=torch.device("cpu"), logged={})
    callback.on_validation_epoch_start(trainer, module)
    chem = SPACE.corpus_index["BC5CDR-chem"]
    batch = {
        "corpus_id": torch.tensor([chem, chem, chem]),
        "sentence_index": torch.tensor([0, 1, 0]),
        "chunk": torch.tensor([0, 0, 1]),  # the third row: a later window of sentence 0, skipped
    }
    spans = [
        [(0, 2, DIS), (3, 4, CHEM), (5, 6, DIS)],  # Disease found: (0, 2) right, (5, 6) not in the gold
        [(1, 2, DIS)],  # right
        [(0, 2, DIS)],
    ]
    callback.on_validation_batch_end(trainer, module, Prediction(spans), batch, 0)
    callback.on_validation_epoch_end(trainer, module)
    assert module.logged == {
        "val/unannotated/BC5CDR-chem/Disease/recall": pytest.approx(100 * 2 / 3),
        "val/unannotated/BC5CDR-chem/Disease/precision": pytest.approx(100 * 2 / 3),
    }


def test_a_bad_hidden_gold_file_is_a_config_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="callbacks.hidden_gold"):
        UnannotatedRecall(tmp_path / "bad.json")


@pytest.mark.skipif(not (SHARED / "BC5CDR").is_dir(), reason="needs the full corpora (../shared/data)")
def test_the_halves_split_bc5cdr_and_keep_one_type_each(tmp_path):
    from datamodules.corpora import read_split, resolve

    sizes = synthetic_halves.write(tmp_path, str(SHARED), seed=13)
    full = read_split(resolve("BC5CDR"), SHARED, "train").sentences
    assert sizes["BC5CDR-chem"]["train"] + sizes["BC5CDR-dis"]["train"] == len(full)
    chem, dis = (resolve(str(tmp_path / name)) for name in ("BC5CDR-chem", "BC5CDR-dis"))
    assert chem.types == ("Chemical",) and dis.types == ("Disease",)
    halves = [read_split(spec, tmp_path, "train").sentences for spec in (chem, dis)]
    tokens = sorted(s.tokens for half in halves for s in half)
    assert tokens == sorted(s.tokens for s in full)  # every sentence in exactly one half
    original = {s.tokens: s for s in full}
    for half, keep in zip(halves, ("Chemical", "Disease")):  # each half: its type's mentions, all of them
        for s in half:
            want = sorted((m.start, m.end) for m in original[s.tokens].spans if m.type == keep)
            assert sorted((m.start, m.end) for m in s.spans) == want
    hidden = json.loads((tmp_path / "hidden_gold.json").read_text())
    dev = read_split(chem, tmp_path, "dev").sentences
    assert hidden["BC5CDR-chem"]["type"] == "Disease" and len(hidden["BC5CDR-chem"]["sentences"]) == len(dev)
