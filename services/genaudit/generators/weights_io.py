"""Safetensors weights of a registered architecture: saving with arch and config in the metadata, and the
checked loading that generators (``loading``) and detectors (``genaudit.forensics.detectors.io``) share.

Order of checks in :func:`load_checked`:

1. ``config``, when given, is within the architecture's bounds (the caller's ``validate``);
2. the file is fetched (local path, ``s3://bucket/key`` or bytes) and, with ``expected_sha256``, its hash
   is verified (IntegrityError on mismatch), through ``genaudit.features.weights``' helpers;
3. its safetensors header is parsed and checked alone (``safetensors_header``): dtypes F32/F16/BF16, byte
   ranges consistent with shapes and the file size, total size within ``max_bytes``;
4. the network is built on the meta device (no memory) and its tensor names and shapes must equal the
   header's exactly (missing and unexpected names are listed);
5. only then are the tensors read (``safetensors.torch.load_file`` / ``load``) and loaded into a real network.

Pickle-based formats (.pt, .pth, .ckpt) are refused at step 3: ``torch.load`` is never called here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file, save_file

from genaudit.errors import FailedPrecondition, IntegrityError, InvalidArgument
from genaudit.features.weights import fetch_s3, normalize_expected_sha256, parse_s3_uri, verify_sha256
from genaudit.generators.safetensors_header import SafetensorsHeader, parse_header
from genaudit.settings import Settings
from genaudit.storage.base import ObjectStore

DEFAULT_MAX_WEIGHTS_BYTES = 512 * 1024 * 1024
# The one safetensors metadata key save_weights writes: JSON {"arch": ..., "config": {...}}. One key, because
# safetensors writes its metadata map in random order and files must be byte-reproducible.
METADATA_KEY = "genaudit"

WeightsSource = str | Path | bytes


def expected_tensors(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Names and shapes a weights file of ``model`` must hold: its floating-point state (parameters and
    float buffers such as batch-norm statistics; the integer ``num_batches_tracked`` counters are not
    weights and are left out)."""
    return {name: tuple(t.shape) for name, t in model.state_dict().items() if t.is_floating_point()}


def save_weights(model: torch.nn.Module, path: Path | str, arch: str, full_config: Mapping[str, Any]) -> None:
    """Writes ``model``'s weights (``expected_tensors``) as float32 safetensors with ``arch`` and the
    (already validated) ``full_config`` in the metadata, so that loading needs no config."""
    names = expected_tensors(model)
    state = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in model.state_dict().items()
             if name in names}
    metadata = json.dumps({"arch": arch, "config": dict(full_config)}, sort_keys=True)
    save_file(state, str(path), metadata={METADATA_KEY: metadata})


def load_checked(
    arch: str,
    weights: WeightsSource,
    config: Mapping[str, Any] | None,
    device: str | torch.device,
    *,
    validate: Callable[[Mapping[str, Any] | None], dict[str, Any]],
    build: Callable[[dict[str, Any]], torch.nn.Module],
    kind: str,
    expected_sha256: str | None = None,
    max_bytes: int = DEFAULT_MAX_WEIGHTS_BYTES,
    settings: Settings | None = None,
    store: ObjectStore | None = None,
) -> torch.nn.Module:
    """A network of ``arch`` with the weights of a safetensors file, in eval mode on ``device``, after the
    checks of the module docstring.

    ``validate(config)`` returns the full constructor kwargs (defaults filled in) or raises InvalidArgument;
    ``build(full_config)`` constructs the network (it is called once on the meta device); ``kind`` names the
    model in error messages ("generator", "detector"). ``config`` None takes it from the file's metadata
    (written by :func:`save_weights`), else the defaults.
    """
    if config is not None:
        validate(config)
    expected = normalize_expected_sha256(expected_sha256) if expected_sha256 is not None else None
    source = _local_source(weights, expected, settings or Settings.from_env(), store, max_bytes, kind)
    header = parse_header(source, max_bytes)
    if config is None:
        config = _config_from_metadata(arch, header)
    full_config = validate(config)
    with torch.device("meta"):  # names and shapes without allocating a single weight
        skeleton = build(full_config)
    _check_names_and_shapes(arch, full_config, expected_tensors(skeleton), header)

    state = load_file(str(source), device="cpu") if isinstance(source, Path) else load_safetensors_bytes(source)
    model = build(full_config)
    reference = model.state_dict()
    state = {name: t.to(reference[name].dtype) for name, t in state.items()}
    # strict=False only for the integer counters left out of expected_tensors; names were checked above.
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def _local_source(
    weights: WeightsSource, expected: str | None, settings: Settings, store: ObjectStore | None, max_bytes: int,
    kind: str,
) -> Path | bytes:
    if isinstance(weights, bytes | bytearray | memoryview):
        data = bytes(weights)
        actual = hashlib.sha256(data).hexdigest()
        if expected is not None and not actual.startswith(expected):
            raise IntegrityError(f"{kind} weights (bytes) have sha256 {actual}, expected {expected}")
        return data
    if isinstance(weights, str) and weights.startswith("s3://"):
        if expected is not None:
            return fetch_s3(weights, expected, settings, store)  # cached by hash, verified
        return _get_s3_bytes(weights, settings, store, max_bytes)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InvalidArgument(f"{kind} weights file {str(weights)!r} does not exist")
    if expected is not None:
        verify_sha256(path, expected)
    return path


def _get_s3_bytes(uri: str, settings: Settings, store: ObjectStore | None, max_bytes: int) -> bytes:
    """An unpinned object, read into memory (not cached: nothing identifies a stale copy) after a size check."""
    bucket, key = parse_s3_uri(uri)
    if store is None:
        if not settings.s3_endpoint:
            raise FailedPrecondition(f"weights {uri} are on S3 but no S3 endpoint is configured (setting "
                                     "s3_endpoint, env GENAUDIT_S3_ENDPOINT)")
        from genaudit.storage import open_store  # lazily: the minio client is only needed here

        store = open_store(dataclasses.replace(settings, s3_bucket=bucket))
    size = store.stat(key).size
    if size > max_bytes + 8 + 16 * 1024 * 1024:
        raise InvalidArgument(f"weights object {uri} is {size} bytes, over the cap of {max_bytes} bytes")
    return store.get_bytes(key)


def _config_from_metadata(arch: str, header: SafetensorsHeader) -> Mapping[str, Any]:
    if METADATA_KEY not in header.metadata:
        return {}
    try:
        saved = json.loads(header.metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"weights metadata {METADATA_KEY!r} is not JSON: {exc}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise InvalidArgument(f"weights metadata {METADATA_KEY!r} must be a JSON object with a config object")
    if saved.get("arch") != arch:
        raise InvalidArgument(f"weights were saved for architecture {saved.get('arch')!r}, not {arch!r}")
    return saved["config"]


def _check_names_and_shapes(
    arch: str, config: Mapping[str, Any], expected: dict[str, tuple[int, ...]], header: SafetensorsHeader
) -> None:
    missing = sorted(set(expected) - set(header.tensors))
    unexpected = sorted(set(header.tensors) - set(expected))
    if missing or unexpected:
        raise InvalidArgument(
            f"weights do not match architecture {arch!r} with config {dict(config)}: missing tensors {missing}, "
            f"unexpected tensors {unexpected}"
        )
    wrong = [f"{name}: file {list(header.tensors[name].shape)}, expected {list(shape)}"
             for name, shape in expected.items() if header.tensors[name].shape != shape]
    if wrong:
        raise InvalidArgument(f"weights do not match architecture {arch!r} with config {dict(config)}: wrong shapes: "
                              + "; ".join(wrong))
