"""The object-store interface every backend implements (S3/MinIO and a local folder).

Keys are '/'-separated relative paths such as ``tenants/acme/datasets/ds_1/images/cat.png``. Writes are
atomic: a reader sees either the whole object or none of it, so a failed upload never leaves a
half-written object behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""


@runtime_checkable
class ObjectStore(Protocol):
    """Minimal object-store API used by gateway and workers."""

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo: ...

    def put_stream(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Upload from a file-like object; length -1 means unknown (multipart upload)."""
        ...

    def put_file(
        self, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> ObjectInfo: ...

    def get_bytes(self, key: str) -> bytes:
        """Raises genaudit.errors.NotFound for a missing key."""
        ...

    def get_file(self, key: str, path: Path) -> None: ...

    def stat(self, key: str) -> ObjectInfo:
        """Raises genaudit.errors.NotFound for a missing key."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, sorted by key."""
        ...

    def delete(self, key: str) -> None: ...

    def presigned_put_url(self, key: str, expires_s: int) -> str:
        """Raises genaudit.errors.FailedPrecondition where the backend has no URLs (local folder)."""
        ...

    def presigned_get_url(self, key: str, expires_s: int) -> str: ...

    def check(self) -> None:
        """Raise genaudit.errors.Unavailable when the backend cannot be reached."""
        ...
