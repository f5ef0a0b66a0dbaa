"""Image handling for untrusted input: limits, safe probing and decoding, conversion to RGB.

Pillow (and numpy) only: the gateway imports this, and the gateway never imports torch.
"""

from __future__ import annotations

from genaudit.images.decode import ImageInfo, decode_image, probe_image
from genaudit.images.limits import DEFAULT_FORMATS, ImageLimits
from genaudit.images.rgb import to_rgb

__all__ = ["DEFAULT_FORMATS", "ImageInfo", "ImageLimits", "decode_image", "probe_image", "to_rgb"]
