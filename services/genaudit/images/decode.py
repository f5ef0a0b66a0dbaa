"""Safe decoding of untrusted image bytes.

Every image from a client goes through ``probe_image`` (header only: format, size) before any pixel is
decoded, so a decompression bomb (a tiny file declaring 20000x20000 pixels) is refused before anything
big is allocated. All problems with the data raise genaudit.errors.InvalidArgument naming the limit or
the defect. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never enabled: a truncated file is an error, not an
image with a grey bottom.

Pillow's own DecompressionBombError (over twice ``Image.MAX_IMAGE_PIXELS``) is caught and reported
against our limit. Its DecompressionBombWarning is not turned into an error because changing the
process-wide warnings filter is not thread-safe (the gateway decodes in a thread pool); our own
width x height check runs right after the header is read and is the guard.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from genaudit.errors import InvalidArgument
from genaudit.images.limits import ImageLimits
from genaudit.images.rgb import to_rgb

# Pillow names some files after a container of the allowed format: phone JPEGs with a multi-picture
# index open as MPO. They are JPEGs as far as the limits are concerned.
_FORMAT_ALIASES = {"MPO": "JPEG"}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow format id, e.g. "PNG", "JPEG"
    width: int
    height: int
    mode: str  # Pillow pixel mode as stored, e.g. "RGB", "P", "I;16"


def _open_checked(data: bytes, limits: ImageLimits) -> tuple[Image.Image, ImageInfo]:
    if not data:
        raise InvalidArgument("invalid image: empty data")
    if len(data) > limits.max_bytes:
        raise InvalidArgument(
            f"image too large: {len(data)} bytes, over the limit of {limits.max_bytes} bytes "
            "(max_image_bytes)"
        )
    allowed = ", ".join(sorted(limits.formats))
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(limits.formats))
    except Image.DecompressionBombError as exc:
        raise InvalidArgument(
            f"image too large: over the limit of {limits.max_pixels} pixels (max_image_pixels): {exc}"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise InvalidArgument(f"invalid image: unknown or unsupported format (allowed: {allowed})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # plugins raise all sorts (SyntaxError, struct.error...) on a bad header
        raise InvalidArgument(f"corrupt image: unreadable header: {exc}") from exc
    image_format = _FORMAT_ALIASES.get(image.format or "", image.format or "")
    if image_format not in limits.formats:
        raise InvalidArgument(f"invalid image: format {image_format} is not allowed (allowed: {allowed})")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidArgument(f"invalid image: zero-size ({width}x{height})")
    if width * height > limits.max_pixels:
        raise InvalidArgument(
            f"image too large: {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_pixels} pixels (max_image_pixels)"
        )
    return image, ImageInfo(format=image_format, width=width, height=height, mode=image.mode)


def probe_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Format, size and mode from the header alone; InvalidArgument when any limit is broken."""
    image, info = _open_checked(data, limits)
    image.close()
    return info


def decode_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """The first frame of ``data`` as an upright 8-bit RGB image (EXIF orientation applied, transparency
    composited on white), after the checks of :func:`probe_image`."""
    image, _ = _open_checked(data, limits)
    try:
        image.load()  # the current frame, i.e. the first one of an animation or multi-page file
        ImageOps.exif_transpose(image, in_place=True)
    except MemoryError:
        raise
    except Exception as exc:  # truncated or corrupt pixel data: OSError, SyntaxError, ValueError...
        raise InvalidArgument(f"corrupt image: {exc}") from exc
    return to_rgb(image)
