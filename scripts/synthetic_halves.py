"""The synthetic-halves check of unannotated types (issue 20, after the paper's Table 5): BC5CDR's
training and dev sentences split at random into two halves, one annotated for Chemical only, the other
for Disease only, as two corpora of one's own, plus the hidden gold of the type each half lacks.

    python scripts/synthetic_halves.py --data-root ../shared/data --seed 13 --out data/halves

writes ``OUT/BC5CDR-chem/`` and ``OUT/BC5CDR-dis/`` (``{train,dev,test}.tsv``, IOB2; test: the full
BC5CDR test with the half's type only) and ``OUT/hidden_gold.json`` (each half's dev mentions of the type
it lacks, for ``callbacks.hidden_gold``), and prints the commands: a joint run that logs each half's
recall of its unannotated type at every validation (``val/unannotated/...``), and the evaluation on the
full BC5CDR test through merged types (Chemical / Disease F1).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules.catalog import CORPORA  # noqa: E402
from datamodules.corpora import read_split  # noqa: E402
from datamodules.sentence import Sentence  # noqa: E402
from errors import BionerError, report_user_error  # noqa: E402

HALVES = {"BC5CDR-chem": ("Chemical", "Disease"), "BC5CDR-dis": ("Disease", "Chemical")}  # keeps, lacks


def iob2(sentence: Sentence, keep: str) -> str:
    tags = ["O"] * len(sentence.tokens)
    for span in sentence.spans:
        if span.type == keep:
            tags[span.start] = f"B-{keep}"
            for i in range(span.start + 1, span.end):
                tags[i] = f"I-{keep}"
    return "".join(f"{w}\t{t}\n" for w, t in zip(sentence.tokens, tags)) + "\n"


def split_halves(sentences: list[Sentence], seed: int) -> tuple[list[Sentence], list[Sentence]]:
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return [sentences[i] for i in sorted(order[:half])], [sentences[i] for i in sorted(order[half:])]


def write(out: Path, data_root: str, seed: int) -> dict:
    spec = CORPORA["BC5CDR"]
    splits = {s: read_split(spec, data_root, s).sentences for s in ("train", "dev", "test")}
    halves = {"train": split_halves(splits["train"], seed), "dev": split_halves(splits["dev"], seed + 1)}
    hidden: dict = {}
    for k, (name, (keep, lacks)) in enumerate(HALVES.items()):
        directory = out / name
        directory.mkdir(parents=True, exist_ok=True)
        parts = {"train": halves["train"][k], "dev": halves["dev"][k], "test": splits["test"]}
        for split, sentences in parts.items():
            (directory / f"{split}.tsv").write_text("".join(iob2(s, keep) for s in sentences))
        hidden[name] = {
            "type": lacks,
            "sentences": {
                str(i): [[span.start, span.end] for span in s.spans if span.type == lacks]
                for i, s in enumerate(parts["dev"])
            },
        }
    (out / "hidden_gold.json").write_text(json.dumps(hidden))
    return {
        name: {split: len(halves[split][k]) for split in ("train", "dev")} for k, name in enumerate(HALVES)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", required=True, help="the directory holding BC5CDR/")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("data/halves"))
    args = parser.parse_args(argv)
    try:
        sizes = write(args.out, args.data_root, args.seed)
    except (BionerError, OSError) as err:
        return report_user_error(err)
    for name, counts in sizes.items():
        print(f"{args.out / name}: {counts['train']} training, {counts['dev']} dev sentences")
    corpora = ",".join(str(args.out / name) for name in HALVES)
    print("joint run (unannotated-type recall logged at every validation):")
    print(
        f"  python train.py experiment=mt6_cpu data.corpora=[{corpora}] data.root={args.data_root} "
        f"callbacks.hidden_gold={args.out / 'hidden_gold.json'} trainer.max_steps=600 "
        "data.samples_per_epoch=3200"
    )
    print("then, on the full BC5CDR test through merged types:")
    print(f"  python evaluate.py RUN_DIR/checkpoints/best.ckpt --corpus BC5CDR --data-root {args.data_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
