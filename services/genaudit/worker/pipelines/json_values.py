"""Numbers in result JSON: strict JSON has no NaN or infinity, so an undefined value is stored as null."""

from __future__ import annotations

import math


def finite_or_none(value: float) -> float | None:
    """``value`` as a Python float, or None when it is NaN or infinite."""
    return float(value) if math.isfinite(value) else None
