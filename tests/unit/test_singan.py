"""SinGAN: the pyramid, the latent layout, hooks, weights round trip, the forward recursion against an independent
float64 reference, and a short training on a small structured image (reconstruction, diversity, noise amplitudes,
seeding, cancellation, refused configs)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument, JobCancelled
from genaudit.generators import build_generator, load_generator, save_generator
from genaudit.generators.singan import SinGANGenerator, pyramid_sizes, scale_widths
from genaudit.singleimage.singan_training import SinGANSchedule, real_pyramid, singan_config_for, train_singan
from genaudit.units.monitored import default_monitored_layers

SMALL = {"height": 24, "width": 32, "num_scales": 3, "coarsest_side": 12, "base_width": 16, "max_width": 16}

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _randomized(config: dict, seed: int = 0) -> SinGANGenerator:
    """A SinGAN whose every float tensor (weights, batch-norm statistics, noise amplitudes, z*) is a fresh random
    draw, in eval mode."""
    torch.manual_seed(seed)
    model = build_generator("singan", config)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or name == "noise_amp":
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                t.copy_(torch.randn_like(t) * 0.3)
    return model.eval()


def test_pyramid_sizes_widths_and_latent_dim_match_a_hand_computation() -> None:
    # r = (12 / 24) ** (1 / 2) = 0.70711: 24 r = 16.97 -> 17, 32 r = 22.63 -> 23; coarsest 12 x 16.
    g = SinGANGenerator(**SMALL, out_channels=3)
    assert g.scale_sizes == [(12, 16), (17, 23), (24, 32)]
    assert g.latent_dim == 3 * (12 * 16 + 17 * 23 + 24 * 32) == 4053
    assert (g.height, g.width, g.resolution, g.num_scales) == (24, 32, 32, 3)
    # Registry default: 64 px, 5 scales from 16: r = 0.25 ** 0.25 = 0.7071 -> 22.6, 32, 45.25.
    assert pyramid_sizes(64, 64, 5, 16) == [(16, 16), (23, 23), (32, 32), (45, 45), (64, 64)]
    assert pyramid_sizes(40, 30, 1, 8) == [(40, 30)]
    assert scale_widths(9, 32, 128) == [32, 32, 32, 32, 64, 64, 64, 64, 128]
    assert scale_widths(9, 32, 48) == [32, 32, 32, 32, 48, 48, 48, 48, 48]
    with pytest.raises(InvalidArgument, match="coarsest_side"):
        SinGANGenerator(height=20, width=40, coarsest_side=21)


def test_config_for_follows_the_papers_pyramid() -> None:
    # 64 px: ceil(log(25/64) / log(0.75)) = ceil(3.27) = 4 steps -> 5 scales; 250 px: ceil(8.004) + 1 = 10.
    assert singan_config_for(64, 80) == {"height": 64, "width": 80, "num_scales": 5, "coarsest_side": 25,
                                         "base_width": 32, "max_width": 128, "out_channels": 3}
    assert singan_config_for(250, 300)["num_scales"] == 10
    small = singan_config_for(20, 30, out_channels=1)
    assert (small["coarsest_side"], small["num_scales"], small["out_channels"]) == (20, 1, 1)
    assert singan_config_for(8, 1024, coarsest_side=4)["coarsest_side"] == 8  # the registry's minimum
    assert singan_config_for(1000, 1000, scale_factor=0.9)["num_scales"] == 16  # clamped to the registry's bound
    with pytest.raises(InvalidArgument, match="scale_factor"):
        singan_config_for(64, 64, scale_factor=1.5)


def test_layer_names_fire_in_forward_order_and_output_is_an_image_in_range() -> None:
    g = _randomized({**SMALL, "out_channels": 1})
    names = g.layer_names()
    assert names[:4] == ["scales.0.block1.conv", "scales.0.block1.norm", "scales.0.block1.act", "scales.0.block2.conv"]
    assert names[12:16] == ["scales.0.block5.conv", "scales.0.block5.act", "scales.0.clamp", "scales.1.block1.conv"]
    assert len(names) == 3 * 15
    fired: list[str] = []
    handles = [g.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: fired.append(n)) for n in names]
    with torch.no_grad():
        out = g(g.sample_latents(3, torch.Generator().manual_seed(0)))
    for h in handles:
        h.remove()
    assert fired == names
    assert out.shape == (3, 1, 24, 32)
    # Weights of std 0.3 saturate tanh, so the residual sums leave [-1, 1] and the clamp is exercised.
    assert out.min() >= -1 and out.max() <= 1 and (out.abs() == 1).any()
    assert default_monitored_layers(g) == ["scales.0.block4.act", "scales.1.block4.act"]  # 17 x 23 <= 32 px


def test_split_latents_is_the_inverse_of_flattening_in_scale_order() -> None:
    g = SinGANGenerator(**SMALL, out_channels=3)
    z = torch.randn(2, g.latent_dim, generator=torch.Generator().manual_seed(3))
    maps = g.split_latents(z)
    assert [tuple(m.shape) for m in maps] == [(2, 3, 12, 16), (2, 3, 17, 23), (2, 3, 24, 32)]
    assert torch.equal(g.flatten_latents(maps), z)
    # Element (i, c, y, x) of scale 1 sits after the 3*12*16 values of scale 0, in C-order.
    i, c, y, x = 1, 2, 5, 7
    assert maps[1][i, c, y, x] == z[i, 3 * 12 * 16 + c * 17 * 23 + y * 23 + x]
    rec = g.split_latents(g.reconstruction_latent())
    assert torch.equal(rec[0], g.reconstruction_noise) and all(not m.any() for m in rec[1:])
    with pytest.raises(InvalidArgument, match="latents"):
        g(torch.zeros(1, g.latent_dim + 1))


def test_weights_round_trip_bit_equal_with_buffers(tmp_path: Path) -> None:
    config = {**SMALL, "out_channels": 3}
    g = _randomized(config, seed=4)
    path = tmp_path / "singan.safetensors"
    save_generator(g, path, "singan", config)
    loaded = load_generator("singan", path)
    assert isinstance(loaded, SinGANGenerator) and not loaded.training
    ref_state = g.state_dict()
    for name in ("noise_amp", "reconstruction_noise", "scales.2.block3.norm.running_var"):
        assert torch.equal(loaded.state_dict()[name], ref_state[name])
    z = g.sample_latents(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(z), g(z))
        assert torch.equal(loaded(loaded.reconstruction_latent()), g(g.reconstruction_latent()))


def _bilinear_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, h, w) -> (N, C, H, W): bilinear with half-pixel centres, edges clamped (float64 numpy)."""
    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    (y0, y1, fy), (x0, x1, fx) = axis(image.shape[2], size[0]), axis(image.shape[3], size[1])
    rows = image[:, :, y0] * (1 - fy)[:, None] + image[:, :, y1] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def _reference_forward(g: SinGANGenerator, z: torch.Tensor) -> np.ndarray:
    """x_0 = psi_0(sigma_0 z_0), x_n = clip(up(x_{n-1}) + psi_n(sigma_n z_n + up(x_{n-1}))), from the state dict in
    float64, convs by im2col in numpy and batch norm written out."""
    state = {k: v.double().numpy() for k, v in g.state_dict().items()}
    flat, offset, x = z.double().numpy(), 0, None

    def conv(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:  # valid 3x3
        _, c, h, wd = a.shape
        patches = np.stack([a[:, :, dy:h - 2 + dy, dx:wd - 2 + dx] for dy in range(3) for dx in range(3)], axis=2)
        return np.einsum("ncphw,ocp->nohw", patches, w.reshape(w.shape[0], c, 9)) + b[None, :, None, None]

    for n, (h, w) in enumerate(g.scale_sizes):
        size = g.out_channels * h * w
        noise = flat[:, offset:offset + size].reshape(-1, g.out_channels, h, w)
        offset += size
        up = np.zeros_like(noise) if x is None else _bilinear_resize(x, (h, w))
        a = np.pad(state["noise_amp"][n] * noise + up, ((0, 0), (0, 0), (5, 5), (5, 5)))
        for k in range(1, 5):
            p = f"scales.{n}.block{k}."
            a = conv(a, state[p + "conv.weight"], state[p + "conv.bias"])
            a = ((a - state[p + "norm.running_mean"][None, :, None, None])
                 / np.sqrt(state[p + "norm.running_var"][None, :, None, None] + 1e-5)
                 * state[p + "norm.weight"][None, :, None, None] + state[p + "norm.bias"][None, :, None, None])
            a = np.where(a > 0, a, 0.2 * a)
        a = np.tanh(conv(a, state[f"scales.{n}.block5.conv.weight"], state[f"scales.{n}.block5.conv.bias"]))
        x = np.clip(up + a, -1, 1)
    return x


def test_forward_matches_an_independent_reference_composition() -> None:
    g = _randomized({**SMALL, "out_channels": 3}, seed=7)
    z = g.sample_latents(2, torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = g(z).double().numpy()
    ref = _reference_forward(g, z)
    assert np.abs(out - ref).max() < 1e-5
    assert 0 < np.mean(np.abs(ref) == 1) < 0.9 and ref.std() > 0.1  # clamped and unclamped pixels both occur
    # forward_from at the finest scale with up(x_1) given (already at the scale's size) is the same recursion.
    with torch.no_grad():
        x = None
        for n, noise in enumerate(g.split_latents(z)[:2]):
            x = g.scale_step(n, noise, x)
        assert torch.allclose(g.forward_from(2, g.upsample(x, 2), z), g(z), atol=1e-6)
    with pytest.raises(InvalidArgument, match="scale"):
        g.forward_from(0, x)


def _structured_image() -> torch.Tensor:
    """24 x 32 RGB in [-1, 1]: a diagonal colour gradient, a bright square and dark vertical stripes."""
    y, x = np.mgrid[0:24, 0:32] / 32.0
    image = np.stack([x - 0.5, y - 0.5, 0.4 - (x + y) / 2])
    image[:, 6:14, 18:26] = [[[0.9]], [[0.8]], [[-0.6]]]
    image[:, :, 4:6] -= 0.6
    image[:, :, 10:12] -= 0.6
    return torch.from_numpy(np.clip(image, -1, 1)).float().unsqueeze(0)


TRAIN_CONFIG = {**SMALL, "out_channels": 3}
# The paper's recipe with alpha = 100 instead of 10: at alpha = 10 the reconstruction of this image plateaus near
# 0.06 RMSE for the first ~100 iterations per scale (measured: 0.062 after 80), too close to the bound below for a
# test this short; alpha = 100 reaches 0.03 after 50 iterations per scale and the samples stay diverse. The paper's
# alpha on a 64 px photo: see CPU_SCHEDULE in genaudit.singleimage.singan_training.
SHORT = SinGANSchedule(iterations_per_scale=50, reconstruction_weight=100.0, norm_statistics_samples=16)


@pytest.fixture(scope="module")
def fit():
    done: list[tuple[int, int]] = []
    result = train_singan(_structured_image(), TRAIN_CONFIG, SHORT, seed=0, device="cpu",
                          progress=lambda d, t: done.append((d, t)))
    return result, done


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def test_trained_reconstruction_reproduces_the_image_and_samples_vary(fit) -> None:
    fit, progress_calls = fit
    g, real = fit.generator, _structured_image()
    assert not g.training and fit.device == torch.device("cpu") and fit.schedule is SHORT
    assert progress_calls == [(i, 150) for i in range(1, 151)]
    with torch.no_grad():
        rec = g(g.reconstruction_latent())
        samples = g(g.sample_latents(6, torch.Generator().manual_seed(11)))
    rec_rmse = _rmse(rec, real)
    assert math.isclose(rec_rmse, fit.scales[-1].reconstruction_rmse, rel_tol=1e-4)
    # Bound: the finest scale must add detail that the coarser ones cannot hold, i.e. clearly beat the image's own
    # previous pyramid level upsampled back (0.089 here): what a perfect reconstruction at scale 1 would give if
    # the finest scale were an identity (and a fortiori the coarsest level upsampled, 0.112).
    levels = real_pyramid(real, g.scale_sizes)
    upsampled = [_rmse(torch.nn.functional.interpolate(lv, size=(24, 32), mode="bilinear"), real) for lv in levels[:2]]
    assert rec_rmse < 0.6 * upsampled[1] < 0.6 * upsampled[0]
    sample_rmse = [_rmse(s, real[0]) for s in samples]
    assert rec_rmse < 0.5 * min(sample_rmse)
    pairs = [_rmse(samples[i], samples[j]) for i in range(6) for j in range(i + 1, 6)]
    assert min(pairs) > 0.02


def test_noise_amplitudes_follow_the_reconstruction_error_of_the_coarser_scale(fit) -> None:
    fit, _ = fit
    g, real = fit.generator, _structured_image()
    reals = real_pyramid(real, g.scale_sizes)
    assert g.noise_amp[0] == 1
    maps = g.split_latents(g.reconstruction_latent())
    x = None
    with torch.no_grad():
        for n in range(1, g.num_scales):
            x = g.scale_step(n - 1, maps[n - 1], x)
            up = _bilinear_resize(x.double().numpy(), g.scale_sizes[n])
            rmse = np.sqrt(np.mean((up - reals[n].double().numpy()) ** 2))
            assert math.isclose(float(g.noise_amp[n]), 0.1 * rmse, rel_tol=1e-4)
    assert [s.size for s in fit.scales] == g.scale_sizes
    assert all(np.isfinite([s.discriminator_loss, s.adversarial_loss, s.reconstruction_loss]).all()
               for s in fit.scales)


def test_training_is_seeded_cancellable_and_checks_its_config() -> None:
    image = _structured_image()
    tiny = SinGANSchedule(iterations_per_scale=3, norm_statistics_samples=2)
    first = train_singan(image, TRAIN_CONFIG, tiny, seed=5, device="cpu")
    again = train_singan(image, TRAIN_CONFIG, tiny, seed=5, device="cpu")
    other = train_singan(image, TRAIN_CONFIG, tiny, seed=6, device="cpu")
    a, b, c = (f.generator.state_dict() for f in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["scales.2.block1.conv.weight"], c["scales.2.block1.conv.weight"])

    calls = []

    def cancel_on_fifth() -> bool:
        calls.append(1)
        return len(calls) == 5

    with pytest.raises(JobCancelled):
        train_singan(image, TRAIN_CONFIG, tiny, device="cpu", check_cancelled=cancel_on_fifth)
    assert len(calls) == 5  # before iteration 5 (the second scale's second): nothing after it ran
    with pytest.raises(InvalidArgument, match="24 x 32"):
        train_singan(image, {**TRAIN_CONFIG, "width": 30}, tiny, device="cpu")
    with pytest.raises(InvalidArgument, match="24 x 32"):
        train_singan(image[:, :1], TRAIN_CONFIG, tiny, device="cpu")
    with pytest.raises(InvalidArgument, match="\\[-1, 1\\]"):
        train_singan(image * 2, TRAIN_CONFIG, tiny, device="cpu")
    with pytest.raises(InvalidArgument, match="iterations_per_scale"):
        SinGANSchedule(iterations_per_scale=0)
