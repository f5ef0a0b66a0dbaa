"""Batched, streaming feature extraction over an iterable of PIL images."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterable

import numpy as np
import torch
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.features.extractor import FeatureExtractor

_END = object()
_PUT_POLL_S = 0.1


def _preprocessed_batches(
    preprocess: Callable[[Image.Image], torch.Tensor], images: Iterable[Image.Image], batch_size: int, pin: bool
) -> Generator[torch.Tensor, None, None]:
    """Stacked batches of preprocessed images; only the current batch's tensors are held, never the images."""
    pending: list[torch.Tensor] = []
    for index, img in enumerate(images):
        if not isinstance(img, Image.Image):
            raise InvalidArgument(f"image {index} is a {type(img).__name__}, not a PIL image")
        pending.append(preprocess(img))
        if len(pending) == batch_size:
            batch = torch.stack(pending)
            pending = []
            yield batch.pin_memory() if pin else batch
    if pending:
        batch = torch.stack(pending)
        yield batch.pin_memory() if pin else batch


def _prefetched(batches: Generator[torch.Tensor, None, None], depth: int = 1) -> Generator[torch.Tensor, None, None]:
    """Runs ``batches`` in a background thread, at most ``depth`` batches ahead of the consumer.

    PIL decoding/resizing and the network's forward both release the GIL, so the next batch is prepared
    while the current one runs. Errors of the producer are raised in the consumer; closing this generator
    (``contextlib.closing``) stops the producer and waits for it.
    """
    slots: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                slots.put((item, error), timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(None, exc)
        finally:
            batches.close()  # runs the source's cleanup in the thread that iterated it

    worker = threading.Thread(target=produce, name="genaudit-preprocess", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def extract_features(
    extractor: FeatureExtractor,
    images: Iterable[Image.Image],
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    prefetch: bool = True,
) -> np.ndarray:
    """Float32 features (N, extractor.dim) of ``images``, in order.

    Images are consumed lazily and preprocessed one batch at a time (``prefetch``: in a background thread,
    one batch ahead), so a generator of decoded images never has more than two batches alive.
    ``progress`` is called with the number of images done after each batch.
    """
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be at least 1, got {batch_size}")
    pin = extractor.device.type == "cuda"
    batches = _preprocessed_batches(extractor.preprocess, images, batch_size, pin)
    if prefetch:
        batches = _prefetched(batches)
    chunks: list[np.ndarray] = []
    done = 0
    with contextlib.closing(batches):
        for batch in batches:
            chunks.append(extractor(batch).numpy())
            done += len(batch)
            if progress is not None:
                progress(done)
    if not chunks:
        return np.empty((0, extractor.dim), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)
