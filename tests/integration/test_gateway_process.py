"""``serve``: a gateway process with /metrics that drains and exits cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genaudit.api.v1 import datasets_pb2 as dpb
from genaudit.api.v1.datasets_pb2_grpc import DatasetServiceStub
from tests.fixtures.gateway_process import SERVE, gateway_env, wait_serving
from tests.fixtures.redis import free_port

pytestmark = pytest.mark.integration


def test_serve_exposes_metrics_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = gateway_env(tmp_path, grpc_port, metrics_port)
    proc = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            wait_serving(health, proc)
            DatasetServiceStub(channel).ListDatasets(dpb.ListDatasetsRequest(), metadata=(("x-api-key", "k"),))
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
            assert ('genaudit_grpc_server_handled_total{grpc_code="OK",grpc_method="ListDatasets",'
                    'grpc_service="genaudit.v1.DatasetService"} 1.0') in text

            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=20)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            proc.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert proc.wait(timeout=20) == 0
        assert "gateway stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_queue_depth_poller_sets_the_gauge_from_the_broker(redis_url: str) -> None:
    import redis
    from prometheus_client import REGISTRY

    from genaudit.gateway.metrics import QueueDepthPoller

    broker = redis.Redis.from_url(redis_url)
    broker.lpush("gpu", "m1", "m2")
    broker.lpush("cpu", "m3")
    broker.lpush("cpu\x06\x163", "m4")  # kombu's list for priority 3 of the cpu queue
    poller = QueueDepthPoller(redis.Redis.from_url(redis_url))
    try:
        assert poller.poll_once() == {"gpu": 2, "cpu": 2}
        assert REGISTRY.get_sample_value("genaudit_queue_depth", {"queue": "gpu"}) == 2
        assert REGISTRY.get_sample_value("genaudit_queue_depth", {"queue": "cpu"}) == 2
    finally:
        poller.close()
