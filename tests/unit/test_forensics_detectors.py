"""genaudit.forensics.detectors: registry, shapes and parameter counts, FreqNet's learned channel gate, the
baselines' features against scipy / numpy references, safe save/load and its refusals, cards, and a quick
learning check."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from safetensors.torch import save
from scipy.ndimage import gaussian_filter
from torchvision.models import resnet50

from genaudit.errors import IntegrityError, InvalidArgument
from genaudit.forensics.detectors import (
    DETECTOR_ARCHITECTURES,
    FreqNet,
    build_detector_net,
    load_detector_net,
    read_card,
    save_detector,
    write_card,
)
from genaudit.forensics.detectors.freqnet import DistanceHead, npr_residual

SMALL_FREQNET = {"dct_width": 16, "spatial_width": 8, "depth": 1}
BT601 = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _images(n: int, h: int, w: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- registry ---------------------------------------------------------------------------------------------


def test_registry_import_stays_torch_free() -> None:
    code = ("import sys, genaudit.forensics.detectors as d; d.DETECTOR_ARCHITECTURES['freqnet'].validate_config("
            "{'depth': 3}); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_configs_are_validated() -> None:
    assert set(DETECTOR_ARCHITECTURES) == {"freqnet", "resnet50-rgb", "logdct-linear", "spectrum-logistic"}
    spec = DETECTOR_ARCHITECTURES["freqnet"]
    assert spec.validate_config(None) == {"dct_width": 64, "spatial_width": 32, "depth": 2, "gate": True,
                                          "spatial": True, "min_frequency": 0, "distance_dims": 0,
                                          "surprise": False, "surprise_steps": 3000, "prior_weight": 2}
    for config, message in (({"depth": 9}, "<= 4"), ({"gate": 1}, "must be bool"), ({"depth": True}, "must be int"),
                            ({"width": 3}, "unknown config keys")):
        with pytest.raises(InvalidArgument, match=message):
            spec.validate_config(config)
    with pytest.raises(InvalidArgument, match="must be one of"):
        build_detector_net("logdct-linear", {"input_size": 60})
    with pytest.raises(InvalidArgument, match="unknown detector architecture"):
        build_detector_net("vit", {})


# --- shapes and parameter counts ----------------------------------------------------------------------------


def _freqnet_parameters(dct_width: int, spatial_width: int, depth: int, gate: bool, spatial: bool,
                        min_frequency: int, distance_dims: int, surprise: bool, surprise_steps: int,
                        prior_weight: int) -> int:
    """Parameter count written out layer by layer (conv weights, batch-norm scale and shift, biases); the
    left-out channels (``min_frequency``) still have their weights, which see zeros."""
    def bn(c: int) -> int:
        return 2 * c

    def basic_block(c: int) -> int:
        return 2 * (c * c * 9 + bn(c))

    total = 192 * 384 + 384 if gate else 0  # gate: 1x1 conv 192 -> 2 x 192 with bias
    if surprise:  # predictor: 5x5 conv 3 -> 32, 1x1 32 -> 32 twice, 1x1 32 -> 6, all with biases
        total += 3 * 25 * 32 + 32 + 2 * (32 * 32 + 32) + 32 * 6 + 6
    total += 192 * dct_width + bn(dct_width) + depth * basic_block(dct_width)
    if spatial:
        total += 3 * spatial_width * 9 + bn(spatial_width)
        total += depth * (basic_block(spatial_width) + spatial_width * spatial_width + bn(spatial_width))
    features = dct_width + (spatial_width if spatial else 0)
    if distance_dims:  # projections with biases, log scale, offset
        return total + distance_dims * (features + 1) + 2
    return total + features + 1  # linear head


@pytest.mark.parametrize("config", [{}, SMALL_FREQNET, {"gate": False, "spatial": False, "depth": 3},
                                    {"dct_width": 8, "spatial_width": 4, "depth": 4, "gate": False},
                                    {"min_frequency": 2, "distance_dims": 16},
                                    {"min_frequency": 2, "distance_dims": 16, "surprise": True}])
def test_freqnet_shapes_and_parameter_count(config: dict) -> None:
    net = build_detector_net("freqnet", config).eval()
    assert _count(net) == _freqnet_parameters(**DETECTOR_ARCHITECTURES["freqnet"].validate_config(config))
    with torch.no_grad():
        for h, w in ((32, 32), (64, 48), (16, 80)):
            assert net(_images(3, h, w)).shape == (3,)
    with pytest.raises(InvalidArgument, match="multiple of 8"):
        net(_images(1, 60, 64))
    assert net.input_size is None


def test_default_freqnet_is_small() -> None:
    assert _count(build_detector_net("freqnet")) < 300_000  # 1.2 MB of float32: "a few MB" shipped


def test_baseline_shapes_and_parameter_counts() -> None:
    torch.manual_seed(0)
    resnet = build_detector_net("resnet50-rgb").eval()
    # torchvision's own ResNet-50 with a 1-class head has the same layers: 25,557,032 - 2048 x 999 - 999.
    assert _count(resnet) == _count(resnet50(weights=None, num_classes=1)) == 25_557_032 - 2048 * 999 - 999
    with torch.no_grad():
        assert resnet(_images(2, 64, 48)).shape == (2,)
    for size in (32, 64):
        logdct = build_detector_net("logdct-linear", {"input_size": size})
        spectrum = build_detector_net("spectrum-logistic", {"input_size": size})
        radii = np.rint(np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2)))
        assert _count(logdct) == 3 * size * size + 1
        assert _count(spectrum) == int(radii.max()) + 1 + 1  # one weight per annulus, one bias
        assert logdct.input_size == spectrum.input_size == size
        with torch.no_grad():
            assert logdct(_images(2, size + 6, size + 20)).shape == spectrum(_images(2, size, size)).shape == (2,)
        with pytest.raises(InvalidArgument, match=f"smaller than the {size}x{size}"):
            logdct(_images(1, size - 8, size + 8))


# --- the learned channel gate -------------------------------------------------------------------------------


def test_gate_is_argmax_in_eval_and_hard_with_gradients_in_training() -> None:
    torch.manual_seed(0)
    net = build_detector_net("freqnet", SMALL_FREQNET)
    x = _images(4, 32, 32)
    net.eval()
    with torch.no_grad():
        logits = net.gate.logits(net.dct_input(x))
        net(x)
    assert logits.shape == (4, 192, 2)
    assert torch.equal(net.selected_channels, logits[..., 1] > logits[..., 0])
    assert math.isclose(net.regularization().item(), net.gate_penalty * net.selected_channels.float().mean().item(),
                        rel_tol=1e-6)

    net.train()
    mask = net.gate(net.dct_input(x))
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.requires_grad
    net.zero_grad()
    (net(x).sum() + net.regularization()).backward()
    assert net.gate.proj.weight.grad is not None and net.gate.proj.weight.grad.abs().sum() > 0
    net.zero_grad()
    net(x)
    net.regularization().backward()  # the penalty alone reaches the gate through the straight-through mask
    assert net.gate.proj.weight.grad.abs().sum() > 0


def test_penalty_alone_teaches_the_gate_to_drop_channels() -> None:
    torch.manual_seed(0)
    net = build_detector_net("freqnet", SMALL_FREQNET)
    x = _images(8, 32, 32)
    net.eval()
    with torch.no_grad():
        net(x)
    before = net.selected_channels.float().mean().item()
    optimizer = torch.optim.Adam(net.gate.parameters(), lr=0.05)
    net.train()
    for _ in range(30):
        optimizer.zero_grad()
        net(x)
        net.regularization().backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        net(x)
    after = net.selected_channels.float().mean().item()
    assert before > 0.9 and after < 0.5, (before, after)


def test_without_gate_every_channel_is_selected_and_there_is_no_penalty() -> None:
    net = build_detector_net("freqnet", {**SMALL_FREQNET, "gate": False}).eval()
    with torch.no_grad():
        net(_images(2, 32, 32))
    assert net.selected_channels.shape == (2, 192) and bool(net.selected_channels.all())
    assert net.regularization().item() == 0.0


def test_min_frequency_leaves_the_lowest_dct_coefficients_out_of_the_branch_and_the_gate() -> None:
    torch.manual_seed(0)
    net = build_detector_net("freqnet", {**SMALL_FREQNET, "min_frequency": 2}).eval()
    left_out = [64 * c + 8 * u + v for c in range(3) for u, v in ((0, 0), (0, 1), (1, 0))]
    assert sorted(torch.nonzero(~net.allowed).flatten().tolist()) == left_out
    x = _images(3, 32, 32)
    with torch.no_grad():
        logit = net(x)
        assert not net.selected_channels[:, left_out].any()
        assert math.isclose(net.regularization().item(),
                            net.gate_penalty * net.selected_channels.float().sum().item() / (3 * (192 - 9)),
                            rel_tol=1e-6)
        # nothing the net computes depends on the left-out channels: changing them changes no logit
        shifted = net.dct_input(x)
        net.dct_input = lambda images: shifted + 50.0 * (~net.allowed)[:, None, None]
        assert torch.equal(net(x), logit)
    assert "allowed" not in net.state_dict()  # derived from the config: weights files keep their tensors
    everything = build_detector_net("freqnet", SMALL_FREQNET)
    assert bool(everything.allowed.all())


def test_distance_head_is_the_scaled_squared_distance_and_scores_both_sides_of_the_reals() -> None:
    torch.manual_seed(0)
    head = DistanceHead(5, 3)
    with torch.no_grad():
        head.log_scale.fill_(0.7)
        f = torch.randn(4, 5)
        z = f @ head.proj.weight.T + head.proj.bias
        by_hand = math.exp(0.7) * (z**2).sum(dim=1) / 3 - head.offset
        assert torch.allclose(head(f)[:, 0], by_hand, atol=1e-6)
    # Trained on reals around 0 and fakes around +2 in one feature, fakes around -2 (never seen) still score
    # above the reals; a linear head puts them below.
    reals, fakes = 0.3 * torch.randn(200, 1), 2 + 0.3 * torch.randn(200, 1)
    x, y = torch.cat([reals, fakes]), torch.cat([torch.zeros(200), torch.ones(200)])
    unseen = -2 + 0.3 * torch.randn(200, 1)
    for module, unseen_above_reals in ((DistanceHead(1, 2), True), (torch.nn.Linear(1, 1), False)):
        optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
        for _ in range(300):
            optimizer.zero_grad()
            F.binary_cross_entropy_with_logits(module(x)[:, 0], y).backward()
            optimizer.step()
        with torch.no_grad():
            assert bool(module(unseen).mean() > module(reals).max()) is unseen_above_reals, module


# --- inputs against independent references ------------------------------------------------------------------


def _reference_block_dct(x: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) RGB -> (B, 192, H/8, W/8): BT.601 YCbCr, then scipy's orthonormal DCT-II of each 8x8 block."""
    ycbcr = np.einsum("kc,bchw->bkhw", BT601, x) + np.array([0.0, 128 / 255, 128 / 255])[:, None, None]
    b, c, h, w = ycbcr.shape
    blocks = ycbcr.reshape(b, c, h // 8, 8, w // 8, 8)
    coefficients = scipy.fft.dctn(blocks, type=2, norm="ortho", axes=(3, 5))  # (b, c, i, u, j, v)
    return coefficients.transpose(0, 1, 3, 5, 2, 4).reshape(b, c * 64, h // 8, w // 8)


def test_freqnet_normalization_and_npr_residual_match_references() -> None:
    batches = [_images(3, 32, 48, seed=s, dtype=torch.float64) for s in range(3)]
    net = build_detector_net("freqnet", SMALL_FREQNET).double()
    net.fit_normalization(iter(batches))
    coefficients = np.concatenate([_reference_block_dct(b.numpy()) for b in batches])
    np.testing.assert_allclose(net.dct_mean.numpy()[:, 0, 0], coefficients.mean(axis=(0, 2, 3)), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(net.dct_std.numpy()[:, 0, 0], coefficients.std(axis=(0, 2, 3)), rtol=1e-9)
    standardized = net.dct_input(batches[0]).numpy()
    assert abs(standardized.mean()) < 0.5 and 0.5 < standardized.std() < 1.5
    x = batches[0]
    down_up = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="nearest"), scale_factor=2.0, mode="nearest")
    assert torch.equal(npr_residual(x), x - down_up)
    upsampled = F.interpolate(_images(2, 16, 24), scale_factor=2.0, mode="nearest")
    assert npr_residual(upsampled).abs().max() == 0  # the artifact the spatial branch looks for


def _centre(x: np.ndarray, size: int) -> np.ndarray:
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def _fit_and_check_standardization(net: torch.nn.Module, batches: list[torch.Tensor], features: np.ndarray) -> None:
    """The fitted buffers are the population mean and std per feature, and forward = linear on the
    standardized features, both computed with numpy from the reference features."""
    net.fit_normalization(batches)
    flat = features.reshape(features.shape[0], -1)
    mean, std = flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)
    np.testing.assert_allclose(net.feature_mean.numpy().reshape(-1), mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(net.feature_std.numpy().reshape(-1), std, rtol=1e-9)
    weight, bias = net.linear.weight.detach().numpy()[0], net.linear.bias.item()
    with torch.no_grad():
        logits = net(torch.cat(batches)).numpy()
    np.testing.assert_allclose(logits, (flat - mean) / std @ weight + bias, rtol=1e-9, atol=1e-9)


def test_logdct_features_match_scipy() -> None:
    size = 32
    batches = [_images(4, 40, 52, seed=s, dtype=torch.float64) for s in range(3)]
    net = build_detector_net("logdct-linear", {"input_size": size}).double()
    reference = np.concatenate([
        np.log(np.abs(scipy.fft.dctn(_centre(b.numpy(), size), type=2, norm="ortho", axes=(-2, -1))) + 1e-6)
        for b in batches
    ])
    with torch.no_grad():
        features = torch.cat([net.features(b) for b in batches]).numpy()
    np.testing.assert_allclose(features, reference, rtol=1e-9, atol=1e-9)
    _fit_and_check_standardization(net, batches, reference)


def _reference_profile(x: np.ndarray) -> np.ndarray:
    """Durall et al.'s feature with numpy: luma FFT, shifted, 20 log10(|F| + 1e-8), mean over each annulus of
    integer-rounded radius around the DC pixel (H // 2, W // 2)."""
    luma = np.einsum("c,bchw->bhw", BT601[0], x)
    spectrum = 20 * np.log10(np.abs(np.fft.fftshift(np.fft.fft2(luma), axes=(-2, -1))) + 1e-8)
    h, w = luma.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    radius = np.rint(np.sqrt((yy - h // 2) ** 2 + (xx - w // 2) ** 2)).astype(int).ravel()
    counts = np.bincount(radius)
    return np.stack([np.bincount(radius, weights=s.ravel()) / counts for s in spectrum])


def test_spectrum_profile_matches_numpy() -> None:
    size = 64
    batches = [_images(5, 70, 64, seed=s, dtype=torch.float64) for s in range(3)]
    net = build_detector_net("spectrum-logistic", {"input_size": size}).double()
    reference = np.concatenate([_reference_profile(_centre(b.numpy(), size)) for b in batches])
    with torch.no_grad():
        features = torch.cat([net.features(b) for b in batches]).numpy()
    assert features.shape == reference.shape == (15, net.feature_mean.shape[0])
    np.testing.assert_allclose(features, reference, rtol=1e-9, atol=1e-9)
    _fit_and_check_standardization(net, batches, reference)


# --- save and load ------------------------------------------------------------------------------------------

ROUND_TRIP = [("freqnet", SMALL_FREQNET), ("freqnet", {**SMALL_FREQNET, "gate": False, "spatial": False}),
              ("logdct-linear", {"input_size": 32}), ("spectrum-logistic", {"input_size": 32}), ("resnet50-rgb", {})]


@pytest.mark.parametrize(("arch", "config"), ROUND_TRIP)
def test_save_load_round_trip_gives_identical_logits(arch: str, config: dict, tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = build_detector_net(arch, config)
    net.fit_normalization([_images(4, 32, 32, seed=5)])
    net.train()
    with torch.no_grad():
        net(_images(4, 32, 32, seed=6))  # moves batch-norm running statistics off their initial values
    net.eval()
    path = tmp_path / "d.safetensors"
    digest = save_detector(net, path, arch, config)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    x = _images(3, 32, 32, seed=7)
    with torch.no_grad():
        expected = net(x)
        # A pinned path with the config given, and the file's bytes with the config read from its metadata.
        for loaded in (load_detector_net(arch, path, config, expected_sha256=digest),
                       load_detector_net(arch, path.read_bytes())):
            assert not loaded.training
            assert torch.equal(loaded(x), expected)


@pytest.fixture(scope="module")
def saved_freqnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(2)
    net = build_detector_net("freqnet", SMALL_FREQNET)
    path = tmp_path_factory.mktemp("freqnet") / "f.safetensors"
    save_detector(net, path, "freqnet", SMALL_FREQNET)
    state = {k: v.float() for k, v in net.state_dict().items() if v.is_floating_point()}
    return path, state


def test_refusals(saved_freqnet: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    path, state = saved_freqnet
    with pytest.raises(IntegrityError, match="expected"):
        load_detector_net("freqnet", path, expected_sha256="0" * 64)
    missing = {k: v for k, v in state.items() if k != "head.weight"}
    with pytest.raises(InvalidArgument, match=r"missing tensors \['head.weight'\], unexpected tensors \[\]"):
        load_detector_net("freqnet", save(missing), SMALL_FREQNET)
    with pytest.raises(InvalidArgument, match=r"unexpected tensors \['extra'\]"):
        load_detector_net("freqnet", save({**state, "extra": torch.zeros(2)}), SMALL_FREQNET)
    with pytest.raises(InvalidArgument, match=r"head.weight: file \[1, 2\], expected \[1, 24\]"):
        load_detector_net("freqnet", save({**state, "head.weight": torch.zeros(1, 2)}), SMALL_FREQNET)
    with pytest.raises(InvalidArgument, match="dtype I64 is not allowed"):
        load_detector_net("freqnet", save({**state, "dct_mean": state["dct_mean"].long()}), SMALL_FREQNET)
    with pytest.raises(InvalidArgument, match="over the cap"):
        load_detector_net("freqnet", path, max_bytes=path.stat().st_size // 2)
    with pytest.raises(InvalidArgument, match="saved for architecture 'freqnet', not 'logdct-linear'"):
        load_detector_net("logdct-linear", path)
    with pytest.raises(InvalidArgument, match="wrong shapes"):  # right file, other width
        load_detector_net("freqnet", path, {**SMALL_FREQNET, "dct_width": 32})
    renamed = tmp_path / "pickled.safetensors"
    renamed.write_bytes(pickle.dumps({k: v.numpy() for k, v in state.items()}))
    zipped = tmp_path / "zipped.safetensors"
    torch.save(state, zipped)
    for fake in (renamed, zipped):
        with pytest.raises(InvalidArgument, match="not a safetensors file"):
            load_detector_net("freqnet", fake, SMALL_FREQNET)
    with pytest.raises(InvalidArgument, match=r"detector weights file .* does not exist"):
        load_detector_net("freqnet", tmp_path / "absent.safetensors")


def test_save_refuses_a_net_of_another_architecture(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot be saved as detector architecture 'freqnet'"):
        save_detector(build_detector_net("logdct-linear"), tmp_path / "x.safetensors", "freqnet", {})


def test_saved_file_is_float32_with_arch_and_config(saved_freqnet: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = saved_freqnet
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    metadata = json.loads(header.pop("__metadata__")["genaudit"])
    assert metadata == {"arch": "freqnet", "config": DETECTOR_ARCHITECTURES["freqnet"].validate_config(SMALL_FREQNET)}
    assert set(header) == set(state) and {entry["dtype"] for entry in header.values()} == {"F32"}


# --- cards ------------------------------------------------------------------------------------------------

CARD = {"name": "f", "arch": "freqnet", "config": SMALL_FREQNET, "version": "f-1", "weights_file": "f.safetensors",
        "sha256": "ab" * 32, "temperature": 1.5, "threshold": 0.7, "metrics": {"ap": 0.9}}


def test_card_round_trip_and_malformed_cards(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_card(path, CARD)
    assert read_card(path) == CARD
    assert json.loads(path.read_text()) == CARD
    (tmp_path / "broken.json").write_text('{"arch": "freqnet", ')
    with pytest.raises(InvalidArgument, match=r"broken\.json' is not valid JSON"):
        read_card(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        read_card(tmp_path / "list.json")
    with pytest.raises(InvalidArgument, match="does not exist"):
        read_card(tmp_path / "absent.json")
    bad = {
        "lacks the fields \\['sha256'\\]": {k: v for k, v in CARD.items() if k != "sha256"},
        "'temperature' has the wrong type": {**CARD, "temperature": "1"},
        "temperature must be a finite number > 0": {**CARD, "temperature": 0.0},
        "threshold must be in": {**CARD, "threshold": 1.5},
        "weights_file must be a file name": {**CARD, "weights_file": "../f.safetensors"},
        "full 64 hex digits": {**CARD, "sha256": "abcdef12"},
        "unknown detector architecture": {**CARD, "arch": "vit"},
        "must be <= 4": {**CARD, "config": {"depth": 5}},
    }
    for message, card in bad.items():
        with pytest.raises(InvalidArgument, match=message):
            write_card(tmp_path / "bad.json", card)
        (tmp_path / "bad.json").write_text(json.dumps(card))
        with pytest.raises(InvalidArgument, match=message):
            read_card(tmp_path / "bad.json")
    with pytest.raises(InvalidArgument, match="not plain JSON"):
        write_card(tmp_path / "nan.json", {**CARD, "metrics": {"ap": float("nan")}})


# --- learning --------------------------------------------------------------------------------------------------


def _smooth(n: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """Random smooth RGB images in [0, 1]: white noise blurred with sigma 1-2 px, contrast-stretched."""
    sigma = rng.uniform(1.0, 2.0, size=n)
    noise = rng.random((n, 3, side, side))
    images = np.stack([gaussian_filter(im, sigma=(0, s, s), mode="wrap") for im, s in zip(noise, sigma, strict=True)])
    low, high = images.min(axis=(1, 2, 3), keepdims=True), images.max(axis=(1, 2, 3), keepdims=True)
    return (images - low) / (high - low)


def _labelled(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n/2 plain smooth 32 px images (label 0) and n/2 smooth 16 px images nearest-upsampled x2 (label 1)."""
    real = torch.from_numpy(_smooth(n // 2, 32, rng))
    fake = F.interpolate(torch.from_numpy(_smooth(n // 2, 16, rng)), scale_factor=2.0, mode="nearest")
    return torch.cat([real, fake]).float(), torch.cat([torch.zeros(n // 2), torch.ones(n // 2)])


def test_freqnet_learns_to_flag_nearest_upsampling() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = build_detector_net("freqnet", SMALL_FREQNET)
    assert isinstance(net, FreqNet)
    train_x, train_y = _labelled(256, rng)
    net.fit_normalization(train_x.split(64))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for step in range(30):
        batch = torch.randperm(256, generator=torch.Generator().manual_seed(step))[:32]
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net(train_x[batch]), train_y[batch]) + net.regularization()
        loss.backward()
        optimizer.step()
    net.eval()
    test_x, test_y = _labelled(200, rng)
    with torch.no_grad():
        accuracy = ((net(test_x) > 0).float() == test_y).float().mean().item()
    assert accuracy > 0.9, accuracy
