"""Do a checkpoint and its export decide alike? Both predict every sentence of one corpus split, batch by
batch, and every mention (start, end, type) and its score are compared.

    python scripts/compare_export.py CKPT EXPORT_DIR --corpus BC5CDR [--split test] [--data-root DIR]

The checkpoint is read as ``evaluate.py`` reads it (``registry.load_module``), the export as
``inference.load`` does (``tagger.load_export_module``); both carry the loss weights and the tuned decision
thresholds. Prints the counts and exits 1 on the first difference.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from datamodules.multi_corpus import MultiCorpusDataModule
    from inference.tagger import load_export_module
    from lightning_modules.registry import load_module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("export_dir")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--data-root")
    args = parser.parse_args(argv)

    from_checkpoint = load_module(args.checkpoint).eval()
    from_export = load_export_module(Path(args.export_dir)).eval()
    same = np.array_equal(from_checkpoint.thresholds(), from_export.thresholds())
    print(f"thresholds equal: {same}: {dict(zip(from_export.label_space.types, from_export.thresholds()))}")
    cfg = copy.deepcopy(from_checkpoint.run_config)
    cfg["data"]["val_subsample"] = None
    if args.data_root:
        cfg["data"]["root"] = args.data_root
    datamodule = MultiCorpusDataModule.from_config(cfg)  # the model's corpora; one of them is compared
    loaders = datamodule.test_dataloader() if args.split == "test" else datamodule.dev_dataloaders(None)
    index = from_checkpoint.label_space.corpus_index[args.corpus]
    sentences = mentions = 0
    with torch.no_grad():
        for batch in loaders[index]:
            a, b = from_checkpoint.predict(batch), from_export.predict(batch)
            if a.spans != b.spans or a.scores != b.scores:
                print(f"error: predictions differ in a batch after {sentences} sentences", file=sys.stderr)
                return 1
            sentences += len(a.spans)
            mentions += sum(len(s) for s in a.spans)
    print(f"{args.corpus} {args.split}: {sentences} sentences, {mentions} mentions, identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
