"""Read checkpoints safely, and check one against the model it is about to be loaded into, before Lightning
touches it.

Every checkpoint load of the project goes through ``read_checkpoint`` (Lightning's own too, through
``training.checkpointing.AtomicCheckpointIO``): ``torch.load(weights_only=True)`` with exactly
``CHECKPOINT_GLOBALS`` allowed, so a file that would run code when unpickled is refused, naming the first
global it needs; ``trust=True`` (``--trust-checkpoint``, ``trust_checkpoint=true``) loads such a file the
old way. Before that, the file must be a regular file (a FIFO would block the load forever), and after it,
the encoder config it carries must ask transformers for no code (``untrusted``), whatever ``trust`` says.

Lightning would fail deep inside ``fit``/``test`` with a bare ``RuntimeError``/``ValueError`` (or a zip
error for a truncated file); ``check_checkpoint`` names the file and what does not fit.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from errors import CheckpointError
from untrusted import refuse_code_settings, regular_file

# What a checkpoint of this project may hold beyond torch's own weights_only set (tensors and their
# storages, OrderedDict, dtypes, torch.Size, plain containers and numbers): nothing. Every checkpoint this
# project writes (each model, a SIGTERM, DDP and SLURM hpc_ckpt checkpoint, and those written before the
# safe loader; tests/test_safe_loading.py) holds only the globals collections.OrderedDict,
# torch._utils._rebuild_tensor_v2 and torch.{Float,Long,Byte}Storage, all in torch's set: Lightning's loop,
# callback, optimizer and scheduler states are dicts of numbers, strings and tensors, the sampler state is
# plain numbers, the RNG states are tensors, lists and tuples of ints (training.checkpointing.
# RNGStateCheckpoint), the label space and the run config are plain dicts. A type added here is a type any
# file may then build.
CHECKPOINT_GLOBALS: tuple[Any, ...] = ()

_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint that needs more than ``CHECKPOINT_GLOBALS`` to load: refused, nothing of it was run."""

    def __init__(self, path: str | Path, global_name: str):
        self.global_name = global_name
        super().__init__(
            path,
            f"refused: it needs {global_name}, which no checkpoint of this project holds, and loading it "
            "could run code from the file; only for a file you trust: --trust-checkpoint "
            "(train.py: trust_checkpoint=true)",
        )


@contextlib.contextmanager
def _only_checkpoint_globals() -> Iterator[None]:
    """Allow exactly ``CHECKPOINT_GLOBALS`` for the duration, whatever a library added process-wide."""
    serialization = torch.serialization
    before = serialization.get_safe_globals()
    serialization.clear_safe_globals()
    serialization.add_safe_globals(list(CHECKPOINT_GLOBALS))
    try:
        yield
    finally:
        serialization.clear_safe_globals()
        serialization.add_safe_globals(before)


def _disallowed_global(path: str | Path, err: pickle.UnpicklingError) -> str | None:
    """The first global the restricted unpickler refused (from torch's message, else from the file)."""
    found = _GLOBAL_NAME.search(str(err))
    if found:
        return found.group(1).rstrip(".")
    try:
        with _only_checkpoint_globals():
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: torch's message is all there is
        return None
    return unsafe[0] if unsafe else None


def read_checkpoint(
    path: str | Path, *, map_location: str = "cpu", trust: bool = False, mmap: bool = True
) -> dict:
    """Load ``path`` restricted to plain data (``CHECKPOINT_GLOBALS``; memory-mapped unless ``mmap=False``).

    A file that needs anything else is an ``UntrustedCheckpointError`` naming the first such global, and
    nothing of it ran; ``trust=True`` loads it unrestricted (a file one trusts). A missing, truncated,
    non-regular or non-Lightning file is a ``CheckpointError``, and so is an encoder config that would run
    or fetch code (``untrusted.RemoteCodeError``)."""
    regular_file(path, CheckpointError)
    if Path(path).is_file() and not _torch_archive(path):
        size = Path(path).stat().st_size
        what = "an empty file" if size == 0 else f"{size} bytes that are not a torch.save archive"
        raise CheckpointError(path, f"not a readable checkpoint: {what} (train.py writes .ckpt zip archives)")
    try:
        if trust:
            checkpoint = torch.load(path, map_location=map_location, mmap=mmap, weights_only=False)
        else:
            with _only_checkpoint_globals():
                checkpoint = torch.load(path, map_location=map_location, mmap=mmap, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except pickle.UnpicklingError as err:
        name = None if trust else _disallowed_global(path, err)
        if name is not None:
            raise UntrustedCheckpointError(path, name) from None
        raise CheckpointError(path, f"not a readable checkpoint ({_first_line(err)})") from None
    except Exception as err:  # truncated or not a torch file at all
        raise CheckpointError(path, f"not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(path, "not a Lightning checkpoint (no state_dict)")
    state = checkpoint["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        what = f"a {type(state).__name__}" if not isinstance(state, Mapping) else "a mapping with non-tensors"
        raise CheckpointError(path, f"its state_dict is {what}, not parameter names and tensors")
    hparams = checkpoint.get("hyper_parameters")
    if isinstance(hparams, dict):
        refuse_code_settings(hparams.get("encoder_config"), path, "hyper_parameters.encoder_config")
    return checkpoint


def _torch_archive(path: str | Path) -> bool:
    """Whether ``path`` is a zip archive as ``torch.save`` writes it (a ``data.pkl`` inside), so that torch's
    own message about anything else (its ``mmap`` advice) never reaches a user."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _first_line(err: BaseException) -> str:
    """``err`` in one line: torch's unpickler reason when it gives one, else its first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = next(
        (line for line in lines if line.startswith("WeightsUnpickler error:")), lines[0] if lines else ""
    )
    return f"{type(err).__name__}: {reason[:300]}"


def checkpoint_model_name(checkpoint: dict) -> str | None:
    """The registry name a checkpoint was trained with (``None`` when it does not say, or its
    ``hyper_parameters`` are not the mappings train.py writes)."""
    section: Any = checkpoint
    for key in ("hyper_parameters", "cfg", "model"):
        section = section.get(key) if isinstance(section, Mapping) else None
    name = section.get("name") if isinstance(section, Mapping) else None
    return name if isinstance(name, str) and name else None


def check_checkpoint(
    path: str | Path,
    model: nn.Module,
    label_space: dict | None = None,
    *,
    checkpoint: dict | None = None,
    trust: bool = False,
) -> dict:
    """Check that the checkpoint at ``path`` can resume ``model``; returns the checkpoint dict.

    ``checkpoint``: the already-read dict of ``path``, to avoid reading it twice; ``trust``: see
    ``read_checkpoint``.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(path, trust=trust)
    saved_model = checkpoint_model_name(checkpoint)
    current_model = getattr(getattr(model, "model_cfg", None), "name", None)
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
    optional = getattr(model, "optional_state_keys", frozenset())  # older checkpoints lack these
    check_state_shapes(
        path,
        {k: tuple(v.shape) for k, v in current.items()},
        {k: tuple(v.shape) for k, v in saved.items()},
        optional,
    )
    return checkpoint


def check_state_shapes(
    path: str | Path,
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    optional: frozenset[str] = frozenset(),
    *,
    source: str = "the checkpoint",
) -> None:
    """``found`` (the shapes ``source`` holds) has exactly the keys and shapes of ``expected`` (those of the
    model), but for ``optional`` keys it may lack; a ``CheckpointError`` naming ``path`` otherwise."""
    missing = sorted(expected.keys() - found.keys() - optional)
    unexpected = sorted(found.keys() - expected.keys())
    if missing or unexpected:
        detail = "; ".join(
            f"{what} {len(keys)} (e.g. {_cut(keys[0])})"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise CheckpointError(path, f"parameters do not match this model: {detail}")
    for name, shape in expected.items():
        if name in found and tuple(found[name]) != tuple(shape):
            raise CheckpointError(
                path,
                f"{name} has shape {tuple(found[name])} in {source}, {tuple(shape)} here "
                "(a different encoder.name or model size?)",
            )


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
