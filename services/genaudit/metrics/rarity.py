"""Rarity score (Han et al., "Rarity Score: A New Metric to Evaluate the Uncommonness of Synthesized
Images", ICLR 2023; official code hichoe95/Rarity-Score).

For real features r_1..r_N with k-NN radii radius_i (k-th nearest OTHER real) and a generated feature g:

    B(g)      = { i : ||g - r_i|| < radius_i }          (strict, as the official ``dist_radi > 0``)
    rarity(g) = min_{i in B(g)} radius_i                if B(g) is not empty
              = not scored (NaN)                        if B(g) is empty (g is off the real manifold)

Higher = rarer: g is only covered by large balls, i.e. it lies in a sparse region of the real manifold.
``legacy=True`` reproduces the official code, which writes 0 for samples outside every ball (and drops them
from its ranking; see ``RarityResult.ranked_indices``). The paper's feature space is VGG16-fc2 after ReLU
(4096-d) with k = 3; scores are only comparable within one feature space and one reference set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genaudit.devices import DeviceLike
from genaudit.errors import InvalidArgument
from genaudit.metrics._tensors import DEFAULT_BLOCK_SIZE, ArrayLike, DTypeLike, check_k, check_same_dims
from genaudit.metrics.distances import (
    BlockedGeometry,
    FeatureRows,
    distance_tiles,
    radii_of,
    reference_center,
    strictly_inside,
)


@dataclass(frozen=True)
class RarityResult:
    """Per generated sample: ``score`` (NaN off-manifold, or 0 in legacy mode), ``in_manifold`` flag,
    ``nearest_ball_index`` (index of the real sample whose ball gives the score -- the lowest index among
    equal radii -- or -1 off-manifold); plus the real radii used and the in-manifold fraction."""

    score: np.ndarray
    in_manifold: np.ndarray
    nearest_ball_index: np.ndarray
    in_manifold_fraction: float
    real_radii: np.ndarray
    k: int
    legacy: bool

    def ranked_indices(self) -> np.ndarray:
        """In-manifold samples from rarest to most common (stable for equal scores), like the official
        ``scores_ids`` (which drops out-of-manifold samples)."""
        scored = np.flatnonzero(self.in_manifold)
        order = np.argsort(-self.score[scored], kind="stable")
        return scored[order]


def rarity(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = 3,
    *,
    legacy: bool = False,
    real_radii: ArrayLike | None = None,
    leave_one_out: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> RarityResult:
    """Rarity score of each ``fake`` row against the k-NN manifold of ``real`` (see module docstring).

    real_radii: precomputed k-NN radii of ``real`` (from ``knn_radii(real, k)``) so one reference manifold
        serves many generated sets; computed here when None.
    leave_one_out: ``fake`` is the same set as ``real`` (same rows, same order); sample j is then not scored
        against its own ball j (used to score a reference set against itself).
    """
    geometry = BlockedGeometry.resolve(device, dtype, block_size)
    real_t = geometry.features(real, "real")
    fake_t = geometry.features(fake, "fake")
    check_same_dims(real_t, fake_t, "real and fake")
    check_k(k, real_t.shape[0], "real")
    if leave_one_out and not _same_rows(real_t, fake_t):
        raise InvalidArgument("leave_one_out needs fake to be the very same rows as real")
    with torch.no_grad():
        center = reference_center(real_t, geometry)
        real_rows = FeatureRows(real_t, center, geometry)
        radii = radii_of(real_rows, k, real_radii, "real_radii")
        fake_rows = real_rows if leave_one_out else FeatureRows(fake_t, center, geometry)
        score, index = _smallest_containing_ball(fake_rows, real_rows, radii)
    return _result(score.cpu().numpy(), index.cpu().numpy(), radii.cpu().numpy(), k, legacy)


def _smallest_containing_ball(
    fake_rows: FeatureRows, real_rows: FeatureRows, radii: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per fake: min radius over the balls that strictly contain it, and that ball's index (+inf, -1 when
    none). Ties keep the lowest real index: argmin returns the first minimum within a tile and later
    tiles only replace on a strictly smaller radius. ``fake_rows is real_rows`` means leave-one-out (the
    tiles then exclude pair (j, j))."""
    device = real_rows.geometry.device
    best = torch.full((fake_rows.n,), torch.inf, dtype=torch.float64, device=device)
    best_index = torch.full((fake_rows.n,), -1, dtype=torch.int64, device=device)
    for tile in distance_tiles(fake_rows, real_rows):
        tile_radii = radii[None, tile.r_start:tile.r_stop]
        inside = strictly_inside(tile, fake_rows, real_rows, tile_radii)
        containing = torch.where(inside, tile_radii, torch.inf)
        tile_best, tile_index = containing.min(dim=1).values, containing.argmin(dim=1)
        current = best[tile.q_start:tile.q_stop]
        better = tile_best < current
        current[better] = tile_best[better]
        best_index[tile.q_start:tile.q_stop][better] = tile_index[better] + tile.r_start
    return best, best_index


def _same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and (a.data_ptr() == b.data_ptr() or bool(torch.equal(a, b)))


def _result(score: np.ndarray, index: np.ndarray, radii: np.ndarray, k: int, legacy: bool) -> RarityResult:
    in_manifold = index >= 0
    score = score.astype(np.float64)
    score[~in_manifold] = 0.0 if legacy else np.nan
    return RarityResult(
        score=score,
        in_manifold=in_manifold,
        nearest_ball_index=index,
        in_manifold_fraction=float(in_manifold.mean()),
        real_radii=radii.astype(np.float64),
        k=k,
        legacy=legacy,
    )
