"""Key rules shared by every object-store backend, and a reader that enforces a declared length.

The same rules apply to S3 and to the local folder, so that a key accepted by one backend is accepted by
the other and can never escape the local store's root directory.
"""

from __future__ import annotations

from typing import BinaryIO

from genaudit.errors import InvalidArgument

# Temporary files of in-flight local writes start with this; no key segment may, so that they can never
# be listed, read or overwritten as objects.
TEMP_PREFIX = ".genaudit-tmp-"
MAX_KEY_BYTES = 1024  # the S3 limit


def _check_segments(text: str, what: str, segments: list[str]) -> None:
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise InvalidArgument(f"invalid {what} {text!r}: empty, '.' or '..' path segment")
        if segment.startswith(TEMP_PREFIX):
            raise InvalidArgument(f"invalid {what} {text!r}: segments may not start with {TEMP_PREFIX!r}")


def _check_characters(text: str, what: str) -> None:
    if len(text.encode("utf-8", errors="replace")) > MAX_KEY_BYTES:
        raise InvalidArgument(f"invalid {what}: longer than {MAX_KEY_BYTES} bytes")
    if "\\" in text:
        raise InvalidArgument(f"invalid {what} {text!r}: backslashes are not allowed, use '/'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise InvalidArgument(f"invalid {what} {text!r}: control characters are not allowed")
    if text.startswith("/"):
        raise InvalidArgument(f"invalid {what} {text!r}: must be a relative path (no leading '/')")


def validate_key(key: str) -> str:
    """Return ``key`` when it is a '/'-separated relative path of non-empty, non-dot segments."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument("invalid key: empty")
    _check_characters(key, "key")
    _check_segments(key, "key", key.split("/"))
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key`, but empty is allowed (everything), as are a trailing '/' and a partial
    last segment ('tenants/ac' matches 'tenants/acme/...')."""
    if not isinstance(prefix, str):
        raise InvalidArgument("invalid prefix: not a string")
    if not prefix:
        return prefix
    _check_characters(prefix, "prefix")
    segments = prefix.split("/")
    complete, last = segments[:-1], segments[-1]
    _check_segments(prefix, "prefix", complete)
    if last in {".", ".."} or last.startswith(TEMP_PREFIX):
        raise InvalidArgument(f"invalid prefix {prefix!r}: '.' or '..' path segment")
    return prefix


class ExactLengthReader:
    """Wraps a stream declared to hold ``length`` bytes: reads at most that many and raises
    InvalidArgument when the stream ends early, so a short upload fails instead of storing a stub."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self._stream = stream
        self._remaining = length
        self._length = length

    def read(self, size: int = -1) -> bytes:
        if self._remaining == 0:
            return b""
        want = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._stream.read(want)
        if not data:
            got = self._length - self._remaining
            raise InvalidArgument(f"stream ended after {got} of the declared {self._length} bytes")
        self._remaining -= len(data)
        return data
