"""Object store in a local folder: the embedded mode's backend (one process, no MinIO).

Layout: the object ``a/b/c.png`` is the file ``<root>/a/b/c.png``. Writes go to a temporary file in the
destination folder, are fsynced, then renamed over the key with ``os.replace``, so a reader sees the whole
old object or the whole new one and a failed write leaves nothing behind.

ETags are ``<mtime_ns hex>-<size hex>``: they change whenever an object is rewritten but, unlike S3's,
they are not content hashes.

Presigned URLs: there is no server to sign for, so ``presigned_put_url`` raises FailedPrecondition
(clients fall back to the streaming upload RPC). ``presigned_get_url`` returns a ``file://`` URL of the
object: only meaningful to a client on the same machine (the CLI, HTML reports); ``expires_s`` is ignored.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from genaudit.errors import FailedPrecondition, NotFound, Unavailable
from genaudit.storage.base import ObjectInfo
from genaudit.storage.validation import TEMP_PREFIX, ExactLengthReader, validate_key, validate_prefix

_COPY_CHUNK = 1024 * 1024


class LocalStore:
    """ObjectStore over a folder; safe for concurrent writers of distinct or identical keys."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # --- paths -------------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(key=key, size=st.st_size, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}")

    def _existing_file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key!r} not found")
        return path

    # --- writes ------------------------------------------------------------------------------------
    def _write(self, key: str, stream: BinaryIO) -> ObjectInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise FailedPrecondition(
                f"cannot store {key!r}: a parent of it is already an object in the local store"
            ) from exc
        if path.is_dir():
            raise FailedPrecondition(
                f"cannot store {key!r}: other objects are stored under '{key}/' in the local store"
            )
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                shutil.copyfileobj(stream, tmp, _COPY_CHUNK)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return self._info(key, path)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        return self._write(key, io.BytesIO(data))

    def put_stream(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Store ``stream``; with ``length`` >= 0 exactly that many bytes (InvalidArgument if fewer)."""
        source = stream if length < 0 else ExactLengthReader(stream, length)
        return self._write(key, source)  # type: ignore[arg-type]

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> ObjectInfo:
        with open(path, "rb") as f:
            return self._write(key, f)

    # --- reads -------------------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        try:
            return self._existing_file(key).read_bytes()
        except FileNotFoundError as exc:  # deleted between the check and the read
            raise NotFound(f"object {key!r} not found") from exc

    def get_file(self, key: str, path: Path) -> None:
        """Copy the object to ``path`` atomically (temp file beside it, then rename)."""
        source = self._existing_file(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp, open(source, "rb") as src:
                shutil.copyfileobj(src, tmp, _COPY_CHUNK)
            os.replace(tmp_name, path)
        except FileNotFoundError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise NotFound(f"object {key!r} not found") from exc
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def stat(self, key: str) -> ObjectInfo:
        try:
            return self._info(key, self._existing_file(key))
        except FileNotFoundError as exc:
            raise NotFound(f"object {key!r} not found") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order, streamed (the folder tree is walked lazily)."""
        validate_prefix(prefix)
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        yield from self._walk(start, f"{folder}/" if folder else "", prefix)

    def _walk(self, folder: Path, key_prefix: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if not e.name.startswith(TEMP_PREFIX)]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting a folder's entry 'a' as 'a/' keeps the whole walk in key order: every key under it
        # starts with 'a/', and 'a/' sorts against its siblings ('a.txt', 'a0') exactly as those keys do.
        keyed = [(key_prefix + e.name + ("/" if e.is_dir(follow_symlinks=False) else ""), e) for e in entries]
        for name, entry in sorted(keyed, key=lambda item: item[0]):
            if name.endswith("/"):
                if name.startswith(prefix) or prefix.startswith(name):
                    yield from self._walk(Path(entry.path), name, prefix)
            elif name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                try:
                    yield self._info(name, Path(entry.path))
                except FileNotFoundError:  # deleted while listing
                    continue

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (as in S3)."""
        path = self._path(key)
        if path.is_dir():
            return
        path.unlink(missing_ok=True)

    # --- URLs and health ---------------------------------------------------------------------------
    def presigned_put_url(self, key: str, expires_s: int) -> str:
        validate_key(key)
        raise FailedPrecondition(
            "the local-folder object store has no upload URLs; use the streaming upload "
            "through the gRPC API instead, or configure an S3 endpoint (GENAUDIT_S3_ENDPOINT)"
        )

    def presigned_get_url(self, key: str, expires_s: int) -> str:
        """A ``file://`` URL of the object, readable only on this machine; ``expires_s`` is ignored."""
        return self._existing_file(key).as_uri()

    def check(self) -> None:
        """Raise Unavailable unless the root folder exists (it is created) and is writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=self.root) as probe:
                probe.write(b"ok")
                probe.flush()
        except OSError as exc:
            raise Unavailable(f"local object store {self.root} is not writable: {exc}") from exc

