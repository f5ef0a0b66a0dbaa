"""S3Store against a real S3 server (SeaweedFS, started by the s3_server fixture)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from genaudit.errors import InvalidArgument, NotFound, Unavailable
from genaudit.settings import Settings
from genaudit.storage import S3Store, open_store
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


class ChunkedStream:
    """A non-seekable source of unknown length (like a socket): ``total`` bytes of ``data`` served in
    small reads; raises ``fail_with`` once ``fail_after`` bytes have been served."""

    def __init__(self, data: bytes, fail_after: int | None = None, fail_with: Exception | None = None):
        self._data = data
        self._pos = 0
        self._fail_after = fail_after
        self._fail_with = fail_with

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise self._fail_with or RuntimeError("source failed")
        size = 64 * 1024 if size is None or size < 0 else min(size, 64 * 1024)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


@pytest.fixture
def store(s3_settings: Settings) -> S3Store:
    return S3Store(s3_settings)


def test_open_store_picks_s3_when_endpoint_set(s3_settings: Settings) -> None:
    assert isinstance(open_store(s3_settings), S3Store)


def test_bucket_created_on_first_use(s3_settings: Settings, s3_server: S3Server) -> None:
    client = s3_server.client()
    assert not client.bucket_exists(s3_settings.s3_bucket)
    store = S3Store(s3_settings)
    assert not client.bucket_exists(s3_settings.s3_bucket), "construction must do no I/O"
    store.check()
    assert client.bucket_exists(s3_settings.s3_bucket)


def test_round_trip_stat_exists_delete(store: S3Store) -> None:
    data = os.urandom(10_000)
    info = store.put_bytes("tenants/acme/x/blob.bin", data)
    assert (info.key, info.size) == ("tenants/acme/x/blob.bin", len(data))
    assert info.etag == hashlib.md5(data).hexdigest()  # single-part ETag is the content MD5
    assert store.get_bytes("tenants/acme/x/blob.bin") == data
    assert store.stat("tenants/acme/x/blob.bin") == info
    assert store.exists("tenants/acme/x/blob.bin")
    store.put_bytes("tenants/acme/x/blob.bin", b"new")  # overwrite
    assert store.get_bytes("tenants/acme/x/blob.bin") == b"new"
    store.delete("tenants/acme/x/blob.bin")
    assert not store.exists("tenants/acme/x/blob.bin")
    store.delete("tenants/acme/x/blob.bin")  # deleting a missing key is fine


def test_missing_key_is_not_found(store: S3Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope"):
        store.get_bytes("nope")
    with pytest.raises(NotFound):
        store.stat("dir/nope")
    with pytest.raises(NotFound):
        store.get_file("nope", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert list(tmp_path.iterdir()) == []  # no temp file left behind
    assert not store.exists("nope")


def test_put_file_and_get_file(store: S3Store, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3 * MiB + 17))
    info = store.put_file("files/in.bin", source)
    assert info.size == source.stat().st_size
    target = tmp_path / "sub" / "out.bin"
    store.get_file("files/in.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_list_is_recursive_sorted_and_prefix_filtered(store: S3Store) -> None:
    keys = ["a/b", "a.txt", "a/c/d", "a0", "b/x", "ab/y", "a/b.txt"]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list("")] == sorted(keys)
    assert [o.key for o in store.list("a/")] == ["a/b", "a/b.txt", "a/c/d"]
    assert [o.key for o in store.list("a")] == sorted(k for k in keys if k.startswith("a"))
    assert [o.key for o in store.list("zzz/")] == []
    sizes = {o.key: o.size for o in store.list("")}
    assert sizes == {k: len(k) for k in keys}


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "..", "a\\b", "a/", "./a", "a/./b"])
def test_invalid_keys_are_refused_before_any_request(key: str) -> None:
    # Nothing listens at this endpoint: a network call would raise Unavailable, not InvalidArgument.
    store = S3Store(Settings(s3_endpoint="127.0.0.1:9", s3_access_key="k", s3_secret_key="s"))
    with pytest.raises(InvalidArgument):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidArgument):
        store.get_bytes(key)


def test_presigned_put_then_http_put_then_get(store: S3Store) -> None:
    url = store.presigned_put_url("uploads/cat.png", 600)
    body = os.urandom(50_000)
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert store.get_bytes("uploads/cat.png") == body


def test_presigned_get_downloads(store: S3Store) -> None:
    body = os.urandom(20_000)
    store.put_bytes("results/report.json", body)
    url = store.presigned_get_url("results/report.json", 600)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == body
    tampered = url.replace("X-Amz-Expires=600", "X-Amz-Expires=601")
    assert tampered != url
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(tampered, timeout=10)
    assert denied.value.code == 403


def test_presigned_urls_use_public_endpoint(s3_settings: Settings, s3_server: S3Server) -> None:
    port = s3_server.endpoint.rsplit(":", 1)[1]
    public = dataclasses.replace(s3_settings, s3_public_endpoint=f"localhost:{port}")
    store = S3Store(public)
    url = store.presigned_put_url("uploads/dog.png", 300)
    assert urllib.parse.urlsplit(url).netloc == f"localhost:{port}"
    with urllib.request.urlopen(urllib.request.Request(url, data=b"woof", method="PUT"), timeout=10):
        pass
    assert store.get_bytes("uploads/dog.png") == b"woof"


def test_signing_for_public_endpoint_sends_nothing_there(s3_settings: Settings) -> None:
    # The public host does not even resolve: signing must be purely local.
    unreachable = dataclasses.replace(s3_settings, s3_public_endpoint="s3.genaudit.invalid:9000")
    store = S3Store(unreachable)
    url = store.presigned_get_url("k", 60)
    assert url.startswith(f"http://s3.genaudit.invalid:9000/{s3_settings.s3_bucket}/k?")
    assert "X-Amz-Signature=" in url


def test_presign_expiry_bounds(store: S3Store) -> None:
    with pytest.raises(InvalidArgument):
        store.presigned_put_url("k", 0)
    with pytest.raises(InvalidArgument):
        store.presigned_get_url("k", 8 * 24 * 3600)


def test_multipart_upload_of_unknown_length(store: S3Store) -> None:
    data = os.urandom(2 * 16 * MiB + 123)  # three parts of 16 MiB
    info = store.put_stream("big/blob.bin", ChunkedStream(data), length=-1)
    assert info.size == len(data)
    assert info.etag.endswith("-3"), f"expected a 3-part multipart ETag, got {info.etag}"
    assert hashlib.sha256(store.get_bytes("big/blob.bin")).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("fail_after", "error"),
    [(1 * MiB, RuntimeError("disk gone")), (20 * MiB, ConnectionResetError("client hung up"))],
    ids=["first-part", "after-a-part"],
)
def test_failed_stream_leaves_no_object(store: S3Store, fail_after: int, error: Exception) -> None:
    store.put_bytes("big/other.bin", b"keep")
    stream = ChunkedStream(os.urandom(40 * MiB), fail_after=fail_after, fail_with=error)
    with pytest.raises(type(error), match=str(error)):  # the source's own error, not Unavailable
        store.put_stream("big/blob.bin", stream, length=-1)
    assert not store.exists("big/blob.bin")
    assert [o.key for o in store.list("big/")] == ["big/other.bin"]


def test_failed_overwrite_keeps_old_object(store: S3Store) -> None:
    store.put_bytes("k.bin", b"old")
    with pytest.raises(RuntimeError):
        store.put_stream("k.bin", ChunkedStream(os.urandom(20 * MiB), fail_after=17 * MiB), length=-1)
    assert store.get_bytes("k.bin") == b"old"


def test_short_stream_with_declared_length_is_refused(store: S3Store) -> None:
    with pytest.raises(InvalidArgument, match="100 of the declared 200"):
        store.put_stream("short.bin", ChunkedStream(b"x" * 100), length=200)
    assert not store.exists("short.bin")


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_is_unavailable_quickly(s3_settings: Settings) -> None:
    endpoint = f"127.0.0.1:{_unused_port()}"
    store = S3Store(dataclasses.replace(s3_settings, s3_endpoint=endpoint))
    for operation in (store.check, lambda: store.put_bytes("k", b"x"), lambda: store.get_bytes("k")):
        start = time.monotonic()
        with pytest.raises(Unavailable, match=endpoint):
            operation()
        assert time.monotonic() - start < 10


def test_wrong_credentials_are_unavailable(s3_settings: Settings) -> None:
    store = S3Store(dataclasses.replace(s3_settings, s3_secret_key="wrong-secret"))
    with pytest.raises(Unavailable, match="credentials"):
        store.check()
