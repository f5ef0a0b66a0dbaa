"""Dataset operations shared by the gateway's upload RPCs and the embedded ``genaudit audit``.

A dataset is an object prefix plus a record; images are validated (name, format, size, pixel count,
header only) before they are written, and written atomically, so a refused file leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import re

from genaudit.errors import InvalidArgument
from genaudit.images import ImageLimits, probe_image
from genaudit.jobs.keys import dataset_image_key, dataset_images_prefix, is_safe_filename
from genaudit.jobs.models import Dataset
from genaudit.jobs.store import RecordStore
from genaudit.storage.base import ObjectInfo, ObjectStore

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def ingest_image(
    store: ObjectStore, limits: ImageLimits, tenant: str, dataset_id: str, filename: str, data: bytes,
) -> ObjectInfo:
    """Validate one uploaded image and store it under the dataset; raises InvalidArgument."""
    if not is_safe_filename(filename):
        raise InvalidArgument(
            f"file name {filename!r} is not allowed: use letters, digits, '.', '_' and '-' (one path segment)"
        )
    try:
        info = probe_image(data, limits)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{filename}: {exc.message}") from exc
    key = dataset_image_key(tenant, dataset_id, filename)
    return store.put_bytes(key, data, content_type=f"image/{info.format.lower()}")


def commit_dataset(records: RecordStore, store: ObjectStore, tenant: str, dataset_id: str) -> Dataset:
    """Count the images stored under the dataset (after presigned uploads) and record the totals."""
    records.get_dataset(tenant, dataset_id)  # NotFound for unknown ids and other tenants' datasets
    count = total = 0
    for obj in store.list(dataset_images_prefix(tenant, dataset_id)):
        count += 1
        total += obj.size
    return records.update_dataset_counts(tenant, dataset_id, count, total)


def safe_object_name(relative_path: str) -> str:
    """A stable, allowed object name for a client-side relative path (``a/b c.png`` -> ``a__b_c.png``).

    Names that cannot be made safe by substitution get a short content-free hash of the path instead.
    """
    flat = "__".join(_UNSAFE_CHARS.sub("_", part) for part in relative_path.replace("\\", "/").split("/") if part)
    flat = flat.lstrip("._-")
    if is_safe_filename(flat):
        return flat
    digest = hashlib.sha256(relative_path.encode()).hexdigest()[:16]
    suffix = re.sub(r"[^A-Za-z0-9.]", "", relative_path.rsplit(".", 1)[-1])[:8] if "." in relative_path else "img"
    return f"file-{digest}.{suffix}"
