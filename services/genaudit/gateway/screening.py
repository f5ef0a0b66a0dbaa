"""Synchronous screening: the detector interface and the micro-batcher in front of it.

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
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image

from genaudit.errors import ResourceExhausted, Unavailable

logger = logging.getLogger(__name__)

MAX_SCREEN_WAIT_S = 60.0  # calls without a deadline wait at most this long for their verdict


@dataclass(frozen=True)
class ScreenVerdict:
    probability_generated: float  # calibrated, 0..1
    evidence: dict[str, float] = field(default_factory=dict)  # spectral summary statistics by name


@runtime_checkable
class Screener(Protocol):
    """A detector: scores RGB images, several at once."""

    version: str
    threshold: float  # operating threshold on probability_generated

    def screen_batch(self, images: list[Image.Image]) -> list[ScreenVerdict]:
        """One verdict per image, in order."""
        ...


@dataclass
class _Pending:
    image: Image.Image
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

    def screen(self, image: Image.Image, timeout_s: float | None = None) -> ScreenVerdict:
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
            try:
                verdicts = self.screener.screen_batch([p.image for p in batch])
                if len(verdicts) != len(batch):
                    raise RuntimeError(f"screener returned {len(verdicts)} verdicts for {len(batch)} images")
            except Exception as exc:
                logger.exception("screen_batch failed for %d images", len(batch))
                for p in batch:
                    p.future.set_exception(exc)
                continue
            for p, verdict in zip(batch, verdicts, strict=True):
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
