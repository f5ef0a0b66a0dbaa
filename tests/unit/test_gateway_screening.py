"""MicroBatcher: concurrent calls share screen_batch calls and each caller gets its own verdict."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from genaudit.errors import ResourceExhausted, Unavailable
from genaudit.gateway.screening import MicroBatcher, Screener, ScreenVerdict


class HighFrequencyTestScreener:
    """Test stand-in for the detector: share of spectral energy outside the lowest quarter of frequencies.

    Real computation (numpy FFT), so every image gets its own, input-dependent verdict.
    """

    version = "test-hf-energy-1"
    threshold = 0.5

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batch_sizes: list[int] = []
        self.entered = threading.Event()
        self._gate = gate
        self._lock = threading.Lock()

    def score(self, image: Image.Image) -> ScreenVerdict:
        grey = np.asarray(image.convert("L"), dtype=np.float64)
        power = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
        h, w = power.shape
        yy, xx = np.mgrid[0:h, 0:w]
        radius = np.hypot((yy - h // 2) / h, (xx - w // 2) / w)
        share = float(power[radius > 0.125].sum() / max(power.sum(), 1e-12))
        return ScreenVerdict(probability_generated=share, evidence={"high_frequency_share": share})

    def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
        with self._lock:
            self.batch_sizes.append(len(images))
        self.entered.set()
        if self._gate is not None:
            self._gate.wait(10)
        return [self.score(im) for im in images]


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # from smooth gradients to white noise: distinct high-frequency shares
        smooth = np.linspace(0, 255, 32)[None, :].repeat(32, axis=0)
        noise = rng.uniform(0, 255, (32, 32))
        mix = (1 - i / (n - 1)) * smooth + (i / (n - 1)) * noise
        out.append(Image.fromarray(mix.astype(np.uint8)).convert("RGB"))
    return out


def test_concurrent_calls_are_batched_and_routed_to_their_callers() -> None:
    screener = HighFrequencyTestScreener()
    assert isinstance(screener, Screener)
    batcher = MicroBatcher(screener, max_batch=8, max_wait_ms=300)
    images = _images(12)
    start = threading.Barrier(len(images))

    def call(image: Image.Image) -> ScreenVerdict:
        start.wait()
        return batcher.screen(image, timeout_s=10)

    try:
        with ThreadPoolExecutor(len(images)) as pool:
            verdicts = list(pool.map(call, images))
    finally:
        batcher.close()
    assert sum(screener.batch_sizes) == len(images)
    assert len(screener.batch_sizes) < len(images)  # batched: fewer calls than images
    assert max(screener.batch_sizes) <= 8
    reference = HighFrequencyTestScreener()
    expected = [reference.score(im).probability_generated for im in images]
    assert [v.probability_generated for v in verdicts] == expected  # each caller got its own image's verdict
    assert len(set(expected)) == len(expected)  # distinct scores: a mix-up could not go unnoticed
    assert expected[0] < expected[-1]


def test_full_queue_is_resource_exhausted_and_close_releases_waiters() -> None:
    gate = threading.Event()
    screener = HighFrequencyTestScreener(gate)
    batcher = MicroBatcher(screener, max_batch=1, max_wait_ms=0, max_queue=2)
    image = _images(2)[0]
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(batcher.screen, image, 10)
        assert screener.entered.wait(5)  # first image is being scored, the queue is empty again
        queued = [pool.submit(batcher.screen, image, 10) for _ in range(2)]
        for _ in range(500):  # both queued calls are in the queue (the batcher is stuck on the first)
            if batcher._queue.qsize() == 2:
                break
            time.sleep(0.01)
        with pytest.raises(ResourceExhausted, match="screening queue is full"):
            batcher.screen(image, timeout_s=1)
        gate.set()
        assert running.result(5).probability_generated == screener.score(image).probability_generated
        assert all(q.result(5) for q in queued)
    batcher.close()
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.screen(image, timeout_s=1)


def test_screener_failure_reaches_every_caller_of_the_batch() -> None:
    class BrokenTestScreener(HighFrequencyTestScreener):
        def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
            return super().screen_batch(images)[:-1]  # one verdict short: a contract violation

    batcher = MicroBatcher(BrokenTestScreener(), max_batch=4, max_wait_ms=50)
    try:
        with pytest.raises(RuntimeError, match="verdicts for"):
            batcher.screen(_images(2)[0], timeout_s=5)
    finally:
        batcher.close()
