"""Embedding one dataset in a feature space: the step every feature-based pipeline starts with.

``dataset_images.list_dataset_images`` lists a dataset (keys and sizes only) and enforces the dataset limits;
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
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from genaudit.errors import FailedPrecondition, InvalidArgument, NotFound
from genaudit.features import FeatureCache, FeatureExtractor, dataset_content_hash, extract_features
from genaudit.images import ImageLimits
from genaudit.jobs import keys
from genaudit.storage.base import ObjectInfo
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import DatasetReader, unread_stand_in

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
            digest = unread_stand_in(obj) if oversize else hashlib.sha256(ctx.store.get_bytes(obj.key)).hexdigest()
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

    reader = DatasetReader(ctx, progress, prefix, objects)
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
