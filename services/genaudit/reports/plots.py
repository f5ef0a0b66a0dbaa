"""Rarity histograms of the generated sets on shared bins and axes (matplotlib, Agg canvas, PNG bytes).

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, never pyplot: no global state, no
GUI backend, safe in worker threads.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genaudit.reports.audit import MetricsAudit

DEFAULT_BINS = 30
_PANEL_WIDTH_IN = 4.0
_MAX_PANELS_PER_ROW = 4


def shared_bins(audit: MetricsAudit, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin edges (n_bins + 1) spanning the in-manifold rarity of every generated set, so the histograms of
    all sets are drawn on the same bins and shifts between sets are visible. With nothing scored the
    edges span [-0.5, 0.5] (numpy's default around 0)."""
    scored = [g.scored_rarity for g in audit.generated]
    values = np.concatenate(scored) if scored else np.empty(0)
    return np.histogram_bin_edges(values if values.size else np.zeros(1), bins=n_bins)


def rarity_histograms_png(audit: MetricsAudit, n_bins: int = DEFAULT_BINS, dpi: int = 100) -> bytes:
    """PNG: one histogram of in-manifold rarity per generated set, side by side (wrapping after 4), on
    ``shared_bins`` with shared x and y axes; the legend gives the in- and out-of-manifold shares."""
    edges = shared_bins(audit, n_bins)
    sets = list(audit.generated)
    n_panels = max(len(sets), 1)
    ncols = min(n_panels, _MAX_PANELS_PER_ROW)
    nrows = -(-n_panels // ncols)
    figure = Figure(figsize=(_PANEL_WIDTH_IN * ncols, 3.2 * nrows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, result in zip(axes, sets, strict=False):
        scored = result.scored_rarity
        inside = int(result.in_manifold.sum())
        outside = result.n_images - inside
        ax.hist(scored, bins=edges, color="#3b6ea8", edgecolor="white", linewidth=0.4,
                label=f"in manifold: {inside} ({_share(inside, result.n_images)})")
        ax.plot([], [], " ", label=f"outside (not scored): {outside} ({_share(outside, result.n_images)})")
        if not inside:
            ax.text(0.5, 0.5, "no sample inside\nthe real manifold", ha="center", va="center",
                    transform=ax.transAxes, color="#a33")
        ax.set_title(plain_text(result.name), fontsize=10)
        ax.set_xlabel(f"rarity score (k={audit.k})")
        ax.legend(fontsize=8, loc="upper right", frameon=False)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(sets):]:
        ax.set_visible(False)
    axes[0].set_ylabel("images")
    axes[0].set_xlim(edges[0], edges[-1])
    tallest = max((np.histogram(g.scored_rarity, bins=edges)[0].max() for g in sets), default=0)
    axes[0].set_ylim(0, max(tallest, 1) * 1.3)  # headroom: the legend never hides the tallest bar
    figure.suptitle(f"Rarity against {plain_text(audit.real_name)} in {audit.feature_space} space "
                    "(shared bins and axes)", fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _share(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%" if total else "n/a"


def plain_text(text: str) -> str:
    # A "$" pair would switch matplotlib to mathtext (and can fail to parse): show dollars literally.
    return text.replace("$", r"\$")
