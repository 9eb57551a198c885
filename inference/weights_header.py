"""The tensor shapes of a safetensors file, from its header alone: an export's weights are compared with
the model its ``bioner_model.json`` describes before any tensor is allocated (``model_bounds``).

The format: 8 bytes, the little-endian length ``n`` of a JSON header, then the header, then the data. The
header maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the
data); ``__metadata__`` holds strings. A header is read only up to ``MAX_HEADER_BYTES`` (a real export's is
tens of kilobytes: about 150 bytes per tensor), and each tensor's extent is checked against its shape and
against the file's length, so a truncated file is refused here rather than by the loader.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from errors import CheckpointError

MAX_HEADER_BYTES = 16 * 2**20
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of the safetensors file ``path``; a ``CheckpointError`` naming it when
    the header is malformed, over ``MAX_HEADER_BYTES`` or describes data the file does not hold."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, 2)
            file.seek(0)
            prefix = file.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(path, _bad(f"a header length of {length} in a file of {size} bytes"))
            raw = file.read(length)
    except OSError as err:
        raise CheckpointError(path, f"cannot read ({err.strerror or err})") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(path, _bad("a header that is not JSON")) from None
    if not isinstance(header, dict):
        raise CheckpointError(path, _bad("a header that is not a JSON object"))
    data_bytes = size - 8 - length
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = _checked_entry(entry, data_bytes)
        if shape is None:
            raise CheckpointError(path, _bad(f"tensor {name[:80]!r}: an entry the file does not hold"))
        shapes[name] = shape
    return shapes


def _checked_entry(entry: object, data_bytes: int) -> tuple[int, ...] | None:
    """The entry's shape, when its dtype is known and its data span matches its shape within the data."""
    if not isinstance(entry, dict):
        return None
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES or not isinstance(shape, list) or not isinstance(offsets, list):
        return None
    if not all(type(n) is int and n >= 0 for n in shape) or len(offsets) != 2:
        return None
    if not all(type(n) is int for n in offsets) or not 0 <= offsets[0] <= offsets[1] <= data_bytes:
        return None
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
        return None
    return tuple(shape)


def _bad(what: str) -> str:
    return f"not a safetensors file ({what}); export the model again"
