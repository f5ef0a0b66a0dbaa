"""Reports of metrics audits: per-image tables (CSV), rarity histograms (PNG) and a self-contained HTML
report with galleries; the forensics jobs' reports (``sections``: tables, figures and definitions in a
self-contained page; ``spectra_plots``, ``detection_plots``: their figures). Needs jinja2 and matplotlib
(worker extras); never imports torch."""

from genaudit.reports.audit import (
    FID_SPACE,
    SUMMARY_KEYS,
    GeneratedSetResult,
    MetricsAudit,
    generated_set_from_rarity,
)
from genaudit.reports.html import render_metrics_report
from genaudit.reports.plots import rarity_histograms_png, shared_bins
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.reports.tables import TABLE_COLUMNS, per_image_table, write_csv

__all__ = [
    "FID_SPACE",
    "SUMMARY_KEYS",
    "TABLE_COLUMNS",
    "Figure",
    "GeneratedSetResult",
    "MetricsAudit",
    "Section",
    "Table",
    "generated_set_from_rarity",
    "per_image_table",
    "rarity_histograms_png",
    "render_metrics_report",
    "render_sections_report",
    "shared_bins",
    "write_csv",
]
