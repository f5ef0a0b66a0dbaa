"""genaudit.forensics.Detector: calibration, test-time preprocessing (centre crops, mixed sizes, refusals),
crops on the JPEG grid, screening verdicts with their spectral evidence, loading from cards and the shipped default."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.errors import FailedPrecondition, IntegrityError, InvalidArgument
from genaudit.forensics import Detector, spectral_evidence
from genaudit.forensics import detector as detector_module
from genaudit.forensics.detectors import build_detector_net, save_detector, write_card
from genaudit.forensics.jpeg_traces import JPEG_SCORE_THRESHOLD, jpeg_comb_score
from genaudit.gateway.screening import Screener

SMALL_FREQNET = {"dct_width": 16, "spatial_width": 8, "depth": 1}


def _photo(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(height, width, 3)), axis=0), axis=1)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return Image.fromarray((255 * smooth).astype(np.uint8)).convert(mode)


def _expected_crop(image: Image.Image, side: int) -> np.ndarray:
    """The centre window the detector must score, computed here from the definition: the corner of the centred
    window rounded down to multiples of 8."""
    array = np.asarray(image.convert("RGB"))
    top, left = (array.shape[0] - side) // 2 // 8 * 8, (array.shape[1] - side) // 2 // 8 * 8
    return array[top : top + side, left : left + side].copy()


@pytest.fixture(scope="module")
def freqnet_detector() -> Detector:
    torch.manual_seed(0)
    net = build_detector_net("freqnet", SMALL_FREQNET)
    net.fit_normalization([torch.rand(8, 3, 32, 32)])
    return Detector(net, "freqnet", SMALL_FREQNET, temperature=2.5, threshold=0.8, version="test-1")


def test_log_odds_are_logit_over_temperature_and_probabilities_their_sigmoid(freqnet_detector: Detector) -> None:
    images = [_photo(48, 40, seed) for seed in range(4)]
    logits = freqnet_detector.logits(images)
    with torch.no_grad():
        direct = freqnet_detector.net(torch.stack([torch.from_numpy(_expected_crop(im, 32)).permute(2, 0, 1)
                                                   for im in images]).float() / 255.0)
    np.testing.assert_allclose(logits, direct.double().numpy(), rtol=1e-5, atol=1e-6)
    by_hand = [1.0 / (1.0 + math.exp(-value / 2.5)) for value in logits]
    np.testing.assert_allclose(freqnet_detector.probabilities(images), by_hand, rtol=1e-12)
    np.testing.assert_allclose(freqnet_detector.log_odds(images), [value / 2.5 for value in logits], rtol=1e-12)
    log_odds, evidence = freqnet_detector.score_batch(images)
    np.testing.assert_allclose(log_odds, logits / 2.5, rtol=1e-12)
    assert len(evidence) == len(images)
    assert logits.std() > 0  # distinct images, distinct scores: the comparison above is not trivial


def test_crop_side_rule(freqnet_detector: Detector) -> None:
    assert freqnet_detector.crop_side(40, 48) == 32
    assert freqnet_detector.crop_side(100, 70) == 64
    assert freqnet_detector.crop_side(300, 1000) == 256  # never above max_side
    assert freqnet_detector.crop_side(32, 32) == 32
    fixed = Detector(build_detector_net("logdct-linear", {"input_size": 64}), "logdct-linear", {"input_size": 64})
    assert fixed.crop_side(300, 90) == 64


def test_mixed_sizes_equal_one_at_a_time(freqnet_detector: Detector) -> None:
    sizes = [(40, 40), (100, 70), (33, 50), (64, 64), (300, 260), (48, 32), (70, 100)]
    images = [_photo(w, h, seed) for seed, (w, h) in enumerate(sizes)]
    images[1] = images[1].convert("L")  # grey and transparent inputs are converted to RGB first
    images[2] = images[2].convert("RGBA")
    seen: list[tuple[int, ...]] = []
    handle = freqnet_detector.net.register_forward_pre_hook(
        lambda _, args: seen.append((*args[0].shape, torch.is_inference_mode_enabled())))
    freqnet_detector.max_batch = 2
    try:
        together = freqnet_detector.logits(images)
        calls_together = list(seen)
        alone = np.array([freqnet_detector.logits([image])[0] for image in images])
    finally:
        handle.remove()
        freqnet_detector.max_batch = 32
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    # Sides 32 (x3), 64 (x3), 256 (x1): groups of at most max_batch = 2, always under inference mode.
    assert sorted(call[0] for call in calls_together) == [1, 1, 1, 2, 2]
    assert {call[2:4] for call in calls_together} == {(32, 32), (64, 64), (256, 256)}
    assert all(call[4] for call in seen)


def test_tensor_batches_score_like_pil_images(freqnet_detector: Detector) -> None:
    images = [_photo(50, 45, seed) for seed in range(3)]
    batch = torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2)
    np.testing.assert_allclose(freqnet_detector.logits(batch), freqnet_detector.logits(images), rtol=1e-6)
    np.testing.assert_allclose(freqnet_detector.logits(batch.float() / 255.0), freqnet_detector.logits(images),
                               rtol=1e-6)


def test_too_small_images_are_refused(freqnet_detector: Detector) -> None:
    with pytest.raises(InvalidArgument, match=r"image 40x20 is smaller than 32x32"):
        freqnet_detector.logits([_photo(64, 64, 0), _photo(40, 20, 1)])
    fixed = Detector(build_detector_net("spectrum-logistic", {"input_size": 64}), "spectrum-logistic",
                     {"input_size": 64})
    with pytest.raises(InvalidArgument, match=r"image 80x50 is smaller than 64x64"):
        fixed.screen_batch([_photo(80, 50, 2)])
    with pytest.raises(InvalidArgument, match="expected PIL images"):
        freqnet_detector.logits([np.zeros((64, 64, 3), np.uint8)])


def test_the_scored_crop_keeps_the_jpeg_grid_of_an_upload(freqnet_detector: Detector) -> None:
    (_, photo), = random_crops(load_photos(), 1, 150, seed=5)
    encoded = io.BytesIO()
    # 141 x 150: a 128 px crop, whose centred window has its corner at (top, left) = (11, 6)
    photo.convert("RGB").crop((0, 0, 141, 150)).save(encoded, "JPEG", quality=70)
    upload = Image.open(io.BytesIO(encoded.getvalue()))
    (crop,) = freqnet_detector.preprocess([upload])
    assert crop.shape == (3, 128, 128)
    assert float(jpeg_comb_score(crop[None].float() / 255)) > JPEG_SCORE_THRESHOLD
    np.testing.assert_array_equal(crop.permute(1, 2, 0).numpy(), np.asarray(upload)[8:136, 0:128])


def test_screen_batch_verdicts_carry_the_evidence_of_the_scored_crop(freqnet_detector: Detector) -> None:
    images = [_photo(70, 90, 3), _photo(40, 40, 4), _photo(64, 80, 5)]
    verdicts = freqnet_detector.screen_batch(images)
    probabilities = freqnet_detector.probabilities(images)
    assert isinstance(freqnet_detector, Screener) and freqnet_detector.version == "test-1"
    for image, verdict, probability in zip(images, verdicts, probabilities, strict=True):
        assert verdict.probability_generated == pytest.approx(probability, rel=1e-9)
        expected = spectral_evidence(_expected_crop(image, freqnet_detector.crop_side(image.height, image.width)))
        assert set(verdict.evidence) == set(expected)
        for name, value in expected.items():
            assert verdict.evidence[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    assert freqnet_detector.screen_batch([]) == []


def test_constructor_checks_calibration() -> None:
    net = build_detector_net("spectrum-logistic", {"input_size": 32})
    for kwargs, message in (({"temperature": 0.0}, "temperature"), ({"temperature": float("inf")}, "temperature"),
                            ({"threshold": -0.1}, "threshold"), ({"max_side": 16}, "max_side")):
        with pytest.raises(InvalidArgument, match=message):
            Detector(net, "spectrum-logistic", {"input_size": 32}, **kwargs)


def _ship(folder: Path, name: str = "freqnet-test") -> tuple[Path, Detector]:
    """A saved net and its card in ``folder``, and the Detector built from the net itself."""
    torch.manual_seed(3)
    net = build_detector_net("freqnet", SMALL_FREQNET)
    net.fit_normalization([torch.rand(4, 3, 32, 32)])
    digest = save_detector(net, folder / f"{name}.safetensors", "freqnet", SMALL_FREQNET)
    card = {"name": name, "arch": "freqnet", "config": SMALL_FREQNET, "version": f"{name}-7",
            "weights_file": f"{name}.safetensors", "sha256": digest, "temperature": 1.7, "threshold": 0.62}
    write_card(folder / f"{name}.json", card)
    return folder / f"{name}.json", Detector(net, "freqnet", SMALL_FREQNET, temperature=1.7)


def test_from_card_loads_the_pinned_weights(tmp_path: Path) -> None:
    card_path, reference = _ship(tmp_path)
    detector = Detector.from_card(card_path)
    assert (detector.arch, detector.temperature, detector.threshold, detector.version) == (
        "freqnet", 1.7, 0.62, "freqnet-test-7")
    assert detector.card["name"] == "freqnet-test" and detector.config["depth"] == 1
    images = [_photo(64, 64, seed) for seed in range(3)]
    np.testing.assert_array_equal(detector.logits(images), reference.logits(images))
    np.testing.assert_array_equal(detector.probabilities(images), reference.probabilities(images))

    weights = tmp_path / "freqnet-test.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        Detector.from_card(card_path)
    weights.unlink()
    with pytest.raises(InvalidArgument, match="does not exist"):
        Detector.from_card(card_path)


def test_load_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(detector_module, "WEIGHTS_DIR", empty)
    with pytest.raises(FailedPrecondition, match="no default detector is shipped yet"):
        Detector.load_default()
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    card_path, reference = _ship(shipped)
    monkeypatch.setattr(detector_module, "WEIGHTS_DIR", shipped)
    default = Detector.load_default()
    assert default.version == "freqnet-test-7"
    images = [_photo(48, 48, 9)]
    np.testing.assert_array_equal(default.logits(images), reference.logits(images))
    shutil.copy(card_path, shipped / "another.json")
    with pytest.raises(FailedPrecondition, match="holds 2 detector cards"):
        Detector.load_default()
