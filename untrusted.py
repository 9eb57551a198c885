"""Files from others are read as data only: nothing in them is run, fetched or waited on.

A colleague's checkpoint, a shared export directory, an encoder directory named by a config and a user's
documents may be crafted. Two rules hold for every loader of the project, and live here once:

- **Only regular files are opened** (``regular_file``): opening a FIFO blocks until someone writes to it,
  i.e. forever, and a device or socket is no file of a model or a corpus. A symlink counts as its target.
  The check is ``os.stat``, made before anything opens the file.
- **No code from a model directory or config** (``pretrained``, ``refuse_code_settings``): every
  ``transformers`` load passes ``trust_remote_code=False`` (transformers then raises where it would
  otherwise ask "Do you wish to run the custom code? [y/N]" on stdout and read the answer from stdin) and,
  for a local directory, ``local_files_only=True``. Before that, settings that would make transformers
  import a ``.py`` file or fetch code from the hub are refused in one line naming the file and the key:
  ``auto_map`` (classes from Python files next to the config) and an ``attn_implementation`` other than
  the built-in ones (anything else is a kernel downloaded from the hub). ``--trust-checkpoint`` is about
  pickles only and changes none of this.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from errors import BionerError, CheckpointError

BUILTIN_ATTENTION = ("eager", "sdpa")
ATTENTION_KEYS = ("attn_implementation", "_attn_implementation", "_attn_implementation_internal")
CONFIG_FILES = ("config.json", "tokenizer_config.json")  # what transformers reads auto_map from
# the JSON files a transformers config or tokenizer load parses; each is parsed here first, within a size
# limit far above real ones (XLM-R's tokenizer.json: 17 MB; Gemma 3's: 33 MB)
JSON_FILES = (*CONFIG_FILES, "tokenizer.json", "special_tokens_map.json", "added_tokens.json")
MAX_JSON_BYTES = 128 * 2**20

T = TypeVar("T")


class RemoteCodeError(CheckpointError):
    """A model file or config asks transformers to import or fetch code: refused, nothing of it ran."""


def _input_error(path: str | Path, problem: str) -> BionerError:
    return BionerError(f"{path}: {problem}")


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def regular_file(path: str | Path, error: Callable[[str | Path, str], BionerError] = _input_error) -> Path:
    """``path``, refused with ``error(path, problem)`` before anything opens it when it exists but is not a
    regular file (through symlinks): a FIFO would block the reader forever. A path that cannot be
    ``stat``-ed is left to the opener, which fails at once with its own message (no such file...)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return Path(path)
    if not stat.S_ISREG(mode):
        raise error(path, f"{_kind(mode)}, not a regular file; only regular files are read")
    return Path(path)


def _cut(value: Any, limit: int = 80) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _builtin_attention(value: Any) -> bool:
    if isinstance(value, Mapping):  # one implementation per sub-config
        return all(_builtin_attention(v) for v in value.values())
    return value is None or value in BUILTIN_ATTENTION


def refuse_code_settings(config: Any, where: str | Path, prefix: str = "") -> None:
    """Raise ``RemoteCodeError`` naming ``where`` and the key when the transformers config (or tokenizer
    config) dict ``config``, sub-configs included, holds ``auto_map`` or a non-built-in
    ``attn_implementation``; ``prefix``: where ``config`` sits inside the file, for the message."""
    stack: list[tuple[str, Any]] = [(prefix, config)]
    while stack:  # iterative: a crafted file may nest deeper than Python's recursion limit
        path, node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        for key, value in node.items():
            name = f"{path}.{key}" if path else str(key)
            if key == "auto_map":
                raise RemoteCodeError(
                    where,
                    f"refused: {name} = {_cut(value)} names Python code to import, and this project never "
                    "runs code from a model file; remove the key to load the model with transformers' "
                    "built-in classes",
                )
            if key in ATTENTION_KEYS and not _builtin_attention(value):
                raise RemoteCodeError(
                    where,
                    f"refused: {name} = {_cut(value)} would fetch an attention kernel from the hub; only "
                    f"{' or '.join(BUILTIN_ATTENTION)} load: remove the key or set one of them",
                )
            stack.append((name, value))


def check_model_dir(directory: str | Path) -> None:
    """Refuse a model directory (an encoder or an export) before transformers or safetensors reads it:
    every file in it must be regular, its JSON files (``JSON_FILES``) readable JSON of at most
    ``MAX_JSON_BYTES``, and its ``config.json``/``tokenizer_config.json`` must ask for no code
    (``refuse_code_settings``)."""
    directory = Path(directory)
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        try:
            is_dir = entry.is_dir()  # follows symlinks, like a reader would
        except OSError:
            is_dir = False
        if not is_dir:
            regular_file(entry.path, CheckpointError)
    for name in JSON_FILES:
        path = directory / name
        if not path.exists():
            continue
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(
                path, f"{size:,} bytes, over the {MAX_JSON_BYTES:,} a model's JSON file may have"
            )
        try:
            content = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as err:
            raise CheckpointError(path, f"not a JSON file ({_cut(str(err))})") from None
        if name in CONFIG_FILES:
            refuse_code_settings(content, path)


def pretrained(load: Callable[..., T], name_or_path: str | Path, **kwargs: Any) -> T:
    """``load(name_or_path, **kwargs)`` for a transformers ``from_pretrained``, with remote code off and,
    for a local directory, checked first (``check_model_dir``) and read offline; a loaded config is
    checked too (a hub name has no directory to check before)."""
    local = Path(name_or_path).is_dir()
    if local:
        check_model_dir(name_or_path)
    try:
        loaded = load(str(name_or_path), trust_remote_code=False, local_files_only=local, **kwargs)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise RemoteCodeError(
                name_or_path,
                "refused: it needs Python code from the model files, which this project never runs",
            ) from None
        raise
    except (OSError, BionerError):
        raise
    except Exception as err:  # a crafted local file fails deep in transformers or the tokenizers library
        if not local:
            raise
        raise CheckpointError(
            name_or_path, f"cannot load it ({type(err).__name__}: {_cut(str(err), 200)})"
        ) from None
    from transformers import PretrainedConfig

    if isinstance(loaded, PretrainedConfig):
        refuse_code_settings({"attn_implementation": loaded._attn_implementation}, name_or_path)
    return loaded
