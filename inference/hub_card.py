"""What the Hugging Face Hub reads from a model card's YAML header: the training corpora as Hub dataset ids,
the test F1 per corpus in both views as a ``model-index``, a licence and the base model.

``DATASET_IDS`` maps a registered corpus to a Hub dataset holding the same splits; a corpus without a verified
copy (and every corpus of the user's own) has none: it is named in the card's text, not in ``datasets:``.
The licence is one Hub id when every corpus's licence and the encoder's are that same id; otherwise it is
``other`` (``license_name: mixed-training-data``), and the card's "License" section lists each one.
``base_model`` is the encoder's Hub name: an ``owner/name`` that is not a local path, or a local copy in a
Hub cache (``.../models--owner--name/snapshots/<sha>``); any other local directory has none (its name is
only in the card's text)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class HubDataset:
    id: str
    config: str | None = None  # the dataset's configuration holding this corpus, when it has several


# How each entry was checked against shared/data/README.md (the Crichton et al. 2017 files, byte-identical):
DATASET_IDS: dict[str, HubDataset] = {
    # BC2GM: EMBO/BLURB's loader (BLURB.py, commit 9fd3e2f) reads config BC2GM-IOB from
    # github.com/cambridgeltl/MTL-Bioinformatics-2016/raw/master/data/, the very files of this corpus;
    # split sizes not compared (a script dataset: no counts on its card).
    "BC2GM": HubDataset("EMBO/BLURB", "BC2GM-IOB"),
    # BC4CHEMD: extraordinarylab/bc4chemd's card lists 30682 / 30639 / 26364 train / validation / test
    # sentences, exactly the counts of BC4CHEMD/{train,dev,test}.tsv here; its source is not stated.
    "BC4CHEMD": HubDataset("extraordinarylab/bc4chemd"),
    # BC5CDR: chintagunta85/BC5CDR's loader reads MTL-Bioinformatics-2016/raw/master/data/BC5CDR-IOB/
    # {train,devel,test}.tsv, the very files of this corpus (Chemical and Disease together); counts not shown.
    "BC5CDR": HubDataset("chintagunta85/BC5CDR"),
    # Linnaeus: cambridgeltl/linnaeus hosts the Crichton linnaeus-IOB files (its loader says so); its card
    # lists 11936 / 4079 / 7143, one more per split than the 11935 / 4078 / 7142 sentences counted here
    # (the loader yields a last empty example); tags there are untyped B/I.
    "Linnaeus": HubDataset("cambridgeltl/linnaeus"),
    # CoNLL2003: eriktks/conll2003 (the former `conll2003`) lists 14041 / 3250 / 3453 sentences, exactly
    # the counts of CoNLL2003/{train,dev,test}.tsv here.
    "CoNLL2003": HubDataset("eriktks/conll2003"),
    # Left out, no copy with the same splits found:
    # NCBI-disease: ncbi/ncbi_disease has 5433 / 924 / 941 sentences against 5424 / 923 / 940 (another
    #   conversion of the corpus).
    # JNLPBA: jnlpba/jnlpba has train 18546 (= Crichton train + dev) and its "validation" is the test set.
}

HUB_LICENCE_OF_CATALOG = {"CC BY 4.0": "cc-by-4.0"}  # the catalog's licence text starts with the key
# Hub licences of encoders this project's configs name; others are unknown (said so in the card)
ENCODER_LICENCES = {
    "michiyasunaga/BioLinkBERT-large": "apache-2.0",
    "michiyasunaga/BioLinkBERT-base": "apache-2.0",
    "sentence-transformers/all-MiniLM-L6-v2": "apache-2.0",
}
MIXED_LICENCE_NAME = "mixed-training-data"
METRIC_NAME = "span F1, exact match"
VIEWS = ("disjoint", "merged")
HEADER_ORDER = ("library_name", "pipeline_tag", "language", "license", "license_name", "base_model")
_CACHE_SNAPSHOT = re.compile(r"models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$")


def base_model(encoder: str) -> str | None:
    """The encoder's Hub name, or None for a local directory that is not a Hub cache copy (module doc)."""
    found = _CACHE_SNAPSHOT.search(str(encoder).replace("\\", "/"))
    if found:
        return f"{found.group(1)}/{found.group(2)}"
    if not Path(encoder).exists() and encoder.count("/") == 1 and not encoder.startswith((".", "/", "~")):
        return encoder
    return None


def corpus_licence(corpus: str) -> tuple[str, str | None]:
    """A corpus's licence as the catalog states it, and its Hub id when it has one."""
    from datamodules.catalog import CORPORA

    spec = CORPORA.get(corpus)
    if spec is None:
        return "your own corpus: licence not recorded", None
    hub = next((v for k, v in HUB_LICENCE_OF_CATALOG.items() if spec.licence.startswith(k)), None)
    return spec.licence or "not stated", hub


@dataclass(frozen=True)
class CardMetadata:
    data: dict[str, Any]  # the YAML header, as huggingface_hub.ModelCardData keys
    text: list[str]  # Markdown lines for the card's "Hub metadata" section


def card_metadata(
    run_name: str,
    model: str,
    encoder: str,
    corpora: list[str],
    metrics: dict[str, Any] | None,
    *,
    samples: bool = False,
) -> CardMetadata:
    """The header and the lines that explain it, for a run of ``model`` on ``corpora`` with ``encoder``.
    ``samples``: the run read the bundled samples, whose splits are no Hub dataset's (no ids)."""
    from huggingface_hub import EvalResult, ModelCardData

    names = [str(c) for c in corpora]
    hub_ids = {} if samples else {c: DATASET_IDS[c] for c in names if c in DATASET_IDS}
    licences = {c: corpus_licence(c) for c in names}
    base = base_model(encoder)
    encoder_licence = ENCODER_LICENCES.get(base or "")
    ids = {hub for _, hub in licences.values()} | {encoder_licence}
    licence = ids.pop() if len(ids) == 1 and None not in ids else "other"
    results = []
    for corpus in names:
        dataset = hub_ids.get(corpus)
        for view in VIEWS:
            value = (metrics or {}).get(f"test/{view}/{Path(corpus).name}/f1")
            if value is None:
                continue
            results.append(
                EvalResult(
                    task_type="token-classification",
                    task_name="Named Entity Recognition",
                    dataset_type=dataset.id if dataset else Path(corpus).name,
                    dataset_name=Path(corpus).name,
                    dataset_config=dataset.config if dataset else None,
                    dataset_split="test",
                    metric_type="f1",
                    metric_name=f"{METRIC_NAME} ({view})",
                    metric_value=round(float(value), 2),
                )
            )
    data = ModelCardData(
        library_name="bioner-mtl",
        pipeline_tag="token-classification",
        language=["en"],
        tags=["biomedical", "named-entity-recognition", "token-classification", model],
        datasets=sorted({d.id for d in hub_ids.values()}) or None,
        metrics=["f1"],
        base_model=base,
        license=licence,
        license_name=MIXED_LICENCE_NAME if licence == "other" else None,
        model_name=run_name if results else None,
        eval_results=results or None,
    ).to_dict()
    data = {k: data[k] for k in sorted(data, key=lambda k: (HEADER_ORDER + (k,)).index(k))}
    text = ["## Hub metadata", ""]
    without = [Path(c).name for c in names if c not in hub_ids]
    if hub_ids:
        listed = [
            f"{c} = `{d.id}`" + (f" (config `{d.config}`)" if d.config else "") for c, d in hub_ids.items()
        ]
        text.append(f"Hub datasets with the same splits: {', '.join(listed)}.")
    if samples:
        text.append("Trained and tested on the bundled samples, not the full corpora: no Hub dataset ids.")
    elif without:
        text.append(f"No Hub dataset id (no copy with the same splits verified): {', '.join(without)}.")
    text += ["", "### License", ""]
    if licence == "other":
        text.append(
            "`other`: the training data and the encoder do not share one licence (or one is unknown); "
            "the weights are subject to each of them:"
        )
    else:
        text.append(f"`{licence}`: every training corpus and the encoder are under it:")
    text += ["", *[f"- {Path(c).name}: {stated}" for c, (stated, _) in licences.items()]]
    text.append(f"- encoder `{base or encoder}`: {encoder_licence or 'licence not recorded here'}")
    if base is None:
        text.append("  (a local directory, not a Hub name: no `base_model` in the header)")
    return CardMetadata(data, [*text, ""])
