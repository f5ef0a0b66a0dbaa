"""The generator families without a discriminator: ae-pixelshuffle, sr-bilinear (image-to-image) and ddpm-tiny.

Shapes, ranges and hook order of each; weights round-trip through save_generator/load_generator; the DDPM
forward process against an independent float64 numpy computation; the DDIM sampler's determinism and its
correctness with the exact noise predictor of Gaussian data; the super-resolution input is Pillow's bilinear
x4 downscale, and with a zero residual the net is Pillow's bilinear x4 upscale of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.generators import ARCHITECTURES, build_discriminator, build_generator, load_generator, save_generator
from genaudit.generators.base import Generator, ImageToImage
from genaudit.generators.diffusion import alpha_bars, ddim_sample, ddim_timesteps, linear_betas, q_sample
from genaudit.generators.loading import expected_tensors
from genaudit.jobs.specs import SINGLE_IMAGE_ARCHITECTURES

FAMILY_CONFIGS = [
    ("ae-pixelshuffle", {"base_width": 4, "bottleneck_channels": 3, "downsamplings": 3, "resolution": 32}),
    ("ae-pixelshuffle", {"base_width": 4, "bottleneck_channels": 2, "downsamplings": 2, "resolution": 16,
                         "out_channels": 1}),
    ("sr-bilinear", {"base_width": 4, "blocks": 1, "resolution": 32}),
    ("ddpm-tiny", {"base_width": 4, "levels": 3, "resolution": 16, "sample_steps": 3}),
]

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _perturbed(arch: str, config: dict, seed: int = 0) -> torch.nn.Module:
    """A model whose every weight is a fresh random draw (zero-initialized layers included), in eval mode."""
    torch.manual_seed(seed)
    model = build_generator(arch, config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


def _inputs(model: torch.nn.Module, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, ImageToImage):
        return torch.rand(n, model.in_channels, model.input_resolution, model.input_resolution, generator=g) * 2 - 1
    return model.sample_latents(n, g)


def _fired(model: torch.nn.Module, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    fired: list[str] = []
    handles = [model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: fired.append(name))
               for name in model.layer_names()]
    with torch.no_grad():
        out = model(x)
    for h in handles:
        h.remove()
    return fired, out


def test_every_architecture_without_discriminator_is_covered() -> None:
    # the single-image architectures (no fit_gan discriminator either) have their own tests: test_singan, test_ingan
    trained_apart = set(SINGLE_IMAGE_ARCHITECTURES)
    assert {arch for arch, _ in FAMILY_CONFIGS} == {n for n, s in ARCHITECTURES.items()
                                                    if s.discriminator is None and n not in trained_apart}
    assert {ARCHITECTURES[a].input_kind for a in ("ae-pixelshuffle", "sr-bilinear")} == {"image"}
    assert ARCHITECTURES["ddpm-tiny"].input_kind == "latent"


@pytest.mark.parametrize(("arch", "config"), FAMILY_CONFIGS)
def test_contract_shapes_range_and_hook_order(arch: str, config: dict) -> None:
    model = _perturbed(arch, config)
    full = ARCHITECTURES[arch].validate_config(config)
    names = model.layer_names()
    assert len(names) == len(set(names)) > 8
    fired, out = _fired(model, _inputs(model, 3))
    assert out.shape == (3, full["out_channels"], full["resolution"], full["resolution"])
    assert out.min() >= -1 and out.max() <= 1
    # DDIM runs the UNet once per step: the hooks fire in the listed order, sample_steps times over.
    repeats = full["sample_steps"] if arch == "ddpm-tiny" else 1
    assert fired == names * repeats
    with pytest.raises(InvalidArgument, match="not trained adversarially"):
        build_discriminator(arch, config)


def test_image_to_image_inputs_and_saturation() -> None:
    ae = _perturbed(*FAMILY_CONFIGS[0])
    sr = _perturbed(*FAMILY_CONFIGS[2])
    assert (ae.input_resolution, ae.resolution, sr.input_resolution, sr.resolution) == (32, 32, 8, 32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(ae.prepare(x), x)
    with pytest.raises(InvalidArgument, match=r"takes \(N, 3, 8, 8\) images, got \(2, 3, 32, 32\)"):
        sr(x)
    with pytest.raises(InvalidArgument, match=r"takes \(N, 3, 32, 32\)"):
        ae(torch.zeros(2, 1, 32, 32))
    with torch.no_grad():  # large inputs drive the output layers into saturation, never past it
        for model in (ae, sr):
            out = model(model.prepare(x) * 50)
            assert out.abs().max() <= 1 and (out.abs() > 0.999).float().mean() > 0.05


def test_autoencoder_code_and_pixel_shuffle_sizes() -> None:
    model = _perturbed(*FAMILY_CONFIGS[0])
    shapes = {}
    for name in model.layer_names():
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: shapes.update({name: o.shape}))
    model(torch.zeros(2, 3, 32, 32))
    assert shapes["bottleneck"] == (2, 3, 4, 4)  # 32 px / 2**3, bottleneck_channels
    assert [shapes[f"up{i}.conv"][1:] for i in (1, 2, 3)] == [(64, 4, 4), (32, 8, 8), (16, 16, 16)]
    assert [shapes[f"up{i}.shuffle"][1:] for i in (1, 2, 3)] == [(16, 8, 8), (8, 16, 16), (4, 32, 32)]


@pytest.mark.parametrize(("arch", "config"), FAMILY_CONFIGS)
def test_weights_round_trip(arch: str, config: dict, tmp_path: Path) -> None:
    model = _perturbed(arch, config, seed=5)
    path = tmp_path / "g.safetensors"
    save_generator(model, path, arch, config)
    again = tmp_path / "again.safetensors"
    save_generator(model, again, arch, config)
    assert path.read_bytes() == again.read_bytes()
    loaded = load_generator(arch, path)  # config from the file's metadata
    assert isinstance(loaded, ImageToImage if ARCHITECTURES[arch].input_kind == "image" else Generator)
    assert not loaded.training
    x = _inputs(model, 2, seed=9)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(InvalidArgument, match="wrong shapes"):
        load_generator(arch, path, {**config, "base_width": 8})
    if arch == "ddpm-tiny":  # the noise schedule follows from the config: it is not stored
        assert "alpha_bar" not in expected_tensors(model)
        assert torch.equal(loaded.alpha_bar, model.alpha_bar)


# --- diffusion ------------------------------------------------------------------------------------------------


def _numpy_alpha_bar(timesteps: int) -> np.ndarray:
    alpha_bar, product = np.empty(timesteps), 1.0
    for t, beta in enumerate(np.linspace(1e-4, 0.02, timesteps)):
        product *= 1.0 - beta
        alpha_bar[t] = product
    return alpha_bar


def test_forward_noising_matches_the_closed_form() -> None:
    reference = _numpy_alpha_bar(1000)
    np.testing.assert_allclose(alpha_bars(linear_betas(1000)).numpy(), reference, rtol=1e-12)
    assert reference[0] == pytest.approx(1 - 1e-4) and reference[-1] == pytest.approx(4.04e-5, rel=0.01)

    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    expected = (np.sqrt(reference[t.numpy()])[:, None, None, None] * x0.double().numpy()
                + np.sqrt(1 - reference[t.numpy()])[:, None, None, None] * noise.double().numpy())
    got = q_sample(x0.double(), t, noise.double(), alpha_bars(linear_betas(1000)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    model = build_generator("ddpm-tiny", FAMILY_CONFIGS[3][1])  # its float32 schedule buffer
    np.testing.assert_allclose(q_sample(x0, t, noise, model.alpha_bar).numpy(), expected, rtol=0, atol=1e-5)

    # The closed form is the marginal of the step-by-step chain x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z.
    rng = np.random.default_rng(1)
    betas = np.linspace(1e-4, 0.02, 1000)
    x = np.full(40_000, 0.7)
    for beta in betas[:300]:
        x = np.sqrt(1 - beta) * x + np.sqrt(beta) * rng.standard_normal(x.shape)
    mean, var = np.sqrt(reference[299]) * 0.7, 1 - reference[299]
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / x.size)
    assert abs(x.var() - var) < 0.03 * var


def test_ddim_timesteps() -> None:
    steps = ddim_timesteps(1000, 25)
    assert len(steps) == 25 and steps[0] == 999 and steps[-1] == 0 and steps == sorted(set(steps), reverse=True)
    assert ddim_timesteps(1000, 1) == [999] and ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(InvalidArgument):
        ddim_timesteps(10, 11)


def test_ddim_with_eta_zero_is_deterministic() -> None:
    model = _perturbed(*FAMILY_CONFIGS[3])
    z = model.sample_latents(3, torch.Generator().manual_seed(4))
    with torch.no_grad():
        first, second = model(z), model(z.clone())
        other = model(model.sample_latents(3, torch.Generator().manual_seed(5)))
    assert torch.equal(first, second)
    assert (first - other).abs().mean() > 0.05
    x_T = z.view(3, 3, 16, 16)
    noisy = [ddim_sample(model.unet, x_T, model.alpha_bar, 3, eta=1.0, generator=torch.Generator().manual_seed(s))
             for s in (0, 0, 1)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])


def _gaussian_ddim_reference(steps: int, eta: float, mu: float, s: float) -> tuple[float, float, float]:
    """For data N(mu, s^2) and the exact predictor, every DDIM step is affine in x plus independent noise:
    x_p - sqrt(a_p) mu = k (x - sqrt(a) mu) + sigma z. Propagates (slope, offset, added variance) of the map
    x_T -> x_0 in float64 scalars, the schedule recomputed in numpy."""
    alpha_bar = _numpy_alpha_bar(1000)
    sequence = np.round(np.linspace(999, 0, steps)).astype(int) if steps > 1 else np.array([999])
    slope, offset, noise_var = 1.0, 0.0, 0.0
    for i, t in enumerate(sequence):
        a = alpha_bar[t]
        a_p = alpha_bar[sequence[i + 1]] if i + 1 < len(sequence) else 1.0
        v = a * s**2 + 1 - a
        sigma = eta * np.sqrt((1 - a_p) / (1 - a) * (1 - a / a_p))
        k = np.sqrt(a_p) * np.sqrt(a) * s**2 / v + np.sqrt(1 - a_p - sigma**2) * np.sqrt(1 - a) / v
        # x_p = sqrt(a_p) mu + k (slope x_T + offset - sqrt(a) mu) + sigma z
        slope, offset = k * slope, np.sqrt(a_p) * mu + k * (offset - np.sqrt(a) * mu)
        noise_var = k**2 * noise_var + sigma**2
    return slope, offset, noise_var


@pytest.mark.parametrize(("steps", "eta"), [(25, 0.0), (1000, 0.0), (25, 1.0)])
def test_ddim_with_the_exact_noise_predictor_of_gaussian_data(steps: int, eta: float) -> None:
    """Data x_0 ~ N(mu, s^2) per pixel: x_t ~ N(sqrt(a) mu, a s^2 + 1 - a) and the optimal predictor is
    E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a). The sampler must follow the reference
    recursion; with eta = 0 and all 1000 steps it approaches the data distribution itself."""
    mu, s = 0.3, 0.2
    alpha_bar = alpha_bars(linear_betas(1000))

    def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[t].view(-1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s**2 + 1 - a)

    x_T = torch.randn(20_000, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x0 = ddim_sample(exact_eps, x_T, alpha_bar, steps, eta=eta, clip=False, generator=torch.Generator().manual_seed(3))
    slope, offset, noise_var = _gaussian_ddim_reference(steps, eta, mu, s)
    if eta == 0:  # deterministic: exactly the reference's affine map of x_T
        np.testing.assert_allclose(x0.numpy(), slope * x_T.numpy() + offset, atol=1e-9)
        if steps == 1000:
            assert abs(slope - s) < 0.01 * s and abs(offset - mu) < 0.01 * mu
    else:  # the noise is independent of x_T: check the residual's moments
        residual = x0.numpy() - (slope * x_T.numpy() + offset)
        assert abs(residual.mean()) < 4 * math.sqrt(noise_var / residual.size)
        assert abs(residual.var() / noise_var - 1) < 0.05
        assert noise_var > 0.1 * s**2  # eta = 1 really adds noise
    # A point mass (s -> 0) is recovered exactly in one step, from any x_T.
    point = ddim_sample(lambda x, t: (x - alpha_bar[t].view(-1, 1).sqrt() * mu) / (1 - alpha_bar[t].view(-1, 1)).sqrt(),
                        x_T[:5], alpha_bar, 1, eta=eta, clip=False)
    torch.testing.assert_close(point, torch.full_like(point, mu))


def test_ddpm_loss_trains_the_noise_predictor() -> None:
    """A few Adam steps on a constant image lower the DDPM loss from its start (1: the UNet starts at eps = 0)."""
    torch.manual_seed(0)
    model = build_generator("ddpm-tiny", FAMILY_CONFIGS[3][1]).train()
    x0 = torch.full((4, 3, 16, 16), 0.5)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        loss = model.training_loss(x0, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - 1) < 0.2 and np.mean(losses[-5:]) < 0.6 * losses[0], losses


# --- super-resolution -----------------------------------------------------------------------------------------


def _pil_resize(images: np.ndarray, side: int) -> np.ndarray:
    """Pillow's bilinear resize (antialiased when shrinking) of every float32 channel of (N, C, H, W)."""
    return np.array([[np.asarray(Image.fromarray(channel).resize((side, side), Image.BILINEAR)) for channel in image]
                     for image in images])


def test_super_resolution_input_is_the_bilinear_x4_downscale_and_the_skip_upscales_it() -> None:
    model = _perturbed(*FAMILY_CONFIGS[2])
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32))
    low = model.prepare(x)
    np.testing.assert_allclose(low.numpy(), _pil_resize(x.numpy(), 8), atol=1e-5)
    plain = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
    assert (plain - low).abs().max() > 0.1  # the check above tells antialiased from plain bilinear
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        out = model(low)
    np.testing.assert_allclose(out.numpy(), np.clip(_pil_resize(low.numpy(), 32), -1, 1), atol=1e-5)
