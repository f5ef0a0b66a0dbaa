"""Simulated upsampling fakes: seeded, format-keeping, exactly 2-periodic on a flat image (the artifact), and
the training loop's share of simulated fake samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.forensics.datasets import LabelledImages
from genaudit.forensics.simulated import simulate_upsampling
from genaudit.forensics.training import TrainConfig, train_detector


def _image(seed: int, side: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)


def test_simulation_is_seeded_and_keeps_the_image_format() -> None:
    img = _image(0)
    before = img.copy()
    first = simulate_upsampling(img, np.random.default_rng(5))
    assert first.dtype == np.uint8 and first.shape == img.shape
    assert np.array_equal(img, before)  # the input is left alone
    assert np.array_equal(first, simulate_upsampling(img, np.random.default_rng(5)))
    assert not np.array_equal(first, simulate_upsampling(img, np.random.default_rng(6)))
    assert not np.array_equal(first, img)


def test_a_flat_image_comes_out_two_periodic_with_phase_differences() -> None:
    # On a flat image a 2x layer writes one value per output phase, so one stage repeats with period 2 and two
    # stages with period 4 (exactly, away from the replicated borders); the phases differ by the gain errors.
    flat = np.full((32, 32, 3), 128, np.uint8)
    spreads, periods = [], set()
    for seed in range(20):
        out = simulate_upsampling(flat, np.random.default_rng(seed)).astype(int)
        inner = out[4:-4, 4:-4]
        assert np.array_equal(inner[4:], inner[:-4]) and np.array_equal(inner[:, 4:], inner[:, :-4])
        periods.add(2 if np.array_equal(inner[2:], inner[:-2]) else 4)
        phases = [inner[i::4, j::4].mean() for i in range(4) for j in range(4)]
        spreads.append(max(phases) - min(phases))
    assert max(spreads) >= 2  # grey levels: a visible checkerboard for some layers
    assert min(spreads) < max(spreads)  # and layers differ in how strong it is
    assert periods == {2, 4}  # one stage and two stages both drawn


def test_sides_must_be_divisible_by_four() -> None:
    with pytest.raises(InvalidArgument, match="divisible by 4"):
        simulate_upsampling(_image(1, side=30), np.random.default_rng(0))
    with pytest.raises(InvalidArgument, match="uint8"):
        simulate_upsampling(_image(1).astype(np.float32), np.random.default_rng(0))


class _RecordingNet(nn.Module):
    """Constant logit; keeps every training input (uint8 round trip of the [0, 1] batch)."""

    input_size = None

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(1))
        self.seen: list[np.ndarray] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            batch = (x.detach() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            self.seen.extend(batch)
        return self.b.expand(x.shape[0])


def _matches(image: np.ndarray, pool: set[bytes]) -> bool:
    return image.tobytes() in pool or np.ascontiguousarray(image[:, ::-1]).tobytes() in pool


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_training_replaces_that_share_of_fake_samples(share: float) -> None:
    n = 40
    images = np.stack([_image(100 + i, side=16) for i in range(2 * n)])
    labels = np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)]
    data = LabelledImages(images, labels, np.full(2 * n, "toy"), np.array([f"{i}.png" for i in range(2 * n)]))
    net = _RecordingNet()
    config = TrainConfig(lr=0.01, batch_size=20, max_epochs=5, patience=10, blur_prob=0.0, jpeg_prob=0.0,
                         simulated_fake_prob=share)
    train_detector(net, data, data, config, log=lambda _: None)
    reals = {img.tobytes() for img in images[:n]}
    fakes = {img.tobytes() for img in images[n:]}
    from_reals = sum(_matches(img, reals) for img in net.seen)
    from_fakes = sum(_matches(img, fakes) for img in net.seen)
    simulated = len(net.seen) - from_reals - from_fakes
    fake_slots = len(net.seen) // 2  # every epoch passes over the 40 reals and 40 fakes once
    assert from_reals == fake_slots  # reals are never replaced
    assert simulated + from_fakes == fake_slots
    # binomial(200, share): within 4 sd
    assert abs(simulated - share * fake_slots) <= 4 * np.sqrt(fake_slots * share * (1 - share)) + 1e-9


def test_the_share_is_checked() -> None:
    with pytest.raises(InvalidArgument, match="simulated_fake_prob"):
        TrainConfig(simulated_fake_prob=1.5)
