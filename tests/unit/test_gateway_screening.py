"""MicroBatcher: concurrent calls share screen_batch calls and each caller gets its own verdict."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from genaudit.errors import FailedPrecondition, GenauditError, InvalidArgument, ResourceExhausted, Unavailable
from genaudit.gateway.screening import (
    DetectorModel,
    InProcessScreener,
    MicroBatcher,
    ModelInfo,
    Screener,
    ScreenImage,
    ScreenVerdict,
    screen_images,
)


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

    def score_images(self, images: list[Image.Image]) -> list[ScreenVerdict]:
        with self._lock:
            self.batch_sizes.append(len(images))
        self.entered.set()
        if self._gate is not None:
            self._gate.wait(10)
        return [self.score(im) for im in images]

    def screen_batch(self, images: list[ScreenImage]) -> list[ScreenVerdict | GenauditError]:
        return list(self.score_images([i.image for i in images]))


def screen_image(image: Image.Image) -> ScreenImage:
    """What the servicer hands the batcher: the PNG bytes and the decoded image."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return ScreenImage(buf.getvalue(), image)


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
        return batcher.screen(screen_image(image), timeout_s=10)

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
    item = screen_image(image)
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(batcher.screen, item, 10)
        assert screener.entered.wait(5)  # first image is being scored, the queue is empty again
        queued = [pool.submit(batcher.screen, item, 10) for _ in range(2)]
        for _ in range(500):  # both queued calls are in the queue (the batcher is stuck on the first)
            if batcher._queue.qsize() == 2:
                break
            time.sleep(0.01)
        with pytest.raises(ResourceExhausted, match="screening queue is full"):
            batcher.screen(item, timeout_s=1)
        gate.set()
        assert running.result(5).probability_generated == screener.score(image).probability_generated
        assert all(q.result(5) for q in queued)
    batcher.close()
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.screen(item, timeout_s=1)


def test_screener_failure_reaches_every_caller_of_the_batch() -> None:
    class BrokenTestScreener(HighFrequencyTestScreener):
        def screen_batch(self, images: list[ScreenImage]) -> list[ScreenVerdict | GenauditError]:
            return super().screen_batch(images)[:-1]  # one verdict short: a contract violation

    batcher = MicroBatcher(BrokenTestScreener(), max_batch=4, max_wait_ms=50)
    try:
        with pytest.raises(RuntimeError, match="verdicts for"):
            batcher.screen(screen_image(_images(2)[0]), timeout_s=5)
    finally:
        batcher.close()


def test_an_error_for_one_image_reaches_only_its_caller() -> None:
    class PickyTestScreener(HighFrequencyTestScreener):
        """Refuses images whose encoded bytes are not PNG: proves the bytes, not only pixels, arrive."""

        def screen_batch(self, images: list[ScreenImage]) -> list[ScreenVerdict | GenauditError]:
            verdicts = super().screen_batch(images)
            return [v if i.data.startswith(b"\x89PNG") else InvalidArgument("not a PNG")
                    for i, v in zip(images, verdicts, strict=True)]

    screener = PickyTestScreener()
    batcher = MicroBatcher(screener, max_batch=2, max_wait_ms=2000)
    good, bad = _images(2)
    jpeg = io.BytesIO()
    bad.save(jpeg, format="JPEG")
    try:
        with ThreadPoolExecutor(2) as pool:
            ok = pool.submit(batcher.screen, screen_image(good), 10)
            refused = pool.submit(batcher.screen, ScreenImage(jpeg.getvalue(), bad), 10)
            assert ok.result(10).probability_generated == screener.score(good).probability_generated
            with pytest.raises(InvalidArgument, match="not a PNG"):
                refused.result(10)
    finally:
        batcher.close()
    assert screener.batch_sizes == [2]  # both were in the same batch


class CountingTestModel:
    """A DetectorModel stand-in (decoded images in, verdicts out) that counts its loads."""

    version = "test-model-7"
    threshold = 0.25
    loads = 0

    def __init__(self) -> None:
        type(self).loads += 1
        self.inner = HighFrequencyTestScreener()

    def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
        return self.inner.score_images(images)


def test_in_process_screener_loads_its_model_once_on_first_use_and_retries_a_failed_load() -> None:
    attempts: list[int] = []

    def load() -> DetectorModel:
        attempts.append(1)
        if len(attempts) == 1:
            raise FailedPrecondition("model file missing")
        return CountingTestModel()

    assert isinstance(CountingTestModel(), DetectorModel)
    CountingTestModel.loads = 0
    screener = InProcessScreener(load)
    assert not attempts  # nothing loaded at construction
    items = [screen_image(im) for im in _images(3)]
    with pytest.raises(FailedPrecondition, match="model file missing"):
        screener.screen_batch(items)
    first = screener.screen_batch(items)
    second = screener.screen_batch(items[:1])
    assert len(attempts) == 2 and CountingTestModel.loads == 1
    reference = HighFrequencyTestScreener()
    assert [v.probability_generated for v in first] == [reference.score(i.image).probability_generated for i in items]
    assert {v.model for v in first + second} == {ModelInfo("test-model-7", 0.25)}
    assert (screener.version, screener.threshold) == ("test-model-7", 0.25)
    assert isinstance(screener, Screener)  # (on Python 3.11 the check reads the properties: after loading)
    assert len(attempts) == 2


def test_screen_images_scores_each_image_alone_when_the_model_refuses_the_batch() -> None:
    class SmallRefusingTestModel(CountingTestModel):
        """Refuses a whole batch holding an image under 24 px, as the Detector does below its crop side."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
            self.calls.append(len(images))
            if min(min(im.size) for im in images) < 24:
                raise InvalidArgument("image is smaller than 24x24")
            return super().screen_batch(images)

    model = SmallRefusingTestModel()
    big = _images(3)
    small = big[1].resize((16, 16))
    outcomes = screen_images(model, [big[0], small, big[2]])
    reference = HighFrequencyTestScreener()
    assert [o.probability_generated for o in (outcomes[0], outcomes[2])] == \
        [reference.score(big[0]).probability_generated, reference.score(big[2]).probability_generated]
    assert isinstance(outcomes[1], InvalidArgument) and "smaller" in outcomes[1].message
    assert model.calls == [3, 1, 1, 1]  # the batch, then one call per image
    [alone] = screen_images(model, [small])
    assert isinstance(alone, InvalidArgument)
    assert len(screen_images(model, big)) == 3 and model.calls[-1] == 3
