"""``genaudit datasets upload``: a folder of images into a dataset, through presigned URLs or the stream.

Preferred path: GetUploadUrls in batches, parallel HTTP PUTs straight to the object store, then
CommitDataset. A presigned PUT bypasses the gateway's image checks, so each file is first checked here
with the same header-only probe (format, byte and pixel limits from GENAUDIT_MAX_IMAGE_* or their
defaults, the server's defaults too): a file the gateway would refuse is reported as rejected and
never uploaded. Where the store has no URLs (GetUploadUrls answers FAILED_PRECONDITION, the embedded
local store) the files go through the chunked UploadImages stream, and the gateway does the checking. Where
the URLs point at a store this machine cannot reach (a private endpoint, a firewall), the files not yet
uploaded go through the stream too; the report's method is then "presigned+stream", or "stream" when no PUT
got through.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from rich.console import Console
from rich.progress import Progress, TaskID

from genaudit.api.v1 import datasets_pb2 as dpb
from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, ClientError, Stubs, say
from genaudit.cli.transfer import StoreUnreachable, http_put, transfer_progress
from genaudit.errors import InvalidArgument
from genaudit.images import ImageLimits, probe_image
from genaudit.jobs.datasets import safe_object_name
from genaudit.settings import Settings

Reason = dpb.RejectionReason
URL_BATCH = 100  # file names per GetUploadUrls (the server allows 1000); URLs are fetched as needed
PUT_THREADS = 4
STREAM_CHUNK = 512 * 1024  # well under the gateway's message limit, few messages per typical image
PRESIGNED, STREAM, PRESIGNED_THEN_STREAM = "presigned", "stream", "presigned+stream"


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str  # object name in the dataset: the relative path flattened (a/b.png -> a__b.png)
    size: int


@dataclass
class UploadReport:
    method: str = ""
    dataset: dpb.Dataset | None = None
    accepted: list[dpb.AcceptedImage] = field(default_factory=list)
    rejected: list[dpb.RejectedImage] = field(default_factory=list)


def reason_label(reason: int) -> str:
    try:
        return Reason.Name(reason).removeprefix("REJECTION_REASON_").lower().replace("_", " ")
    except ValueError:
        return str(reason)


def plan_files(folder: Path, paths: list[Path]) -> tuple[list[LocalFile], list[dpb.RejectedImage]]:
    """Object names for the files; a second file mapping to the same name is rejected as a duplicate."""
    files: list[LocalFile] = []
    rejected: list[dpb.RejectedImage] = []
    first_of: dict[str, Path] = {}
    for path in paths:
        relative = path.relative_to(folder).as_posix()
        name = safe_object_name(relative)
        if name in first_of:
            rejected.append(dpb.RejectedImage(filename=relative, reason=Reason.REJECTION_REASON_DUPLICATE, message=(
                f"{relative}: same object name {name!r} as {first_of[name].relative_to(folder).as_posix()}")))
            continue
        first_of[name] = path
        try:
            size = path.stat().st_size
        except OSError as exc:
            rejected.append(dpb.RejectedImage(filename=relative, reason=Reason.REJECTION_REASON_UNSPECIFIED,
                                              message=f"{relative}: cannot read: {exc.strerror}"))
            continue
        files.append(LocalFile(path, name, size))
    return files, rejected


def _read(file: LocalFile, limits: ImageLimits) -> bytes | dpb.RejectedImage:
    """The file's bytes, or its rejection (unreadable, over the byte limit: never read whole)."""
    if file.size > limits.max_bytes:
        return dpb.RejectedImage(filename=file.name, reason=Reason.REJECTION_REASON_TOO_LARGE, message=(
            f"{file.name}: image too large: {file.size} bytes, over the limit of {limits.max_bytes} bytes "
            "(max_image_bytes)"))
    try:
        return file.path.read_bytes()
    except OSError as exc:
        return dpb.RejectedImage(filename=file.name, reason=Reason.REJECTION_REASON_UNSPECIFIED,
                                 message=f"{file.name}: cannot read: {exc.strerror}")


def _put(file: LocalFile, url: str, limits: ImageLimits) -> dpb.AcceptedImage | dpb.RejectedImage:
    data = _read(file, limits)
    if isinstance(data, dpb.RejectedImage):
        return data
    try:
        info = probe_image(data, limits)  # the gateway's own check, done here since the PUT skips it
    except InvalidArgument as exc:
        reason = (Reason.REJECTION_REASON_TOO_LARGE if exc.message.startswith("image too large")
                  else Reason.REJECTION_REASON_INVALID_IMAGE)
        return dpb.RejectedImage(filename=file.name, reason=reason, message=f"{file.name}: {exc.message}")
    http_put(url, data, f"image/{info.format.lower()}", what=f"upload of {file.name}")
    return dpb.AcceptedImage(filename=file.name, size_bytes=len(data))


class _Uploader:
    def __init__(self, stubs: Stubs, metadata: tuple[tuple[str, str], ...], dataset_id: str,
                 progress: Progress, limits: ImageLimits) -> None:
        self.stubs, self.metadata, self.dataset_id = stubs, metadata, dataset_id
        self.progress, self.limits = progress, limits
        self.report = UploadReport()
        self.task: TaskID | None = None
        self.done = 0
        self.total_files = 0

    def _start_bar(self, description: str, files: list[LocalFile]) -> None:
        self.total_files = len(files)
        self.task = self.progress.add_task(description, total=sum(f.size for f in files),
                                           files=f"0/{len(files)} files")

    def _file_done(self, size: int) -> None:
        self.done += 1
        self.progress.update(self.task, advance=size, files=f"{self.done}/{self.total_files} files")

    def urls(self, names: list[str]) -> list[str]:
        reply = self.stubs.datasets.GetUploadUrls(
            dpb.GetUploadUrlsRequest(dataset_id=self.dataset_id, filenames=names),
            metadata=self.metadata, timeout=UNARY_TIMEOUT_S)
        by_name = {u.filename: u.url for u in reply.urls}
        missing = [name for name in names if not by_name.get(name)]
        if missing:
            raise ClientError(f"the gateway returned no upload URL for {', '.join(missing[:5])}")
        return [by_name[name] for name in names]

    def presigned(self, files: list[LocalFile], first_urls: list[str]) -> None:
        self.report.method = PRESIGNED
        self._start_bar("upload (presigned)", files)
        results: dict[str, dpb.AcceptedImage | dpb.RejectedImage] = {}
        unreachable: StoreUnreachable | None = None
        with ThreadPoolExecutor(max_workers=PUT_THREADS, thread_name_prefix="genaudit-put") as pool:
            for start in range(0, len(files), URL_BATCH):
                batch = files[start:start + URL_BATCH]
                urls = first_urls if start == 0 else self.urls([f.name for f in batch])
                futures = [(f, pool.submit(_put, f, url, self.limits)) for f, url in zip(batch, urls, strict=True)]
                for file, future in futures:
                    if future.cancelled():
                        continue
                    try:
                        results[file.name] = future.result()  # any other failed transfer raises ClientError
                    except StoreUnreachable as exc:
                        # Every PUT goes to the same store: stop starting more (each would wait out its retries).
                        unreachable = unreachable or exc
                        for _, pending in futures:
                            pending.cancel()
                        continue
                    self._file_done(file.size)
                if unreachable is not None:
                    break
        if unreachable is not None:
            self._fall_back_to_stream(files, results, unreachable)
            return
        self._record(files, results)
        self.report.dataset = self.stubs.datasets.CommitDataset(
            dpb.CommitDatasetRequest(dataset_id=self.dataset_id), metadata=self.metadata,
            timeout=UNARY_TIMEOUT_S).dataset

    def _record(self, files: list[LocalFile], results: dict[str, dpb.AcceptedImage | dpb.RejectedImage]) -> None:
        for file in files:  # reported in folder order, like the stream's report
            result = results[file.name]
            (self.report.accepted if isinstance(result, dpb.AcceptedImage) else self.report.rejected).append(result)

    def _fall_back_to_stream(self, files: list[LocalFile], results: dict[str, dpb.AcceptedImage | dpb.RejectedImage],
                             unreachable: StoreUnreachable) -> None:
        """Stream the files no PUT stored; the ones a PUT stored (or the probe rejected) keep their result."""
        done = [f for f in files if f.name in results]
        rest = [f for f in files if f.name not in results]
        say(f"{unreachable}: the object store is unreachable from here, streaming {len(rest)} files through "
            "UploadImages instead")
        self._record(done, results)
        pushed = any(isinstance(results[f.name], dpb.AcceptedImage) for f in done)
        self.stream(rest)  # its reply's dataset counts every stored image, the PUT ones included
        self.report.method = PRESIGNED_THEN_STREAM if pushed else STREAM

    def _messages(self, files: list[LocalFile]) -> Iterator[dpb.UploadImagesRequest]:
        # Runs on a grpc thread: never raises (that would cancel the call); local problems become rejections.
        yield dpb.UploadImagesRequest(header=dpb.UploadImagesHeader(dataset_id=self.dataset_id))
        for file in files:
            data = _read(file, self.limits)
            if isinstance(data, dpb.RejectedImage):
                self.report.rejected.append(data)
                self._file_done(file.size)
                continue
            pieces = [data[i:i + STREAM_CHUNK] for i in range(0, len(data), STREAM_CHUNK)] or [b""]
            for i, piece in enumerate(pieces):
                yield dpb.UploadImagesRequest(chunk=dpb.ImageChunk(filename=file.name, data=piece,
                                                                   last=i == len(pieces) - 1))
                self.progress.update(self.task, advance=len(piece))
            self.done += 1
            self.progress.update(self.task, files=f"{self.done}/{self.total_files} files")

    def stream(self, files: list[LocalFile]) -> None:
        self.report.method = STREAM
        self._start_bar("upload (stream)", files)
        reply = self.stubs.datasets.UploadImages(self._messages(files), metadata=self.metadata)
        self.report.accepted.extend(reply.accepted)
        self.report.rejected.extend(reply.rejected)
        self.report.dataset = reply.dataset


def upload_files(stubs: Stubs, metadata: tuple[tuple[str, str], ...], dataset_id: str, files: list[LocalFile],
                 console: Console) -> UploadReport:
    """Upload ``files`` into the dataset; presigned when the gateway hands out URLs, else streamed."""
    limits = ImageLimits.from_settings(Settings.from_env())
    with transfer_progress(console) as progress:
        uploader = _Uploader(stubs, metadata, dataset_id, progress, limits)
        first = files[:URL_BATCH]
        try:
            first_urls = uploader.urls([f.name for f in first]) if first else []
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            say(f"no presigned URLs from this gateway ({exc.details()}): streaming through UploadImages instead")
            uploader.stream(files)
        else:
            uploader.presigned(files, first_urls)
    return uploader.report
