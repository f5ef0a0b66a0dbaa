"""Image degradations for detector training (Wang et al., CVPR 2020) and robustness tests.

Every function takes one image, a uint8 (H, W, 3) array or an RGB Pillow image, and returns a new uint8
(H, W, 3) array; the input is never modified.

Training (``TrainAugment``), as in ``PeterWang512/CNNDetection`` ``data/datasets.py``: with probability
``blur_prob`` a Gaussian blur, sigma ~ U[0, 3], applied per channel; then, drawn independently, with
probability ``jpeg_prob`` a JPEG round trip at quality ~ U{30, ..., 100}; then a random ``crop`` x ``crop``
window and a horizontal flip with probability 1/2. Validation (``ValTransform``) uses the same probabilities
with the mid-range values their ``get_val_opt`` fixes, sigma 1.5 and quality 65, then a centre crop.

``grid`` (both): the crop's corner is a multiple of ``grid`` pixels (the centre crop's rounded down to one). With
8, a JPEG'd image keeps its 8x8 block grid on the crop's, as the deployed ``Detector`` keeps an upload's; with 1
(Wang et al.'s), about 1 crop in 64 shares it, and a net whose input is a blockwise DCT learns JPEG off the grid
but is tested on it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from genaudit.errors import InvalidArgument

BLUR_SIGMA_RANGE = (0.0, 3.0)
JPEG_QUALITY_RANGE = (30, 100)  # inclusive
VAL_BLUR_SIGMA = 1.5
VAL_JPEG_QUALITY = 65

ImageInput = np.ndarray | Image.Image


def as_rgb_array(img: ImageInput) -> np.ndarray:
    """``img`` as a uint8 (H, W, 3) array (Pillow images are converted to RGB)."""
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGB"))
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        dtype = getattr(img, "dtype", type(img).__name__)
        raise InvalidArgument(f"expected a uint8 (H, W, 3) image, got {dtype} with shape {shape}")
    return img


def blur(img: ImageInput, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels within each channel (not across them).

    ``scipy.ndimage.gaussian_filter`` in float64 (kernel truncated at 4 sigma, borders reflected), rounded
    to the nearest integer; sigma 0 returns a copy.
    """
    array = as_rgb_array(img)
    if not sigma >= 0:
        raise InvalidArgument(f"blur sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return array.copy()
    blurred = gaussian_filter(array.astype(np.float64), sigma=(sigma, sigma, 0.0))
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def jpeg(img: ImageInput, quality: int) -> np.ndarray:
    """A real JPEG encode and decode in memory with Pillow at ``quality`` (1..100), its default options
    (4:2:0 chroma subsampling, so quality 100 is still lossy)."""
    array = as_rgb_array(img)
    if not 1 <= int(quality) <= 100:
        raise InvalidArgument(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def downscale(img: ImageInput, factor: float) -> np.ndarray:
    """Resolution loss by ``factor`` in (0, 1]: bilinear resize to round(factor * side) (at least 1 px),
    then bilinear back up to the original size.

    Going back up keeps the image size, so nets with a fixed input side (and the 8-px DCT blocks) apply
    unchanged and only the lost detail is measured. Pillow's bilinear filter widens with the scale when
    shrinking, i.e. the downscale is antialiased, as a photo editor's would be. Factor 1 returns a copy.
    """
    array = as_rgb_array(img)
    if not 0 < factor <= 1:
        raise InvalidArgument(f"downscale factor must be in (0, 1], got {factor}")
    if factor == 1:
        return array.copy()
    height, width = array.shape[:2]
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = Image.fromarray(array).resize(small, Image.Resampling.BILINEAR)
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).copy()


def _check_crop(array: np.ndarray, crop: int) -> None:
    height, width = array.shape[:2]
    if crop <= 0 or crop > min(height, width):
        raise InvalidArgument(f"crop {crop} does not fit a {height}x{width} image")


def center_crop(img: ImageInput, crop: int, grid: int = 1) -> np.ndarray:
    """The central ``crop`` x ``crop`` window: top-left corner at ((H - crop) // 2, (W - crop) // 2), each
    rounded down to a multiple of ``grid``."""
    array = as_rgb_array(img)
    _check_crop(array, crop)
    top = (array.shape[0] - crop) // 2 // grid * grid
    left = (array.shape[1] - crop) // 2 // grid * grid
    return array[top : top + crop, left : left + crop].copy()


def _check_transform(transform: TrainAugment | ValTransform) -> None:
    for name in ("blur_prob", "jpeg_prob"):
        if not 0 <= getattr(transform, name) <= 1:
            raise InvalidArgument(f"{name} must be in [0, 1], got {getattr(transform, name)}")
    if transform.crop <= 0:
        raise InvalidArgument(f"crop must be positive, got {transform.crop}")
    if transform.grid < 1:
        raise InvalidArgument(f"grid must be >= 1, got {transform.grid}")


@dataclass(frozen=True)
class TrainAugment:
    """Wang et al.'s training augmentation; ``p = 0.5`` or ``0.1`` in their paper.

    Each call draws, in this order and whatever the outcome, u_blur, sigma, u_jpeg, quality, the crop
    corner and u_flip from ``rng``, so a seed fixes the whole sequence of augmented images.
    """

    crop: int
    blur_prob: float = 0.5
    jpeg_prob: float = 0.5
    grid: int = 1

    def __post_init__(self) -> None:
        _check_transform(self)

    def __call__(self, img: ImageInput, rng: np.random.Generator) -> np.ndarray:
        array = as_rgb_array(img)
        _check_crop(array, self.crop)
        do_blur = rng.random() < self.blur_prob
        sigma = rng.uniform(*BLUR_SIGMA_RANGE)
        do_jpeg = rng.random() < self.jpeg_prob
        quality = int(rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1))
        top = self.grid * int(rng.integers(0, (array.shape[0] - self.crop) // self.grid + 1))
        left = self.grid * int(rng.integers(0, (array.shape[1] - self.crop) // self.grid + 1))
        flip = rng.random() < 0.5
        if do_blur:
            array = blur(array, sigma)
        if do_jpeg:
            array = jpeg(array, quality)
        array = array[top : top + self.crop, left : left + self.crop]
        return np.ascontiguousarray(array[:, ::-1] if flip else array)


@dataclass(frozen=True)
class ValTransform:
    """The validation transform of Wang et al.'s ``get_val_opt``: with probability ``blur_prob`` a blur of
    sigma 1.5, then, drawn independently, with probability ``jpeg_prob`` JPEG at quality 65, then a centre
    crop. Degrading every validation image whenever p > 0 would validate a p = 0.1 model on a set unlike
    its training distribution (and early-stop on it); drawing with the training p keeps the mix.

    Each call draws u_blur then u_jpeg from ``rng`` whatever the outcome; callers transform the
    validation set once with a seeded generator, so every epoch sees the same images.
    """

    crop: int
    blur_prob: float = 0.5
    jpeg_prob: float = 0.5
    grid: int = 1

    def __post_init__(self) -> None:
        _check_transform(self)

    def __call__(self, img: ImageInput, rng: np.random.Generator) -> np.ndarray:
        array = as_rgb_array(img)
        do_blur = rng.random() < self.blur_prob
        do_jpeg = rng.random() < self.jpeg_prob
        if do_blur:
            array = blur(array, VAL_BLUR_SIGMA)
        if do_jpeg:
            array = jpeg(array, VAL_JPEG_QUALITY)
        return center_crop(array, self.crop, self.grid)
