"""One corpus of a baseline model as a standard transformers token classifier (``export.py --format
transformers``).

The directory loads with ``AutoModelForTokenClassification.from_pretrained`` and
``pipeline("token-classification", model=DIR, aggregation_strategy="first")``: the encoder's own
``...ForTokenClassification`` class, whose encoder weights are the baseline's, whose ``classifier`` is
that corpus's head (its rows in ``id2label`` order: ``O``, then ``B-t``, ``I-t`` of each type ``t``, with the
corpus qualifier removed), and the tokenizer. The baseline's head is one linear layer behind a dropout (an
identity at inference) and it decodes conlleval-style, as the pipeline groups tags, so the head maps row
for row. What a standard token classifier cannot express is the baseline's default word vector, the max
over the word's subwords: it classifies each subword, and ``first`` keeps the word's first subword's tag.
So the export is exact for a baseline trained with ``model.pooling=first`` (the same word vectors), and
for a max-pooled one (the default) it tags some words of several subwords differently: it is written,
with a warning and a note in its model card (``scripts/check_transformers_export.py`` measures both).
``predict.py`` also encodes each sentence alone (``inference.text``), while the pipeline encodes the text
it is given whole: feed it sentences for the same encoder inputs.

SRU-NER and TabERT-CNN have no per-token tags at all and are refused (``NOT_TOKEN_CLASSIFIERS``).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import torch

from atomic_output import atomic_output
from errors import BionerError

BASELINE = "baseline"
NOT_TOKEN_CLASSIFIERS = {
    "sru_ner": "SRU-NER is a transition system: it generates actions step by step over a slot memory, "
    "so there is no label per token to put in a token classifier",
    "tabert_cnn": "TabERT-CNN scores a word-pair table with a 2D CNN: its outputs are cells per word "
    "pair (nested spans, relations), not per-token BIO logits",
}


def bio_labels(label_space: Any, corpus: str) -> list[str]:
    """The corpus head's tags in its row order: ``O``, then ``B-t`` and ``I-t`` of each of its types."""
    labels = ["O"]
    for type_name in label_space.corpus_types[corpus]:
        labels += [f"B-{type_name}", f"I-{type_name}"]
    return labels


def token_classifier(module: Any, corpus: str) -> Any:
    """``module``'s encoder and ``corpus``'s head as the encoder's ``...ForTokenClassification`` model."""
    from transformers import AutoModelForTokenClassification

    label_space = module.label_space
    labels = bio_labels(label_space, corpus)
    config = copy.deepcopy(module.network.encoder.model.config)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    try:
        model = AutoModelForTokenClassification.from_config(config, trust_remote_code=False)
    except ValueError as err:  # no ...ForTokenClassification class for this encoder
        raise BionerError(
            f"the encoder {config.model_type!r} has no token-classification class ({err})"
        ) from None
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, torch.nn.Linear):
        raise BionerError(
            f"{type(model).__name__}'s classifier is {type(classifier).__name__}, not one linear layer: "
            "the baseline's head cannot be copied into it"
        )
    encoder = getattr(model, model.base_model_prefix)
    problems = encoder.load_state_dict(module.network.encoder.model.state_dict(), strict=False)
    if problems.missing_keys or problems.unexpected_keys:
        raise BionerError(
            f"{type(model).__name__}'s encoder does not match the baseline's "
            f"(missing {problems.missing_keys[:3]}, unexpected {problems.unexpected_keys[:3]})"
        )
    k = label_space.corpus_index[corpus]
    layout = module.layout
    rows = slice(int(layout.offsets[k]), int(layout.offsets[k] + layout.num_tags[k]))
    heads = module.network.heads
    with torch.no_grad():
        classifier.weight.copy_(heads.weight[rows])
        classifier.bias.copy_(heads.bias[rows])
    return model.eval()


def export_transformers(
    source: str | Path, out_dir: str | Path, *, corpus: str | None = None, trust_checkpoint: bool = False
) -> Path:
    """Write ``corpus``'s tagger of the baseline checkpoint (or export directory) ``source`` as a
    transformers token-classification directory: ``config.json`` (``id2label``/``label2id``),
    ``model.safetensors``, the tokenizer and a model card. ``corpus`` may be left out when the model has
    one corpus. ``out_dir`` must be new or empty; it is written whole or not at all."""
    from inference.tagger import load

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "not a directory" if not out.is_dir() else "exists and is not empty"
        raise BionerError(f"export to {out}: {what}; a transformers export goes to a new or empty directory")
    tagger = load(source, device="cpu", trust_checkpoint=trust_checkpoint)
    module = tagger.module
    name = module.model_cfg.name
    if name != BASELINE:
        why = NOT_TOKEN_CLASSIFIERS.get(name, f"{name} is not the per-token BIO baseline")
        raise BionerError(
            f"--format transformers: {source} is a {name} model and only model=baseline exports as a "
            f"token classifier ({why}); export.py without --format writes a directory that "
            "Tagger.from_pretrained and predict.py load"
        )
    corpora = module.label_space.corpora
    if corpus is None and len(corpora) > 1:
        raise BionerError(f"--format transformers: {source} has {len(corpora)} corpora; pick one with "
                          f"--corpus ({', '.join(corpora)})")  # fmt: skip
    corpus = corpus or corpora[0]
    if corpus not in corpora:
        raise BionerError(f"--corpus {corpus}: the model knows {', '.join(corpora)}, not {corpus}")
    model = token_classifier(module, corpus)
    card = model_card(module, corpus, source)
    if not exact(module):
        print(f"warning: {source} max-pools a word's subwords; the token classifier tags a word by its first "
              "subword, so some words of several subwords get other tags (model.pooling=first trains a "
              "baseline that exports exactly)", file=sys.stderr)  # fmt: skip
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as staging:
            staging.mkdir()
            model.save_pretrained(str(staging), safe_serialization=True)
            tagger.tokenizer.save_pretrained(str(staging))
            (staging / "README.md").write_text(card)
    except OSError as err:
        raise BionerError(f"export to {out}: {' '.join(str(err).split())[:300]}") from None
    return out


def exact(module: Any) -> bool:
    """Whether the token classifier computes the baseline's own word vectors (first-subword pooling)."""
    return getattr(module.model_cfg, "pooling", "max") == "first"


def model_card(module: Any, corpus: str, source: str | Path) -> str:
    """A short Hub model card: the header the Hub reads (``inference.hub_card``: library, dataset id,
    licence, base model, and the corpus's test F1 when the run's ``metrics.json`` sits beside the
    checkpoint), labels, use."""
    import yaml

    from inference.hub_card import card_metadata
    from inference.model_card import reads_samples

    encoder = str(module.settings.encoder.name)
    data = module.run_config.get("data", {})
    samples = reads_samples(data.get("root", ""))
    metrics_file = Path(source).parent.parent / "metrics.json"
    metrics = _test_metrics(metrics_file) if Path(source).is_file() else None
    metadata = card_metadata(f"bioner-mtl baseline: {corpus}", BASELINE, encoder, [corpus], metrics,
                             samples=samples)  # fmt: skip
    header = {**metadata.data, "library_name": "transformers"}
    header["tags"] = [*header.get("tags", []), "bioner-mtl"]
    labels = bio_labels(module.label_space, corpus)
    body = [
        "---",
        *yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip("\n").split("\n"),
        "---",
        "",
        f"# bioner-mtl baseline: {corpus}",
        "",
        f"The `{corpus}` head of a bioner-mtl per-corpus BIO tagger (`model=baseline`, encoder `{encoder}`),",
        "as a standard token classifier. Exported from `" + Path(source).name + "` by `export.py --format "
        "transformers`.",
        "",
        f"Labels: {', '.join(f'`{label}`' for label in labels)}.",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        'tagger = pipeline("token-classification", model="PATH_OR_HUB_ID", aggregation_strategy="first")',
        'tagger("Famotidine-associated delirium.")',
        "```",
        "",
        "bioner-mtl encodes each sentence alone: feed the pipeline sentences for its exact inputs."
        + (
            ""
            if exact(module)
            else " This model max-pools a word's subwords before its head; here each subword is classified "
            "and `first` keeps the first subword's tag, so some words of several subwords get other tags "
            f"than bioner-mtl's `predict.py --corpus {corpus}` gives them."
        ),
        "",
        *metadata.text,
    ]
    return "\n".join(body)


def _test_metrics(path: Path) -> dict[str, Any] | None:
    """The test scores of the run a checkpoint belongs to (``RUN/metrics.json``), when readable."""
    import json

    try:
        record = json.loads(path.read_text()) if path.is_file() and path.stat().st_size < 2**24 else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
