"""``Tagger``: a trained model applied to documents, with mentions at character offsets of the input.

Text -> sentences and words (``inference.text``, character offsets kept) -> subwords, with a sentence over
the encoder's cap split at word boundaries into windows (``MAX_SUBWORDS``, as in evaluation) -> batches of
similar length -> ``module.predict`` -> word spans -> character spans of the original text.

Types. ``types="disjoint"`` reports corpus-qualified types (``BC5CDR/Chemical``). ``types="merged"`` (the
default) reports merged types (``Chemical``); when corpora that share a merged type both predict it, their
mentions can coincide or overlap. The rule: within one merged type, a mention that overlaps a mention of
*another* corpus is dropped when the other one has the higher score (ties: the longer mention, then the
corpus first by name); mentions of one corpus never displace each other, so nested mentions stay.
``corpus=NAME`` keeps only that corpus's types ("annotate as NAME would").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomic_output import atomic_output
from datamodules.eval_batches import DEFAULT_EVAL_MEMORY_MB, budget_batches
from datamodules.label_space import LabelSpace
from datamodules.multi_corpus import Collator
from datamodules.sentence import Sentence
from datamodules.splitting import window_rows
from errors import BionerError, CheckpointError
from inference.documents import Document, Entity, Passage
from inference.hub_ids import HubModel
from inference.mention_rows import ModelIdentity
from inference.text import sentences, words
from lightning_modules.precision import activation_bytes, training_autocast
from untrusted import check_model_dir, pretrained, refuse_code_settings

EXPORT_FILE = "bioner_model.json"
EXPORT_WEIGHTS = "model.safetensors"
MAX_EXPORT_META_BYTES = 16 * 2**20
EXPORT_TOKENIZER = "tokenizer.json"  # export.py saves the encoder's fast tokenizer


@dataclass
class _Unit:
    """One sentence: the document it belongs to and its words' character offsets in the document."""

    document: int
    starts: np.ndarray  # (n,)
    ends: np.ndarray  # (n,)


class Tagger:
    def __init__(
        self,
        module: Any,
        tokenizer: Any,
        *,
        batch_size: int = 32,
        memory_mb: float | None = DEFAULT_EVAL_MEMORY_MB,
        device: str | None = None,
        source: str | Path | None = None,
        weights: str | Path | None = None,
        hub: HubModel | None = None,
    ):
        self.source = source  # the checkpoint or export directory it was loaded from, if any
        self.hub = hub  # the Hub repo and commit, when loaded by Hub id
        self._weights = weights  # the file whose hash identifies the model (``identity``)
        self.module = module.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # sentences per batch, at most ...
        self.memory_mb = memory_mb  # ... and activation memory by the model's estimate (None: no cap)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module.to(self.device)
        self.label_space: LabelSpace = module.label_space
        self.collate = Collator(tokenizer.pad_token_id)

    # --- API ------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, **options: Any) -> Tagger:
        """``load(path, **options)`` under the name transformers users reach for: an ``export.py``
        directory of any model (baseline, SRU-NER, TabERT-CNN: the form the models without per-token tags
        are shared in) or a checkpoint, with ``load``'s options; whatever ``load`` accepts, so does this."""
        return load(path, **options)

    @functools.cached_property
    def identity(self) -> ModelIdentity:
        """The model's name (its export directory or checkpoint; for a Hub model its repo id, with the commit
        as ``revision``) and its weights file's SHA-256, computed once, on first use."""
        if self.source is None or self._weights is None:
            return ModelIdentity("in-memory", "")
        identity = ModelIdentity.of(self.source, self._weights)
        if self.hub is not None:
            return ModelIdentity(self.hub.repo_id, identity.sha256, self.hub.commit)
        return identity

    def predict(
        self, texts: str | Sequence[str], *, types: str = "merged", corpus: str | None = None
    ) -> list[list[Entity]]:
        """Mentions of each text (``doc_id`` is the text's index), sorted by start."""
        single = isinstance(texts, str)
        documents = [Document(str(i), [Passage(0, t)]) for i, t in enumerate([texts] if single else texts)]
        return self.annotate(documents, types=types, corpus=corpus)

    def annotate(
        self,
        documents: Sequence[Document],
        *,
        types: str = "merged",
        corpus: str | None = None,
        progress: bool = False,
    ) -> list[list[Entity]]:
        """Mentions of each document, in document character offsets, sorted by (start, -end, type)."""
        if types not in ("merged", "disjoint"):
            raise BionerError(f"types must be 'merged' or 'disjoint', got {types!r}")
        if corpus is not None and corpus not in self.label_space.corpora:
            raise BionerError(
                f"--corpus {corpus}: the model knows {', '.join(self.label_space.corpora)}, not {corpus}"
            )
        units, rows = self._rows(documents)
        found: list[list[tuple[int, int, int, float | None]]] = [
            [] for _ in documents
        ]  # char start, end, type, score
        subword_counts = np.asarray([len(row["input_ids"]) for row in rows], dtype=np.int64)
        word_counts = np.asarray([int(row["num_words"]) for row in rows], dtype=np.int64)
        precision = self.module.settings.precision
        batches = budget_batches(
            np.argsort(subword_counts, kind="stable"),
            word_counts,
            subword_counts,
            max_sentences=self.batch_size,
            cost=partial(
                self.module.eval_batch_bytes, element_bytes=activation_bytes(precision, self.device)
            ),
            budget_bytes=None if self.memory_mb is None else self.memory_mb * 2**20,
        )
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="predict", unit="batch")
        with torch.no_grad(), training_autocast(precision, self.device):
            for batch_rows in batches:
                batch = self.collate([rows[r] for r in batch_rows])
                inputs = self.module.transfer_batch_to_device(batch, self.device, 0)
                prediction = self.module.predict(inputs)
                scores = prediction.scores  # None: the model reports no scores
                for k, r in enumerate(batch_rows):
                    unit, offset = units[rows[r]["sentence_index"]], rows[r]["first_word"]
                    for j, (start, end, type_id) in enumerate(prediction.spans[k]):
                        score = float(scores[k][j]) if scores is not None else None
                        found[unit.document].append(
                            (
                                int(unit.starts[offset + start]),
                                int(unit.ends[offset + end - 1]),
                                type_id,
                                score,
                            )
                        )
        return [self._entities(doc, spans, types, corpus) for doc, spans in zip(documents, found)]

    # --- internals --------------------------------------------------------------------------------
    def _rows(self, documents: Sequence[Document]) -> tuple[list[_Unit], list[dict[str, Any]]]:
        units: list[_Unit] = []
        tokens: list[Sentence] = []
        first_corpus = self.label_space.corpora[0]
        for d, document in enumerate(documents):
            for passage in document.passages:
                for s, e in sentences(passage.text):
                    spans = words(passage.text, s, e)
                    offsets = np.asarray(spans, dtype=np.int64).reshape(-1, 2) + passage.offset
                    units.append(_Unit(d, offsets[:, 0], offsets[:, 1]))
                    tokens.append(Sentence(tuple(passage.text[a:b] for a, b in spans), (), first_corpus))
        no_gold = {"spans": [], "relations": [], "unreachable": [], "corpus_id": 0, "chunk": 0}
        return units, [{**row, **no_gold} for row in window_rows(tokens, self.tokenizer)]

    def _entities(
        self,
        document: Document,
        spans: list[tuple[int, int, int, float | None]],
        types: str,
        corpus: str | None,
    ) -> list[Entity]:
        ls = self.label_space
        if corpus is not None:
            spans = [s for s in spans if ls.corpus_of(s[2]) == corpus]
        if types == "merged":
            spans = _resolve_merged(spans, ls)
        text_of = _text_getter(document)
        entities = {
            Entity(
                document.id,
                start,
                end,
                text_of(start, end),
                ls.merged_of(t) if types == "merged" else ls.types[t],
                ls.types[t],
                score,
            )  # fmt: skip
            for start, end, t, score in spans
        }
        return sorted(entities, key=lambda e: (e.start, -e.end, e.type, e.corpus_type))


def _resolve_merged(
    spans: list[tuple[int, int, int, float | None]], ls: LabelSpace
) -> list[tuple[int, int, int, float | None]]:
    """Per merged type, drop a mention overlapping a better one of another corpus (module docstring)."""
    ranked = sorted(spans, key=lambda s: (-(s[3] or 0.0), -(s[1] - s[0]), ls.corpus_of(s[2]), s[0]))
    kept: list[tuple[int, int, int, float | None]] = []
    for span in ranked:
        start, end, t, _ = span
        corpus, merged = ls.corpus_of(t), ls.merged_of(t)
        clash = any(
            ls.merged_of(o[2]) == merged and ls.corpus_of(o[2]) != corpus and o[0] < end and start < o[1]
            for o in kept
        )
        if not clash:
            kept.append(span)
    return kept


def _text_getter(document: Document):
    def text_of(start: int, end: int) -> str:
        for passage in document.passages:
            if passage.offset <= start and end <= passage.offset + len(passage.text):
                return passage.text[start - passage.offset : end - passage.offset]
        raise AssertionError(f"mention {start}-{end} outside every passage of {document.id}")

    return text_of


# --- loading and export ---------------------------------------------------------------------------
def load(
    path: str | Path,
    *,
    device: str | None = None,
    batch_size: int = 32,
    memory_mb: float | None = DEFAULT_EVAL_MEMORY_MB,
    trust_checkpoint: bool = False,
) -> Tagger:
    """A ``Tagger`` for a training checkpoint (``.ckpt``), a directory written by ``export.py``, or such a
    directory on the Hugging Face Hub by id, ``org/name`` or ``org/name@revision`` (``inference.hub``: fetched
    into the Hub cache, then checked and loaded as a local directory).

    A checkpoint is read as plain data only: one that needs more (it could run code) is a
    ``CheckpointError`` naming the file and what it needs; ``trust_checkpoint=True`` loads it anyway, for a
    file one trusts. An export directory holds no pickle (safetensors and JSON). Neither ever runs code
    from the model files, whatever ``trust_checkpoint`` says (``untrusted``)."""
    from transformers import AutoTokenizer

    from inference.hub_ids import resolve_model

    path, hub = resolve_model(path)
    if path.is_dir():
        module = load_export_module(path)
        try:
            tokenizer = pretrained(AutoTokenizer.from_pretrained, path)
        except (OSError, ValueError) as err:
            raise CheckpointError(path, f"cannot load its tokenizer ({_one_line(err)})") from None
    else:
        from lightning_modules.registry import load_module

        module = load_module(path, trust=trust_checkpoint)
        name = module.settings.encoder.name
        try:
            tokenizer = pretrained(AutoTokenizer.from_pretrained, name)
        except OSError as err:
            raise CheckpointError(
                path, f"cannot load the tokenizer of its encoder {name!r} ({err})"
            ) from None
    weights = path / EXPORT_WEIGHTS if path.is_dir() else path
    return Tagger(
        module,
        tokenizer,
        device=device,
        batch_size=batch_size,
        memory_mb=memory_mb,
        source=path,
        weights=weights,
        hub=hub,
    )


def checked_export(directory: Path) -> tuple[dict[str, Any], Any, Path]:
    """An export directory's metadata, its checked description and the weights' path: ``bioner_model.json``
    is read up to ``MAX_EXPORT_META_BYTES`` (a real one is a few kilobytes) and checked, and the network it
    describes compared with the weights' safetensors header, before anything is built
    (``lightning_modules.model_bounds``)."""
    from inference.weights_header import tensor_shapes
    from lightning_modules.model_bounds import check_planned_weights, checked_description
    from lightning_modules.registry import model_class_of

    meta_path, weights_path = directory / EXPORT_FILE, directory / EXPORT_WEIGHTS
    if not meta_path.exists():
        raise CheckpointError(directory, f"not an exported model (no {EXPORT_FILE}; see export.py)")
    check_model_dir(directory)
    try:
        with open(meta_path, "rb") as file:
            raw = file.read(MAX_EXPORT_META_BYTES + 1)
    except OSError as err:
        raise CheckpointError(meta_path, f"cannot read ({err.strerror or err})") from None
    if len(raw) > MAX_EXPORT_META_BYTES:
        raise CheckpointError(meta_path, f"over {MAX_EXPORT_META_BYTES:,} bytes; not an export's metadata")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CheckpointError(meta_path, f"not a readable exported model ({_one_line(err)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        raise CheckpointError(meta_path, "model: missing or not a string (not written by export.py?)")
    refuse_code_settings(meta.get("encoder_config"), meta_path, "encoder_config")
    module_class = model_class_of(meta_path, meta["model"], "model")
    description = checked_description(
        meta_path,
        module_class,
        meta.get("cfg"),
        meta.get("label_space"),
        meta.get("encoder_config"),
        needs_encoder_config=True,
    )
    if not (directory / EXPORT_TOKENIZER).is_file():
        # without it transformers builds a tokenizer of special tokens only, and every word is [UNK]
        raise CheckpointError(
            directory, f"no {EXPORT_TOKENIZER}: not a whole export; export the checkpoint again"
        )
    check_planned_weights(meta_path, description, tensor_shapes(weights_path), source=str(weights_path))
    return meta, description, weights_path


def read_export_weights(directory: Path, weights_path: Path) -> dict[str, Any]:
    """The state dict of a checked export (``checked_export``); a ``CheckpointError`` if unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights_path))
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(directory, f"not a readable exported model ({_one_line(err)})") from None


def load_export_module(directory: Path) -> Any:
    """The module of an export directory, built only after ``checked_export``."""
    _, description, weights_path = checked_export(directory)
    state = read_export_weights(directory, weights_path)
    try:
        module = description.module_class.build(
            description.cfg, description.label_space, description.encoder_config
        )
        module.load_state_dict(state)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(directory, f"not a readable exported model ({_one_line(err)})") from None
    return module


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def export(checkpoint: str | Path, out_dir: str | Path, *, trust_checkpoint: bool = False) -> Path:
    """Write a self-contained model directory: weights, encoder config, tokenizer, label space, run
    config and model card; ``load(out_dir)`` needs nothing else (no hub access, no original encoder).
    The directory holds no pickle: safetensors and JSON only. ``trust_checkpoint``: see ``load``."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer

    from lightning_modules.checkpoints import checkpoint_model_name, read_checkpoint
    from lightning_modules.registry import load_module

    checkpoint = Path(checkpoint)
    module = load_module(checkpoint, trust=trust_checkpoint)
    raw = read_checkpoint(checkpoint, map_location="cpu", trust=trust_checkpoint)
    name = module.settings.encoder.name
    try:
        encoder_config = (
            module.hparams.get("encoder_config") or pretrained(AutoConfig.from_pretrained, name).to_dict()
        )
    except OSError as err:
        raise CheckpointError(checkpoint, f"cannot read its encoder's config {name!r} ({err})") from None
    meta = {
        "format": 1,
        "model": checkpoint_model_name(raw),
        "cfg": module.run_config,
        "label_space": module.label_space.to_dict(),
        "encoder_config": _plain(encoder_config),
        "source_checkpoint": str(checkpoint.resolve()),
        "global_step": raw.get("global_step"),
    }
    card = checkpoint.resolve().parent.parent / "README.md"
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BionerError(f"export to {out}: not a directory")
    try:  # staged next to out_dir: a failure leaves an earlier export there as it was
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as staging:
            staging.mkdir()
            pretrained(AutoTokenizer.from_pretrained, name).save_pretrained(str(staging))
            save_file(state, str(staging / EXPORT_WEIGHTS))
            (staging / EXPORT_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
            if card.is_file():
                (staging / "README.md").write_text(card.read_text())
    except OSError as err:
        raise BionerError(f"export to {out}: {' '.join(str(err).split())[:300]}") from None
    return out


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """A transformers config dict that ``AutoConfig.for_model`` rebuilds (no derived or private keys)."""
    drop = {"transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype"}
    return {k: v for k, v in config.items() if k not in drop and not k.startswith("_")}
