"""Feature extractors: a verified network plus its preprocessing, built once per process and space."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from genaudit.devices import resolve_device
from genaudit.errors import InvalidArgument
from genaudit.features.model_cache import ForkSafeModelCache
from genaudit.features.networks import build_feature_network
from genaudit.features.preprocessing import preprocess_image
from genaudit.features.spaces import DEFAULT_SPACE, FeatureSpace, get_space
from genaudit.features.weights import load_state_dict, normalize_expected_sha256, resolve_weights
from genaudit.settings import Settings
from genaudit.storage.base import ObjectStore


class FeatureExtractor:
    """Maps preprocessed image batches to features of one space.

    ``preprocessing_id`` names everything besides the space that decides the features of an image: the
    preprocessing steps and the sha256 of the weights file (user weights pinned with ``expected_sha256``
    must not share cache entries with the official ones). Use it, with ``name``, in cache keys.
    """

    def __init__(self, space: FeatureSpace, network: nn.Module, device: torch.device, weights_sha256: str):
        self.space = space
        self.name = space.name
        self.dim = space.dim
        self.input_size = space.input_size
        self.weights_sha256 = weights_sha256
        self.preprocessing_id = f"{space.preprocessing.id}:weights-sha256={weights_sha256}"
        self.device = device
        self._network = network

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r}, dim={self.dim}, device={str(self.device)!r})"

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """Float32 CPU tensor (3, input_size, input_size), the same steps for real and generated images."""
        return preprocess_image(img, self.space.preprocessing)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Features (N, dim), float32 on the CPU, of a batch (N, 3, input_size, input_size) of
        ``preprocess`` outputs."""
        expected = (3, self.input_size, self.input_size)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise InvalidArgument(f"{self.name} expects a batch of shape (N, {expected}), got {tuple(batch.shape)}")
        with torch.inference_mode():
            out = self._network(batch.to(self.device, torch.float32, non_blocking=True))
            return out.float().cpu()


_cache: ForkSafeModelCache[FeatureExtractor] = ForkSafeModelCache()


def get_extractor(
    space: str = DEFAULT_SPACE,
    device: str = "auto",
    weights: str | None = None,
    expected_sha256: str | None = None,
    *,
    settings: Settings | None = None,
    store: ObjectStore | None = None,
) -> FeatureExtractor:
    """The extractor of ``space`` on ``device``, built on first use and cached for the process.

    ``weights``: local path or ``s3://bucket/key`` of the weights file (see ``genaudit.features.weights``
    for where it is looked up otherwise). ``expected_sha256`` replaces the pinned hash of the official
    file (full hash or a prefix of at least 8 hex digits). ``settings`` defaults to
    ``Settings.from_env()`` (weights_dir, S3); ``store`` serves s3:// URIs instead of
    ``open_store(settings)``. Nothing touches CUDA before the first call. A prefork parent may build
    CPU extractors for its children to inherit, but must not run them: once torch has run parallel CPU
    work in a process, its forked children hang or crash in their own (libgomp thread pool); CUDA
    extractors are never inherited (rebuilt in the child).
    """
    feature_space = get_space(space)
    resolved_device = resolve_device(device)
    settings = settings or Settings.from_env()
    expected = normalize_expected_sha256(expected_sha256) if expected_sha256 else None
    key = (feature_space.name, str(resolved_device), weights, expected, settings)

    def build() -> FeatureExtractor:
        path, sha256 = resolve_weights(feature_space, weights, expected, settings, store)
        network = build_feature_network(feature_space.name, load_state_dict(path))
        return FeatureExtractor(feature_space, network.to(resolved_device), resolved_device, sha256)

    return _cache.get_or_build(key, build)
