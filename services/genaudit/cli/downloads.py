"""``genaudit results fetch``: a job's artifacts into a folder, from presigned URLs or FetchArtifact.

Each artifact is written to a temporary file in the target folder, its size checked against the one
ListArtifacts gave (and, on the stream, against ``total_size`` and the chunk offsets), then renamed
over the final name: an interrupted or short download never leaves a file that looks complete.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import Progress, TaskID

from genaudit.api.v1 import results_pb2 as rpb
from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, ClientError, Stubs, say
from genaudit.cli.transfer import http_get_to, transfer_progress

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")


def local_name(artifact: rpb.Artifact) -> str:
    """``features`` with key ``.../features.npy`` -> ``features.npy``; never a path outside the folder."""
    suffix = PurePosixPath(artifact.key).suffix
    name = artifact.name if artifact.name.endswith(suffix) else artifact.name + suffix
    if not _SAFE_NAME.match(name):
        raise ClientError(f"artifact name {artifact.name!r} is not a safe file name; not written")
    return name


def list_artifacts(stubs: Stubs, metadata: tuple[tuple[str, str], ...], job_id: str) -> rpb.ListArtifactsResponse:
    return stubs.results.ListArtifacts(rpb.ListArtifactsRequest(job_id=job_id), metadata=metadata,
                                       timeout=UNARY_TIMEOUT_S)


def select(artifacts: list[rpb.Artifact], names: list[str], job_id: str) -> list[rpb.Artifact]:
    if not names:
        return artifacts
    by_name = {a.name: a for a in artifacts}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(by_name) or "none (has the job succeeded?)"
        raise ClientError(f"job {job_id} has no artifact {', '.join(map(repr, missing))}; artifacts: {known}")
    return [by_name[n] for n in dict.fromkeys(names)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Sink:
    """A temporary file beside the destination; ``commit`` checks the size and renames it into place."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        handle, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        self.path = Path(name)
        self.file = os.fdopen(handle, "wb")
        self.written = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.written = 0

    def commit(self, expected: int) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self.written != expected:
            raise ClientError(f"{self.dest.name}: received {self.written} bytes, expected {expected}; not written")
        os.chmod(self.path, 0o666 & ~_umask())  # mkstemp made it 0600; the result is an ordinary file
        os.replace(self.path, self.dest)

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


def _from_stream(stubs: Stubs, metadata: tuple[tuple[str, str], ...], job_id: str, artifact: rpb.Artifact,
                 sink: _Sink, advance: Callable[[int], None]) -> None:
    request = rpb.FetchArtifactRequest(job_id=job_id, name=artifact.name)
    for chunk in stubs.results.FetchArtifact(request, metadata=metadata):
        if chunk.offset != sink.written or chunk.total_size != artifact.size_bytes:
            raise ClientError(f"{artifact.name}: inconsistent stream (chunk at offset {chunk.offset} after "
                              f"{sink.written} bytes, total {chunk.total_size} vs listed {artifact.size_bytes})")
        sink.write(chunk.data)
        advance(len(chunk.data))


def _fetch_one(stubs: Stubs, metadata: tuple[tuple[str, str], ...], job_id: str, artifact: rpb.Artifact,
               dest: Path, progress: Progress, task: TaskID) -> str:
    """Download one artifact to ``dest``; returns how: "presigned" or "stream"."""
    sink = _Sink(dest)
    received = 0

    def advance(n: int) -> None:
        nonlocal received
        received += n
        progress.update(task, advance=n)

    def fresh() -> Callable[[bytes], None]:  # every attempt starts the file (and the bar) over
        advance(-received)
        sink.restart()
        return lambda data: (sink.write(data), advance(len(data)))

    via = "stream"
    try:
        if artifact.download_url:
            try:
                http_get_to(artifact.download_url, fresh, what=f"download of {artifact.name}")
                via = "presigned"
            except ClientError as exc:
                # e.g. an object-store endpoint this machine cannot reach: the gateway can still stream it
                say(f"{exc}: fetching {artifact.name} through the gateway instead")
        if via == "stream":
            fresh()
            _from_stream(stubs, metadata, job_id, artifact, sink, advance)
        sink.commit(artifact.size_bytes)
    finally:
        sink.discard()
    return via


def fetch_artifacts(stubs: Stubs, metadata: tuple[tuple[str, str], ...], job_id: str, names: list[str],
                    out_dir: Path, console: Console) -> list[tuple[rpb.Artifact, Path, str]]:
    """Download the named artifacts (all when ``names`` is empty) of a job into ``out_dir``; returns
    (artifact, path, "presigned" | "stream") for each."""
    listing = list_artifacts(stubs, metadata, job_id)
    chosen = select(list(listing.artifacts), names, job_id)
    if not chosen:
        raise ClientError(f"job {job_id} has no artifacts (yet): only a succeeded job has results")
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [(a, out_dir / local_name(a)) for a in chosen]
    written: list[tuple[rpb.Artifact, Path, str]] = []
    with transfer_progress(console) as progress:
        task = progress.add_task("fetch", total=sum(a.size_bytes for a in chosen),
                                 files=f"0/{len(chosen)} files")
        for artifact, dest in targets:
            via = _fetch_one(stubs, metadata, job_id, artifact, dest, progress, task)
            written.append((artifact, dest, via))
            progress.update(task, files=f"{len(written)}/{len(chosen)} files")
    return written
