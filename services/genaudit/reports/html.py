"""The metrics-audit HTML report: one self-contained file (CSS inline, images as base64 PNG, no JS)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jinja2
import numpy as np

from genaudit.images.limits import ImageLimits
from genaudit.reports.audit import GeneratedSetResult, MetricsAudit
from genaudit.reports.plots import DEFAULT_BINS, rarity_histograms_png
from genaudit.reports.thumbnails import Thumbnail, ThumbnailCache, png_data_uri
from genaudit.settings import Settings

GALLERY_SIZE = 16

template_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("genaudit.reports", "templates"),
    autoescape=True,  # every name, key and error message is user-controlled text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100.0 * value:.1f}%"


template_environment.filters["number"] = _number
template_environment.filters["percent"] = _percent


@dataclass(frozen=True)
class GalleryItem:
    key: str
    generated: Thumbnail
    rarity: float  # NaN outside the manifold
    realism: float
    real_key: str | None  # the real image whose ball gives the rarity; None outside the manifold
    real: Thumbnail | None


@dataclass(frozen=True)
class Gallery:
    kind: str  # "rarest", "common" or "outside": a CSS class and a stable hook for tests
    title: str
    note: str
    total: int  # candidates, of which ``items`` are shown
    items: list[GalleryItem]


@dataclass(frozen=True)
class SetRow:
    name: str
    n_images: int
    summary: dict[str, float]
    mean_rarity: float
    median_rarity: float
    in_manifold_fraction: float


def render_metrics_report(
    audit: MetricsAudit,
    load_image: Callable[[str], bytes],
    thumb_px: int = 96,
    *,
    gallery_size: int = GALLERY_SIZE,
    n_bins: int = DEFAULT_BINS,
    limits: ImageLimits | None = None,
    title: str = "Metrics audit",
) -> str:
    """The HTML report of ``audit``: metrics table, rarity histograms, and per generated set three
    galleries -- the ``gallery_size`` rarest and most common in-manifold images and the out-of-manifold
    ones -- each image beside the real image whose k-NN ball gives its rarity.

    load_image(key) returns the encoded bytes of a generated or real image; they go through the safe decoder
    (``limits``, default: Settings() image limits). A failing load or decode shows a placeholder.
    """
    thumbnails = ThumbnailCache(load_image, thumb_px, limits or ImageLimits.from_settings(Settings()))
    histogram_uri = png_data_uri(rarity_histograms_png(audit, n_bins))
    sets = [
        {"row": _set_row(result), "galleries": _galleries(audit, result, thumbnails, gallery_size)}
        for result in audit.generated
    ]
    return template_environment.get_template("metrics_report.html.j2").render(
        title=title,
        audit=audit,
        frechet_label=audit.frechet_label,
        histogram_uri=histogram_uri,
        sets=sets,
        thumb_px=thumb_px,
    )


def _set_row(result: GeneratedSetResult) -> SetRow:
    scored = result.scored_rarity
    return SetRow(
        name=result.name,
        n_images=result.n_images,
        summary=dict(result.summary),
        mean_rarity=float(scored.mean()) if scored.size else float("nan"),
        median_rarity=float(np.median(scored)) if scored.size else float("nan"),
        in_manifold_fraction=result.in_manifold_fraction,
    )


def _galleries(
    audit: MetricsAudit, result: GeneratedSetResult, thumbnails: ThumbnailCache, size: int
) -> list[Gallery]:
    scored = np.flatnonzero(result.in_manifold)
    rarest_first = scored[np.argsort(-result.rarity[scored], kind="stable")]
    common_first = scored[np.argsort(result.rarity[scored], kind="stable")]
    outside = np.flatnonzero(~result.in_manifold)

    def items(indices: np.ndarray) -> list[GalleryItem]:
        return [_item(audit, result, int(i), thumbnails) for i in indices[:size]]

    return [
        Gallery("rarest", "Rarest", "highest rarity: covered only by large real balls (sparse regions)",
                len(scored), items(rarest_first)),
        Gallery("common", "Most common", "lowest rarity: inside small real balls (dense regions)",
                len(scored), items(common_first)),
        Gallery("outside", "Outside the real manifold", "in no real k-NN ball: not scored",
                len(outside), items(outside)),
    ]


def _item(audit: MetricsAudit, result: GeneratedSetResult, index: int, thumbnails: ThumbnailCache) -> GalleryItem:
    key = result.image_keys[index]
    nearest = int(result.nearest_real_index[index])
    real_key = audit.real_image_keys[nearest] if nearest >= 0 else None
    return GalleryItem(
        key=key,
        generated=thumbnails.get(key),
        rarity=float(result.rarity[index]),
        realism=float(result.realism[index]),
        real_key=real_key,
        real=thumbnails.get(real_key) if real_key is not None else None,
    )
