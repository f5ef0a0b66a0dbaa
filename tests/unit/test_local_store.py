"""LocalStore: the embedded mode's object store in a folder."""

from __future__ import annotations

import os
import threading
import urllib.request
from pathlib import Path

import pytest

from genaudit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from genaudit.settings import Settings
from genaudit.storage import LocalStore, ObjectStore, open_store


class FailingStream:
    """Serves ``good`` bytes in small reads, then raises: a source that dies mid-upload."""

    def __init__(self, good: bytes) -> None:
        self._good = good
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if self._pos >= len(self._good):
            raise ConnectionResetError("client went away")
        chunk = self._good[self._pos : self._pos + 4096]
        self._pos += len(chunk)
        return chunk


class Reader:
    """A plain non-seekable reader (io.BytesIO would let a store cheat with seek/getbuffer)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_open_store_picks_local_without_endpoint(tmp_path: Path) -> None:
    store = open_store(Settings(store_dir=tmp_path / "s"))
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "s"
    assert isinstance(store, ObjectStore)


def test_round_trip_stat_exists_delete(store: LocalStore) -> None:
    data = os.urandom(5000)
    info = store.put_bytes("tenants/acme/a/blob.bin", data)
    assert (info.key, info.size) == ("tenants/acme/a/blob.bin", 5000)
    assert (store.root / "tenants" / "acme" / "a" / "blob.bin").read_bytes() == data
    assert store.get_bytes("tenants/acme/a/blob.bin") == data
    assert store.stat("tenants/acme/a/blob.bin") == info
    assert store.exists("tenants/acme/a/blob.bin")
    store.put_bytes("tenants/acme/a/blob.bin", b"v2")
    assert store.get_bytes("tenants/acme/a/blob.bin") == b"v2"
    assert store.stat("tenants/acme/a/blob.bin").etag != info.etag
    store.delete("tenants/acme/a/blob.bin")
    assert not store.exists("tenants/acme/a/blob.bin")
    store.delete("tenants/acme/a/blob.bin")  # deleting a missing key is fine
    store.delete("tenants/acme")  # a folder is not an object: nothing happens


def test_put_stream_known_and_unknown_length(store: LocalStore) -> None:
    data = os.urandom(100_000)
    assert store.put_stream("u", Reader(data), length=len(data)).size == len(data)
    assert store.get_bytes("u") == data
    info = store.put_stream("v", Reader(data), length=-1)
    assert info.size == len(data) and store.get_bytes("v") == data
    # Only the declared length is taken from a longer stream.
    assert store.put_stream("w", Reader(data), length=10).size == 10
    assert store.get_bytes("w") == data[:10]


def test_short_stream_is_refused_and_leaves_nothing(store: LocalStore) -> None:
    with pytest.raises(InvalidArgument, match="100 of the declared 200"):
        store.put_stream("short", Reader(b"x" * 100), length=200)
    assert not store.exists("short")
    assert files_under(store.root) == []


def test_failing_stream_leaves_no_object_and_no_temp_file(store: LocalStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put_stream("d/new.bin", FailingStream(os.urandom(50_000)))
    assert not store.exists("d/new.bin")
    assert files_under(store.root) == []


def test_failing_overwrite_keeps_old_object(store: LocalStore) -> None:
    store.put_bytes("d/obj.bin", b"old")
    with pytest.raises(ConnectionResetError):
        store.put_stream("d/obj.bin", FailingStream(os.urandom(50_000)))
    assert store.get_bytes("d/obj.bin") == b"old"
    assert files_under(store.root) == ["d/obj.bin"]


def test_readers_never_see_partial_objects(store: LocalStore) -> None:
    big_a, big_b = b"a" * 3_000_000, b"b" * 3_000_000
    store.put_bytes("k", big_a)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            data = store.get_bytes("k")
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())

    reader = threading.Thread(target=read_loop)
    reader.start()
    for i in range(20):
        store.put_bytes("k", big_b if i % 2 else big_a)
    stop.set()
    reader.join()
    assert seen <= {b"aa3000000", b"bb3000000"}


def test_missing_key_is_not_found(store: LocalStore, tmp_path: Path) -> None:
    for call in (
        lambda: store.get_bytes("nope"),
        lambda: store.stat("a/nope"),
        lambda: store.get_file("nope", tmp_path / "out"),
        lambda: store.presigned_get_url("nope", 60),
    ):
        with pytest.raises(NotFound, match="nope"):
            call()
    store.put_bytes("dir/x", b"1")
    with pytest.raises(NotFound):
        store.get_bytes("dir")  # a folder is not an object
    assert not store.exists("dir")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "a//b", "a/../../b", "..", "a\\b", "a/", ".", "a/./b", "x\x00y",
            ".genaudit-tmp-abc", "a/.genaudit-tmp-x"],
)
def test_invalid_keys_are_refused(store: LocalStore, key: str) -> None:
    with pytest.raises(InvalidArgument):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidArgument):
        store.get_bytes(key)
    with pytest.raises(InvalidArgument):
        store.exists(key)
    assert not store.root.exists() or files_under(store.root) == []


@pytest.mark.parametrize("prefix", ["/a", "a//", "../", "a/../", "a\\"])
def test_invalid_prefixes_are_refused(store: LocalStore, prefix: str) -> None:
    with pytest.raises(InvalidArgument):
        list(store.list(prefix))


def test_list_is_recursive_sorted_and_prefix_filtered(store: LocalStore) -> None:
    keys = ["a/b", "a.txt", "a/c/d", "a0", "b/x", "ab/y", "a/b.txt", "a-1/z", "é/1", "Z"]
    for key in reversed(keys):
        store.put_bytes(key, key.encode())
    listing = list(store.list(""))
    assert [o.key for o in listing] == sorted(keys)  # code point order = UTF-8 byte order (as in S3)
    assert {o.key: o.size for o in listing} == {k: len(k.encode()) for k in keys}
    assert [o.key for o in store.list("a/")] == ["a/b", "a/b.txt", "a/c/d"]
    assert [o.key for o in store.list("a")] == sorted(k for k in keys if k.startswith("a"))
    assert [o.key for o in store.list("a/b")] == ["a/b", "a/b.txt"]
    assert [o.key for o in store.list("nothing/")] == []
    assert [o.key for o in store.list("a.txt/")] == []  # a file, not a folder


def test_list_ignores_in_flight_temp_files(store: LocalStore) -> None:
    store.put_bytes("d/done", b"1")
    (store.root / "d" / ".genaudit-tmp-inflight").write_bytes(b"partial")
    assert [o.key for o in store.list("")] == ["d/done"]


def test_key_and_prefix_collisions_are_failed_precondition(store: LocalStore) -> None:
    store.put_bytes("a/b", b"1")
    with pytest.raises(FailedPrecondition):
        store.put_bytes("a", b"2")  # 'a' is a folder here
    store.put_bytes("f", b"1")
    with pytest.raises(FailedPrecondition):
        store.put_bytes("f/g", b"2")  # 'f' is an object
    assert store.get_bytes("a/b") == b"1" and store.get_bytes("f") == b"1"


def test_put_file_and_get_file(store: LocalStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(2_500_000))
    assert store.put_file("files/in.bin", source).size == 2_500_000
    target = tmp_path / "out" / "copy.bin"
    store.get_file("files/in.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]


def test_presigned_put_is_failed_precondition_pointing_to_streaming(store: LocalStore) -> None:
    with pytest.raises(FailedPrecondition, match="streaming upload"):
        store.presigned_put_url("uploads/x.png", 600)
    with pytest.raises(InvalidArgument):
        store.presigned_put_url("../x", 600)


def test_presigned_get_is_a_file_url(store: LocalStore) -> None:
    store.put_bytes("reports/r 1.json", b'{"ok": true}')
    url = store.presigned_get_url("reports/r 1.json", 600)
    assert url.startswith("file://") and "r%201.json" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b'{"ok": true}'


def test_check_creates_root_and_reports_unusable_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "new" / "root")
    store.check()
    assert store.root.is_dir()
    (tmp_path / "a-file").write_bytes(b"")
    broken = LocalStore(tmp_path / "a-file" / "root")  # cannot be created, even by root
    with pytest.raises(Unavailable, match="not writable"):
        broken.check()
