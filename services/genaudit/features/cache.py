"""Content-addressed cache of feature arrays in the object store, so a reference set is embedded once.

Torch-free. Arrays are stored with ``np.save(allow_pickle=False)`` and read back with
``np.load(allow_pickle=False)``: a cache object can never execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable

import numpy as np

from genaudit.errors import IntegrityError, InvalidArgument, NotFound
from genaudit.jobs.keys import is_safe_filename
from genaudit.storage.base import ObjectStore
from genaudit.storage.validation import validate_prefix

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def dataset_content_hash(images: Iterable[tuple[str, str]]) -> str:
    """sha256 over the sorted (image key, sha256 hex of the image bytes) pairs of a dataset.

    Pass keys relative to the dataset (e.g. the file name under ``images/``) so that the same files
    uploaded again, or by another dataset, give the same hash. Each pair is hashed as one JSON line, so
    no choice of keys can make two different datasets collide by concatenation. Feature arrays cached under
    this hash have one row per image in sorted key order.
    """
    digest = hashlib.sha256()
    for key, image_sha256 in sorted(images):
        if not _SHA256_HEX.match(image_sha256):
            raise InvalidArgument(f"image {key!r}: {image_sha256!r} is not a lower-case sha256 hex digest")
        digest.update(json.dumps([key, image_sha256], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


class FeatureCache:
    """Feature arrays (N, dim) under ``<prefix>/<space>/<digest>.npy`` in an object store."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = validate_prefix(prefix).rstrip("/")

    def key_for(self, space: str, preprocessing_id: str, content_hashes: list[str]) -> str:
        """Key of the features of the images named by ``content_hashes`` (in row order: one
        ``dataset_content_hash`` per dataset, or one image sha256 per row) in ``space``; use the
        extractor's ``name`` and ``preprocessing_id``, which includes the weights' sha256."""
        if not is_safe_filename(space):
            raise InvalidArgument(f"invalid feature space name {space!r} for a cache key")
        if not content_hashes:
            raise InvalidArgument("a feature cache key needs at least one content hash")
        identity = json.dumps(
            {"space": space, "preprocessing_id": preprocessing_id, "content_hashes": list(content_hashes)},
            sort_keys=True,
            ensure_ascii=False,
        )
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        return f"{self.prefix}/{space}/{digest}.npy" if self.prefix else f"{space}/{digest}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached float32 (N, dim) array, None on a miss; IntegrityError for a corrupt object."""
        try:
            data = self.store.get_bytes(key)
        except NotFound:
            return None
        try:
            features = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise IntegrityError(f"cached features {key!r} are unreadable: {exc}") from exc
        if not isinstance(features, np.ndarray) or features.ndim != 2 or features.dtype != np.float32:
            raise IntegrityError(f"cached features {key!r} are not a float32 (N, dim) array")
        return features

    def put(self, key: str, features: np.ndarray) -> None:
        """Store a float32 (N, dim) array under ``key`` (atomically, as every object-store write)."""
        if features.ndim != 2 or features.dtype != np.float32:
            raise InvalidArgument(f"features must be a float32 (N, dim) array, got {features.dtype} {features.shape}")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(features), allow_pickle=False)
        self.store.put_bytes(key, buffer.getvalue())

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array, or ``compute()``'s, stored before it is returned."""
        features = self.get(key)
        if features is None:
            features = compute()
            self.put(key, features)
        return features
