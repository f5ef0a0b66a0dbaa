"""A generic self-contained HTML report made of sections of tables, figures and definitions: the report of
the forensics jobs (spectrum, detect, train_detector). Same conventions as the metrics report: CSS inline,
figures as base64 PNG, no JS, every text autoescaped (dataset names and keys are user-controlled)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genaudit.reports.html import template_environment
from genaudit.reports.thumbnails import png_data_uri


@dataclass(frozen=True)
class Table:
    """Rows of cells: text as given, integers as digits, floats with 4 significant digits, None as "—"."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    png: bytes
    alt: str
    caption: str = ""

    @property
    def data_uri(self) -> str:
        return png_data_uri(self.png)


@dataclass(frozen=True)
class Section:
    title: str
    note: str = ""
    tables: Sequence[Table] = ()
    figures: Sequence[Figure] = ()
    definitions: Mapping[str, str] = field(default_factory=dict)  # term -> definition


def format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_sections_report(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The HTML page: ``title``, a ``subtitle`` line, then each section in order."""
    return template_environment.get_template("sections_report.html.j2").render(
        title=title, subtitle=subtitle, sections=sections, cell=format_cell,
    )
