"""The deployment files, checked with the real tools and no Docker engine or cluster.

Compose: the Compose v2 binary's own model loader (`config`). Helm: the Helm SDK's lint and render,
then Kubernetes JSON schemas. Prometheus: promtool's config/rules checks and rule unit tests.
Grafana: every panel query parses (promtool) and reads only metrics that genaudit exposes.
Each tool also gets a deliberately broken input, so a check that stopped checking would show.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from concurrent import futures
from dataclasses import fields
from pathlib import Path
from typing import Any

import grpc
import helm_python
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from genaudit.settings import Settings
from tests.fixtures.deploy_tools import (
    CHART_DIR,
    COMPOSE_FILE,
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    REPO,
    find_object,
    grafana_to_promql,
    promql_metric_names,
    registry_series_names,
    render_chart,
    run_compose,
    run_promtool,
)

pytestmark = pytest.mark.integration

GENAUDIT_SERVICES = {"gateway", "worker-gpu", "worker-cpu", "beat"}
DEMO_KEY = "genaudit-demo-key"  # documented in deploy/README.md
# Kubernetes releases whose schemas the rendered chart must satisfy: an old supported one, the newest shipped.
KUBE_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # no schema in kubernetes-validate: checked by hand
EXTERNAL_SERVICES = {
    "redis": {"enabled": False},
    "minio": {"enabled": False},
    "externalRedis": {"url": "redis://:pw@redis.example:6379/0"},
    "externalS3": {"endpoint": "s3.example:443", "accessKey": "AKIAEXAMPLE", "secretKey": "s3-secret-value"},
}
ALL_FEATURES = {
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                "prometheusRule": {"enabled": True}},
    "grafana": {"dashboards": {"enabled": True}},
}


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
                else copy.deepcopy(value)
    return out


def settings_env_names() -> set[str]:
    return {f"GENAUDIT_{f.name.upper()}" for f in fields(Settings)}


# --- docker compose ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose_model() -> dict[str, Any]:
    result = run_compose(COMPOSE_FILE, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid() -> None:
    result = run_compose(COMPOSE_FILE, "config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("old", "new"), [
    # a dependency on a service that does not exist
    ("      minio:\n        condition: service_healthy\n    restart: \"no\"",
     "      minioo:\n        condition: service_healthy\n    restart: \"no\""),
    # a misspelt service key
    ("    shm_size: 1gb", "    shm_sise: 1gb"),
    # a duration that is no duration
    ("      interval: 15s\n", "      interval: soon\n"),
])
def test_compose_rejects_a_broken_copy(tmp_path: Path, old: str, new: str) -> None:
    text = COMPOSE_FILE.read_text()
    assert old in text  # the mutation must hit the file, or this test would pass vacuously
    copy_path = tmp_path / "docker-compose.yml"
    copy_path.write_text(text)
    control = run_compose(copy_path, "config", "-q")
    assert control.returncode == 0, control.stderr  # the copy itself is fine: only the mutation breaks it
    copy_path.write_text(text.replace(old, new, 1))
    result = run_compose(copy_path, "config", "-q")
    assert result.returncode != 0, f"compose accepted a broken file ({new!r})"


def test_compose_stack_wiring(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    assert set(services) == GENAUDIT_SERVICES | {"detector", "redis", "minio", "minio-init", "prometheus", "grafana"}

    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in services["worker-cpu"] or not services["worker-cpu"]["deploy"].get("resources")
    assert services["worker-gpu"]["command"] == ["worker", "--queues", "gpu"]
    assert services["worker-cpu"]["command"] == ["worker", "--queues", "cpu"]
    assert services["gateway"]["command"] == ["serve"]
    assert services["beat"]["command"] == ["beat"]
    assert services["worker-gpu"]["environment"]["GENAUDIT_DEVICE"] == "cuda"
    assert services["worker-cpu"]["environment"]["GENAUDIT_DEVICE"] == "cpu"

    # One shared environment (the x-genaudit-env anchor), made only of real settings.
    shared = dict(services["gateway"]["environment"])
    assert shared["GENAUDIT_REDIS_URL"] == "redis://redis:6379/0"
    assert shared["GENAUDIT_S3_ENDPOINT"] == "minio:9000"
    for name in GENAUDIT_SERVICES:
        env = services[name]["environment"]
        assert set(env) <= settings_env_names(), f"{name}: unknown settings {set(env) - settings_env_names()}"
        assert {k: v for k, v in env.items() if k != "GENAUDIT_DEVICE"} == shared
        deps = services[name]["depends_on"]
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"
        assert services[name]["restart"] == "unless-stopped"
    # The S3 credentials the services use are the ones MinIO is started with.
    assert shared["GENAUDIT_S3_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
    assert shared["GENAUDIT_S3_SECRET_KEY"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["minio-init"]["image"].startswith("minio/mc")

    for name in ("gateway", "detector", "worker-gpu", "worker-cpu", "redis", "minio", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "genaudit-grpc-healthcheck" in " ".join(services["gateway"]["healthcheck"]["test"])

    assert services["gateway"]["build"]["dockerfile"] == "deploy/gateway.Dockerfile"
    assert services["beat"]["build"]["dockerfile"] == "deploy/gateway.Dockerfile"  # beat needs no torch
    assert services["worker-gpu"]["build"]["dockerfile"] == "deploy/worker.Dockerfile"
    assert {"redis-data", "minio-data", "prometheus-data", "grafana-data", "weights"} <= set(compose_model["volumes"])
    keys_file = Path(compose_model["configs"]["api_keys"]["file"])
    assert keys_file == REPO / "deploy" / "api-keys.example.json"
    # Mounted host paths exist (a typo here only shows at `docker compose up`).
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]


def health_server(port: int = 0) -> tuple[grpc.Server, health.HealthServicer, int]:
    """A started grpc.health.v1 server on loopback (``port`` 0: a free one)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, health_servicer, bound


def test_compose_detector_is_the_gateways_screen_backend(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    detector = services["detector"]
    assert detector["command"][:2] == ["detector-serve", "--port"]
    port = detector["command"][2]
    assert detector["build"]["dockerfile"] == "deploy/worker.Dockerfile"  # the model needs torch
    assert detector["image"] == services["worker-cpu"]["image"]
    # Every genaudit process gets the backend through the shared environment; its host is this service.
    for name in GENAUDIT_SERVICES:
        assert services[name]["environment"]["GENAUDIT_SCREEN_BACKEND"] == f"detector:{port}", name
    # The gateway starts without the detector (Screen is UNAVAILABLE until it is up), so no dependency.
    assert "detector" not in services["gateway"].get("depends_on", {})
    env = detector["environment"]
    assert set(env) <= settings_env_names() and env["GENAUDIT_SCREEN_MODEL"] == "default"
    assert not [k for k in env if k.startswith(("GENAUDIT_S3", "GENAUDIT_REDIS", "GENAUDIT_API_KEYS"))]
    assert {"type": "volume", "source": "weights", "target": env["GENAUDIT_WEIGHTS_DIR"], "volume": {}} in \
        detector["volumes"]

    # The healthcheck asks the DetectorService's health on the served port: run it against a real server.
    script = detector["healthcheck"]["test"][3]
    assert detector["healthcheck"]["test"][:3] == ["CMD", "python3", "-c"]
    assert f"127.0.0.1:{port}" in script and "'genaudit.v1.DetectorService'" in script
    server, health_servicer, bound = health_server()
    probe = script.replace(f"127.0.0.1:{port}", f"127.0.0.1:{bound}")

    def run_probe() -> int:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30, check=False).returncode

    try:
        health_servicer.set("genaudit.v1.DetectorService", health_pb2.HealthCheckResponse.SERVING)
        assert run_probe() == 0
        health_servicer.set("genaudit.v1.DetectorService", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert run_probe() == 1
    finally:
        server.stop(grace=None)
    assert run_probe() != 0  # nothing listening


# --- images --------------------------------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        if (pending + line).strip():
            logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text.strip() else "")
            for text in (t.strip() for t in logical)]


@pytest.mark.parametrize("dockerfile", ["gateway.Dockerfile", "worker.Dockerfile"])
def test_dockerfiles_build_from_repo_files_as_non_root(dockerfile: str) -> None:
    instructions = dockerfile_instructions(REPO / "deploy" / dockerfile)
    for op, args in instructions:
        if op == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"{dockerfile}: COPY source {source} missing"
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(op == "HEALTHCHECK" for op, _ in instructions)
    assert instructions[-2] == ("ENTRYPOINT", '["genaudit"]')


def test_gateway_image_installs_no_torch() -> None:
    runs = " ".join(args for op, args in dockerfile_instructions(REPO / "deploy" / "gateway.Dockerfile")
                    if op == "RUN")
    assert "pip install ." in runs and "[worker]" not in runs
    worker_runs = " ".join(args for op, args in dockerfile_instructions(REPO / "deploy" / "worker.Dockerfile")
                           if op == "RUN")
    assert "pip install '.[worker]'" in worker_runs
    base_deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in base_deps if d.split("=")[0].split("[")[0].strip().lower() in {"torch", "torchvision"}]


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "deploy" / "grpc_healthcheck.py")],
        env={**os.environ, "GENAUDIT_GRPC_PORT": str(port)}, capture_output=True, text=True, timeout=30,
        check=False,
    )


def test_grpc_healthcheck_probe_follows_the_server_status() -> None:
    server, health_servicer, port = health_server()
    try:
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert run_healthcheck(port).returncode == 0
        health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        failed = run_healthcheck(port)
        assert failed.returncode == 1 and "NOT_SERVING" in failed.stderr
    finally:
        server.stop(grace=None)
    gone = run_healthcheck(port)
    assert gone.returncode == 1 and "UNAVAILABLE" in gone.stderr


def test_api_keys_example_holds_the_documented_demo_key_hashed() -> None:
    keys = json.loads((REPO / "deploy" / "api-keys.example.json").read_text())
    assert keys["tenants"]["demo"] == [hashlib.sha256(DEMO_KEY.encode()).hexdigest()]
    assert DEMO_KEY not in (REPO / "deploy" / "api-keys.example.json").read_text()
    assert DEMO_KEY in (REPO / "deploy" / "README.md").read_text()


# --- prometheus ----------------------------------------------------------------------------------------

def test_promtool_checks_config_and_rules() -> None:
    config = run_promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    rules = run_promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS_DIR)
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_rejects_a_broken_rules_file(tmp_path: Path) -> None:
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    broken = tmp_path / "alerts.yml"
    broken.write_text(text.replace("max by (queue) (genaudit_queue_depth) > 100",
                                   "max by (queue) (genaudit_queue_depth > 100", 1))
    assert broken.read_text() != text
    assert run_promtool("check", "rules", str(broken)).returncode != 0


def test_rule_unit_tests_catch_a_weakened_alert(tmp_path: Path) -> None:
    """The unit tests pin the alert timing: a gateway-down alert that waits 10 min instead of 2 must fail them."""
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    weakened = text.replace('or absent(up{job="genaudit-gateway"})\n        for: 2m',
                            'or absent(up{job="genaudit-gateway"})\n        for: 10m', 1)
    assert weakened != text
    (tmp_path / "alerts.yml").write_text(weakened)
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    result = run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "GenauditGatewayDown" in result.stdout + result.stderr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerts_read_only_metrics_that_exist() -> None:
    known = set().union(*registry_series_names().values()) | {"up"}  # up: Prometheus' own per-target series
    names = {rule["alert"] for rule in alert_rules()}
    assert {"GenauditGatewayDown", "GenauditJobFailureRatioHigh", "GenauditQueueDepthHigh",
            "GenauditScreenLatencyHigh"} <= names
    for rule in alert_rules():
        used = promql_metric_names(rule["expr"])
        assert used and used <= known, f"{rule['alert']} reads unknown metrics {used - known}"
    # Every alert has a unit test that fires it.
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert names - {"GenauditWorkerDown"} <= fired


def test_scrape_jobs_match_the_alert_rules() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["genaudit-gateway"]["static_configs"][0]["targets"] == ["gateway:9100"]
    worker_targets = {t for sc in jobs["genaudit-worker"]["static_configs"] for t in sc["targets"]}
    assert worker_targets == {"worker-gpu:9101", "worker-cpu:9101"}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    detector_port = compose["services"]["detector"]["environment"]["GENAUDIT_DETECTOR_METRICS_PORT"]
    assert jobs["genaudit-detector"]["static_configs"][0]["targets"] == [f"detector:{detector_port}"]
    # Target labels must not shadow our metrics' labels (Prometheus would rename those exported_*).
    metric_labels = {"queue", "job_type", "status", "stage", "outcome", "grpc_service", "grpc_method", "grpc_code"}
    for job in jobs.values():
        for sc in job["static_configs"]:
            assert not set(sc.get("labels", {})) & metric_labels


# --- grafana -------------------------------------------------------------------------------------------

def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "genaudit.json").read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def test_dashboard_queries_read_only_genaudit_metrics_and_show_each() -> None:
    families = registry_series_names()
    known = set().union(*families.values())
    used: set[str] = set()
    for title, expr in dashboard_targets():
        names = promql_metric_names(expr)
        assert names, f"panel {title!r} reads no metric"
        assert names <= known, f"panel {title!r} reads unknown metrics {names - known}"
        used |= names
    not_shown = {family for family, series in families.items() if not series & used}
    assert not not_shown, f"metrics without a panel: {not_shown}"


def test_dashboard_panels_tile_the_24_column_grid_without_overlap() -> None:
    """Every panel has an integer gridPos inside Grafana's 24 columns, ids are unique, and no two panels
    cover the same cell (Grafana would silently push one down)."""
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "genaudit.json").read_text())
    cells: dict[tuple[int, int], str] = {}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) and pos[k] >= 0 for k in ("x", "y", "w", "h")), (panel["title"], pos)
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] + pos["w"] <= 24, (panel["title"], pos)
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_targets())
    ]}]}
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same route rejects a query with a syntax error.
    rules["groups"][0]["rules"][0]["expr"] = "sum(rate(genaudit_jobs_submitted_total[5m])"
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(rules))
    assert run_promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path).returncode != 0


def test_grafana_provisioning_matches_the_compose_stack(compose_model: dict[str, Any]) -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [prometheus] = datasources["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "genaudit.yml").read_text())
    mounts = {v["target"]: v["source"] for v in compose_model["services"]["grafana"]["volumes"] if v["type"] == "bind"}
    dashboards_path = providers["providers"][0]["options"]["path"]
    assert Path(mounts[dashboards_path]) == GRAFANA_DIR / "dashboards"
    assert Path(mounts["/etc/grafana/provisioning"]) == GRAFANA_DIR / "provisioning"


# --- helm ----------------------------------------------------------------------------------------------

MISSING_DEPENDENCIES = "chart directory is missing these dependencies: redis,minio"


@pytest.mark.parametrize("values", [None, merged(EXTERNAL_SERVICES, ALL_FEATURES)], ids=["defaults", "external+all"])
def test_chart_lints_clean(values: dict[str, Any] | None) -> None:
    report = helm_python.lint(CHART_DIR, values, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2 and m["error"] != MISSING_DEPENDENCIES]
    assert not problems and not report["errors"], report
    # The Bitnami subcharts are declared, with conditions, and deliberately not vendored (offline).
    deps = {d["name"]: d for d in helm_python.Chart.load(CHART_DIR).metadata["dependencies"]}
    assert deps["redis"]["condition"] == "redis.enabled" and deps["minio"]["condition"] == "minio.enabled"


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    with helm_python.Chart.load(CHART_DIR) as original:
        chart = Path(original.save_dir(tmp_path))
    beat = chart / "templates" / "beat-deployment.yaml"
    beat.write_text(beat.read_text().replace("{{- end }}\n", "", 1))  # unbalanced if/end
    report = helm_python.lint(chart)
    assert report["errors"]


@pytest.mark.parametrize("values", [None, merged(EXTERNAL_SERVICES, ALL_FEATURES)], ids=["defaults", "external+all"])
def test_rendered_manifests_match_kubernetes_schemas(values: dict[str, Any] | None) -> None:
    objects = render_chart(values)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount", "PodDisruptionBudget"} <= kinds
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    assert kinds.issuperset(CRD_KINDS) == (values is not None)


def test_kubernetes_schema_validation_catches_a_bad_manifest() -> None:
    objects = render_chart()
    gateway = copy.deepcopy(find_object(objects, "Deployment", "audit-genaudit-gateway"))
    gateway["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(gateway, KUBE_VERSIONS[0], strict=True)


def container(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    [main] = find_object(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return main


def test_render_key_facts() -> None:
    plaintext = "tenant-a-plaintext-key-0123"
    hashed = hashlib.sha256(b"another key").hexdigest()
    objects = render_chart(merged(EXTERNAL_SERVICES, {
        "apiKeys": {"plaintext": {"tenant-a": [plaintext]}, "hashed": {"tenant-a": [hashed], "tenant-b": [hashed]}},
    }))

    gpu = container(objects, "audit-genaudit-worker-gpu")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["args"] == ["worker", "--queues", "gpu", "--concurrency", "1"]
    assert {"name": "GENAUDIT_DEVICE", "value": "cuda"} in gpu["env"]
    gpu_pod = find_object(objects, "Deployment", "audit-genaudit-worker-gpu")["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu_pod["tolerations"]
    cpu = container(objects, "audit-genaudit-worker-cpu")
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    assert cpu["args"][:3] == ["worker", "--queues", "cpu"]
    for worker in (gpu, cpu):
        assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}

    gateway = container(objects, "audit-genaudit-gateway")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert gateway[probe]["grpc"] == {"port": 50051}
    assert {p["name"]: p["containerPort"] for p in gateway["ports"]} == {"grpc": 50051, "metrics": 9100}
    service = find_object(objects, "Service", "audit-genaudit-gateway")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"grpc": 50051, "metrics": 9100}

    beat = find_object(objects, "Deployment", "audit-genaudit-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert container(objects, "audit-genaudit-beat")["args"] == ["beat"]

    # Settings reach every process as GENAUDIT_* variables the Settings class knows.
    config = find_object(objects, "ConfigMap", "audit-genaudit")["data"]
    assert config["GENAUDIT_S3_ENDPOINT"] == "s3.example:443"
    assert {k for k in config if k.startswith("GENAUDIT_")} <= settings_env_names()
    for deployment in ("gateway", "worker-gpu", "worker-cpu", "beat"):
        env = {e["name"] for e in container(objects, f"audit-genaudit-{deployment}")["env"]}
        assert {"GENAUDIT_REDIS_URL", "GENAUDIT_S3_ACCESS_KEY", "GENAUDIT_S3_SECRET_KEY"} <= env

    # The API-key Secret holds hashes only: the plaintext key is hashed at render time.
    secrets = [o for o in objects if o["kind"] == "Secret"]
    keys_secret = find_object(objects, "Secret", "audit-genaudit-api-keys")
    keys_file = json.loads(base64.b64decode(keys_secret["data"]["api-keys.json"]))
    assert keys_file == {"tenants": {
        "tenant-a": [hashed, hashlib.sha256(plaintext.encode()).hexdigest()], "tenant-b": [hashed],
    }}
    for secret in secrets:
        for value in secret.get("data", {}).values():
            assert plaintext not in base64.b64decode(value).decode()
        assert plaintext not in json.dumps(secret)
    s3 = find_object(objects, "Secret", "audit-genaudit-s3")["data"]
    assert base64.b64decode(s3["secret-key"]).decode() == "s3-secret-value"


def test_chart_detector_is_the_gateways_screen_backend() -> None:
    objects = render_chart()
    config = find_object(objects, "ConfigMap", "audit-genaudit")["data"]
    backend = config["GENAUDIT_SCREEN_BACKEND"]
    assert backend.startswith("dns:///")  # every detector pod, balanced by the gateway (headless Service)
    host, port = backend.removeprefix("dns:///").rsplit(":", 1)
    assert config["GENAUDIT_SCREEN_MODEL"] == "default"

    service = find_object(objects, "Service", host)
    assert service["spec"]["clusterIP"] == "None"
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(service_ports) == {"grpc", "metrics"}
    assert (service_ports["grpc"]["port"], service_ports["grpc"]["targetPort"]) == (int(port), "grpc")
    assert service_ports["grpc"]["appProtocol"] == "grpc"
    assert service_ports["metrics"]["targetPort"] == "metrics"
    deployment = find_object(objects, "Deployment", "audit-genaudit-detector")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    # The gateway pods must not match the detector Service, nor the detector pods the gateway's.
    gateway_pod = find_object(objects, "Deployment", "audit-genaudit-gateway")["spec"]["template"]
    assert not service["spec"]["selector"].items() <= gateway_pod["metadata"]["labels"].items()
    gateway_service = find_object(objects, "Service", "audit-genaudit-gateway")
    assert not gateway_service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()

    detector = container(objects, "audit-genaudit-detector")
    assert detector["args"] == ["detector-serve", "--port", port]
    assert detector["image"] == container(objects, "audit-genaudit-worker-cpu")["image"]
    metrics_port = int(config["GENAUDIT_DETECTOR_METRICS_PORT"])
    assert {p["name"]: p["containerPort"] for p in detector["ports"]} == {"grpc": int(port), "metrics": metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert detector[probe]["grpc"] == {"port": int(port), "service": "genaudit.v1.DetectorService"}
    assert detector["envFrom"] == [{"configMapRef": {"name": "audit-genaudit"}}]
    assert {"name": "GENAUDIT_DEVICE", "value": "cpu"} in detector["env"]
    assert not [e for e in detector["env"] if "valueFrom" in e]  # no Redis or S3 credentials
    assert "nvidia.com/gpu" not in detector["resources"].get("limits", {})

    on_gpu = render_chart({"detector": {"device": "cuda", "gpu": {"count": 1}, "model": "/w/d.json"}})
    gpu_detector = container(on_gpu, "audit-genaudit-detector")
    assert gpu_detector["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "GENAUDIT_DEVICE", "value": "cuda"} in gpu_detector["env"]
    assert find_object(on_gpu, "Deployment", "audit-genaudit-detector")["spec"]["strategy"]["type"] == "Recreate"
    assert find_object(on_gpu, "ConfigMap", "audit-genaudit")["data"]["GENAUDIT_SCREEN_MODEL"] == "/w/d.json"

    disabled = render_chart({"detector": {"enabled": False}})
    assert not [o for o in disabled if o["metadata"]["name"] == "audit-genaudit-detector"]
    assert "GENAUDIT_SCREEN_BACKEND" not in find_object(disabled, "ConfigMap", "audit-genaudit")["data"]


def test_bundled_redis_and_minio_are_wired_by_their_bitnami_names() -> None:
    objects = render_chart()
    env = {e["name"]: e for e in container(objects, "audit-genaudit-worker-gpu")["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "audit-redis", "key": "redis-password"}
    assert env["GENAUDIT_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@audit-redis-master:6379/0"
    assert env["GENAUDIT_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "audit-minio", "key": "root-password"}
    assert find_object(objects, "ConfigMap", "audit-genaudit")["data"]["GENAUDIT_S3_ENDPOINT"] == "audit-minio:9000"
    names = [e["name"] for e in container(objects, "audit-genaudit-worker-gpu")["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("GENAUDIT_REDIS_URL")  # $(VAR) needs it defined first


def test_monitoring_objects() -> None:
    objects = render_chart(merged(EXTERNAL_SERVICES, ALL_FEATURES))
    monitor = find_object(objects, "ServiceMonitor", "audit-genaudit")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert spec["namespaceSelector"] == {"matchNames": ["genaudit"]}
    # The monitor selects exactly the gateway, worker and detector Services, each with a port named metrics,
    # and their job labels are the job names the alert rules use.
    selected = [o for o in objects if o["kind"] == "Service"
                and spec["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in selected} == {
        "audit-genaudit-gateway", "audit-genaudit-worker-gpu", "audit-genaudit-worker-cpu", "audit-genaudit-detector"}
    assert {s["metadata"]["labels"][spec["jobLabel"]] for s in selected} == {
        "genaudit-gateway", "genaudit-worker", "genaudit-detector"}
    for svc in selected:
        assert "metrics" in {p["name"] for p in svc["spec"]["ports"]}

    rule = find_object(objects, "PrometheusRule", "audit-genaudit")
    assert rule["spec"]["groups"] == yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]

    dashboards = find_object(objects, "ConfigMap", "audit-genaudit-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboards["data"]["genaudit.json"]) == json.loads(
        (GRAFANA_DIR / "dashboards" / "genaudit.json").read_text())

    plain = {o["kind"] for o in render_chart()}
    assert not plain & CRD_KINDS
    assert "audit-genaudit-dashboards" not in {o["metadata"]["name"] for o in render_chart()}


@pytest.mark.parametrize("bad_values", [
    {"workers": {"gpu": {"replicas": "two"}}},
    {"settings": {"no_such_setting": 1}},
    {"settings": {"batch_size": "large"}},
    {"apiKeys": {"hashed": {"demo": ["not-a-sha256"]}}},
    {"workers": {"cpu": {"queues": ["gpu", "video"]}}},
    {"detector": {"grpcPort": 70000}},
    {"detector": {"model": ""}},
    {"detector": {"device": "tpu"}},
])
def test_values_schema_rejects_bad_values(bad_values: dict[str, Any]) -> None:
    with helm_python.Chart.load(CHART_DIR) as chart, pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(chart.merge_values(bad_values))


@pytest.mark.parametrize(("chart_file", "source"), [
    ("alerts.yml", PROMETHEUS_DIR / "alerts.yml"),
    ("grafana-dashboard.json", GRAFANA_DIR / "dashboards" / "genaudit.json"),
])
def test_chart_files_are_copies_of_the_deploy_files(chart_file: str, source: Path) -> None:
    # Copies, not links: Helm packages no link that leaves the chart, and links do not survive every checkout.
    copy_in_chart = CHART_DIR / "files" / chart_file
    assert copy_in_chart.read_bytes() == source.read_bytes(), f"cp {source} {copy_in_chart}"


def test_external_services_need_their_endpoints() -> None:
    values = merged(EXTERNAL_SERVICES)
    values["externalS3"]["endpoint"] = ""
    with pytest.raises(helm_python.HelmRenderError, match=r"externalS3\.endpoint"):
        render_chart(values)


def test_every_setting_is_exposed_or_set_by_the_chart() -> None:
    """Settings drift: each Settings field is a `settings:` entry in the values schema, or the chart sets
    it itself, or it does not apply to a distributed deployment."""
    not_applicable = {"broker_url", "api_keys", "store_dir"}  # broker = redis_url; keys come from a file; embedded only
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    exposed = set(schema["properties"]["settings"]["properties"])
    with helm_python.Chart.load(CHART_DIR) as chart:
        unset_defaults = {name: None for name in chart.values["settings"]}  # null removes a default
    objects = render_chart(merged(EXTERNAL_SERVICES, {"s3": {"publicEndpoint": "s3.example:443"},
                                                      "settings": unset_defaults}))
    set_by_chart = set(find_object(objects, "ConfigMap", "audit-genaudit")["data"])
    set_by_chart |= {e["name"] for e in container(objects, "audit-genaudit-worker-gpu")["env"]}
    for f in fields(Settings):
        env = f"GENAUDIT_{f.name.upper()}"
        homes = [f.name in exposed, env in set_by_chart, f.name in not_applicable]
        assert sum(homes) == 1, f"setting {f.name}: exposed/set-by-chart/not-applicable = {homes}"
    assert exposed <= {f.name for f in fields(Settings)}
