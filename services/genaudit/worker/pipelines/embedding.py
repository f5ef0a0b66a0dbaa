"""Embedding one dataset in a feature space: the step every feature-based pipeline starts with.

``list_dataset_images`` lists a dataset (keys and sizes only) and enforces the dataset limits;
``embed_dataset`` turns the listing into features. Images are streamed: fetched, hashed and decoded one at
a time while ``extract_features`` consumes them batch by batch, so at most a couple of batches of decoded
images are alive. A corrupt or oversize image is recorded (key and reason) and skipped; the dataset fails
only when no image decodes. Rows are the decoded images in key order.

With a ``FeatureCache`` the images are first fetched and hashed only (no decoding): the cache key is
``FeatureCache.key_for(space, preprocessing_id, [dataset_content_hash])`` over every listed image. Next to
the array a small JSON index names the rows and the skipped images (relative to the dataset, so a copy of
the same files in another dataset of the tenant hits too) and the image limits they were decided under.
On a miss the dataset is embedded as above and its content checked against the first pass, so the cache
never holds features of bytes other than those hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from genaudit.errors import FailedPrecondition, InvalidArgument, NotFound
from genaudit.features import FeatureCache, FeatureExtractor, dataset_content_hash, extract_features
from genaudit.images import ImageLimits, decode_image
from genaudit.jobs import keys
from genaudit.storage.base import ObjectInfo
from genaudit.telemetry.metrics import IMAGES_PROCESSED
from genaudit.worker.context import JobProgress, WorkerContext

# called with the number of images of this dataset handled so far (decoded or skipped) and a message
ReportImages = Callable[[int, str], None]

_CACHE_INDEX_VERSION = 1


@dataclass(frozen=True)
class EmbeddedDataset:
    dataset_id: str
    features: np.ndarray  # float32 (N, dim), one row per decoded image, in ``image_keys`` order
    image_keys: list[str]  # object keys of the decoded images, in key order
    failures: list[dict[str, str]]  # {"key": object key, "reason": why it was skipped}
    content_hash: str  # dataset_content_hash over every listed image (a skipped one included)
    cache_key: str | None  # where the features are cached; None without a cache
    cache_hit: bool

    @property
    def listed(self) -> int:
        return len(self.image_keys) + len(self.failures)


def list_dataset_images(ctx: WorkerContext, tenant: str, dataset_id: str) -> list[ObjectInfo]:
    """The image objects of a dataset in key order; InvalidArgument when it has none or too many."""
    objects = list(ctx.store.list(keys.dataset_images_prefix(tenant, dataset_id)))
    if not objects:
        raise InvalidArgument(f"dataset {dataset_id} has no images")
    if len(objects) > ctx.settings.max_images_per_dataset:
        raise InvalidArgument(
            f"dataset {dataset_id} has {len(objects)} images, more than the limit of "
            f"{ctx.settings.max_images_per_dataset}"
        )
    return objects


def _unread_stand_in(obj: ObjectInfo) -> str:
    # an image over the size limit is never downloaded: its size and etag stand for its content
    return hashlib.sha256(f"unread:{obj.size}:{obj.etag}".encode()).hexdigest()


class _DatasetReader:
    """Yields the decodable images of a listing in key order; remembers what it skipped and every hash."""

    def __init__(self, ctx: WorkerContext, progress: JobProgress, prefix: str, objects: list[ObjectInfo]) -> None:
        self._ctx = ctx
        self._progress = progress
        self._objects = objects
        self._prefix = prefix
        self._limits = ImageLimits.from_settings(ctx.settings)
        self._job_type = str(progress.job.job_type)
        self.decoded_keys: list[str] = []
        self.failures: list[dict[str, str]] = []
        self.content_hashes: list[tuple[str, str]] = []  # (name in the dataset, sha256 of the bytes)

    def _skip(self, key: str, reason: str) -> None:
        self.failures.append({"key": key, "reason": reason})
        IMAGES_PROCESSED.labels(job_type=self._job_type, outcome="invalid").inc()

    def images(self) -> Iterator[Image.Image]:
        for obj in self._objects:
            name = obj.key[len(self._prefix):]
            with self._progress.stage("decode"):
                if obj.size > self._limits.max_bytes:  # refused before it is downloaded
                    self.content_hashes.append((name, _unread_stand_in(obj)))
                    self._skip(obj.key, f"image of {obj.size} bytes exceeds the limit of {self._limits.max_bytes}")
                    continue
                data = self._ctx.store.get_bytes(obj.key)
                self.content_hashes.append((name, hashlib.sha256(data).hexdigest()))
                try:
                    image = decode_image(data, self._limits)
                except InvalidArgument as exc:
                    self._skip(obj.key, exc.message)
                    continue
            self.decoded_keys.append(obj.key)
            IMAGES_PROCESSED.labels(job_type=self._job_type, outcome="ok").inc()
            yield image


def _hash_listing(
    ctx: WorkerContext, progress: JobProgress, prefix: str, objects: list[ObjectInfo], check_every: int,
    report: ReportImages,
) -> str:
    """dataset_content_hash of a listing, fetching every image once (those over the size limit excepted)."""
    max_bytes = ImageLimits.from_settings(ctx.settings).max_bytes
    pairs: list[tuple[str, str]] = []
    with progress.stage("hash"):
        for index, obj in enumerate(objects, start=1):
            oversize = obj.size > max_bytes
            digest = _unread_stand_in(obj) if oversize else hashlib.sha256(ctx.store.get_bytes(obj.key)).hexdigest()
            pairs.append((obj.key[len(prefix):], digest))
            if index % check_every == 0 or index == len(objects):
                report(0, f"checking the feature cache: hashed {index}/{len(objects)} images")
                progress.check_cancelled()
    return dataset_content_hash(pairs)


def _index_key(cache_key: str) -> str:
    return cache_key.removesuffix(".npy") + ".json"


def _limits_record(ctx: WorkerContext) -> dict[str, object]:
    limits = ImageLimits.from_settings(ctx.settings)
    return {**asdict(limits), "formats": sorted(limits.formats)}


def _cached(
    ctx: WorkerContext, cache: FeatureCache, cache_key: str, prefix: str,
) -> tuple[np.ndarray, list[str], list[dict[str, str]]] | None:
    """(features, image keys, failures) from the cache, None on a miss or when the entry was made under
    other image limits (which decide what is skipped)."""
    try:
        index = json.loads(ctx.store.get_bytes(_index_key(cache_key)))
    except NotFound:
        return None
    if index.get("version") != _CACHE_INDEX_VERSION or index.get("image_limits") != _limits_record(ctx):
        return None
    features = cache.get(cache_key)
    if features is None or features.shape[0] != len(index["images"]):
        return None
    failures = [{"key": prefix + f["name"], "reason": f["reason"]} for f in index["failures"]]
    return features, [prefix + name for name in index["images"]], failures


def _store_in_cache(
    ctx: WorkerContext, cache: FeatureCache, cache_key: str, prefix: str, embedded: EmbeddedDataset,
) -> None:
    cache.put(cache_key, embedded.features)
    index = {
        "version": _CACHE_INDEX_VERSION,
        "image_limits": _limits_record(ctx),
        "images": [key[len(prefix):] for key in embedded.image_keys],
        "failures": [{"name": f["key"][len(prefix):], "reason": f["reason"]} for f in embedded.failures],
    }
    # written after the array: a reader finding the index finds the array it describes
    ctx.store.put_bytes(_index_key(cache_key), json.dumps(index, sort_keys=True).encode(),
                        content_type="application/json")


def embed_dataset(
    ctx: WorkerContext,
    progress: JobProgress,
    extractor: FeatureExtractor,
    tenant: str,
    dataset_id: str,
    objects: list[ObjectInfo],
    batch_size: int,
    report: ReportImages,
    cache: FeatureCache | None = None,
) -> EmbeddedDataset:
    """Features of the images in ``objects`` (from ``list_dataset_images``), see the module docstring.

    ``report`` is called after every batch; cancellation is checked after every batch. Raises
    InvalidArgument when no image decodes, FailedPrecondition when the images change during the job.
    """
    prefix = keys.dataset_images_prefix(tenant, dataset_id)
    cache_key = None
    expected_hash = None
    if cache is not None:
        expected_hash = _hash_listing(ctx, progress, prefix, objects, batch_size, report)
        cache_key = cache.key_for(extractor.name, extractor.preprocessing_id, [expected_hash])
        with progress.stage("cache_read"):
            hit = _cached(ctx, cache, cache_key, prefix)
        if hit is not None:
            features, image_keys, failures = hit
            report(len(objects), f"dataset {dataset_id}: {len(image_keys)} cached features")
            return EmbeddedDataset(dataset_id, features, image_keys, failures, expected_hash, cache_key, True)

    reader = _DatasetReader(ctx, progress, prefix, objects)
    total = len(objects)

    def after_batch(done: int) -> None:
        report(done + len(reader.failures),
               f"dataset {dataset_id}: extracted {done} images, {len(reader.failures)} skipped, of {total}")
        progress.check_cancelled()

    with progress.stage("extract"):
        features = extract_features(extractor, reader.images(), batch_size=batch_size, progress=after_batch)
    if not reader.decoded_keys:
        first = reader.failures[0]
        raise InvalidArgument(
            f"none of the {total} images of dataset {dataset_id} could be decoded "
            f"(first: {first['key']}: {first['reason']})"
        )
    report(total, f"dataset {dataset_id}: extracted {len(reader.decoded_keys)} images, "
                  f"{len(reader.failures)} skipped, of {total}")
    content_hash = dataset_content_hash(reader.content_hashes)
    if expected_hash is not None and content_hash != expected_hash:
        raise FailedPrecondition(f"the images of dataset {dataset_id} changed while the job read them; rerun it")
    embedded = EmbeddedDataset(dataset_id, features, reader.decoded_keys, reader.failures, content_hash,
                               cache_key, False)
    if cache is not None and cache_key is not None:
        progress.check_cancelled()  # a cancelled job writes nothing
        with progress.stage("cache_write"):
            _store_in_cache(ctx, cache, cache_key, prefix, embedded)
    return embedded
