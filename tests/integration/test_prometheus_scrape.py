"""A real Prometheus scrapes a real gateway process and a real detector server process; promtool lints the
gateway's, a worker's and the detector server's /metrics.

Prometheus and promtool come from the Debian package ``prometheus`` (``make system-deps``); a missing
binary is an error, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import yaml
from PIL import Image

from genaudit.api.v1 import datasets_pb2 as dpb
from genaudit.api.v1 import detector_pb2
from genaudit.api.v1.datasets_pb2_grpc import DatasetServiceStub
from genaudit.api.v1.detector_pb2_grpc import DetectorServiceStub
from tests.fixtures.deploy_tools import promtool
from tests.fixtures.detector import write_random_freqnet
from tests.fixtures.gateway_process import GatewayProcess, running_gateway, serving_process
from tests.fixtures.images import png_bytes
from tests.fixtures.processes import stop_process
from tests.fixtures.redis import free_port

pytestmark = pytest.mark.integration

API_KEY = "k"
JOB = "genaudit-gateway"
SERVICE = "genaudit.v1.DatasetService"


def prometheus_binary() -> str:
    """Path of the Prometheus server; raises (no skip) when missing, like ``deploy_tools.promtool``."""
    path = shutil.which("prometheus")
    if path is None:
        raise RuntimeError("prometheus not found: apt-get install prometheus (make system-deps)")
    return path


def _http_get(url: str, timeout_s: float = 2) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return reply.read().decode()


@contextmanager
def running_prometheus(workdir: Path, targets: dict[str, str]) -> Iterator[str]:
    """A Prometheus server on a free loopback port scraping ``targets`` (job -> host:port) every second;
    yields its base URL once /-/ready answers."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                           for job, target in targets.items()],
    }))
    log_path = workdir / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"prometheus exited with {proc.returncode}:\n{log_path.read_text()}"
            try:
                _http_get(f"{url}/-/ready")
                break
            except OSError:
                assert time.monotonic() < deadline, f"prometheus not ready:\n{log_path.read_text()}"
                time.sleep(0.2)
        yield url
    finally:
        stop_process(proc)


def _query(prometheus_url: str, promql: str) -> dict[frozenset, float]:
    """Instant query; labels of each series (``__name__`` dropped) -> value."""
    body = json.loads(_http_get(f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"))
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "vector", body
    return {frozenset((k, v) for k, v in series["metric"].items() if k != "__name__"): float(series["value"][1])
            for series in body["data"]["result"]}


def _create_datasets(gateway: GatewayProcess, count: int) -> None:
    """``count`` CreateDataset calls that succeed, then one with a wrong key (UNAUTHENTICATED)."""
    stub = DatasetServiceStub(gateway.channel)
    for i in range(count):
        stub.CreateDataset(dpb.CreateDatasetRequest(name=f"scrape-{i}"), metadata=(("x-api-key", API_KEY),),
                           timeout=10)
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateDataset(dpb.CreateDatasetRequest(name="intruder"), metadata=(("x-api-key", "wrong"),), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_prometheus_scrapes_the_gateway_rpc_counters(tmp_path: Path) -> None:
    """Prometheus sees exactly the RPCs made: 3 CreateDataset OK, 1 UNAUTHENTICATED, target up."""
    with running_gateway(tmp_path, api_key=API_KEY) as gateway, \
            running_prometheus(tmp_path, {JOB: f"127.0.0.1:{gateway.metrics_port}"}) as prometheus:
        _create_datasets(gateway, 3)

        ok = f'genaudit_grpc_server_handled_total{{job="{JOB}",grpc_method="CreateDataset",grpc_code="OK"}}'
        refused = (f'genaudit_grpc_server_handled_total{{job="{JOB}",grpc_method="CreateDataset",'
                   f'grpc_code="UNAUTHENTICATED"}}')
        deadline = time.monotonic() + 30
        while True:
            ok_values, refused_values = _query(prometheus, ok), _query(prometheus, refused)
            if list(ok_values.values()) == [3.0] and list(refused_values.values()) == [1.0]:
                break
            # counters only grow: a value above the calls made is a bug, not something to wait out
            assert all(v <= 3 for v in ok_values.values()) and all(v <= 1 for v in refused_values.values()), \
                (ok_values, refused_values)
            assert time.monotonic() < deadline, \
                f"Prometheus never saw the calls: ok={ok_values} refused={refused_values}\n" \
                f"{_http_get(f'{prometheus}/api/v1/targets')}"
            time.sleep(0.5)

        (ok_labels,) = ok_values
        assert dict(ok_labels) == {"job": JOB, "instance": f"127.0.0.1:{gateway.metrics_port}",
                                   "grpc_service": SERVICE, "grpc_method": "CreateDataset", "grpc_code": "OK"}
        (refused_labels,) = refused_values
        assert dict(refused_labels)["grpc_service"] == SERVICE
        assert list(_query(prometheus, f'up{{job="{JOB}"}}').values()) == [1.0]
        latency = _query(prometheus, f'genaudit_grpc_server_handling_seconds_count{{job="{JOB}",'
                                     f'grpc_method="CreateDataset"}}')
        assert list(latency.values()) == [4.0]  # every call is timed, refused ones included


_WORKER_JOB = textwrap.dedent("""
    import sys
    from pathlib import Path

    from genaudit.jobs import MemoryRecordStore
    from genaudit.jobs.models import JobState, JobType
    from genaudit.jobs.specs import validate_spec
    from genaudit.settings import Settings
    from genaudit.storage import LocalStore
    from genaudit.telemetry.metrics import IMAGES_PROCESSED, JOBS_SUBMITTED, QUEUE_DEPTH
    from genaudit.worker.context import WorkerContext
    from genaudit.worker.runner import execute_job

    store_dir = Path(sys.argv[1])
    records = MemoryRecordStore()
    spec = validate_spec(JobType.FEATURE_EXTRACTION, {"dataset_id": "ds_none", "batch_size": 1})
    job, _ = records.create_job("acme", JobType.FEATURE_EXTRACTION, spec)
    # the real runner: a job on a dataset without images fails, counted and timed like any job
    execute_job(job.id, WorkerContext(Settings(store_dir=store_dir, device="cpu"), records, LocalStore(store_dir)))
    assert records.load_job(job.id).state == JobState.FAILED
    # series the failed job does not reach (decoding, beat submissions, queue depth), so every family of
    # a worker has a labelled sample in the multiprocess files
    IMAGES_PROCESSED.labels(job_type="feature_extraction", outcome="ok").inc()
    IMAGES_PROCESSED.labels(job_type="feature_extraction", outcome="invalid").inc()
    JOBS_SUBMITTED.labels(job_type="feature_extraction").inc()
    QUEUE_DEPTH.labels(queue="cpu").set(2)
""")


def _worker_metrics_text(workdir: Path) -> str:
    """/metrics of start_worker_metrics_server over the multiprocess files a separate job process wrote."""
    prom_dir = workdir / "prometheus-multiproc"
    prom_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "GENAUDIT_REDIS_URL": "",
           "GENAUDIT_S3_ENDPOINT": ""}
    store_dir = workdir / "worker-store"
    store_dir.mkdir()
    done = subprocess.run([sys.executable, "-c", _WORKER_JOB, str(store_dir)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    port = free_port()
    code = ("import time; from genaudit.worker.celery_app import start_worker_metrics_server; "
            f"start_worker_metrics_server({port}, addr='127.0.0.1'); time.sleep(60)")
    server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                return _http_get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                assert server.poll() is None, f"worker metrics server exited with {server.returncode}"
                assert time.monotonic() < deadline, "worker metrics server did not answer"
                time.sleep(0.2)
    finally:
        stop_process(server)


def _promtool_problems(text: str) -> str:
    """promtool's complaints about a metrics exposition ('' when clean); non-zero exit or any output fails."""
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60, check=False)
    output = (checked.stdout + checked.stderr).strip()
    return f"rc={checked.returncode}: {output}" if checked.returncode != 0 or output else ""


def test_promtool_check_metrics_is_clean_on_gateway_and_worker(tmp_path: Path) -> None:
    with running_gateway(tmp_path, api_key=API_KEY) as gateway:
        _create_datasets(gateway, 1)
        DatasetServiceStub(gateway.channel).ListDatasets(dpb.ListDatasetsRequest(),
                                                         metadata=(("x-api-key", API_KEY),), timeout=10)
        gateway_text = _http_get(gateway.metrics_url, timeout_s=5)
    assert 'grpc_code="UNAUTHENTICATED"' in gateway_text  # the labelled series exist before linting
    assert 'genaudit_grpc_server_handling_seconds_bucket{' in gateway_text

    worker_text = _worker_metrics_text(tmp_path)
    for series in ('genaudit_jobs_finished_total{job_type="feature_extraction",status="FAILED"} 1.0',
                   'genaudit_job_duration_seconds_count{job_type="feature_extraction",stage="total"} 1.0',
                   'genaudit_images_processed_total{job_type="feature_extraction",outcome="invalid"} 1.0',
                   'genaudit_queue_depth{queue="cpu"} 2.0'):
        assert series in worker_text, worker_text

    problems = {name: _promtool_problems(text) for name, text in (("gateway", gateway_text),
                                                                   ("worker", worker_text))}
    assert problems == {"gateway": "", "worker": ""}, problems


DETECTOR_JOB = "genaudit-detector"


@contextmanager
def running_detector_server(workdir: Path) -> Iterator[tuple[grpc.Channel, int]]:
    """``genaudit detector-serve`` on a random freqnet card, as its own process with the worker image's
    PROMETHEUS_MULTIPROC_DIR set; yields a channel to it once SERVING and its metrics port."""
    card = write_random_freqnet(workdir / "detector", version="random-freqnet-metrics-1")
    grpc_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "GENAUDIT_GRPC_HOST": "127.0.0.1", "GENAUDIT_DEVICE": "cpu",
           "GENAUDIT_DETECTOR_METRICS_PORT": str(metrics_port), "GENAUDIT_SHUTDOWN_GRACE_S": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(workdir / "not-for-the-detector")}
    argv = [sys.executable, "-c", "from genaudit.cli import app; app()", "detector-serve", "--model", str(card),
            "--port", str(grpc_port)]
    with serving_process(argv, env, grpc_port, workdir / "detector.log") as (_, channel):
        yield channel, metrics_port
    assert not (workdir / "not-for-the-detector").exists()  # no multiprocess files: one process


def test_prometheus_scrapes_the_detector_server(tmp_path: Path) -> None:
    """Two images scored and one refused in one ScoreBatch: Prometheus sees those counts, one forward pass,
    the call counted OK; the exposition is promtool-clean."""
    with running_detector_server(tmp_path) as (channel, metrics_port), \
            running_prometheus(tmp_path, {DETECTOR_JOB: f"127.0.0.1:{metrics_port}"}) as prometheus:
        reply = DetectorServiceStub(channel).ScoreBatch(
            detector_pb2.ScoreBatchRequest(images=[png_bytes(Image.new("RGB", (64, 64), (10, 20, 30))), b"not an image",
                                                    png_bytes(Image.new("RGB", (64, 64), (200, 10, 90)))]),
            timeout=30)
        assert [bool(s.invalid_reason) for s in reply.scores] == [False, True, False]

        expected = {
            f'genaudit_detector_images_total{{job="{DETECTOR_JOB}",outcome="scored"}}': 2.0,
            f'genaudit_detector_images_total{{job="{DETECTOR_JOB}",outcome="invalid"}}': 1.0,
            f'genaudit_detector_forward_seconds_count{{job="{DETECTOR_JOB}"}}': 1.0,
            f'genaudit_detector_forward_wait_seconds_count{{job="{DETECTOR_JOB}"}}': 1.0,
            f'genaudit_grpc_server_handled_total{{job="{DETECTOR_JOB}",grpc_method="ScoreBatch",grpc_code="OK"}}': 1.0,
            f'up{{job="{DETECTOR_JOB}"}}': 1.0,
        }
        deadline = time.monotonic() + 30
        while True:
            seen = {promql: list(_query(prometheus, promql).values()) for promql in expected}
            if all(values == [expected[promql]] for promql, values in seen.items()):
                break
            assert time.monotonic() < deadline, f"Prometheus never saw the detector's counts: {seen}"
            time.sleep(0.5)
        text = _http_get(f"http://127.0.0.1:{metrics_port}/metrics", timeout_s=5)
    assert _promtool_problems(text) == ""
