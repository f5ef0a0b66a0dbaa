"""ResultService: list a job's artifacts with download URLs, or stream one through the gateway.

Only http(s) URLs are handed out: the local-folder store's ``file://`` URLs name paths on the gateway's
machine, useless (and revealing) to a remote client, so such artifacts come with an empty URL and
``inline_available`` set, and clients use FetchArtifact.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc

from genaudit.api.v1 import results_pb2 as pb
from genaudit.api.v1 import results_pb2_grpc
from genaudit.errors import FailedPrecondition, NotFound
from genaudit.gateway.auth import current_tenant
from genaudit.gateway.context import GatewayContext
from genaudit.gateway.validation import require_id
from genaudit.jobs.keys import tenant_prefix
from genaudit.jobs.models import Job

logger = logging.getLogger(__name__)

FETCH_CHUNK_BYTES = 1024 * 1024


def _artifact_key(job: Job, name: str) -> str:
    key = job.result_keys.get(name)
    if key is None:
        raise NotFound(f"job {job.id} has no artifact {name!r}")
    if not key.startswith(tenant_prefix(job.tenant)):  # records are ours, but never cross tenants
        logger.error("job %s lists artifact key %r outside its tenant", job.id, key, extra={"job_id": job.id})
        raise NotFound(f"job {job.id} has no artifact {name!r}")
    return key


class ResultServicer(results_pb2_grpc.ResultServiceServicer):
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx

    def _job(self, job_id: str) -> Job:
        return self._ctx.records.get_job(current_tenant(), require_id(job_id, "job_id"))

    def _download_url(self, key: str) -> str:
        try:
            url = self._ctx.store.presigned_get_url(key, self._ctx.settings.presign_expiry_s)
        except FailedPrecondition:
            return ""
        return url if url.startswith(("http://", "https://")) else ""

    def ListArtifacts(self, request: pb.ListArtifactsRequest, context: grpc.ServicerContext):
        job = self._job(request.job_id)
        artifacts = []
        for name in sorted(job.result_keys):
            key = _artifact_key(job, name)
            try:
                info = self._ctx.store.stat(key)
            except NotFound:
                logger.warning("artifact %s of job %s is missing from the store", name, job.id,
                               extra={"job_id": job.id})
                continue
            url = self._download_url(key)
            artifacts.append(pb.Artifact(name=name, key=key, size_bytes=info.size, download_url=url,
                                         inline_available=not url))
        return pb.ListArtifactsResponse(artifacts=artifacts,
                                        url_expires_in_seconds=self._ctx.settings.presign_expiry_s)

    def FetchArtifact(self, request: pb.FetchArtifactRequest, context: grpc.ServicerContext
                      ) -> Iterator[pb.FetchArtifactResponse]:
        job = self._job(request.job_id)
        key = _artifact_key(job, request.name)
        chunk_bytes = min(FETCH_CHUNK_BYTES, self._ctx.settings.max_message_bytes // 2)
        with tempfile.TemporaryDirectory(prefix="genaudit-fetch-") as tmp:
            path = Path(tmp) / "artifact"
            self._ctx.store.get_file(key, path)  # spooled to disk: memory stays at one chunk
            total = path.stat().st_size
            with path.open("rb") as f:
                offset = 0
                while True:  # an empty artifact still gets one (empty) chunk carrying total_size
                    data = f.read(chunk_bytes)
                    yield pb.FetchArtifactResponse(data=data, offset=offset, total_size=total)
                    offset += len(data)
                    if not data or offset >= total:
                        return
