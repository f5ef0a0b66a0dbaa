"""The gateway over a real grpc channel, embedded context (in-memory records, local store, in-process worker)."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image
from prometheus_client import REGISTRY

from genaudit.api.v1 import datasets_pb2 as dpb
from genaudit.api.v1 import jobs_pb2 as jpb
from genaudit.api.v1 import results_pb2 as rpb
from genaudit.api.v1 import screening_pb2 as spb
from genaudit.api.v1.datasets_pb2_grpc import DatasetServiceStub
from genaudit.api.v1.jobs_pb2_grpc import JobServiceStub, ScheduleServiceStub
from genaudit.api.v1.results_pb2_grpc import ResultServiceStub
from genaudit.api.v1.screening_pb2_grpc import ScreeningServiceStub
from genaudit.gateway.auth import hash_api_key
from genaudit.gateway.context import GatewayContext, build_context
from genaudit.gateway.server import API_SERVICES, GatewayServer, build_server
from genaudit.images import decode_image
from genaudit.jobs.keys import dataset_image_key
from genaudit.settings import Settings
from tests.unit.test_gateway_screening import HighFrequencyTestScreener

KEY_A, KEY_B = "key-of-acme", "key-of-beta"
AUTH_A = (("authorization", f"Bearer {KEY_A}"),)
AUTH_B = (("x-api-key", KEY_B),)
MAX_MESSAGE = 2 * 1024 * 1024
MAX_IMAGE = 1024 * 1024


def png(seed: int, size: int = 24) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A valid 1-bit greyscale (Pillow mode "1") PNG of side x side pixels, about 50 KB, built row by row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@dataclass
class Gateway:
    server: GatewayServer
    channel: grpc.Channel

    @property
    def ctx(self) -> GatewayContext:
        return self.server.context

    @property
    def datasets(self) -> DatasetServiceStub:
        return DatasetServiceStub(self.channel)

    @property
    def jobs(self) -> JobServiceStub:
        return JobServiceStub(self.channel)

    @property
    def results(self) -> ResultServiceStub:
        return ResultServiceStub(self.channel)

    @property
    def schedules(self) -> ScheduleServiceStub:
        return ScheduleServiceStub(self.channel)

    @property
    def screening(self) -> ScreeningServiceStub:
        return ScreeningServiceStub(self.channel)

    def upload(self, dataset_id: str, files: list[tuple[str, bytes]], auth=AUTH_A, chunk: int = 256 * 1024):
        def messages() -> Iterator[dpb.UploadImagesRequest]:
            yield dpb.UploadImagesRequest(header=dpb.UploadImagesHeader(dataset_id=dataset_id))
            for name, data in files:
                pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
                for i, piece in enumerate(pieces):
                    yield dpb.UploadImagesRequest(chunk=dpb.ImageChunk(filename=name, data=piece,
                                                                       last=i == len(pieces) - 1))

        return self.datasets.UploadImages(messages(), metadata=auth, timeout=30)

    def dataset_with_images(self, n: int = 3) -> str:
        dataset = self.datasets.CreateDataset(dpb.CreateDatasetRequest(name="photos"), metadata=AUTH_A).dataset
        reply = self.upload(dataset.id, [(f"img{i}.png", png(i)) for i in range(n)])
        assert len(reply.accepted) == n and reply.dataset.image_count == n
        return dataset.id


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        store_dir=tmp_path / "store", device="cpu", grpc_host="127.0.0.1", grpc_port=0,
        api_keys=f"acme:{hash_api_key(KEY_A)},beta:{hash_api_key(KEY_B)}",
        max_message_bytes=MAX_MESSAGE, max_image_bytes=MAX_IMAGE, shutdown_grace_s=1.0,
    )


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(context: GatewayContext | None = None, screener: object = None) -> Gateway:
        settings = _settings(tmp_path)
        context = context or build_context(settings, screener=screener)
        server = build_server(settings, context)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=[
            ("grpc.max_send_message_length", 4 * MAX_MESSAGE), ("grpc.max_receive_message_length", 4 * MAX_MESSAGE)])
        started.append(Gateway(server, channel))
        return started[-1]

    yield start
    for gateway in started:
        gateway.channel.close()
        gateway.server.stop(0)


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway(screener=HighFrequencyTestScreener())


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def handled(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("genaudit_grpc_server_handled_total", {
        "grpc_service": "genaudit.v1.DatasetService", "grpc_method": method, "grpc_code": code}) or 0.0


# --- auth ---------------------------------------------------------------------------------------------------


def test_api_keys_decide_the_tenant(gateway: Gateway) -> None:
    list_datasets = gateway.datasets.ListDatasets
    unauthenticated_before = handled("ListDatasets", "UNAUTHENTICATED")
    assert code_of(lambda: list_datasets(dpb.ListDatasetsRequest()))[0] == grpc.StatusCode.UNAUTHENTICATED
    code, details = code_of(lambda: list_datasets(dpb.ListDatasetsRequest(), metadata=(("x-api-key", "nope"),)))
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
    assert code_of(lambda: list_datasets(dpb.ListDatasetsRequest(), metadata=(("authorization", f"Basic {KEY_A}"),))
                   )[0] == grpc.StatusCode.UNAUTHENTICATED
    assert handled("ListDatasets", "UNAUTHENTICATED") == unauthenticated_before + 3
    # streaming methods are guarded the same way
    assert code_of(lambda: list(gateway.jobs.WatchJob(jpb.WatchJobRequest(job_id="job_x")))
                   )[0] == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: gateway.upload("ds_x", [("a.png", png(1))], auth=(("x-api-key", "nope"),))
                   )[0] == grpc.StatusCode.UNAUTHENTICATED

    created = gateway.datasets.CreateDataset(dpb.CreateDatasetRequest(name="a"), metadata=AUTH_A).dataset
    assert [d.id for d in list_datasets(dpb.ListDatasetsRequest(), metadata=AUTH_A).datasets] == [created.id]
    assert list(list_datasets(dpb.ListDatasetsRequest(), metadata=AUTH_B).datasets) == []
    # health needs no key
    reply = health_pb2_grpc.HealthStub(gateway.channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- datasets and uploads ---------------------------------------------------------------------------------


def test_streaming_upload_stores_valid_files_and_rejects_the_rest(gateway: Gateway) -> None:
    dataset_id = gateway.datasets.CreateDataset(dpb.CreateDatasetRequest(name="mixed"), metadata=AUTH_A).dataset.id
    big_valid = png(7, size=300)  # several chunks
    files = [
        ("good.png", png(1)),
        ("multi.png", big_valid),
        ("corrupt.png", png(2)[:40]),
        ("bomb.png", bomb_png()),
        ("huge.png", png(3) + b"\0" * (MAX_IMAGE + 10)),
        ("../escape.png", png(4)),
        ("good.png", png(5)),
    ]
    reply = gateway.upload(dataset_id, files, chunk=64 * 1024)
    assert [(a.filename, a.size_bytes) for a in reply.accepted] == [("good.png", len(files[0][1])),
                                                                    ("multi.png", len(big_valid))]
    rejected = {r.filename: r for r in reply.rejected}
    assert rejected["corrupt.png"].reason == dpb.REJECTION_REASON_INVALID_IMAGE
    assert rejected["bomb.png"].reason == dpb.REJECTION_REASON_INVALID_IMAGE
    assert "max_image_pixels" in rejected["bomb.png"].message and "400000000" in rejected["bomb.png"].message
    assert rejected["huge.png"].reason == dpb.REJECTION_REASON_TOO_LARGE
    assert "max_image_bytes" in rejected["huge.png"].message
    assert rejected["../escape.png"].reason == dpb.REJECTION_REASON_INVALID_NAME
    assert [r.reason for r in reply.rejected if r.filename == "good.png"] == [dpb.REJECTION_REASON_DUPLICATE]
    assert (reply.dataset.image_count, reply.dataset.total_bytes) == (2, len(files[0][1]) + len(big_valid))

    store = gateway.ctx.store
    key = dataset_image_key("acme", dataset_id, "multi.png")
    assert store.get_bytes(key) == big_valid  # reassembled exactly
    assert store.get_bytes(dataset_image_key("acme", dataset_id, "good.png")) == files[0][1]  # first one kept
    for name in ("corrupt.png", "bomb.png", "huge.png"):
        assert not store.exists(dataset_image_key("acme", dataset_id, name))
    assert sorted(p.name for p in store.root.rglob("*") if p.is_file()) == ["good.png", "multi.png"]

    # a file left without its last chunk is reported, not stored
    def unfinished() -> Iterator[dpb.UploadImagesRequest]:
        yield dpb.UploadImagesRequest(header=dpb.UploadImagesHeader(dataset_id=dataset_id))
        yield dpb.UploadImagesRequest(chunk=dpb.ImageChunk(filename="half.png", data=png(6)))

    reply = gateway.datasets.UploadImages(unfinished(), metadata=AUTH_A)
    assert [(r.filename, r.reason) for r in reply.rejected] == [("half.png", dpb.REJECTION_REASON_INCOMPLETE)]
    assert not store.exists(dataset_image_key("acme", dataset_id, "half.png"))


def test_malformed_upload_streams_and_other_tenants(gateway: Gateway) -> None:
    dataset_id = gateway.datasets.CreateDataset(dpb.CreateDatasetRequest(name="x"), metadata=AUTH_A).dataset.id
    chunk = dpb.UploadImagesRequest(chunk=dpb.ImageChunk(filename="a.png", data=png(1), last=True))
    header = dpb.UploadImagesRequest(header=dpb.UploadImagesHeader(dataset_id=dataset_id))
    code, details = code_of(lambda: gateway.datasets.UploadImages(iter([chunk]), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "header" in details
    interleaved = [header, dpb.UploadImagesRequest(chunk=dpb.ImageChunk(filename="b.png", data=b"x")), chunk]
    code, details = code_of(lambda: gateway.datasets.UploadImages(iter(interleaved), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "before the last chunk" in details
    # beta cannot see, upload into, or commit acme's dataset: NOT_FOUND, like an unknown id
    for call in (lambda: gateway.datasets.GetDataset(dpb.GetDatasetRequest(dataset_id=dataset_id), metadata=AUTH_B),
                 lambda: gateway.upload(dataset_id, [("a.png", png(1))], auth=AUTH_B),
                 lambda: gateway.datasets.CommitDataset(dpb.CommitDatasetRequest(dataset_id=dataset_id),
                                                        metadata=AUTH_B)):
        assert code_of(call)[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: gateway.datasets.GetDataset(dpb.GetDatasetRequest(dataset_id="../x"), metadata=AUTH_A)
                   )[0] == grpc.StatusCode.INVALID_ARGUMENT
    # the local store has no presigned URLs: the client falls back to UploadImages
    code, _ = code_of(lambda: gateway.datasets.GetUploadUrls(
        dpb.GetUploadUrlsRequest(dataset_id=dataset_id, filenames=["a.png"]), metadata=AUTH_A))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # presigned-style upload straight into the store, then CommitDataset counts it
    gateway.ctx.store.put_bytes(dataset_image_key("acme", dataset_id, "direct.png"), png(9))
    committed = gateway.datasets.CommitDataset(dpb.CommitDatasetRequest(dataset_id=dataset_id), metadata=AUTH_A)
    assert (committed.dataset.image_count, committed.dataset.total_bytes) == (1, len(png(9)))


def test_oversize_message_is_resource_exhausted(gateway: Gateway) -> None:
    code, _ = code_of(lambda: gateway.screening.Screen(spb.ScreenRequest(image=b"\0" * (MAX_MESSAGE + 1)),
                                                       metadata=AUTH_A))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- jobs ---------------------------------------------------------------------------------------------------


def _feature_job(dataset_id: str, key: str = "") -> jpb.SubmitJobRequest:
    return jpb.SubmitJobRequest(idempotency_key=key, spec=jpb.JobSpec(
        feature_extraction=jpb.FeatureExtractionSpec(dataset_id=dataset_id, batch_size=2)))


def test_submission_is_validated_before_a_job_exists(gateway: Gateway) -> None:
    empty = gateway.datasets.CreateDataset(dpb.CreateDatasetRequest(name="empty"), metadata=AUTH_A).dataset.id
    code, details = code_of(lambda: gateway.jobs.SubmitJob(_feature_job(empty), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "has no images" in details
    code, details = code_of(lambda: gateway.jobs.SubmitJob(jpb.SubmitJobRequest(), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "feature_extraction" in details
    bad_space = jpb.SubmitJobRequest(spec=jpb.JobSpec(feature_extraction=jpb.FeatureExtractionSpec(
        dataset_id=empty, feature_space="no-such-space")))
    assert code_of(lambda: gateway.jobs.SubmitJob(bad_space, metadata=AUTH_A))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: gateway.jobs.SubmitJob(_feature_job("ds_unknown"), metadata=AUTH_A)
                   )[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: gateway.jobs.SubmitJob(_feature_job(empty), metadata=AUTH_B))[0] == grpc.StatusCode.NOT_FOUND
    # a job type this server does not know (a newer client's oneof field 15) arrives as an unknown field
    newer_client_spec = jpb.JobSpec.FromString(bytes([15 << 3 | 2, 0]))
    code, details = code_of(lambda: gateway.jobs.SubmitJob(jpb.SubmitJobRequest(spec=newer_client_spec),
                                                            metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no job type" in details
    code, details = code_of(lambda: gateway.jobs.ListJobs(jpb.ListJobsRequest(job_type=99), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown job_type 99" in details
    assert list(gateway.jobs.ListJobs(jpb.ListJobsRequest(), metadata=AUTH_A).jobs) == []
    assert code_of(lambda: gateway.jobs.ListJobs(jpb.ListJobsRequest(page_size=5000), metadata=AUTH_A)
                   )[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_watch_a_real_feature_extraction_job_to_its_results(gateway: Gateway) -> None:
    dataset_id = gateway.dataset_with_images(3)
    def submitted() -> float:
        return REGISTRY.get_sample_value("genaudit_jobs_submitted_total", {"job_type": "feature_extraction"}) or 0

    before = submitted()
    first = gateway.jobs.SubmitJob(_feature_job(dataset_id, key="run-1"), metadata=AUTH_A)
    again = gateway.jobs.SubmitJob(_feature_job(dataset_id, key="run-1"), metadata=AUTH_A)
    assert first.created and not again.created and again.job.id == first.job.id
    assert submitted() == before + 1  # the replay is not a new submission
    assert first.job.spec.feature_extraction.feature_space == "efficientnet-lite0"  # default filled in

    seen = list(gateway.jobs.WatchJob(jpb.WatchJobRequest(job_id=first.job.id), metadata=AUTH_A, timeout=120))
    versions = [r.job.version for r in seen]
    assert versions == sorted(set(versions)), versions
    final = seen[-1].job
    assert final.state == jpb.JOB_STATE_SUCCEEDED, final.error
    assert final.progress == 1.0 and final.HasField("finish_time")
    assert {jpb.JOB_STATE_RUNNING, jpb.JOB_STATE_SUCCEEDED} <= {r.job.state for r in seen}
    progress = [r.job.progress for r in seen]
    assert progress == sorted(progress)

    artifacts = gateway.results.ListArtifacts(rpb.ListArtifactsRequest(job_id=final.id), metadata=AUTH_A).artifacts
    assert [a.name for a in artifacts] == sorted(final.artifact_names) and "features" in final.artifact_names
    features = next(a for a in artifacts if a.name == "features")
    assert features.download_url == "" and features.inline_available  # local store: no URLs for clients
    chunks = list(gateway.results.FetchArtifact(rpb.FetchArtifactRequest(job_id=final.id, name="features"),
                                                metadata=AUTH_A))
    data = b"".join(c.data for c in chunks)
    assert [c.offset for c in chunks] == [sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))]
    assert chunks[0].total_size == features.size_bytes == len(data)
    assert data == gateway.ctx.store.get_bytes(features.key)
    assert np.load(io.BytesIO(data), allow_pickle=False).shape == (3, 1280)

    # tenant isolation of jobs and results
    job_id = final.id
    for call in (lambda: gateway.jobs.GetJob(jpb.GetJobRequest(job_id=job_id), metadata=AUTH_B),
                 lambda: gateway.jobs.CancelJob(jpb.CancelJobRequest(job_id=job_id), metadata=AUTH_B),
                 lambda: list(gateway.jobs.WatchJob(jpb.WatchJobRequest(job_id=job_id), metadata=AUTH_B)),
                 lambda: gateway.results.ListArtifacts(rpb.ListArtifactsRequest(job_id=job_id), metadata=AUTH_B),
                 lambda: list(gateway.results.FetchArtifact(rpb.FetchArtifactRequest(job_id=job_id, name="features"),
                                                            metadata=AUTH_B))):
        assert code_of(call)[0] == grpc.StatusCode.NOT_FOUND
    assert list(gateway.jobs.ListJobs(jpb.ListJobsRequest(), metadata=AUTH_B).jobs) == []
    assert [j.id for j in gateway.jobs.ListJobs(jpb.ListJobsRequest(), metadata=AUTH_A).jobs] == [job_id]
    only_failed = jpb.ListJobsRequest(states=[jpb.JOB_STATE_FAILED])
    assert list(gateway.jobs.ListJobs(only_failed, metadata=AUTH_A).jobs) == []
    by_type = jpb.ListJobsRequest(job_type=jpb.JOB_TYPE_FEATURE_EXTRACTION, states=[jpb.JOB_STATE_SUCCEEDED])
    assert [j.id for j in gateway.jobs.ListJobs(by_type, metadata=AUTH_A).jobs] == [job_id]
    cancelled = gateway.jobs.CancelJob(jpb.CancelJobRequest(job_id=job_id), metadata=AUTH_A).job
    assert cancelled.state == jpb.JOB_STATE_SUCCEEDED  # a finished job stays as it is
    code, _ = code_of(lambda: list(gateway.results.FetchArtifact(
        rpb.FetchArtifactRequest(job_id=job_id, name="nope"), metadata=AUTH_A)))
    assert code == grpc.StatusCode.NOT_FOUND


def test_metrics_job_checks_every_dataset_it_names_and_reports(gateway: Gateway) -> None:
    real, generated = gateway.dataset_with_images(4), gateway.dataset_with_images(3)
    empty = gateway.datasets.CreateDataset(dpb.CreateDatasetRequest(name="empty"), metadata=AUTH_A).dataset.id
    others = gateway.datasets.CreateDataset(dpb.CreateDatasetRequest(name="b"), metadata=AUTH_B).dataset.id

    def metrics_job(*generated_ids: str) -> jpb.SubmitJobRequest:
        return jpb.SubmitJobRequest(spec=jpb.JobSpec(metrics=jpb.MetricsSpec(
            real_dataset_id=real, generated_dataset_ids=list(generated_ids), k=2, prdc_k=2, kid_subset_size=3)))

    # every generated dataset is checked, not only the real one
    assert code_of(lambda: gateway.jobs.SubmitJob(metrics_job(generated, others), metadata=AUTH_A)
                   )[0] == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: gateway.jobs.SubmitJob(metrics_job(empty), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and empty in details
    code, details = code_of(lambda: gateway.jobs.SubmitJob(metrics_job(real), metadata=AUTH_A))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cannot also be a generated" in details
    assert list(gateway.jobs.ListJobs(jpb.ListJobsRequest(), metadata=AUTH_A).jobs) == []

    submitted = gateway.jobs.SubmitJob(metrics_job(generated), metadata=AUTH_A).job
    assert submitted.job_type == jpb.JOB_TYPE_METRICS
    assert list(submitted.spec.metrics.generated_dataset_ids) == [generated] and submitted.spec.metrics.k == 2
    final = list(gateway.jobs.WatchJob(jpb.WatchJobRequest(job_id=submitted.id), metadata=AUTH_A, timeout=120))[-1].job
    assert final.state == jpb.JOB_STATE_SUCCEEDED, final.error
    assert {"summary", "per_image", "report"} <= set(final.artifact_names)


def test_schedules_are_per_tenant(gateway: Gateway) -> None:
    dataset_id = gateway.dataset_with_images(1)
    spec = jpb.JobSpec(feature_extraction=jpb.FeatureExtractionSpec(dataset_id=dataset_id))
    request = jpb.CreateScheduleRequest(name="nightly", cron="0 3 * * *", spec=spec)
    schedule = gateway.schedules.CreateSchedule(request, metadata=AUTH_A).schedule
    assert schedule.cron == "0 3 * * *" and schedule.job_type == jpb.JOB_TYPE_FEATURE_EXTRACTION
    assert code_of(lambda: gateway.schedules.CreateSchedule(replace_cron(request, "61 * * * *"), metadata=AUTH_A)
                   )[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: gateway.schedules.CreateSchedule(request, metadata=AUTH_B))[0] == grpc.StatusCode.NOT_FOUND
    assert list(gateway.schedules.ListSchedules(jpb.ListSchedulesRequest(), metadata=AUTH_B).schedules) == []
    delete = jpb.DeleteScheduleRequest(schedule_id=schedule.id)
    assert code_of(lambda: gateway.schedules.DeleteSchedule(delete, metadata=AUTH_B))[0] == grpc.StatusCode.NOT_FOUND
    gateway.schedules.DeleteSchedule(delete, metadata=AUTH_A)
    assert list(gateway.schedules.ListSchedules(jpb.ListSchedulesRequest(), metadata=AUTH_A).schedules) == []


def replace_cron(request: jpb.CreateScheduleRequest, cron: str) -> jpb.CreateScheduleRequest:
    changed = jpb.CreateScheduleRequest()
    changed.CopyFrom(request)
    changed.cron = cron
    return changed


# --- screening ----------------------------------------------------------------------------------------------


def test_screen_returns_the_detector_verdict_for_each_image(gateway: Gateway) -> None:
    reference = HighFrequencyTestScreener()
    images = [png(i, size=32) for i in range(6)]

    def screen(data: bytes) -> spb.ScreenResponse:
        return gateway.screening.Screen(spb.ScreenRequest(image=data, filename="x.png"), metadata=AUTH_A, timeout=20)

    def count(label: str) -> float:
        return REGISTRY.get_sample_value("genaudit_screen_verdicts_total", {"label": label}) or 0.0

    before = {label: count(label) for label in ("generated", "real")}
    batches_before = REGISTRY.get_sample_value("genaudit_screen_batch_images_sum") or 0.0
    threads: list[threading.Thread] = []
    replies: dict[int, spb.ScreenResponse] = {}
    for i, data in enumerate(images):
        threads.append(threading.Thread(target=lambda i=i, data=data: replies.__setitem__(i, screen(data))))
        threads[-1].start()
    for t in threads:
        t.join()
    limits = gateway.ctx.limits
    for i, data in enumerate(images):
        expected = reference.score(decode_image(data, limits)).probability_generated
        reply = replies[i]
        assert reply.probability_generated == expected
        assert reply.evidence["high_frequency_share"] == expected
        assert reply.label == (spb.SCREEN_LABEL_GENERATED if expected >= 0.5 else spb.SCREEN_LABEL_REAL)
        assert (reply.threshold, reply.model_version) == (0.5, "test-hf-energy-1")
    n_generated = sum(reply.label == spb.SCREEN_LABEL_GENERATED for reply in replies.values())
    assert count("generated") - before["generated"] == n_generated
    assert count("real") - before["real"] == len(images) - n_generated
    assert (REGISTRY.get_sample_value("genaudit_screen_batch_images_sum") or 0.0) - batches_before == len(images)
    code, details = code_of(lambda: screen(bomb_png()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_image_pixels" in details
    assert code_of(lambda: screen(b"not an image"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert (REGISTRY.get_sample_value("genaudit_screen_latency_seconds_count") or 0) >= len(images)


def test_screen_without_a_detector_is_failed_precondition(start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway()
    code, details = code_of(lambda: gateway.screening.Screen(spb.ScreenRequest(image=png(1)), metadata=AUTH_A))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "no detector model is configured" in details


# --- server: reflection, health, deadlines, shutdown, infrastructure down ---------------------------------


def test_reflection_lists_every_service(gateway: Gateway) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(gateway.channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(replies).list_services_response.service}
    assert set(API_SERVICES) | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_health_goes_not_serving_when_shutdown_starts(gateway: Gateway) -> None:
    health = health_pb2_grpc.HealthStub(gateway.channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="genaudit.v1.JobService")).status == \
        health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=gateway.server.stop, args=(1.0,))
    stopper.start()
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    stopper.join(10)
    assert not stopper.is_alive()
    code, _ = code_of(lambda: gateway.datasets.ListDatasets(dpb.ListDatasetsRequest(), metadata=AUTH_A, timeout=2))
    assert code == grpc.StatusCode.UNAVAILABLE


def _distributed_context(tmp_path: Path, broker_url: str) -> GatewayContext:
    """Records in memory and a local store, but jobs go to a Celery broker that no worker consumes."""
    embedded = build_context(_settings(tmp_path))
    embedded.dispatcher.close()
    embedded.schedules.close()
    from genaudit.worker.celery_app import create_celery_app
    from genaudit.worker.dispatch import CeleryDispatcher

    distributed = replace(_settings(tmp_path), redis_url=broker_url)
    return replace(embedded, settings=distributed, dispatcher=CeleryDispatcher(create_celery_app(distributed)),
                   schedules=type(embedded.schedules)(distributed, embedded.records))


def test_watch_job_stops_at_the_deadline(start_gateway: Callable[..., Gateway], tmp_path: Path,
                                         redis_url: str) -> None:
    gateway = start_gateway(context=_distributed_context(tmp_path, redis_url))
    job = gateway.jobs.SubmitJob(_feature_job(gateway.dataset_with_images(1)), metadata=AUTH_A).job
    assert job.state == jpb.JOB_STATE_QUEUED
    started, seen = time.monotonic(), []
    with pytest.raises(grpc.RpcError) as info:
        for reply in gateway.jobs.WatchJob(jpb.WatchJobRequest(job_id=job.id), metadata=AUTH_A, timeout=1.5):
            seen.append(reply.job.state)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert seen == [jpb.JOB_STATE_QUEUED] and time.monotonic() - started < 4


def test_broker_down_is_unavailable_and_the_job_is_not_left_queued(
        start_gateway: Callable[..., Gateway], tmp_path: Path) -> None:
    from tests.fixtures.redis import free_port

    gateway = start_gateway(context=_distributed_context(tmp_path, f"redis://127.0.0.1:{free_port()}/0"))
    dataset_id = gateway.dataset_with_images(1)
    code, details = code_of(lambda: gateway.jobs.SubmitJob(_feature_job(dataset_id), metadata=AUTH_A, timeout=30))
    assert code == grpc.StatusCode.UNAVAILABLE and "broker" in details
    jobs = gateway.jobs.ListJobs(jpb.ListJobsRequest(), metadata=AUTH_A).jobs
    assert [j.state for j in jobs] == [jpb.JOB_STATE_FAILED] and "could not be queued" in jobs[0].error
