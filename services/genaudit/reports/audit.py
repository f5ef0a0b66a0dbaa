"""What a metrics audit produced, in the shape the reports need: per generated set, per-image rarity,
manifold membership, scoring real image and realism, plus set-level numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from genaudit.errors import InvalidArgument

if TYPE_CHECKING:  # the metrics import torch; reports must not
    from genaudit.metrics.rarity import RarityResult

# Keys of GeneratedSetResult.summary the report knows (others are ignored by the HTML table). Mean/median
# rarity and the in-manifold share are computed from the per-image arrays, not taken from the summary.
SUMMARY_KEYS = ("frechet_distance", "kid_mean", "kid_std", "precision", "recall", "density", "coverage")
FID_SPACE = "inception-v3-pool3"  # the only space where a Fréchet distance is "FID"


@dataclass(frozen=True)
class GeneratedSetResult:
    """One generated set scored against the real manifold.

    rarity: float (M,), NaN for samples outside the real manifold (not scored).
    nearest_real_index: (M,) index into ``MetricsAudit.real_image_keys`` of the real sample whose k-NN ball
        gives the rarity score (the smallest ball containing the sample), -1 outside the manifold.
    realism: float (M,), Kynkäänniemi et al.'s realism score.
    summary: set-level numbers, keyed by SUMMARY_KEYS (missing ones show as not computed).
    """

    name: str
    image_keys: Sequence[str]
    rarity: np.ndarray
    in_manifold: np.ndarray
    nearest_real_index: np.ndarray
    realism: np.ndarray
    summary: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = tuple(str(k) for k in self.image_keys)
        rarity = np.asarray(self.rarity, dtype=np.float64)
        in_manifold = np.asarray(self.in_manifold, dtype=bool)
        nearest = np.asarray(self.nearest_real_index, dtype=np.int64)
        realism = np.asarray(self.realism, dtype=np.float64)
        n = len(keys)
        for label, array in (("rarity", rarity), ("in_manifold", in_manifold), ("nearest_real_index", nearest),
                             ("realism", realism)):
            if array.shape != (n,):
                raise InvalidArgument(f"set {self.name!r}: {label} has shape {array.shape}, expected ({n},)")
        if np.any(np.isnan(rarity) == in_manifold):
            raise InvalidArgument(f"set {self.name!r}: rarity must be NaN exactly outside the manifold")
        if np.any((nearest < 0) == in_manifold) or np.any(nearest < -1):
            raise InvalidArgument(f"set {self.name!r}: nearest_real_index must be -1 exactly outside the manifold")
        object.__setattr__(self, "image_keys", keys)
        object.__setattr__(self, "rarity", rarity)
        object.__setattr__(self, "in_manifold", in_manifold)
        object.__setattr__(self, "nearest_real_index", nearest)
        object.__setattr__(self, "realism", realism)
        object.__setattr__(self, "summary", {str(k): float(v) for k, v in self.summary.items()})

    @property
    def n_images(self) -> int:
        return len(self.image_keys)

    @property
    def in_manifold_fraction(self) -> float:
        return float(self.in_manifold.mean()) if self.n_images else float("nan")

    @property
    def scored_rarity(self) -> np.ndarray:
        return self.rarity[self.in_manifold]


@dataclass(frozen=True)
class MetricsAudit:
    """A real reference set and the generated sets scored against it, in one feature space with one k."""

    feature_space: str
    k: int
    real_name: str
    real_image_keys: Sequence[str]
    generated: Sequence[GeneratedSetResult]

    def __post_init__(self) -> None:
        real_keys = tuple(str(k) for k in self.real_image_keys)
        generated = tuple(self.generated)
        names = [g.name for g in generated]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"generated set names must be unique, got {names}")
        for g in generated:
            if g.n_images and g.nearest_real_index.max() >= len(real_keys):
                raise InvalidArgument(f"set {g.name!r}: nearest_real_index beyond the {len(real_keys)} real images")
        object.__setattr__(self, "real_image_keys", real_keys)
        object.__setattr__(self, "generated", generated)

    @property
    def frechet_label(self) -> str:
        """"FID" only in Inception-v3 pool3 space; elsewhere the space is named, values are not FIDs."""
        return "FID" if self.feature_space == FID_SPACE else f"Fréchet distance ({self.feature_space})"


def generated_set_from_rarity(
    name: str,
    image_keys: Sequence[str],
    rarity: RarityResult,
    realism: np.ndarray,
    summary: Mapping[str, float] | None = None,
) -> GeneratedSetResult:
    """A GeneratedSetResult from ``genaudit.metrics.rarity``'s result (non-legacy: NaN outside)."""
    if rarity.legacy:
        raise InvalidArgument("reports need rarity without legacy mode (NaN, not 0, outside the manifold)")
    return GeneratedSetResult(
        name=name,
        image_keys=image_keys,
        rarity=rarity.score,
        in_manifold=rarity.in_manifold,
        nearest_real_index=rarity.nearest_ball_index,
        realism=realism,
        summary=dict(summary or {}),
    )
