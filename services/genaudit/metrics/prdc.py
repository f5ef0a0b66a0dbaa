"""Improved precision/recall (Kynkäänniemi et al., NeurIPS 2019) and density/coverage (Naeem et al.,
ICML 2020), with the exact conventions of the ``prdc`` package (``compute_prdc``): k-NN radii exclude self,
ball membership is strict ``<``.

With real r_1..r_N (radii rr_i), fake g_1..g_M (radii fr_j), d_ij = ||r_i - g_j||:

    precision = (1/M) sum_j  1[ exists i : d_ij < rr_i ]
    recall    = (1/N) sum_i  1[ exists j : d_ij < fr_j ]
    density   = (1/(k M)) sum_j  #{ i : d_ij < rr_i }
    coverage  = (1/N) sum_i  1[ min_j d_ij < rr_i ]

Identical sets (fake == real): contrary to the note in DESIGN.md, they do NOT give density/coverage 0 under
strict ``<``. Every sample lies at distance 0 from its own copy and 0 < rr_i whenever rr_i > 0, so
precision = recall = coverage = 1, and density = 1 exactly when there are no distance ties (each ball holds
its centre's copy plus its k-1 nearer neighbours: k points per ball, N k memberships in all). The ``prdc``
package gives the same (checked in tests/unit/test_metrics_prdc.py). Only rows with k or more exact
duplicates (radius 0) drop out, since nothing is strictly inside a ball of radius 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genaudit.devices import DeviceLike
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
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float


def prdc(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = 5,
    *,
    real_radii: ArrayLike | None = None,
    fake_radii: ArrayLike | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> PRDC:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (see module docstring).

    real_radii / fake_radii: precomputed k-NN radii (``knn_radii(x, k)``), computed here when None.
    """
    geometry = BlockedGeometry.resolve(device, dtype, block_size)
    real_t = geometry.features(real, "real")
    fake_t = geometry.features(fake, "fake")
    check_same_dims(real_t, fake_t, "real and fake")
    check_k(k, real_t.shape[0], "real")
    check_k(k, fake_t.shape[0], "fake")
    with torch.no_grad():
        center = reference_center(real_t, geometry)
        real_rows = FeatureRows(real_t, center, geometry)
        fake_rows = FeatureRows(fake_t, center, geometry)
        rr = radii_of(real_rows, k, real_radii, "real_radii")
        fr = radii_of(fake_rows, k, fake_radii, "fake_radii")
        dev = geometry.device
        fake_balls_hit = torch.zeros(fake_rows.n, dtype=torch.int64, device=dev)  # #{i : d_ij < rr_i}
        real_in_fake_ball = torch.zeros(real_rows.n, dtype=torch.bool, device=dev)
        # min_j d_ij < rr_i  <=>  some fake is inside ball i: coverage reuses the membership test
        real_ball_hit = torch.zeros(real_rows.n, dtype=torch.bool, device=dev)
        for tile in distance_tiles(fake_rows, real_rows):  # fakes x reals
            in_real_ball = strictly_inside(tile, fake_rows, real_rows, rr[None, tile.r_start:tile.r_stop])
            in_fake_ball = strictly_inside(tile, fake_rows, real_rows, fr[tile.q_start:tile.q_stop, None])
            fake_balls_hit[tile.q_start:tile.q_stop] += in_real_ball.sum(dim=1)
            real_ball_hit[tile.r_start:tile.r_stop] |= in_real_ball.any(dim=0)
            real_in_fake_ball[tile.r_start:tile.r_stop] |= in_fake_ball.any(dim=0)
        return PRDC(
            precision=float((fake_balls_hit > 0).double().mean()),
            recall=float(real_in_fake_ball.double().mean()),
            density=float(fake_balls_hit.double().sum() / (k * fake_rows.n)),
            coverage=float(real_ball_hit.double().mean()),
        )

