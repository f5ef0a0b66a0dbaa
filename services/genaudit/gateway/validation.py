"""Request checks shared by the servicers; each failure is InvalidArgument with a precise message."""

from __future__ import annotations

import re
from collections.abc import Iterable

from genaudit.errors import InvalidArgument
from genaudit.jobs.keys import is_safe_filename

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_PAGE_SIZE = 1000
MAX_FILENAMES_PER_CALL = 1000


def require_id(value: str, field: str) -> str:
    """A well-formed record id (unknown ids are NotFound later, from the record store)."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    if not _ID.match(value):
        raise InvalidArgument(f"{field} {value[:140]!r} is malformed")
    return value


def require_page_size(page_size: int) -> int:
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be within 0..{MAX_PAGE_SIZE} (0 = default), got {page_size}")
    return page_size


def filename_problem(name: str) -> str:
    """Why ``name`` cannot be an object name in a dataset, "" when it can."""
    if is_safe_filename(name):
        return ""
    return (f"file name {name[:220]!r} is not allowed: one path segment of letters, digits, '.', '_' and '-', "
            "not starting with a dot, at most 200 characters")


def require_filenames(names: Iterable[str]) -> list[str]:
    names = list(names)
    if not names:
        raise InvalidArgument("filenames must not be empty")
    if len(names) > MAX_FILENAMES_PER_CALL:
        raise InvalidArgument(f"at most {MAX_FILENAMES_PER_CALL} filenames per call, got {len(names)}")
    problems = [p for p in map(filename_problem, names) if p]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InvalidArgument("; ".join(problems[:5]) + more)
    if len(set(names)) != len(names):
        raise InvalidArgument("filenames must be unique")
    return names
