"""HTTP transfers to and from presigned object-store URLs (stdlib only) and the shared progress bar.

The client talks to the object store only through URLs the gateway signed, so it needs no S3 client and
no credentials; urllib is enough. Transient failures (connection errors, HTTP 5xx) are retried a few
times; then a store that cannot be reached is StoreUnreachable, and an HTTP error a ClientError naming the
object-store error code.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from genaudit.cli.grpc_client import ClientError

HTTP_TIMEOUT_S = 120.0
ATTEMPTS = 3
COPY_CHUNK = 1024 * 1024
_S3_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


class StoreUnreachable(ClientError):
    """The object store behind a presigned URL could not be reached (connection refused, DNS, timeout) after
    the retries: the gateway may still carry the bytes itself."""


def transfer_progress(console: Console) -> Progress:
    """Bytes with speed and ETA, plus a ``files`` field the callers keep as "done/total files"."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TextColumn("{task.fields[files]}", markup=False), TimeRemainingColumn(),
                    console=console)


def _http_problem(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(4096)
    except OSError:
        body = b""
    code = _S3_CODE.search(body)
    return f"HTTP {exc.code}" + (f" ({code.group(1).decode(errors='replace')})" if code else "")


def _retrying(what: str, action: Callable[[], None]) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            action()
            return
        except urllib.error.HTTPError as exc:
            problem = _http_problem(exc)
            if exc.code < 500 or attempt == ATTEMPTS:
                raise ClientError(f"{what} failed: the object store answered {problem}") from None
        except (urllib.error.URLError, OSError) as exc:
            if attempt == ATTEMPTS:
                reason = getattr(exc, "reason", exc)
                raise StoreUnreachable(f"{what} failed: {reason}") from None
        time.sleep(0.2 * 2 ** attempt)


def http_put(url: str, data: bytes, content_type: str, what: str) -> None:
    """PUT ``data`` to a presigned URL (the signature covers only the host, so Content-Type is free)."""
    def put() -> None:
        request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:
            reply.read()

    _retrying(what, put)


def http_get_to(url: str, sink_factory: Callable[[], Callable[[bytes], None]], what: str) -> None:
    """GET a presigned URL in chunks into a fresh sink per attempt (a retry starts the file over)."""
    def get() -> None:
        sink = sink_factory()
        with urllib.request.urlopen(urllib.request.Request(url), timeout=HTTP_TIMEOUT_S) as reply:
            while chunk := reply.read(COPY_CHUNK):
                sink(chunk)

    _retrying(what, get)
