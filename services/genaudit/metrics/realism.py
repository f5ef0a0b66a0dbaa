"""Realism score (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative
Models", NeurIPS 2019, section 5), per generated sample:

    realism(g) = max_{i : radius_i <= median(radius)} radius_i / ||g - r_i||

radius_i is the k-NN radius of real r_i (k-th nearest other real); only the half of the real balls with the
smallest radii are used, as in the paper, because large balls of outliers would otherwise inflate the score.
realism(g) >= 1 means g lies inside at least one of those balls (up to the strict/non-strict boundary).

Conventions (the paper leaves them open): ``median`` is numpy's (mean of the two middle values for even N);
g exactly on a kept real with radius_i > 0 gives +inf; a ball of radius 0 contributes 0. The official
hichoe95/Rarity-Score helper differs: it uses every ball and divides by (distance + 1e-6).
"""

from __future__ import annotations

import numpy as np
import torch

from genaudit.devices import DeviceLike
from genaudit.metrics._tensors import DEFAULT_BLOCK_SIZE, ArrayLike, DTypeLike, check_k, check_same_dims
from genaudit.metrics.distances import (
    BlockedGeometry,
    FeatureRows,
    distance_tiles,
    radii_of,
    reference_center,
)


def realism(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = 3,
    *,
    real_radii: ArrayLike | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> np.ndarray:
    """Realism score of each ``fake`` row, shape (M,), float64 (see module docstring)."""
    geometry = BlockedGeometry.resolve(device, dtype, block_size)
    real_t = geometry.features(real, "real")
    fake_t = geometry.features(fake, "fake")
    check_same_dims(real_t, fake_t, "real and fake")
    check_k(k, real_t.shape[0], "real")
    with torch.no_grad():
        center = reference_center(real_t, geometry)
        radii = radii_of(FeatureRows(real_t, center, geometry), k, real_radii, "real_radii")
        radii_np = radii.cpu().numpy()
        kept = torch.as_tensor(np.flatnonzero(radii_np <= np.median(radii_np)), device=geometry.device)
        kept_rows = FeatureRows(real_t, center, geometry, rows=kept)
        kept_radii = radii[kept]
        fake_rows = FeatureRows(fake_t, center, geometry)
        best = torch.full((fake_rows.n,), -torch.inf, dtype=torch.float64, device=geometry.device)
        for tile in distance_tiles(fake_rows, kept_rows):
            tile_radii = kept_radii[None, tile.r_start:tile.r_stop]
            ratio = torch.where(tile_radii > 0, tile_radii / tile.distances.double(), 0.0)
            best[tile.q_start:tile.q_stop] = torch.maximum(best[tile.q_start:tile.q_stop],
                                                          ratio.max(dim=1).values)
    return best.cpu().numpy()
