"""What the single-image jobs share: the one training image a spec names in a dataset.

A spec names a dataset and, optionally, an image's name in it (its key below the dataset's images). With no name
the dataset must hold exactly one image, so a job never picks one of several at random. The image is read under
the same limits as every upload (``images.decode_image``: format, bytes and pixels checked before decoding).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import Image

from genaudit.errors import InvalidArgument, NotFound
from genaudit.images import ImageLimits, decode_image
from genaudit.jobs import keys
from genaudit.worker.context import WorkerContext
from genaudit.worker.pipelines.dataset_images import list_dataset_images


@dataclass(frozen=True)
class DatasetImage:
    image: Image.Image
    dataset_id: str
    name: str  # the image's name in the dataset
    sha256: str  # of the stored bytes


def read_training_image(ctx: WorkerContext, tenant: str, dataset_id: str, name: str) -> DatasetImage:
    """The image ``name`` of the dataset, or its only image when ``name`` is empty (module docstring)."""
    prefix = keys.dataset_images_prefix(tenant, dataset_id)
    objects = list_dataset_images(ctx, tenant, dataset_id)  # InvalidArgument when it has none
    if name:
        found = [o for o in objects if o.key == prefix + name]
        if not found:
            raise NotFound(f"dataset {dataset_id} has no image {name!r}")
        chosen = found[0]
    elif len(objects) == 1:
        chosen = objects[0]
    else:
        shown = ", ".join(repr(o.key[len(prefix):]) for o in objects[:5]) + (", ..." if len(objects) > 5 else "")
        raise InvalidArgument(f"dataset {dataset_id} holds {len(objects)} images ({shown}): name the training image "
                              "with the spec's image field")
    limits = ImageLimits.from_settings(ctx.settings)
    if chosen.size > limits.max_bytes:
        raise InvalidArgument(f"image {chosen.key[len(prefix):]!r} of {chosen.size} bytes exceeds the limit of "
                              f"{limits.max_bytes}")
    data = ctx.store.get_bytes(chosen.key)
    return DatasetImage(decode_image(data, limits), dataset_id, chosen.key[len(prefix):],
                        hashlib.sha256(data).hexdigest())
