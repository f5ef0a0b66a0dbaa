"""Feature cache: content hashes, keys, and the round trip through a real LocalStore."""

from __future__ import annotations

import hashlib
import io
import random

import numpy as np
import pytest

from genaudit.errors import IntegrityError, InvalidArgument
from genaudit.features.cache import FeatureCache, dataset_content_hash
from genaudit.storage import LocalStore

A = hashlib.sha256(b"image a").hexdigest()
B = hashlib.sha256(b"image b").hexdigest()
C = hashlib.sha256(b"image c").hexdigest()


def test_dataset_content_hash_is_sorted_pairs_as_json_lines():
    pairs = [("b.png", B), ("a.png", A), ("c/d.png", C)]
    # Independent reference: the documented byte layout written out literally.
    literal = f'["a.png", "{A}"]\n["b.png", "{B}"]\n["c/d.png", "{C}"]\n'.encode()
    assert dataset_content_hash(pairs) == hashlib.sha256(literal).hexdigest()
    shuffled = pairs[:]
    random.Random(3).shuffle(shuffled)
    assert dataset_content_hash(shuffled) == dataset_content_hash(pairs)
    assert dataset_content_hash([("a.png", B), ("b.png", A)]) != dataset_content_hash([("a.png", A), ("b.png", B)])
    assert dataset_content_hash([("a.png", A)]) != dataset_content_hash([("a.png", A), ("b.png", B)])
    with pytest.raises(InvalidArgument, match="sha256"):
        dataset_content_hash([("a.png", "A" * 64)])


def test_keys_depend_on_every_input(tmp_path):
    cache = FeatureCache(LocalStore(tmp_path), "feature-cache/")
    key = cache.key_for("vgg16-fc2", "v1:x", [A, B])
    assert key.startswith("feature-cache/vgg16-fc2/") and key.endswith(".npy")
    assert cache.key_for("vgg16-fc2", "v1:x", [A, B]) == key
    others = {
        cache.key_for("efficientnet-lite0", "v1:x", [A, B]),
        cache.key_for("vgg16-fc2", "v1:y", [A, B]),
        cache.key_for("vgg16-fc2", "v1:x", [B, A]),  # row order matters
        cache.key_for("vgg16-fc2", "v1:x", [A]),
    }
    assert key not in others and len(others) == 4
    assert FeatureCache(LocalStore(tmp_path), "").key_for("vgg16-fc2", "v1:x", [A, B]) == key.removeprefix(
        "feature-cache/"
    )
    with pytest.raises(InvalidArgument):
        cache.key_for("../escape", "v1:x", [A])
    with pytest.raises(InvalidArgument):
        cache.key_for("vgg16-fc2", "v1:x", [])
    with pytest.raises(InvalidArgument):
        FeatureCache(LocalStore(tmp_path), "../outside")


def test_round_trip_through_a_local_store(tmp_path):
    store = LocalStore(tmp_path)
    cache = FeatureCache(store, "cache")
    key = cache.key_for("efficientnet-lite0", "v1:x", [dataset_content_hash([("a.png", A)])])
    assert cache.get(key) is None
    features = np.random.default_rng(0).standard_normal((7, 1280)).astype(np.float32)
    cache.put(key, features)
    assert store.exists(key)
    loaded = cache.get(key)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, features)
    # A fresh cache over the same folder (another process) sees it too.
    assert np.array_equal(FeatureCache(LocalStore(tmp_path), "cache").get(key), features)

    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return features * 2

    other = cache.key_for("efficientnet-lite0", "v1:x", [B])
    first = cache.get_or_compute(other, compute)
    second = cache.get_or_compute(other, compute)
    assert len(calls) == 1 and np.array_equal(first, second) and np.array_equal(second, features * 2)


def test_refuses_bad_arrays_and_corrupt_or_pickled_objects(tmp_path):
    store = LocalStore(tmp_path)
    cache = FeatureCache(store, "cache")
    with pytest.raises(InvalidArgument):
        cache.put("cache/x.npy", np.zeros((3, 4), dtype=np.float64))
    with pytest.raises(InvalidArgument):
        cache.put("cache/x.npy", np.zeros(4, dtype=np.float32))
    store.put_bytes("cache/corrupt.npy", b"not numpy at all")
    with pytest.raises(IntegrityError):
        cache.get("cache/corrupt.npy")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    store.put_bytes("cache/pickled.npy", pickled.getvalue())
    with pytest.raises(IntegrityError):
        cache.get("cache/pickled.npy")
    wrong_shape = io.BytesIO()
    np.save(wrong_shape, np.zeros((2, 3, 4), dtype=np.float32))
    store.put_bytes("cache/wrong.npy", wrong_shape.getvalue())
    with pytest.raises(IntegrityError):
        cache.get("cache/wrong.npy")
