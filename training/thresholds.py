"""Decision thresholds tuned on dev: per corpus, or per type where that pays.

A model whose mentions are threshold decisions (SRU-NER's TR/RE actions, TabERT-CNN's span cells;
``SpanNERModule.tunes_thresholds``) keeps one threshold per type in ``type_thresholds``. After fit
(``thresholds.tune``) and on demand (``evaluate.py --thresholds tune``) they are chosen on the dev split,
never on test:

1. one pass of the model over a seeded subsample of each dev split (``thresholds.dev_sentences`` per
   corpus; all of a smaller split), keeping what every candidate threshold needs
   (``decision_scores``);
2. for each candidate (``CANDIDATES`` and the model's untuned default) every type's spans are decoded
   and counted against its corpus's gold, in the disjoint view (a corpus is scored on its own types);
   a type's spans depend on its own threshold only, so one uniform candidate per decode gives every
   type's curve at once;
3. per corpus: the candidate with the best micro F1 over its types; per type: each type's best. With
   ``granularity=auto`` a corpus takes its per-type thresholds only when they raise its dev F1 by at
   least ``min_gain`` points over its single threshold (per-type choices fit the subsample more closely).
   Ties go to the candidate nearest the default.

Under DDP each rank counts its share of the dev rows and the counts are summed, so every rank picks the
same thresholds.

The baseline needs none: its decision is the argmax of a softmax trained with an unweighted
cross-entropy, so it already decides at the loss-optimal point. Its analogue would be a bias on the
``O`` class (a lower bar for starting a mention), which no loss of ours shifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from datamodules.label_space import LabelSpace
from lightning_modules.decisions import GRANULARITIES
from metrics.span_f1 import prf

if TYPE_CHECKING:
    from configs.schema import RunCfg

CANDIDATES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95
CHECKPOINT_KEY = "decision_thresholds"  # the tuning record in a checkpoint (the thresholds: its state_dict)


@dataclass
class ThresholdTuning:
    """The outcome of ``tune_thresholds``: the ``(M,)`` thresholds and, per corpus, what they were chosen
    on and what they gave (disjoint dev F1 of the tuning sentences)."""

    thresholds: np.ndarray
    default: float
    granularity: dict[str, str] = field(default_factory=dict)  # corpus -> "corpus" | "type"
    sentences: dict[str, int] = field(default_factory=dict)
    default_f1: dict[str, float] = field(default_factory=dict)
    tuned_f1: dict[str, float] = field(default_factory=dict)
    dev_sentences: int | None = None  # the per-corpus cap of the seeded subsample (None: every sentence)
    seed: int | None = None

    def to_dict(self, label_space: LabelSpace) -> dict[str, Any]:
        """Plain data for ``metrics.json``, the model card and the checkpoint."""
        return {
            "thresholds": {t: round(float(v), 4) for t, v in zip(label_space.types, self.thresholds)},
            "default": self.default,
            "granularity": dict(self.granularity),
            "sentences": dict(self.sentences),
            "default_f1": {c: round(v, 2) for c, v in self.default_f1.items()},
            "tuned_f1": {c: round(v, 2) for c, v in self.tuned_f1.items()},
            "dev_sentences": self.dev_sentences,
            "seed": self.seed,
        }

    def lines(self, label_space: LabelSpace) -> list[str]:
        """A short printed report, one line per corpus."""
        cap = f"at most {self.dev_sentences}" if self.dev_sentences else "all"
        out = [f"decision thresholds tuned on dev ({cap} sentences per corpus, seed {self.seed}):"]
        for corpus in label_space.corpora:
            ids = label_space.type_ids_of(corpus)
            values = ", ".join(
                f"{label_space.types[t].split('/', 1)[1]} {self.thresholds[t]:.2f}" for t in ids
            )
            out.append(
                f"  {corpus}: {values} (per {self.granularity.get(corpus, 'corpus')}); dev F1 "
                f"{self.default_f1.get(corpus, 0.0):.2f} at {self.default:g} -> "
                f"{self.tuned_f1.get(corpus, 0.0):.2f} on {self.sentences.get(corpus, 0)} sentences"
            )
        return out


def count_candidates(
    module: Any,
    batches: Iterable[tuple[dict, dict]],
    candidates: Sequence[float],
) -> np.ndarray:
    """``(G, M, 3)`` int64 TP/FP/FN per candidate threshold and type, in the disjoint view.

    ``batches``: pairs of (the batch on the host, its network inputs on the model's device). One
    forward pass per batch; every candidate decodes from its ``decision_scores``."""
    label_space: LabelSpace = module.label_space
    num_types = len(label_space)
    corpus_of = np.asarray(label_space.corpus_id_per_type(), dtype=np.int64)
    counts = np.zeros((len(candidates), num_types, 3), dtype=np.int64)
    lowest = float(min(candidates))
    for batch, inputs in batches:
        scores = module.decision_scores(inputs, lowest)
        corpus_ids = batch["corpus_id"].tolist()
        gold = [
            {(int(s), int(e), int(t)) for s, e, t in spans.tolist() if corpus_of[t] == c}
            for spans, c in zip(batch["spans"], corpus_ids)
        ]
        for c, types in zip(corpus_ids, batch.get("unreachable") or ()):  # cut by a split: always missed
            for t in types.tolist():
                if corpus_of[t] == c:
                    counts[:, t, 2] += 1
        for g, candidate in enumerate(candidates):
            predicted = module.decode_decisions(scores, np.full(num_types, candidate)).spans
            booked: list[list[int]] = [[], [], []]
            for c, gold_set, found in zip(corpus_ids, gold, predicted):
                own = {(s, e, t) for s, e, t in found if corpus_of[t] == c}
                booked[0] += [t for _, _, t in gold_set & own]
                booked[1] += [t for _, _, t in own - gold_set]
                booked[2] += [t for _, _, t in gold_set - own]
            for k, ids in enumerate(booked):
                if ids:
                    counts[g, :, k] += np.bincount(np.asarray(ids, dtype=np.int64), minlength=num_types)
    return counts


def choose_thresholds(
    counts: np.ndarray,
    candidates: Sequence[float],
    label_space: LabelSpace,
    *,
    default: float,
    granularity: str = "auto",
    min_gain: float = 0.5,
    sentences: Mapping[str, int] | None = None,
) -> ThresholdTuning:
    """Thresholds from ``count_candidates``' counts (module docstring, step 3). ``default`` must be one
    of ``candidates``; a corpus without gold or predictions at any candidate keeps it."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"thresholds.granularity={granularity}: use one of {', '.join(GRANULARITIES)}")
    values = np.asarray(candidates, dtype=np.float64)
    home = int(np.argmin(np.abs(values - default)))
    nearness = -np.abs(values - default)  # ties: the candidate nearest the default

    def best(f1: np.ndarray) -> int:
        return int(np.lexsort((nearness, np.round(f1, 9)))[-1])

    def f1_of(tp_fp_fn: np.ndarray) -> np.ndarray:  # (..., 3) -> (...)
        return np.asarray([prf(*map(int, row))[2] for row in tp_fp_fn.reshape(-1, 3)]).reshape(
            tp_fp_fn.shape[:-1]
        )

    thresholds = np.full(len(label_space), default, dtype=np.float64)
    tuning = ThresholdTuning(thresholds, default, sentences=dict(sentences or {}))
    for corpus in label_space.corpora:
        ids = np.asarray(label_space.type_ids_of(corpus), dtype=np.int64)
        per_corpus = counts[:, ids].sum(1)  # (G, 3)
        corpus_f1 = f1_of(per_corpus)  # (G,)
        tuning.default_f1[corpus] = float(corpus_f1[home])
        if not per_corpus.any():  # no gold and no prediction at any candidate
            tuning.granularity[corpus], tuning.tuned_f1[corpus] = "corpus", float(corpus_f1[home])
            continue
        g_corpus = best(corpus_f1)
        type_choice = np.asarray([best(f1_of(counts[:, t])) for t in ids])
        type_f1 = prf(*map(int, counts[type_choice, ids].sum(0)))[2]
        per_type = granularity == "type" or (
            granularity == "auto" and len(ids) > 1 and type_f1 >= corpus_f1[g_corpus] + min_gain
        )
        if per_type:
            thresholds[ids] = values[type_choice]
            tuning.granularity[corpus], tuning.tuned_f1[corpus] = "type", float(type_f1)
        else:
            thresholds[ids] = values[g_corpus]
            tuning.granularity[corpus], tuning.tuned_f1[corpus] = "corpus", float(corpus_f1[g_corpus])
    return tuning


def tune_thresholds(
    module: Any,
    loaders: Sequence[Iterable[dict]],
    *,
    device: torch.device,
    precision: Any = None,
    granularity: str = "auto",
    min_gain: float = 0.5,
    default: float = 0.5,
    dev_sentences: int | None = None,
    seed: int | None = None,
) -> ThresholdTuning:
    """Tune ``module``'s per-type thresholds on ``loaders`` (one dev loader per corpus of its label
    space, in order) and return the outcome; the module is left unchanged (``apply_thresholds``).
    Counts are summed over the processes of the default process group, when there is one."""
    from lightning_modules.precision import training_autocast

    candidates = sorted({*CANDIDATES, float(default)})
    label_space: LabelSpace = module.label_space
    sentences = dict.fromkeys(label_space.corpora, 0)

    def batches() -> Iterable[tuple[dict, dict]]:
        for corpus, loader in zip(label_space.corpora, loaders):
            for batch in loader:
                sentences[corpus] += len(batch["num_words"])
                yield batch, module.transfer_batch_to_device(batch, device, 0)

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), training_autocast(precision, device):
            counts = count_candidates(module, batches(), candidates)
    finally:
        module.train(was_training)
    counts, sentences = _summed_over_ranks(counts, sentences, device)
    tuning = choose_thresholds(
        counts, candidates, label_space, default=default, granularity=granularity, min_gain=min_gain,
        sentences=sentences,
    )  # fmt: skip
    tuning.dev_sentences, tuning.seed = dev_sentences, seed
    return tuning


def apply_thresholds(module: Any, thresholds: np.ndarray) -> None:
    """Store ``(M,)`` thresholds in the module (its ``type_thresholds`` state)."""
    module.type_thresholds.copy_(torch.as_tensor(thresholds, dtype=module.type_thresholds.dtype))


def _summed_over_ranks(
    counts: np.ndarray, sentences: dict[str, int], device: torch.device
) -> tuple[np.ndarray, dict[str, int]]:
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return counts, sentences
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    flat = torch.as_tensor(np.concatenate([counts.ravel(), list(sentences.values())]), device=backend_device)
    dist.all_reduce(flat)
    summed = flat.cpu().numpy()
    return summed[: counts.size].reshape(counts.shape), dict(zip(sentences, summed[counts.size :].tolist()))


def tune_after_fit(trainer: Any, model: Any, datamodule: Any, best_path: str, cfg: RunCfg) -> dict | None:
    """``thresholds.tune``: load the best checkpoint's weights into ``model``, tune its thresholds on dev,
    keep them in the model and write them into ``best_path`` (rank 0, atomically), so that the test that
    follows, ``evaluate.py``, ``export.py`` and ``predict.py`` all use them. Returns the tuning record
    (None when nothing was tuned: switched off, no best checkpoint, or a model without thresholds)."""
    from lightning_modules.checkpoints import read_checkpoint
    from training.checkpointing import AtomicCheckpointIO

    settings = cfg.thresholds
    model = getattr(model, "_orig_mod", model)  # compile=true: the module inside torch.compile's wrapper
    if not (settings.tune and best_path and model.tunes_thresholds()):
        return None
    checkpoint = read_checkpoint(best_path, trust=cfg.trust_checkpoint, mmap=False)
    model.load_state_dict(checkpoint["state_dict"])
    tuning = tune_thresholds(
        model, datamodule.dev_dataloaders(settings.dev_sentences), device=model.device,
        precision=cfg.trainer.precision, granularity=settings.granularity, min_gain=settings.min_gain,
        default=model.default_threshold, dev_sentences=settings.dev_sentences, seed=cfg.seed,
    )  # fmt: skip
    apply_thresholds(model, tuning.thresholds)
    record = tuning.to_dict(model.label_space)
    if trainer.is_global_zero:
        checkpoint["state_dict"]["type_thresholds"] = model.type_thresholds.detach().cpu().clone()
        checkpoint[CHECKPOINT_KEY] = record
        AtomicCheckpointIO(trust=cfg.trust_checkpoint).save_checkpoint(checkpoint, best_path)
        print("\n".join(tuning.lines(model.label_space)), flush=True)
    trainer.strategy.barrier("decision_thresholds")
    return record
