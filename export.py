"""Export a trained checkpoint as a self-contained model directory.

    python export.py CKPT OUT_DIR [--trust-checkpoint]
    python export.py CKPT OUT_DIR --format transformers [--corpus NAME]

``OUT_DIR`` holds the weights (``model.safetensors``), the encoder's config and tokenizer, the label space,
the model and run config (``bioner_model.json``) and the run's model card (``README.md``); no pickle.
``predict.py OUT_DIR ...`` and ``inference.load(OUT_DIR)`` use it offline, without the original encoder name
or files. The checkpoint is read as plain data only (``--trust-checkpoint``: a file that needs more).

``--format transformers`` writes one corpus of a baseline (``--corpus``, needed when it has several) as a
standard ``AutoModelForTokenClassification`` directory for ``pipeline("token-classification")``
(``inference/transformers_export.py``); ``OUT_DIR`` must be new or empty. SRU-NER and TabERT-CNN have no
per-token tags and are refused (docs/design.md, "A transformers-native export").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from errors import BionerError, report_user_error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out_dir")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load a checkpoint that needs more than plain data; it may run code: "
                        "only a file you trust")  # fmt: skip
    parser.add_argument(
        "--format",
        choices=("bioner", "transformers"),
        default="bioner",
        help="bioner: the whole model, for predict.py and inference.load (default); "
        "transformers: one corpus's tagger for transformers' token-classification pipeline",
    )
    parser.add_argument("--corpus", help="--format transformers: the corpus whose head to export")
    args = parser.parse_args(argv)
    try:
        if args.format == "transformers":
            from inference.transformers_export import export_transformers

            out = export_transformers(
                args.checkpoint, args.out_dir, corpus=args.corpus, trust_checkpoint=args.trust_checkpoint
            )
        elif args.corpus is not None:
            raise BionerError(
                "--corpus NAME goes with --format transformers (the bioner format keeps every corpus)"
            )
        else:
            from inference.tagger import export

            out = export(args.checkpoint, args.out_dir, trust_checkpoint=args.trust_checkpoint)
    except BionerError as err:
        return report_user_error(err)
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"exported {args.checkpoint} to {out} ({args.format}): {files}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
