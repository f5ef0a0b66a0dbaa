"""Thumbnails as base64 PNG data URIs, made from untrusted image bytes without ever failing the report."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from genaudit.images.decode import decode_image
from genaudit.images.limits import ImageLimits


@dataclass(frozen=True)
class Thumbnail:
    """Either ``data_uri`` (a PNG) or ``error`` (why the image could not be shown)."""

    key: str
    data_uri: str | None
    error: str | None


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def make_thumbnail(image: Image.Image, thumb_px: int) -> Image.Image:
    """``image`` scaled so its longer side is ``thumb_px``: NEAREST when enlarging (small images such as
    8x8 digits keep visible, honest pixels), LANCZOS when shrinking."""
    scale = thumb_px / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return image.resize(size, resample)


class ThumbnailCache:
    """Loads, decodes (with the safe decoder and its limits) and shrinks each key once per report."""

    def __init__(self, load_image: Callable[[str], bytes], thumb_px: int, limits: ImageLimits):
        self._load_image = load_image
        self._thumb_px = thumb_px
        self._limits = limits
        self._thumbnails: dict[str, Thumbnail] = {}

    def get(self, key: str) -> Thumbnail:
        if key not in self._thumbnails:
            self._thumbnails[key] = self._make(key)
        return self._thumbnails[key]

    def _make(self, key: str) -> Thumbnail:
        try:
            image = decode_image(self._load_image(key), self._limits)
            buffer = io.BytesIO()
            make_thumbnail(image, self._thumb_px).save(buffer, format="PNG", optimize=True)
        except MemoryError:
            raise
        except Exception as exc:  # any loader or decoder failure becomes a placeholder, never a broken report
            return Thumbnail(key, None, f"{type(exc).__name__}: {exc}"[:300])
        return Thumbnail(key, png_data_uri(buffer.getvalue()), None)
