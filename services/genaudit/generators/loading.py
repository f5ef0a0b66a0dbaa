"""Loading user generator weights safely: safetensors only, checked against the architecture before allocation.

``load_generator(arch, weights, config)`` checks, in order (``weights_io.load_checked``, shared with the
detectors): ``arch`` is registered and ``config`` is within the architecture's bounds (``registry``); the file
is fetched (local path, ``s3://bucket/key`` or bytes) and its sha256 verified when pinned; its safetensors
header alone is checked (dtypes F32/F16/BF16, byte ranges, total size within ``max_bytes``); the network built
on the meta device must have exactly the header's tensor names and shapes; only then are the tensors read.

Pickle-based formats (.pt, .pth, .ckpt) are refused at the header check: ``torch.load`` is never called here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genaudit.generators.base import Generator, ImageToImage
from genaudit.generators.registry import build_generator, get_architecture
from genaudit.generators.weights_io import (
    DEFAULT_MAX_WEIGHTS_BYTES,
    METADATA_KEY,
    expected_tensors,
    load_checked,
    save_weights,
)
from genaudit.settings import Settings
from genaudit.storage.base import ObjectStore

__all__ = ["DEFAULT_MAX_WEIGHTS_BYTES", "METADATA_KEY", "expected_tensors", "load_generator", "save_generator"]


def save_generator(model: Generator | ImageToImage, path: Path, arch: str, config: Mapping[str, Any]) -> None:
    """Writes ``model``'s weights (``expected_tensors``) as float32 safetensors with arch and config in the
    metadata, so that ``load_generator(arch, path)`` needs no config."""
    save_weights(model, path, arch, get_architecture(arch).validate_config(config))


def load_generator(
    arch: str,
    weights: str | Path | bytes,
    config: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    *,
    expected_sha256: str | None = None,
    max_bytes: int = DEFAULT_MAX_WEIGHTS_BYTES,
    settings: Settings | None = None,
    store: ObjectStore | None = None,
) -> Generator | ImageToImage:
    """A generator of architecture ``arch`` with the weights of a safetensors file, in eval mode on ``device``.

    ``weights``: local path, ``s3://bucket/key`` (fetched via ``genaudit.storage``; cached in
    ``settings.weights_dir`` when ``expected_sha256`` pins it) or the file's bytes. ``config``: constructor
    arguments within the architecture's bounds; None takes them from the file's metadata (written by
    ``save_generator``), else the defaults. Raises InvalidArgument for any refused file or config,
    IntegrityError when the file does not match ``expected_sha256``.
    """
    spec = get_architecture(arch)
    return load_checked(arch, weights, config, device, validate=spec.validate_config,
                        build=lambda full: build_generator(arch, full), kind="generator",
                        expected_sha256=expected_sha256, max_bytes=max_bytes, settings=settings, store=store)
