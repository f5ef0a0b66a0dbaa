"""Object store on S3 / MinIO through the ``minio`` client.

- The bucket is created on first use when missing (``ensure_bucket``); construction does no network I/O,
  so a gateway can start, and report NOT_SERVING through ``check()``, while the store is still down.
- Retries and timeouts are short: an unreachable endpoint raises Unavailable within seconds.
- Uploads of unknown length go multipart in ``part_size`` parts; minio aborts the multipart upload when
  the source stream fails, so a failed upload leaves no object behind.
- Presigned URLs are signed for ``s3_public_endpoint`` (the host clients outside the cluster use); with
  the region given, signing is local and needs no request to that endpoint.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from genaudit.errors import FailedPrecondition, GenauditError, InvalidArgument, NotFound, Unavailable
from genaudit.settings import Settings
from genaudit.storage.base import ObjectInfo
from genaudit.storage.validation import ExactLengthReader, validate_key, validate_prefix

T = TypeVar("T")

PART_SIZE = 16 * 1024 * 1024
MAX_PRESIGN_S = 7 * 24 * 3600  # the S3 SigV4 limit
_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
_CHUNK = 1024 * 1024


def _http_client(
    secure: bool, connect_timeout_s: float, read_timeout_s: float, retries: int
) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        maxsize=10,
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


class S3Store:
    """ObjectStore on one bucket of an S3-compatible server."""

    def __init__(
        self,
        settings: Settings,
        *,
        part_size: int = PART_SIZE,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 60.0,
        retries: int = 2,
    ) -> None:
        if not settings.s3_endpoint:
            raise FailedPrecondition("S3Store needs settings.s3_endpoint (GENAUDIT_S3_ENDPOINT)")
        self.endpoint = settings.s3_endpoint
        self.bucket = settings.s3_bucket
        self.part_size = part_size

        def client(endpoint: str) -> Minio:
            return Minio(
                endpoint,
                access_key=settings.s3_access_key or None,
                secret_key=settings.s3_secret_key or None,
                secure=settings.s3_secure,
                region=settings.s3_region,
                http_client=_http_client(settings.s3_secure, connect_timeout_s, read_timeout_s, retries),
            )

        self._client = client(self.endpoint)
        public = settings.s3_public_endpoint or self.endpoint
        # Signing for another host than the one we talk to needs a client configured with that host;
        # it never sends a request (the region is given, so no bucket-location lookup).
        self._signer = self._client if public == self.endpoint else client(public)
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    # --- error mapping -----------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T], key: str = "") -> T:
        """Run one client call with the bucket ensured, mapping client errors to domain errors."""
        self.ensure_bucket()
        return self._mapped(what, fn, key)

    def _mapped(self, what: str, fn: Callable[[], T], key: str = "") -> T:
        try:
            return fn()
        except S3Error as exc:
            raise self._domain_error(what, exc, key) from exc
        except (urllib3.exceptions.HTTPError, ConnectionError, ServerError, InvalidResponseError) as exc:
            raise Unavailable(f"object store at {self.endpoint} unavailable during {what}: {exc}") from exc

    def _domain_error(self, what: str, exc: S3Error, key: str) -> GenauditError:
        if exc.code in _MISSING_CODES:
            return NotFound(f"object {key!r} not found")
        if exc.code == "NoSuchBucket":
            self._bucket_ready = False  # deleted behind our back: recreate on the next call
            return FailedPrecondition(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
        if exc.code in _AUTH_CODES:
            return Unavailable(
                f"object store at {self.endpoint} refused our credentials during {what}: {exc.code}"
            )
        return GenauditError(f"object store at {self.endpoint} failed {what}: {exc.code}: {exc.message}")

    # --- bucket and health -------------------------------------------------------------------------
    def ensure_bucket(self) -> None:
        """Create the bucket when missing (once per store object; concurrent creators are fine)."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return

            def create() -> None:
                if self._client.bucket_exists(self.bucket):
                    return
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

            self._mapped("create bucket", create)
            self._bucket_ready = True

    def check(self) -> None:
        """Raise Unavailable when the endpoint cannot be reached or refuses us; ensures the bucket."""
        self._bucket_ready = False
        self.ensure_bucket()

    # --- writes ------------------------------------------------------------------------------------
    def _info_from_write(self, key: str, result: object, size: int) -> ObjectInfo:
        etag = (getattr(result, "etag", "") or "").strip('"')
        return ObjectInfo(key=key, size=size, etag=etag)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        validate_key(key)
        result = self._call(
            "put",
            lambda: self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                part_size=self.part_size, num_parallel_uploads=1,
            ),
            key,
        )
        return self._info_from_write(key, result, len(data))

    def put_stream(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Upload ``stream``; ``length`` -1 = unknown (multipart in ``part_size`` parts). One part is held
        in memory at a time. An exception from the stream propagates unchanged after the abort."""
        validate_key(key)
        guarded = _GuardedSource(stream)
        source = guarded if length < 0 else ExactLengthReader(guarded, length)  # type: ignore[arg-type]
        try:
            self._call(
                "put",
                lambda: self._client.put_object(
                    self.bucket, key, source, length, content_type=content_type,
                    part_size=self.part_size, num_parallel_uploads=1,
                ),
                key,
            )
        except _SourceFailed as failed:
            raise failed.__cause__ from None  # the caller's own error, not an object-store one
        # Multipart ETags are not content hashes and the size is only known now: ask the server.
        return self.stat(key)

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> ObjectInfo:
        with open(path, "rb") as f:
            return self.put_stream(key, f, os.fstat(f.fileno()).st_size, content_type)

    # --- reads -------------------------------------------------------------------------------------
    def _read(self, key: str, sink: Callable[[bytes], object]) -> None:
        def fetch() -> None:
            response = self._client.get_object(self.bucket, key)
            try:
                for chunk in response.stream(_CHUNK):
                    sink(chunk)
            finally:
                response.close()
                response.release_conn()

        self._call("get", fetch, key)

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        buffer = io.BytesIO()
        self._read(key, buffer.write)
        return buffer.getvalue()

    def get_file(self, key: str, path: Path) -> None:
        """Download to ``path`` atomically (temp file beside it, then rename)."""
        validate_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                self._read(key, tmp.write)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        st = self._call("stat", lambda: self._client.stat_object(self.bucket, key), key)
        return ObjectInfo(key=key, size=int(st.size or 0), etag=(st.etag or "").strip('"'))

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order.

        S3 promises UTF-8 byte order, but servers that keep objects in a folder tree (SeaweedFS) list
        folder by folder: 'a/b' before 'a.txt'. To keep the order on any server the listing is collected
        (as compact tuples, ~300 bytes per object) and sorted before it is yielded.
        """
        validate_prefix(prefix)

        def collect() -> list[tuple[str, int, str]]:
            return sorted(
                (obj.object_name, int(obj.size or 0), (obj.etag or "").strip('"'))
                for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if not obj.is_dir
            )

        for key, size, etag in self._call("list", collect):
            yield ObjectInfo(key=key, size=size, etag=etag)

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        validate_key(key)
        self._call("delete", lambda: self._client.remove_object(self.bucket, key), key)

    # --- presigned URLs ----------------------------------------------------------------------------
    def _expiry(self, expires_s: int) -> timedelta:
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise InvalidArgument(f"URL expiry must be 1..{MAX_PRESIGN_S} s, got {expires_s}")
        return timedelta(seconds=expires_s)

    def presigned_put_url(self, key: str, expires_s: int) -> str:
        validate_key(key)
        expires = self._expiry(expires_s)
        return self._call("presign put", lambda: self._signer.presigned_put_object(self.bucket, key, expires))

    def presigned_get_url(self, key: str, expires_s: int) -> str:
        validate_key(key)
        expires = self._expiry(expires_s)
        return self._call("presign get", lambda: self._signer.presigned_get_object(self.bucket, key, expires))


class _SourceFailed(Exception):
    """Carries an exception of the caller's stream through minio, so that it is not mistaken for an
    object-store error (a client hanging up raises ConnectionError too)."""


class _GuardedSource:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except Exception as exc:
            raise _SourceFailed() from exc
