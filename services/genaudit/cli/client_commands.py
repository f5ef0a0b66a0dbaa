"""Client commands (datasets, jobs, results, schedules, screen) talking gRPC to a gateway."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app  # filled in once the API stubs exist
