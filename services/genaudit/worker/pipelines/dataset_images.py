"""The images of a stored dataset: its listing under the dataset limits, and a reader that fetches, hashes and
decodes them one at a time, skipping (and recording) the corrupt or oversize ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.images import ImageLimits, decode_image
from genaudit.jobs import keys
from genaudit.storage.base import ObjectInfo
from genaudit.telemetry.metrics import IMAGES_PROCESSED
from genaudit.worker.context import JobProgress, WorkerContext


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


def unread_stand_in(obj: ObjectInfo) -> str:
    """The content hash of an image over the size limit, which is never downloaded: its size and etag stand
    for its content."""
    return hashlib.sha256(f"unread:{obj.size}:{obj.etag}".encode()).hexdigest()


class DatasetReader:
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
                    self.content_hashes.append((name, unread_stand_in(obj)))
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
