"""Check a checkpoint against the model it is about to be loaded into, before Lightning touches it.

Lightning would fail deep inside ``fit``/``test`` with a bare ``RuntimeError``/``ValueError`` (or a zip
error for a truncated file); this names the file and what does not fit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from errors import CheckpointError


def read_checkpoint(path: str | Path, *, map_location: str = "cpu") -> dict:
    """Load ``path`` (memory-mapped); a missing, truncated or non-Lightning file is a ``CheckpointError``."""
    try:
        checkpoint = torch.load(path, map_location=map_location, mmap=True, weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except Exception as err:  # truncated or not a torch file at all
        raise CheckpointError(path, f"not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(path, "not a Lightning checkpoint (no state_dict)")
    return checkpoint


def checkpoint_model_name(checkpoint: dict) -> str | None:
    """The registry name a checkpoint was trained with (``None`` when it does not say)."""
    cfg = (checkpoint.get("hyper_parameters") or {}).get("cfg") or {}
    name = (cfg.get("model") or {}).get("name")
    return str(name) if name else None


def check_checkpoint(
    path: str | Path, model: nn.Module, label_space: dict | None = None, *, checkpoint: dict | None = None
) -> dict:
    """Check that the checkpoint at ``path`` can resume ``model``; returns the checkpoint dict.

    ``checkpoint``: the already-read dict of ``path``, to avoid reading it twice.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(path)
    saved_model = checkpoint_model_name(checkpoint)
    model_cfg = getattr(model, "cfg", None)
    current_model = model_cfg["model"]["name"] if isinstance(model_cfg, dict) else None
    if saved_model and current_model and saved_model != current_model:
        problem = f"trained with model={saved_model}, this run has model={current_model}"
        raise CheckpointError(path, f"{problem} (pass model={saved_model})")
    saved_space = (checkpoint.get("hyper_parameters") or {}).get("label_space")
    if label_space is not None and saved_space is not None and dict(saved_space) != dict(label_space):
        from datamodules.label_space import LabelSpace

        saved_corpora, corpora = (
            LabelSpace.from_dict(saved_space).corpora,
            LabelSpace.from_dict(label_space).corpora,
        )
        raise CheckpointError(
            path,
            f"trained on corpora {list(saved_corpora)}, this run has {list(corpora)} "
            "(set data.corpora to match)",
        )
    saved, current = checkpoint["state_dict"], model.state_dict()
    missing, unexpected = sorted(current.keys() - saved.keys()), sorted(saved.keys() - current.keys())
    if missing or unexpected:
        detail = "; ".join(
            f"{what} {len(keys)} (e.g. {keys[0]})"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise CheckpointError(path, f"parameters do not match this model: {detail}")
    for name, tensor in current.items():
        if saved[name].shape != tensor.shape:
            raise CheckpointError(
                path,
                f"{name} has shape {tuple(saved[name].shape)} in the checkpoint, {tuple(tensor.shape)} here "
                "(a different encoder.name or model size?)",
            )
    return checkpoint


def newest_good_checkpoint(run_dir: Path) -> str | None:
    """The readable checkpoint of ``run_dir`` with the most optimiser steps (ties: the newest file).

    Candidates: ``checkpoints/*.ckpt`` and SLURM's ``hpc_ckpt_*.ckpt``. An unreadable checkpoint newer
    than the chosen one gets a one-line warning that names it.
    """
    candidates = [*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    good: list[tuple[int, float, Path]] = []
    bad: list[tuple[float, str]] = []
    for path in candidates:
        mtime = path.stat().st_mtime
        try:
            good.append((int(read_checkpoint(path).get("global_step", 0)), mtime, path))
        except CheckpointError as err:
            bad.append((mtime, str(err)))
    chosen = max(good, default=None)
    for mtime, problem in sorted(bad, reverse=True):
        if chosen is None or mtime >= chosen[1]:
            fallback = f"resuming from {chosen[2]}" if chosen else "starting from scratch"
            print(f"warning: resume=auto skips {problem}; {fallback}", file=sys.stderr, flush=True)
    return str(chosen[2]) if chosen else None
