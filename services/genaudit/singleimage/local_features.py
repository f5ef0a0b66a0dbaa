"""Per-location feature maps of float images in [-1, 1]: a verified truncated network (``local_spaces``), built once
per process, space, device and weights."""

from __future__ import annotations

import torch
from torch import nn

from genaudit.devices import resolve_device
from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.features.model_cache import ForkSafeModelCache
from genaudit.features.networks import build_feature_network
from genaudit.features.weights import load_state_dict, normalize_expected_sha256, resolve_weights
from genaudit.settings import Settings
from genaudit.singleimage.local_spaces import DEFAULT_LOCAL_SPACE, LocalFeatureSpace, get_local_space
from genaudit.storage.base import ObjectStore

# Inputs are generator outputs in [-1, 1]; a little slack for float rounding, none for images in [0, 1] or 0..255.
_RANGE_SLACK = 1e-4


class LocalFeatureExtractor:
    """Maps images (N, C, H, W) in [-1, 1] (C = 1 or 3; any size, not resized) to feature maps (N, D, h, w).

    ``preprocessing_id`` names everything besides the images that decides the features (the space's layer and
    input scaling, the sha256 of the weights file): use it in cache and result keys.
    """

    def __init__(self, space: LocalFeatureSpace, network: nn.Module, device: torch.device, weights_sha256: str):
        self.space = space
        self.name = space.name
        self.dim = space.dim
        self.device = device
        self.weights_sha256 = weights_sha256
        self.preprocessing_id = f"{space.id}:weights-sha256={weights_sha256}"
        self._network = network

    def __repr__(self) -> str:
        return f"LocalFeatureExtractor({self.name!r}, dim={self.dim}, device={str(self.device)!r})"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 feature maps (N, D, h, w) on the CPU; grey images are repeated to 3 channels."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InvalidArgument(f"{self.name} expects images (N, 1 or 3, H, W), got {shape}")
        if images.shape[0] == 0:
            raise InvalidArgument(f"{self.name} got an empty batch")
        side = min(images.shape[2:])
        if side < self.space.min_side:
            raise InvalidArgument(f"{self.name} needs image sides of at least {self.space.min_side} px, got "
                                  f"{tuple(images.shape[2:])}")
        with torch.inference_mode():
            x = images.detach().to(self.device, torch.float32, non_blocking=True)
            if not torch.isfinite(x).all():
                raise InvalidArgument("images contain NaN or infinite values")
            low, high = float(x.min()), float(x.max())
            if low < -1 - _RANGE_SLACK or high > 1 + _RANGE_SLACK:
                raise InvalidArgument(f"images must be in [-1, 1] (generator outputs), got values in "
                                      f"[{low:.4g}, {high:.4g}]")
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            out = self._network(x * self.space.input_scale + self.space.input_offset)
            return out.float().cpu()


_cache: ForkSafeModelCache[LocalFeatureExtractor] = ForkSafeModelCache()


def get_local_extractor(
    space: str = DEFAULT_LOCAL_SPACE,
    device: str = "auto",
    weights: str | None = None,
    expected_sha256: str | None = None,
    *,
    settings: Settings | None = None,
    store: ObjectStore | None = None,
) -> LocalFeatureExtractor:
    """The extractor of local space ``space`` on ``device``, built on first use and cached for the process.

    The weights are those of the space's base whole-image space and are found, fetched and verified the same way
    (``genaudit.features.weights.resolve_weights``; ``weights``: local path or ``s3://bucket/key``;
    ``expected_sha256`` replaces the pinned hash). Loading is strict: a file that does not fill every parameter of
    the network is refused, random weights are never used. The same fork rules as
    ``genaudit.features.get_extractor`` apply.
    """
    local_space = get_local_space(space)
    resolved_device = resolve_device(device)
    settings = settings or Settings.from_env()
    expected = normalize_expected_sha256(expected_sha256) if expected_sha256 else None
    key = (local_space.name, str(resolved_device), weights, expected, settings)

    def build() -> LocalFeatureExtractor:
        try:
            path, sha256 = resolve_weights(local_space.base, weights, expected, settings, store)
        except FailedPrecondition as exc:
            raise FailedPrecondition(f"local feature space {local_space.name!r} truncates the network of "
                                     f"{local_space.base.name!r} and uses its weights: {exc.message}") from exc
        network = build_feature_network(local_space.name, load_state_dict(path))
        return LocalFeatureExtractor(local_space, network.to(resolved_device), resolved_device, sha256)

    return _cache.get_or_build(key, build)
