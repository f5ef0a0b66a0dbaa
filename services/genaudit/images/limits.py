"""Limits every image from a client must respect before it is decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from genaudit.settings import Settings

DEFAULT_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"})


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int  # width * height of the (first) frame; checked from the header, before decoding
    formats: frozenset[str] = field(default=DEFAULT_FORMATS)  # Pillow format ids

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("image limits must be positive")
        formats = frozenset(f.upper() for f in self.formats)
        Image.init()  # registers every Pillow plugin, so that the check below sees them all
        unknown = formats - set(Image.OPEN)
        if unknown:
            raise ValueError(f"formats Pillow cannot open: {sorted(unknown)}")
        object.__setattr__(self, "formats", formats)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
