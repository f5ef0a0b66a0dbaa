"""The streaming upload protocol of DatasetService.UploadImages: reassemble files from chunks.

Decision on the per-file size limit: a file over ``max_image_bytes`` is a rejection of that file
(REJECTION_REASON_TOO_LARGE), not a failure of the call: the limit is a property of the image, like
its pixel count, and the other files of the stream still land. Its remaining chunks are read and dropped
as they come, so a stream holds at most one file of up to ``max_image_bytes`` in memory. The grpc
message limit (``max_message_bytes``) is separate: one chunk above it fails the call with
RESOURCE_EXHAUSTED before any servicer code runs.

A malformed stream (no header first, a second header, chunks of two files interleaved, a chunk
without a file name) fails the call with INVALID_ARGUMENT; files completed before that stay stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from genaudit.api.v1 import datasets_pb2
from genaudit.errors import InvalidArgument
from genaudit.gateway.validation import filename_problem
from genaudit.images import ImageLimits
from genaudit.jobs.datasets import ingest_image
from genaudit.storage.base import ObjectStore

Reason = datasets_pb2.RejectionReason


@dataclass
class _File:
    name: str
    data: bytearray = field(default_factory=bytearray)
    rejection: tuple[int, str] | None = None  # set as soon as the file is known to be refused


@dataclass
class UploadReport:
    accepted: list[datasets_pb2.AcceptedImage] = field(default_factory=list)
    rejected: list[datasets_pb2.RejectedImage] = field(default_factory=list)

    def reject(self, name: str, reason: int, message: str) -> None:
        self.rejected.append(datasets_pb2.RejectedImage(filename=name, reason=reason, message=message))


class ImageUpload:
    """Consumes the chunk messages of one stream (after its header) and stores complete files."""

    def __init__(self, store: ObjectStore, limits: ImageLimits, tenant: str, dataset_id: str) -> None:
        self._store = store
        self._limits = limits
        self._tenant = tenant
        self._dataset_id = dataset_id
        self._seen: set[str] = set()
        self._current: _File | None = None
        self.report = UploadReport()

    def receive(self, messages: Iterable[datasets_pb2.UploadImagesRequest]) -> UploadReport:
        for message in messages:
            if message.WhichOneof("message") != "chunk":
                raise InvalidArgument("only the first message of an upload may be a header; later ones are chunks")
            self._add(message.chunk)
        if self._current is not None:
            self.report.reject(self._current.name, Reason.REJECTION_REASON_INCOMPLETE,
                               f"{self._current.name}: the stream ended before the chunk with last=true")
            self._current = None
        return self.report

    def _start(self, name: str) -> _File:
        file = _File(name)
        problem = filename_problem(name)
        if problem:
            file.rejection = (Reason.REJECTION_REASON_INVALID_NAME, problem)
        elif name in self._seen:
            file.rejection = (Reason.REJECTION_REASON_DUPLICATE, f"{name}: sent twice in this upload")
        self._seen.add(name)
        return file

    def _add(self, chunk: datasets_pb2.ImageChunk) -> None:
        if not chunk.filename:
            raise InvalidArgument("every chunk needs its file name")
        if self._current is None:
            self._current = self._start(chunk.filename)
        elif chunk.filename != self._current.name:
            raise InvalidArgument(
                f"chunk of {chunk.filename!r} arrived before the last chunk of {self._current.name!r}: "
                "send the chunks of each file together, the final one with last=true"
            )
        file = self._current
        if file.rejection is None:
            if len(file.data) + len(chunk.data) > self._limits.max_bytes:
                file.rejection = (Reason.REJECTION_REASON_TOO_LARGE,
                                  f"{file.name}: image too large: over the limit of {self._limits.max_bytes} "
                                  "bytes (max_image_bytes)")
                file.data = bytearray()
            else:
                file.data += chunk.data
        if chunk.last:
            self._finish(file)
            self._current = None

    def _finish(self, file: _File) -> None:
        if file.rejection is not None:
            self.report.reject(file.name, *file.rejection)
            return
        try:  # validated from the header, then written atomically: a refused file leaves nothing behind
            info = ingest_image(self._store, self._limits, self._tenant, self._dataset_id, file.name,
                                bytes(file.data))
        except InvalidArgument as exc:
            self.report.reject(file.name, Reason.REJECTION_REASON_INVALID_IMAGE, exc.message)
            return
        self.report.accepted.append(datasets_pb2.AcceptedImage(filename=file.name, size_bytes=info.size))
