"""End to end, distributed: ``genaudit serve`` and ``genaudit worker`` as separate processes on a real Redis
and a real S3 (SeaweedFS), driven only through the installed ``genaudit`` client commands.

Photos go up through presigned PUT URLs (checked in the bucket and on the gateway's /metrics: no byte
went through UploadImages), a feature_extraction job runs on the Celery worker, its features come back
through a presigned GET URL and match features computed here, and tenants are isolated.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
import skimage.data
from grpc_health.v1 import health_pb2_grpc
from PIL import Image

from genaudit.gateway.auth import hash_api_key
from genaudit.settings import Settings
from tests.fixtures.gateway_process import wait_serving
from tests.fixtures.processes import stop_process
from tests.fixtures.redis import free_port
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GENAUDIT = str(Path(sys.executable).with_name("genaudit"))  # the installed console script
REDIS_DB = 6  # no other test uses it; flushed at the start
KEY_A, KEY_B = "e2e-key-of-acme", "e2e-key-of-beta"
START_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 90


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def alive(self) -> None:
        assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"

    def stop(self) -> None:
        stop_process(self.proc, timeout_s=20, process_group=True)  # started in its own session


def _start(name: str, args: list[str], env: dict[str, str], log: Path) -> Service:
    with log.open("wb") as out:
        proc = subprocess.Popen([GENAUDIT, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
    return Service(name, proc, log)


def _wait_worker(worker: Service, redis_url: str) -> None:
    from genaudit.worker.celery_app import create_celery_app

    app = create_celery_app(Settings(redis_url=redis_url))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not app.control.ping(timeout=0.5):
            worker.alive()
            assert time.monotonic() < deadline, f"worker not answering ping:\n{worker.tail()}"
    finally:
        app.close()


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def photo_folder(folder: Path) -> dict[str, bytes]:
    """Three real photos (PNG and JPEG, one in a subfolder) and two corrupt files: one the client's header
    check refuses, one with a valid header but truncated pixel data that only the worker finds out.
    Returns the object name -> bytes of every file that reaches the store."""
    (folder / "more").mkdir(parents=True)
    files = {
        "astronaut.png": _encoded(skimage.data.astronaut(), "PNG"),
        "chelsea.jpg": _encoded(skimage.data.chelsea(), "JPEG"),
        "more__coffee.png": _encoded(skimage.data.coffee(), "PNG"),
    }
    (folder / "astronaut.png").write_bytes(files["astronaut.png"])
    (folder / "chelsea.jpg").write_bytes(files["chelsea.jpg"])
    (folder / "more" / "coffee.png").write_bytes(files["more__coffee.png"])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    truncated = files["astronaut.png"][: len(files["astronaut.png"]) // 2]
    (folder / "truncated.png").write_bytes(truncated)
    return {**files, "truncated.png": truncated}


def cli(*args: str, key: str, target: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENAUDIT_TARGET": target, "GENAUDIT_API_KEY": key, "COLUMNS": "200"}
    return subprocess.run([GENAUDIT, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@pytest.fixture
def services(redis_server: str, s3_server: S3Server, tmp_path: Path) -> Iterator[dict[str, object]]:
    """Gateway and worker processes sharing one environment; logs printed when the test fails."""
    redis_url = f"{redis_server.rsplit('/', 1)[0]}/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ, "PYTHONPATH": str(REPO / "services"), "OMP_NUM_THREADS": "2",
        "GENAUDIT_REDIS_URL": redis_url, "GENAUDIT_BROKER_URL": "",
        "GENAUDIT_S3_ENDPOINT": s3_server.endpoint, "GENAUDIT_S3_PUBLIC_ENDPOINT": "",
        "GENAUDIT_S3_ACCESS_KEY": s3_server.access_key, "GENAUDIT_S3_SECRET_KEY": s3_server.secret_key,
        "GENAUDIT_S3_REGION": s3_server.region, "GENAUDIT_S3_BUCKET": bucket, "GENAUDIT_S3_SECURE": "false",
        "GENAUDIT_STORE_DIR": str(tmp_path / "unused-store"), "GENAUDIT_DEVICE": "cpu",
        "GENAUDIT_API_KEYS": f"acme:{hash_api_key(KEY_A)},beta:{hash_api_key(KEY_B)}", "GENAUDIT_API_KEYS_FILE": "",
        "GENAUDIT_GRPC_HOST": "127.0.0.1", "GENAUDIT_GRPC_PORT": str(grpc_port),
        "GENAUDIT_METRICS_PORT": str(metrics_port), "GENAUDIT_WORKER_METRICS_PORT": str(free_port()),
        "GENAUDIT_SHUTDOWN_GRACE_S": "2",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the gateway is one process; only the worker gets a directory
    worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-prometheus")}
    started: list[Service] = []
    try:
        # the worker first: it takes longest (celery, torch and the model in the prefork child)
        started.append(_start("worker", ["worker", "--queues", "gpu,cpu", "--concurrency", "1"], worker_env,
                              tmp_path / "worker.log"))
        started.append(_start("gateway", ["serve"], env, tmp_path / "gateway.log"))
        target = f"127.0.0.1:{grpc_port}"
        with grpc.insecure_channel(target) as channel:  # the logs are printed below when it fails
            wait_serving(health_pb2_grpc.HealthStub(channel), started[1].proc, START_TIMEOUT_S)
        yield {"target": target, "metrics_port": metrics_port, "bucket": bucket, "redis_url": redis_url,
               "worker": started[0], "gateway": started[1], "s3": s3_server}
    finally:
        for service in reversed(started):
            service.stop()
        for service in started:  # shown by pytest only when the test failed
            print(f"----- {service.name} log (exit {service.proc.returncode}) -----\n{service.tail()}")


def _grpc_handled(metrics_port: int, method: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    pattern = (r'genaudit_grpc_server_handled_total\{grpc_code="OK",grpc_method="' + method +
               r'",grpc_service="genaudit\.v1\.DatasetService"\} ([0-9.e+]+)')
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_distributed_upload_job_and_results(services: dict[str, object], tmp_path: Path) -> None:
    target, s3 = services["target"], services["s3"]
    stored = photo_folder(tmp_path / "photos")

    # --- upload: presigned PUTs straight into the bucket, while the worker is still warming up
    upload = ok(cli("datasets", "upload", str(tmp_path / "photos"), "--name", "photos", "--json",
                    key=KEY_A, target=target))
    report = json.loads(upload.stdout)
    assert report["method"] == "presigned" and "uploaded through presigned URLs" in upload.stderr
    assert sorted(a["filename"] for a in report["accepted"]) == sorted(stored)
    assert [(r["filename"], r["reason"]) for r in report["rejected"]] == [("broken.jpg", "invalid image")]
    dataset_id = report["dataset"]["id"]
    assert int(report["dataset"]["image_count"]) == len(stored)
    client = s3.client()
    prefix = f"tenants/acme/datasets/{dataset_id}/"
    objects = {o.object_name: o for o in client.list_objects(services["bucket"], prefix=prefix, recursive=True)}
    by_name = {name.rsplit("/", 1)[-1]: name for name in objects}
    assert sorted(by_name) == sorted(stored), objects
    for name, data in stored.items():
        reply = client.get_object(services["bucket"], by_name[name])
        try:
            assert reply.read() == data
        finally:
            reply.close()
            reply.release_conn()
    metrics_port = services["metrics_port"]
    assert _grpc_handled(metrics_port, "GetUploadUrls") >= 1 and _grpc_handled(metrics_port, "CommitDataset") == 1
    assert _grpc_handled(metrics_port, "UploadImages") == 0  # no image went through the gateway

    # --- a feature_extraction job on the Celery worker, watched to the end
    _wait_worker(services["worker"], services["redis_url"])
    submitted = cli("jobs", "submit", "feature_extraction", "--set", f"dataset_id={dataset_id}", "--set",
                    "batch_size=2", "--idempotency-key", "e2e-1", "--watch", "--timeout", str(JOB_TIMEOUT_S),
                    key=KEY_A, target=target, timeout=JOB_TIMEOUT_S + 30)
    ok(submitted)
    job_id = submitted.stdout.split()[0]
    assert job_id.startswith("job_") and f"job {job_id} SUCCEEDED" in submitted.stderr
    job = json.loads(ok(cli("jobs", "get", job_id, "--json", key=KEY_A, target=target)).stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["attempts"] == 1

    # --- results through presigned GET URLs
    fetched = json.loads(ok(cli("results", "fetch", job_id, "features", "index", "--out", str(tmp_path / "out"),
                                "--json", key=KEY_A, target=target)).stdout)
    assert {entry["via"] for entry in fetched.values()} == {"presigned"}
    features = np.load(fetched["features"]["path"], allow_pickle=False)
    index = json.loads(Path(fetched["index"]["path"]).read_text())
    valid = sorted(set(stored) - {"truncated.png"})
    assert features.dtype == np.float32 and features.shape == (len(valid), 1280)
    assert [key.rsplit("/", 1)[-1] for key in index["images"]] == valid  # rows in key order
    assert [f["key"].rsplit("/", 1)[-1] for f in index["failures"]] == ["truncated.png"]
    assert "truncated" in index["failures"][0]["reason"]

    from genaudit.features import extract_features, get_extractor
    from genaudit.images import ImageLimits, decode_image

    extractor = get_extractor("efficientnet-lite0", "cpu")
    limits = ImageLimits.from_settings(Settings())
    expected = extract_features(extractor, [decode_image(stored[name], limits) for name in valid], batch_size=1)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)

    # --- tenants: another key cannot see the job; a wrong key is UNAUTHENTICATED
    for args in (("jobs", "get", job_id), ("results", "list", job_id)):
        other = cli(*args, key=KEY_B, target=target)
        assert other.returncode == 2 and other.stderr.startswith("error NOT_FOUND: "), other.stderr
        assert job_id not in other.stdout
    assert json.loads(ok(cli("jobs", "list", "--json", key=KEY_B, target=target)).stdout)["jobs"] == []
    wrong = cli("jobs", "get", job_id, key="not-a-key", target=target)
    assert wrong.returncode == 2 and wrong.stderr.strip() == "error UNAUTHENTICATED: invalid API key"
