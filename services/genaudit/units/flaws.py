"""Flawed samples labelled without humans: a per-image flaw score (higher = more likely flawed) from a pluggable
scorer, then a boolean label at a threshold. The labels train Tousi et al.'s artifact classifier
(``units.artifact_units``).

Scorers, each returning float64 (N,):

- ``rare_neuron_scores``: the artifact score of Choi, Chang & Choi (IJCAI 2022) from ``units.rare``: the number
  of rare neurons (0 < freq <= R) an image activates, summed over the monitored layers;
- ``low_realism_scores``: 1 / realism(g) in a feature space, realism from ``genaudit.metrics.realism``
  (Kynkäänniemi et al. 2019): max over the real balls with radius <= median radius of radius_i / ||g - r_i||.
  A score > 1 means g lies outside every one of those balls (off the real manifold); +inf when realism is 0
  (every kept ball has radius 0), 0 when g coincides with a kept real;
- ``detector_scores``: any callable on image batches, e.g. a detector's probability that an image is generated.

``label_flaws`` (default): flawed = the top ``flawed_fraction`` of the images by score, normal = the bottom
``normal_fraction``, the rest unlabelled; with ``threshold``: flawed = score >= threshold, normal = the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from genaudit.devices import DeviceLike
from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator
from genaudit.metrics import realism
from genaudit.metrics._tensors import DEFAULT_BLOCK_SIZE, ArrayLike, DTypeLike
from genaudit.units.batches import CancelCheck, Progress
from genaudit.units.rare import RareNeurons, artifact_scores

DEFAULT_FLAWED_FRACTION = 0.2
DEFAULT_NORMAL_FRACTION = 0.2

# An image batch (B, C, H, W) in [-1, 1] -> one score per image, (B,).
ImageScorer = Callable[[torch.Tensor], torch.Tensor | np.ndarray]


def rare_neuron_scores(
    generator: Generator,
    rare: RareNeurons,
    latents: torch.Tensor,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """float64 (N,): the artifact score (``units.rare.artifact_scores``) of the images of ``latents``."""
    scores = artifact_scores(generator, rare, latents, batch_size=batch_size, progress=progress,
                             check_cancelled=check_cancelled)
    return scores.total.numpy().astype(np.float64)


def low_realism_scores(
    real_features: ArrayLike,
    sample_features: ArrayLike,
    k: int = 3,
    *,
    real_radii: ArrayLike | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> np.ndarray:
    """float64 (M,): 1 / realism of each sample feature against the real features (module docstring);
    ``real_radii``: precomputed k-NN radii of the reals (``metrics.knn_radii``), else computed here."""
    score = realism(real_features, sample_features, k, real_radii=real_radii, block_size=block_size,
                    device=device, dtype=dtype)
    with np.errstate(divide="ignore"):
        return 1.0 / score


@torch.no_grad()
def detector_scores(scorer: ImageScorer, images: torch.Tensor, *, batch_size: int = 64) -> np.ndarray:
    """float64 (N,): ``scorer`` applied to ``images`` (N, C, H, W), ``batch_size`` at a time."""
    if images.ndim != 4 or images.shape[0] < 1:
        raise InvalidArgument(f"images must be (N >= 1, C, H, W), got {tuple(images.shape)}")
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be at least 1, got {batch_size}")
    parts = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        out = scorer(batch)
        out = out.detach().cpu().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float64)
        if out.shape != (batch.shape[0],):
            raise InvalidArgument(f"the scorer returned shape {out.shape} for {batch.shape[0]} images; it must "
                                  "return one score per image")
        parts.append(out)
    return _checked_scores(np.concatenate(parts))


def _checked_scores(scores: ArrayLike) -> np.ndarray:
    values = (scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor)
              else np.asarray(scores, dtype=np.float64))
    if values.ndim != 1 or values.shape[0] < 1:
        raise InvalidArgument(f"flaw scores must be one number per image (N >= 1,), got shape {values.shape}")
    if np.isnan(values).any():
        raise InvalidArgument("flaw scores contain NaN")
    return values


@dataclass(frozen=True)
class FlawLabels:
    """``scores`` float64 (N,); ``flawed`` and ``normal``: disjoint bool (N,) masks; ``threshold``: the lowest
    flawed score (top-fraction mode) or the threshold given."""

    scores: np.ndarray
    flawed: np.ndarray
    normal: np.ndarray
    threshold: float

    @property
    def flawed_indices(self) -> np.ndarray:
        return np.flatnonzero(self.flawed)

    @property
    def normal_indices(self) -> np.ndarray:
        return np.flatnonzero(self.normal)


def label_flaws(
    scores: ArrayLike,
    *,
    flawed_fraction: float = DEFAULT_FLAWED_FRACTION,
    normal_fraction: float = DEFAULT_NORMAL_FRACTION,
    threshold: float | None = None,
) -> FlawLabels:
    """Labels from flaw scores (module docstring). Top-fraction mode: the round(f N) highest scores (at least
    one) are flawed and the round(f' N) lowest (at least one) normal, ranked by decreasing score with ties in
    index order, so the counts are exact whatever the ties; f + f' must not exceed 1. Threshold mode (a
    ``threshold`` given): flawed = score >= threshold, normal = score < threshold; the fractions are unused."""
    values = _checked_scores(scores)
    n = values.shape[0]
    if threshold is not None:
        if math.isnan(threshold):
            raise InvalidArgument("the threshold is NaN")
        flawed = values >= threshold
        return FlawLabels(scores=values, flawed=flawed, normal=~flawed, threshold=float(threshold))
    for name, fraction in (("flawed_fraction", flawed_fraction), ("normal_fraction", normal_fraction)):
        if not 0.0 < fraction < 1.0:
            raise InvalidArgument(f"{name} must be in (0, 1), got {fraction}")
    n_flawed = max(1, math.floor(flawed_fraction * n + 0.5))
    n_normal = max(1, math.floor(normal_fraction * n + 0.5))
    if n_flawed + n_normal > n:
        raise InvalidArgument(f"{n_flawed} flawed and {n_normal} normal images do not fit in {n}: lower the "
                              "fractions or score more images")
    order = np.argsort(-values, kind="stable")
    flawed = np.zeros(n, dtype=bool)
    normal = np.zeros(n, dtype=bool)
    flawed[order[:n_flawed]] = True
    normal[order[n - n_normal:]] = True
    return FlawLabels(scores=values, flawed=flawed, normal=normal, threshold=float(values[order[n_flawed - 1]]))
