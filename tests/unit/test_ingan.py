"""InGAN: the generator's shapes, range, hook order and weights round trip; the transformation layer against a
float64 numpy bilinear resampling; the multi-scale discriminator's weighted sum against its scales called one by
one; the seeded output sizes; and short trainings on a 32 px photo of cat fur (identity reconstruction,
retargetings that are neither a bicubic resize nor noise, reproducibility, cancellation, refused configs).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genaudit.data.offline_photos import load_photos
from genaudit.errors import InvalidArgument, JobCancelled
from genaudit.generators import build_generator, load_generator, save_generator
from genaudit.generators.ingan import (
    GeometricTransform,
    InGANDiscriminator,
    InGANGenerator,
    discriminator_scales,
)
from genaudit.singleimage.ingan_training import (
    InGANSchedule,
    retarget_sizes,
    scale_range,
    scale_weights,
    train_ingan,
)
from genaudit.singleimage.training_image import training_tensor

SMALL = {"height": 32, "width": 32, "base_width": 8, "downsamplings": 2, "residual_blocks": 2, "out_channels": 3}
# 300 iterations of a small net on a 32 px image (about 12 s on one core), with CPU_SCHEDULE's identity term.
TEST_SCHEDULE = InGANSchedule(iterations=300, lr=5e-4, identity_weight=1.0, min_scale=0.75, max_scale=1.5,
                              curriculum_iterations=60, lr_decay_start=150, disc_width=16, even_scales_iteration=100)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def structured_image(size: int = 32) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1]: 8 px tiles, each a coloured disc of radius 3 on a dark ground."""
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((yy % 8 - 3.5) ** 2 + (xx % 8 - 3.5) ** 2) <= 9
    tile_colour = np.array([[0.9, -0.6, -0.4], [-0.5, 0.8, 0.2]])[((yy // 8 + xx // 8) % 2)]
    rgb = np.where(disc[..., None], tile_colour, -0.8)
    return torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32))


@functools.cache
def _fur() -> torch.Tensor:
    return training_tensor(dict(load_photos())["chelsea"].crop((100, 50, 228, 178)), 32)


def fur_image() -> torch.Tensor:
    """(1, 3, 32, 32): a 128 px crop of scikit-image's cat photo (its fur and the background), shrunk to 32 px."""
    return _fur().clone()


@pytest.fixture(scope="module")
def trained():
    return train_ingan(fur_image(), SMALL, TEST_SCHEDULE, seed=0)


def _network(seed: int = 0, **overrides) -> InGANGenerator:
    torch.manual_seed(seed)
    return InGANGenerator(**{**SMALL, **overrides}).eval()


# --- generator -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, (32, 32), (16, 48), (44, 20), (31, 17), (9, 70)])
def test_output_sizes_and_range(size):
    g = _network()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y = g(x, size)
    assert y.shape == (2, 3, *(size or (32, 32)))
    assert y.abs().max() <= 1


def test_input_of_any_size_and_grey_images():
    g = _network(out_channels=1)
    with torch.no_grad():
        assert g(torch.zeros(1, 1, 23, 37), (24, 40)).shape == (1, 1, 24, 40)
        assert g(torch.zeros(1, 1, 23, 37)).shape == (1, 1, 23, 37)  # identity T, padded to multiples of 4


def test_padding_leaves_the_requested_region_computed_from_the_transformed_features():
    """A side that is not a multiple of 2**d is padded then cropped: the transform is still the resize to the
    requested size, so the result differs from computing at the next multiple and cropping (a different T)."""
    g = _network()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        odd, rounded = g(x, (30, 30)), g(x, (32, 32))[..., :30, :30]
    assert not torch.allclose(odd, rounded)


def test_refused_inputs():
    g = _network()
    with pytest.raises(InvalidArgument):
        g(torch.zeros(1, 1, 32, 32))
    with pytest.raises(InvalidArgument):
        g(torch.zeros(3, 32, 32))
    for size in [(0, 16), (16,), (16.0, 16), (16, -4)]:
        with pytest.raises(InvalidArgument):
            g(torch.zeros(1, 3, 32, 32), size)


def test_layer_names_in_forward_hook_order():
    g = _network(residual_blocks=3, downsamplings=3)
    fired: list[str] = []
    for name in g.layer_names():
        g.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: fired.append(name))
    with torch.no_grad():
        g.retarget((40, 24))
    assert fired == g.layer_names()
    assert fired[:3] == ["entry.conv", "entry.act", "transform"]
    assert fired[-2:] == ["to_image.conv", "to_image.act"]
    assert {"down3.pool", "res3.expand", "up3.act"} <= set(fired)


def _bilinear_reference(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float64 bilinear resampling with half-pixel centres (source coordinate (i + 0.5) in / out - 0.5, clamped
    at 0, the edge pixel repeated), one axis after the other."""

    def along(values: np.ndarray, out: int, axis: int) -> np.ndarray:
        n = values.shape[axis]
        src = np.maximum((np.arange(out) + 0.5) * n / out - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        frac = src - lo
        shape = [1] * values.ndim
        shape[axis] = out
        frac = frac.reshape(shape)
        return np.take(values, lo, axis=axis) * (1 - frac) + np.take(values, hi, axis=axis) * frac

    return along(along(a, out_h, 2), out_w, 3)


@pytest.mark.parametrize("size", [(7, 13), (12, 5), (6, 6)])
def test_transform_layer_is_bilinear_resampling(size):
    a = np.random.default_rng(3).normal(size=(2, 4, 6, 9))
    got = GeometricTransform()(torch.from_numpy(a), size).numpy()
    np.testing.assert_allclose(got, _bilinear_reference(a, *size), rtol=0, atol=1e-12)


def test_registry_builds_it_and_weights_round_trip(tmp_path: Path):
    g = build_generator("ingan", SMALL)
    assert isinstance(g, InGANGenerator) and (g.height, g.width, g.out_channels) == (32, 32, 3)
    with torch.no_grad():
        g.source_image.copy_(structured_image())
        for p in g.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_generator(g, tmp_path / "g.safetensors", "ingan", SMALL)
    loaded = load_generator("ingan", tmp_path / "g.safetensors")
    assert torch.equal(loaded.source_image, structured_image())
    for name, tensor in g.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    g.eval()
    with torch.no_grad():
        for size in [(32, 32), (20, 44), (50, 30)]:
            assert torch.equal(loaded.retarget(size), g.retarget(size))


# --- discriminator -------------------------------------------------------------------------------------------


def test_discriminator_sums_its_scales_with_the_weights():
    torch.manual_seed(0)
    d = InGANDiscriminator(3, 8, num_scales=3, scale_factor=1.4).eval()
    x = torch.rand(1, 3, 40, 36) * 2 - 1
    with torch.no_grad():
        finest = d.scales[0](x)
        middle = d.scales[1](F.interpolate(x, size=(28, 25), mode="bilinear", antialias=True))
        coarse = d.scales[2](F.interpolate(x, size=(20, 18), mode="bilinear", antialias=True))
        up = lambda m: F.interpolate(m, size=finest.shape[-2:], mode="bilinear")  # noqa: E731
        expected = 0.5 * finest + 0.3 * up(middle) + 0.2 * up(coarse)
        got = d(x, [0.5, 0.3, 0.2])
    # 3 x 3 convs without padding (the second of stride 2), then 1 x 1: 40 -> 38 -> 18 -> 16, 36 -> 34 -> 16 -> 14
    assert finest.shape == (1, 1, 16, 14)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidArgument):
        d(x, [0.25] * 4)
    with pytest.raises(InvalidArgument):
        d(torch.zeros(1, 3, 12, 40), [1.0])


@pytest.mark.parametrize("side,expected", [(64, 5), (250, 9), (13, 1), (14, 1), (19, 2)])
def test_discriminator_scales_keep_13_px(side, expected):
    count = discriminator_scales(side, 2 * side, 1.4)
    assert count == expected
    assert math.floor(side / 1.4 ** (count - 1)) >= 13  # the coarsest scale still fits a 13 px patch


def test_scale_weights_move_from_coarse_to_fine():
    start = np.array(scale_weights(0, 4, 1.4, 100))
    np.testing.assert_allclose(start, 1.4 ** np.arange(4) / (1.4 ** np.arange(4)).sum(), rtol=1e-12)
    np.testing.assert_allclose(scale_weights(100, 4, 1.4, 100), [0.25] * 4, rtol=1e-12)
    late = np.array(scale_weights(300, 4, 1.4, 100))  # f = 1.4^-2
    np.testing.assert_allclose(late, 1.4 ** (-2.0 * np.arange(4)) / (1.4 ** (-2.0 * np.arange(4))).sum(), rtol=1e-12)


def test_curriculum_grows_the_scale_range():
    schedule = InGANSchedule(iterations=10, lr=1e-4, min_scale=0.5, max_scale=2.0, curriculum_iterations=100)
    assert scale_range(0, schedule) == (1.0, 1.0)
    assert scale_range(50, schedule) == pytest.approx((0.75, 1.5))
    assert scale_range(500, schedule) == pytest.approx((0.5, 2.0))


# --- output sizes of the audit -------------------------------------------------------------------------------


def test_retarget_sizes_are_seeded_multiples_in_range():
    sizes = retarget_sizes(200, 64, 48, seed=5, min_scale=0.5, max_scale=1.5, multiple=8)
    assert sizes == retarget_sizes(200, 64, 48, seed=5, min_scale=0.5, max_scale=1.5, multiple=8)
    assert sizes != retarget_sizes(200, 64, 48, seed=6, min_scale=0.5, max_scale=1.5, multiple=8)
    assert all(type(side) is int for size in sizes for side in size)  # what InGANGenerator.forward accepts
    h, w = np.array(sizes).T
    assert (h % 8 == 0).all() and (w % 8 == 0).all()
    assert h.min() >= 32 and h.max() <= 96 and w.min() >= 24 and w.max() <= 72
    assert len(set(h)) > 5 and np.corrcoef(h, w)[0, 1] < 0.3  # both axes vary, independently
    with pytest.raises(InvalidArgument):
        retarget_sizes(3, 64, 64, seed=0, min_scale=1.5, max_scale=0.5, multiple=4)


# --- training ------------------------------------------------------------------------------------------------


def _patches(image: np.ndarray, k: int = 5, stride: int = 1) -> np.ndarray:
    _, h, w = image.shape
    return np.stack([image[:, i:i + k, j:j + k].ravel() for i in range(0, h - k + 1, stride)
                     for j in range(0, w - k + 1, stride)]).astype(np.float64)


def nearest_patch_distance(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over ``image``'s 5 x 5 patches of the Euclidean distance to the nearest patch of ``reference``
    (float64 brute force)."""
    a, b = _patches(image[0].numpy(), stride=2), _patches(reference[0].numpy())
    d2 = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None]
    return float(np.sqrt(np.maximum(d2, 0)).min(1).mean())


def bicubic_resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow's bicubic resize of each channel (float mode), independent of torch."""
    channels = [np.asarray(Image.fromarray(c.numpy()).resize(size[::-1], Image.Resampling.BICUBIC)) for c in image[0]]
    return torch.from_numpy(np.stack(channels)[None])


def test_training_reproduces_the_image_under_the_identity_transform(trained):
    x = fur_image()
    assert isinstance(trained.generator, InGANGenerator) and not trained.generator.training
    assert torch.equal(trained.generator.source_image, x)
    with torch.no_grad():
        identity = trained.generator.retarget((32, 32))
        untrained = _network(seed=0)(x)
    l1 = (identity - x).abs().mean().item()
    assert l1 == pytest.approx(trained.identity_l1, abs=1e-6)
    # Bound: the L1 of the best constant image (each channel's median) times 0.4, i.e. at least 60% of the image's
    # deviation from a flat colour reproduced (measured: 0.06 against 0.21); the untrained network is far above it.
    median = x.flatten(2).median(dim=-1).values[..., None, None]
    constant_l1 = (x - median).abs().mean().item()
    assert l1 < 0.4 * constant_l1
    assert l1 < 0.4 * (untrained - x).abs().mean().item()
    assert set(trained.losses) == {"discriminator", "adversarial", "cycle_l1", "identity"}
    assert all(math.isfinite(v) for v in trained.losses.values())


@pytest.mark.parametrize("size", [(32, 48), (24, 40), (48, 24)])
def test_retargetings_are_not_a_resize_and_keep_the_patches(trained, size):
    x = fur_image()
    with torch.no_grad():
        out = trained.generator.retarget(size)
        own = trained.generator.retarget((32, 32))
    assert out.shape == (1, 3, *size)
    # Scale of "measurably different": how much two resampling kernels (antialiased bilinear, Pillow's bicubic)
    # differ on this image. The output must differ from the bicubic resize of the image and from the bicubic
    # resize of the network's own reconstruction (a network that only resized would match the latter) by more.
    kernels = (F.interpolate(x, size=size, mode="bilinear", antialias=True) - bicubic_resize(x, size)).abs().mean()
    assert (out - bicubic_resize(x, size)).abs().mean() > 3 * kernels
    assert (out - bicubic_resize(own, size)).abs().mean() > 2 * kernels
    noise = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # The output's patches resemble the image's far more than noise does (measured: 0.9 against 5.2).
    assert nearest_patch_distance(out, x) < 0.3 * nearest_patch_distance(noise, x)


def _short(iterations: int = 12) -> InGANSchedule:
    return InGANSchedule(iterations=iterations, lr=5e-4, curriculum_iterations=4, disc_width=8,
                         even_scales_iteration=6)


def test_seeded_training_is_reproducible_and_leaves_the_global_rng():
    config = {"base_width": 4, "residual_blocks": 1}
    state = torch.random.get_rng_state()
    first = train_ingan(structured_image(), config, _short(), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = train_ingan(structured_image(), config, _short(), seed=3)
    other = train_ingan(structured_image(), config, _short(), seed=4)
    for name, tensor in first.generator.state_dict().items():
        assert torch.equal(second.generator.state_dict()[name], tensor), name
    assert first.losses == second.losses
    assert not torch.equal(other.generator.entry.conv.weight, first.generator.entry.conv.weight)


def test_progress_and_cancellation():
    calls: list[tuple[int, int]] = []
    checks = iter([False, False, False, True])
    with pytest.raises(JobCancelled):
        train_ingan(structured_image(), {"base_width": 4, "residual_blocks": 0}, _short(),
                    progress=lambda done, total: calls.append((done, total)), check_cancelled=lambda: next(checks))
    assert calls == [(1, 12), (2, 12), (3, 12)]


def test_refused_configs_and_images():
    x = structured_image()
    with pytest.raises(InvalidArgument, match="does not match"):
        train_ingan(x, {"height": 64}, _short())
    with pytest.raises(InvalidArgument, match="does not match"):
        train_ingan(x, {"out_channels": 1}, _short())
    with pytest.raises(InvalidArgument):
        train_ingan(x, {"downsamplings": 9}, _short())
    with pytest.raises(InvalidArgument):
        train_ingan(x * 2, None, _short())
    with pytest.raises(InvalidArgument):
        train_ingan(torch.zeros(1, 3, 12, 32), None, _short())
    with pytest.raises(InvalidArgument):
        InGANSchedule(iterations=0, lr=1e-4)
