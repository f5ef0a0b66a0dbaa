"""Per-image rows of a metrics audit, and their CSV form."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any, TextIO

from genaudit.reports.audit import MetricsAudit

TABLE_COLUMNS = ("set", "image_key", "rarity", "in_manifold", "realism", "nearest_real_key")


def per_image_table(audit: MetricsAudit) -> list[dict[str, Any]]:
    """One row per generated image, sets in audit order: rarity is None outside the manifold, and
    nearest_real_key (the real image whose ball gives the rarity) is None there too."""
    rows: list[dict[str, Any]] = []
    for result in audit.generated:
        for key, score, inside, realism, nearest in zip(
            result.image_keys, result.rarity, result.in_manifold, result.realism, result.nearest_real_index,
            strict=True,
        ):
            rows.append({
                "set": result.name,
                "image_key": key,
                "rarity": float(score) if inside else None,
                "in_manifold": bool(inside),
                "realism": float(realism),
                "nearest_real_key": audit.real_image_keys[nearest] if nearest >= 0 else None,
            })
    return rows


def write_csv(rows: Sequence[dict[str, Any]], stream: TextIO) -> None:
    """CSV with a header of TABLE_COLUMNS; None is an empty cell, floats keep full precision (repr)."""
    writer = csv.DictWriter(stream, fieldnames=TABLE_COLUMNS, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _cell(row[column]) for column in TABLE_COLUMNS})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form; inf and nan as "inf" / "nan"
    return str(value)
