"""Safe image decoding: limits checked from the header, corrupt data refused, every mode to RGB."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from genaudit.errors import InvalidArgument
from genaudit.images import ImageInfo, ImageLimits, decode_image, probe_image
from genaudit.settings import Settings

LIMITS = ImageLimits(max_bytes=32 * 1024 * 1024, max_pixels=40_000_000)
REPO = Path(__file__).resolve().parents[2]


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_1bit(width: int, height: int) -> bytes:
    """A black 1-bit greyscale PNG written by hand (zlib + struct, not Pillow), streaming its rows, so
    that even a 20000x20000 one costs a few MB of work and ~50 KB of output."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    row = bytes(1 + (width + 7) // 8)  # filter byte 0 + packed zero bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rgb_array(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image, dtype=np.int64)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A smooth colour image with detail (gradients + stripes), 96x64."""
    y, x = np.mgrid[0:64, 0:96]
    pixels = np.stack([x * 255 // 95, y * 255 // 63, ((x // 4 + y // 4) % 2) * 200 + 20], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


# --- limits --------------------------------------------------------------------------------------------

def test_limits_from_settings() -> None:
    limits = ImageLimits.from_settings(Settings(max_image_bytes=1234, max_image_pixels=5678))
    assert (limits.max_bytes, limits.max_pixels) == (1234, 5678)
    assert limits.formats == {"PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"}


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        ImageLimits(0, 10)
    with pytest.raises(ValueError, match="JPG"):
        ImageLimits(10, 10, frozenset({"JPG"}))


# --- lossless formats decode to the exact pixels ---------------------------------------------------------

@pytest.mark.parametrize(("fmt", "params"), [("PNG", {}), ("WEBP", {"lossless": True}), ("BMP", {}),
                                             ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"})])
def test_lossless_round_trip(photo: Image.Image, fmt: str, params: dict) -> None:
    data = encode(photo, fmt, **params)
    assert probe_image(data, LIMITS) == ImageInfo(format=fmt, width=96, height=64, mode="RGB")
    np.testing.assert_array_equal(rgb_array(decode_image(data, LIMITS)), rgb_array(photo))


def test_lossy_jpeg_and_webp_are_close() -> None:
    y, x = np.mgrid[0:64, 0:96]
    smooth = Image.fromarray(np.stack([x * 2, y * 3, (x + y) + 60], axis=-1).astype(np.uint8))
    for fmt in ("JPEG", "WEBP"):
        decoded = decode_image(encode(smooth, fmt, quality=95), LIMITS)
        assert decoded.size == (96, 64)
        assert np.abs(rgb_array(decoded) - rgb_array(smooth)).mean() < 3


def test_multi_picture_jpeg_counts_as_jpeg() -> None:
    # Phone cameras write MPO (a JPEG followed by more JPEGs); Pillow names it MPO.
    first, second = Image.new("RGB", (16, 8), (0, 200, 0)), Image.new("RGB", (16, 8), (200, 0, 0))
    data = encode(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert probe_image(data, LIMITS) == ImageInfo(format="JPEG", width=16, height=8, mode="RGB")
    assert np.abs(rgb_array(decode_image(data, LIMITS)) - [0, 200, 0]).max() <= 3


# --- conversion to RGB -------------------------------------------------------------------------------------

def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    samples = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    data = encode(Image.fromarray(samples), "PNG")
    assert probe_image(data, LIMITS).mode.startswith("I;16")
    decoded = rgb_array(decode_image(data, LIMITS))
    expected = np.floor(samples.astype(np.float64) * 255.0 / 65535.0 + 0.5)  # independent: v*255/65535
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], expected)


def test_cmyk_lossless_matches_subtractive_formula() -> None:
    rng = np.random.default_rng(0)
    cmyk = rng.integers(0, 256, size=(16, 16, 4), dtype=np.uint8)
    cmyk[..., 3] = 0  # no black: then every CMYK->RGB convention agrees on R = 255 - C, ...
    decoded = rgb_array(decode_image(encode(Image.fromarray(cmyk, "CMYK"), "TIFF"), LIMITS))
    np.testing.assert_array_equal(decoded, 255 - cmyk[..., :3].astype(np.int64))


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 0, 0)), "JPEG", quality=95)  # pure magenta ink
    assert probe_image(data, LIMITS).mode == "CMYK"
    assert np.abs(rgb_array(decode_image(data, LIMITS)) - [255, 0, 255]).max() <= 3


def test_alpha_is_composited_on_white() -> None:
    alphas = np.array([[0, 64, 128, 255]], dtype=np.uint8)
    rgba = np.zeros((1, 4, 4), dtype=np.uint8)
    rgba[..., 2] = 200  # blue
    rgba[..., 3] = alphas
    decoded = rgb_array(decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), LIMITS))
    a = alphas[0].astype(np.float64) / 255.0
    expected_blue = np.rint(200 * a + 255 * (1 - a))
    expected_rg = np.rint(255 * (1 - a))
    np.testing.assert_allclose(decoded[0, :, 2], expected_blue, atol=1)
    np.testing.assert_allclose(decoded[0, :, 0], expected_rg, atol=1)
    np.testing.assert_allclose(decoded[0, :, 1], expected_rg, atol=1)


def test_grey_alpha_and_palette_transparency() -> None:
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], dtype=np.uint8), "LA")
    np.testing.assert_array_equal(rgb_array(decode_image(encode(la, "PNG"), LIMITS))[0], [[255] * 3, [0] * 3])

    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0])
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    data = encode(palette, "PNG", transparency=0)  # index 0 (red) transparent
    assert probe_image(data, LIMITS).mode == "P"
    np.testing.assert_array_equal(rgb_array(decode_image(data, LIMITS))[0], [[255, 255, 255], [0, 255, 0]])


def test_bilevel_and_grey() -> None:
    bilevel = Image.new("1", (3, 1))
    bilevel.putpixel((1, 0), 1)
    np.testing.assert_array_equal(rgb_array(decode_image(encode(bilevel, "PNG"), LIMITS))[0],
                                  [[0, 0, 0], [255, 255, 255], [0, 0, 0]])
    grey = Image.fromarray(np.array([[7, 130]], dtype=np.uint8))
    decoded = rgb_array(decode_image(encode(grey, "PNG"), LIMITS))
    np.testing.assert_array_equal(decoded[0], [[7] * 3, [130] * 3])


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    decoded = decode_image(buffer.getvalue(), LIMITS)
    assert decoded.size == (8, 8)
    assert set(map(tuple, rgb_array(decoded).reshape(-1, 3))) == {(255, 0, 0)}


def test_multipage_tiff_gives_first_page() -> None:
    pages = [Image.new("RGB", (4, 4), (10, 20, 30)), Image.new("RGB", (6, 6), (200, 0, 0))]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    decoded = decode_image(data, LIMITS)
    assert decoded.size == (4, 4) and decoded.getpixel((0, 0)) == (10, 20, 30)


def test_exif_orientation_is_applied() -> None:
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(stored, "JPEG", exif=exif, quality=95)
    assert probe_image(data, LIMITS).width == 40  # the header describes the stored pixels
    upright = decode_image(data, LIMITS)
    assert upright.size == (20, 40)
    # Rotating clockwise moves the stored left half to the top.
    assert np.abs(np.asarray(upright)[:18].astype(int) - [255, 0, 0]).max() < 10
    assert np.abs(np.asarray(upright)[22:].astype(int) - [0, 0, 255]).max() < 10


# --- refused input ---------------------------------------------------------------------------------------

def test_empty_and_random_bytes() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        probe_image(b"", LIMITS)
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for call in (probe_image, decode_image):
        with pytest.raises(InvalidArgument, match="unknown or unsupported format"):
            call(noise, LIMITS)


def test_byte_limit(photo: Image.Image) -> None:
    data = encode(photo, "PNG")
    assert probe_image(data, ImageLimits(max_bytes=len(data), max_pixels=10**6)).width == 96
    with pytest.raises(InvalidArgument, match=f"{len(data)} bytes.*limit of {len(data) - 1} bytes"):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1, max_pixels=10**6))


def test_pixel_limit_boundary(photo: Image.Image) -> None:
    data = encode(photo, "PNG")
    assert probe_image(data, ImageLimits(max_bytes=10**6, max_pixels=96 * 64)).height == 64
    with pytest.raises(InvalidArgument, match="96x64 = 6144 pixels, over the limit of 6143"):
        decode_image(data, ImageLimits(max_bytes=10**6, max_pixels=96 * 64 - 1))


def test_disallowed_formats(photo: Image.Image) -> None:
    ppm = encode(photo, "PPM")  # Pillow reads PPM, but it is not in the allowed list
    with pytest.raises(InvalidArgument, match="unknown or unsupported format"):
        probe_image(ppm, LIMITS)
    png_only = ImageLimits(max_bytes=10**6, max_pixels=10**6, formats=frozenset({"PNG"}))
    with pytest.raises(InvalidArgument, match="allowed: PNG"):
        decode_image(encode(photo, "JPEG"), png_only)


def test_truncated_jpeg_is_corrupt_not_padded() -> None:
    noise = np.random.default_rng(2).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=90)
    truncated = data[: len(data) * 6 // 10]
    assert probe_image(truncated, LIMITS).width == 256  # the header is intact...
    with pytest.raises(InvalidArgument, match="corrupt image"):
        decode_image(truncated, LIMITS)  # ...the pixels are not
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_data(photo: Image.Image) -> None:
    data = bytearray(encode(photo, "PNG"))
    data[len(data) // 2] ^= 0xFF  # CRC / zlib error inside IDAT
    with pytest.raises(InvalidArgument, match="corrupt image"):
        decode_image(bytes(data), LIMITS)


def test_zero_size_png() -> None:
    with pytest.raises(InvalidArgument):
        probe_image(png_1bit(0, 10), LIMITS)


def test_hand_built_png_is_valid() -> None:
    decoded = decode_image(png_1bit(37, 5), LIMITS)
    assert decoded.size == (37, 5)
    assert not np.asarray(decoded).any()  # all black


def test_decompression_bomb_refused_from_header() -> None:
    bomb = png_1bit(20_000, 20_000)
    assert len(bomb) < 100_000
    for call in (probe_image, decode_image):
        with pytest.raises(InvalidArgument, match="over the limit of 40000000 pixels"):
            call(bomb, LIMITS)


_MEMORY_PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from genaudit.errors import InvalidArgument
    from genaudit.images import ImageLimits, decode_image
    from tests.unit.test_images import png_1bit

    limits = ImageLimits(max_bytes=10**7, max_pixels=40_000_000)
    bomb, control = png_1bit(20_000, 20_000), png_1bit(4_000, 4_000)
    decode_image(png_1bit(8, 8), limits)  # warm up: plugins imported, codecs initialised

    def growth_kib(work):
        # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forked parent (here
        # pytest, which may be large) across execve, so it can hide a child's whole decode.
        def status_kib(name):
            line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(name))
            return int(line.split()[1])
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = status_kib("VmRSS:")
        work()
        return status_kib("VmHWM:") - before

    def decode_bomb():
        try:
            decode_image(bomb, limits)
            sys.exit("bomb accepted")
        except InvalidArgument:
            pass

    bomb_kib = growth_kib(decode_bomb)
    control_kib = growth_kib(lambda: decode_image(control, limits))  # 16 Mpixel: 16 MB as mode 1, 48 MB as RGB
    print(bomb_kib, control_kib)
""")


def test_bomb_is_refused_before_any_big_allocation() -> None:
    # Peak RSS in a fresh process: Pillow allocates pixels with C malloc, which tracemalloc cannot see.
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=True)
    bomb_kib, control_kib = map(int, result.stdout.split())
    print(f"peak RSS growth: bomb {bomb_kib} KiB, 16 Mpixel control {control_kib} KiB")
    assert bomb_kib < 8 * 1024, f"refusing the bomb raised peak memory by {bomb_kib} KiB"
    assert control_kib > 30 * 1024, "the measurement must see a real decode (control)"


def test_import_stays_light() -> None:
    code = "import sys, genaudit.images; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
