"""Synchronous screening: the detector interface and the micro-batcher in front of it.

A ``Screener`` receives each image twice over: the client's encoded bytes (already validated) and the
decoded RGB image. A screener that forwards to a model server (``remote_screener.RemoteScreener``) sends
the bytes as they came, without re-encoding; one that runs the model here (``InProcessScreener``) uses
the decoded image.

Concurrent Screen calls are collected for up to ``max_wait_ms`` (or until ``max_batch`` images wait),
scored by one ``screen_batch`` call in the batcher's own thread, and each verdict goes back to its caller.
The queue is bounded: when it is full a call fails at once with RESOURCE_EXHAUSTED instead of waiting
behind a backlog it cannot see. Batching pays only while more handler threads than ``max_batch`` can be
waiting, so the server's thread pool is sized well above it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from PIL import Image

from genaudit.errors import GenauditError, InvalidArgument, ResourceExhausted, Unavailable
from genaudit.telemetry.metrics import SCREEN_BATCH_SIZE

logger = logging.getLogger(__name__)

MAX_SCREEN_WAIT_S = 60.0  # calls without a deadline wait at most this long for their verdict


@dataclass(frozen=True)
class ModelInfo:
    """The model behind a verdict: its version and its operating threshold on probability_generated."""

    version: str
    threshold: float


@dataclass(frozen=True)
class ScreenVerdict:
    probability_generated: float  # calibrated, 0..1
    evidence: dict[str, float] = field(default_factory=dict)  # spectral summary statistics by name
    # Set by screeners whose model can change from one call to the next (a model server being
    # redeployed), so that the label uses the threshold of the model that scored the image.
    # None: the screener's own ``version`` and ``threshold``.
    model: ModelInfo | None = None


@dataclass(frozen=True)
class ScreenImage:
    """One image to screen: the client's encoded bytes, validated, and the same image decoded to RGB."""

    data: bytes
    image: Image.Image


@runtime_checkable
class Screener(Protocol):
    """A detector behind the batcher: scores images, several at once."""

    version: str
    threshold: float  # operating threshold on probability_generated

    def screen_batch(self, images: list[ScreenImage]) -> list[ScreenVerdict | GenauditError]:
        """One entry per image, in order: its verdict, or the error its caller gets (an image the
        model could not score); an exception raised here fails every image of the batch."""
        ...


@runtime_checkable
class DetectorModel(Protocol):
    """A detector model run in this process (``genaudit.forensics.detector.Detector``): decoded images."""

    version: str
    threshold: float

    def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
        """One verdict per image, in order."""
        ...


def screen_images(model: DetectorModel, images: list[Image.Image]) -> list[ScreenVerdict | GenauditError]:
    """``model.screen_batch(images)``; when the model refuses the batch (InvalidArgument: an image it cannot
    score, e.g. one smaller than its crop), each image on its own, so that only the refused ones get the
    error (in place of their verdict)."""
    try:
        return list(model.screen_batch(images))
    except InvalidArgument as exc:
        if len(images) == 1:
            return [exc]
    out: list[ScreenVerdict | GenauditError] = []
    for image in images:
        try:
            out += model.screen_batch([image])
        except InvalidArgument as exc:
            out.append(exc)
    return out


class InProcessScreener:
    """A ``Screener`` around a detector model in this process, loaded by ``load`` on first use.

    Loading lazily keeps torch out of processes that import the gateway, and off the start-up path; a
    load that fails is retried on the next batch (its error reaches the callers of this one).
    """

    def __init__(self, load: Callable[[], DetectorModel]) -> None:
        self._load = load
        self._model: DetectorModel | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> DetectorModel:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def threshold(self) -> float:
        return self.model.threshold

    def screen_batch(self, images: list[ScreenImage]) -> list[ScreenVerdict | GenauditError]:
        model = self.model
        info = ModelInfo(model.version, model.threshold)
        return [v if isinstance(v, GenauditError) else replace(v, model=info)
                for v in screen_images(model, [i.image for i in images])]


@dataclass
class _Pending:
    image: ScreenImage
    future: Future[ScreenVerdict] = field(default_factory=Future)


class MicroBatcher:
    """Scores images from many threads in batches of up to ``max_batch`` (see the module docstring)."""

    def __init__(self, screener: Screener, max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_queue: int = 256) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.screener = screener
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genaudit-screen-batcher", daemon=True)
        self._thread.start()

    def screen(self, image: ScreenImage, timeout_s: float | None = None) -> ScreenVerdict:
        """The verdict for ``image``; blocks until its batch ran (at most ``timeout_s``)."""
        if self._closed.is_set():
            raise Unavailable("screening is shutting down")
        pending = _Pending(image)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise ResourceExhausted(
                f"screening queue is full ({self._queue.maxsize} images waiting); retry later"
            ) from None
        wait_s = MAX_SCREEN_WAIT_S if timeout_s is None else max(0.0, min(timeout_s, MAX_SCREEN_WAIT_S))
        try:
            return pending.future.result(timeout=wait_s)
        except FutureTimeout:
            pending.future.cancel()  # still queued: the batcher skips it
            raise Unavailable(f"screening did not finish within {wait_s:.1f} s; retry later") from None
        except CancelledError:
            raise Unavailable("screening is shutting down") from None

    def _collect(self, first: _Pending) -> list[_Pending]:
        batch = [first]
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # close() while collecting: score what we have, then stop
                self._queue.put(None)
                break
            batch.append(item)
        return [p for p in batch if p.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._collect(first)
            if not batch:
                continue
            SCREEN_BATCH_SIZE.observe(len(batch))
            try:
                verdicts = self.screener.screen_batch([p.image for p in batch])
                if len(verdicts) != len(batch):
                    raise RuntimeError(f"screener returned {len(verdicts)} verdicts for {len(batch)} images")
            except Exception as exc:
                if isinstance(exc, GenauditError):  # e.g. the model server is down: no traceback needed
                    logger.warning("screen_batch failed for %d images: %s", len(batch), exc.message)
                else:
                    logger.exception("screen_batch failed for %d images", len(batch))
                for p in batch:
                    p.future.set_exception(exc)
                continue
            for p, verdict in zip(batch, verdicts, strict=True):
                if isinstance(verdict, GenauditError):
                    p.future.set_exception(verdict)
                else:
                    p.future.set_result(verdict)

    def close(self) -> None:
        """Score what is queued, then stop the batcher thread; later calls are UNAVAILABLE."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout=MAX_SCREEN_WAIT_S)
        while True:  # calls that raced with close(): release their callers now
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.future.cancel()
