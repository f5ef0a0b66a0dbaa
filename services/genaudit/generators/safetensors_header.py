"""Reading and checking a safetensors header without touching the tensor data.

Format (huggingface/safetensors): 8-byte little-endian unsigned header length N, then N bytes of UTF-8 JSON
``{"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}``,
then the data buffer; offsets are relative to the buffer's start. Everything a loader would allocate is
decided by this header, so it is checked against the real file size and our caps before any loading.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from genaudit.errors import InvalidArgument

MAX_HEADER_BYTES = 16 * 1024 * 1024
# Floating dtypes a generator's weights may have, with their sizes in bytes.
FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
# Every dtype safetensors defines, to tell "not allowed" from "not a safetensors dtype".
_KNOWN_DTYPES = {
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
}


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    header_bytes: int  # N
    data_bytes: int  # size of the data buffer (file size - 8 - N)


def read_header_bytes(source: Path | bytes) -> tuple[bytes, int]:
    """(header JSON bytes, total size of the file or buffer); reads only the header of a file."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source[: 8 + MAX_HEADER_BYTES])
        total = len(source)
    else:
        total = source.stat().st_size
        with open(source, "rb") as f:
            data = f.read(8)
            if len(data) == 8:
                declared = struct.unpack("<Q", data)[0]
                data += f.read(min(declared, MAX_HEADER_BYTES))
    if total < 8 or len(data) < 8:
        raise InvalidArgument(f"not a safetensors file: {total} bytes, shorter than the 8-byte header length")
    (declared,) = struct.unpack("<Q", data[:8])
    if declared > MAX_HEADER_BYTES:
        raise InvalidArgument(f"not a safetensors file (or a hostile one): header length {declared} bytes, "
                              f"cap {MAX_HEADER_BYTES}")
    if declared < 2 or 8 + declared > total:
        raise InvalidArgument(f"not a safetensors file: header length {declared} does not fit in {total} bytes")
    header = data[8 : 8 + declared]
    if header[:1] != b"{":
        raise InvalidArgument("not a safetensors file: the header is not a JSON object (pickle, zip or .pt files "
                              "are refused; convert with safetensors.torch.save_file)")
    return header, total


def parse_header(source: Path | bytes, max_data_bytes: int) -> SafetensorsHeader:
    """The checked header of ``source``: known dtypes, non-negative integer shapes, byte ranges matching
    shape x dtype size, ranges tiling the data buffer exactly, buffer size = file size - header, and the
    total claimed size within ``max_data_bytes``. Raises InvalidArgument naming the first problem."""
    header, total = read_header_bytes(source)
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"safetensors header is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("safetensors header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidArgument("safetensors __metadata__ must map strings to strings")
    data_bytes = total - 8 - len(header)
    tensors = {name: _entry(name, raw) for name, raw in parsed.items()}
    claimed = sum(e.end - e.begin for e in tensors.values())
    if claimed > max_data_bytes:
        raise InvalidArgument(f"safetensors header declares {claimed} bytes of tensors, over the cap of "
                              f"{max_data_bytes} bytes")
    position = 0
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            raise InvalidArgument(f"tensor {name!r} starts at byte {entry.begin} of the data buffer, expected "
                                  f"{position} (overlapping or gapped tensors)")
        position = entry.end
    if position != data_bytes:
        raise InvalidArgument(f"safetensors header declares {position} bytes of tensor data but the file holds "
                              f"{data_bytes}")
    return SafetensorsHeader(tensors, dict(metadata), len(header), data_bytes)


def _entry(name: str, raw: object) -> TensorEntry:
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        raise InvalidArgument(f"tensor {name!r}: header entry must hold exactly dtype, shape and data_offsets")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if dtype not in _KNOWN_DTYPES:
        raise InvalidArgument(f"tensor {name!r}: unknown dtype {dtype!r}")
    if dtype not in FLOAT_DTYPES:
        raise InvalidArgument(f"tensor {name!r}: dtype {dtype} is not allowed; weights must be one of "
                              f"{sorted(FLOAT_DTYPES)}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidArgument(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise InvalidArgument(f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end")
    size = math.prod(shape) * FLOAT_DTYPES[dtype]
    if offsets[1] - offsets[0] != size:
        raise InvalidArgument(f"tensor {name!r}: shape {shape} of {dtype} needs {size} bytes, data_offsets "
                              f"give {offsets[1] - offsets[0]}")
    return TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
