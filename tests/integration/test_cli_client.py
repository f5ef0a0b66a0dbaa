"""The client commands of the CLI (typer's CliRunner) against an in-process gateway over a real channel.

Two gateways: the embedded one (local-folder store: uploads fall back to the UploadImages stream,
results come through FetchArtifact) and one on a real S3 (SeaweedFS: presigned PUT and GET URLs).
Records live in memory and jobs run on the in-process worker in both.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from genaudit.cli import app
from genaudit.cli.job_specs import build_spec, job_type_names
from genaudit.gateway.auth import hash_api_key
from genaudit.gateway.context import GatewayContext, build_context
from genaudit.gateway.server import GatewayServer, build_server
from genaudit.jobs.datasets import commit_dataset
from genaudit.jobs.keys import dataset_image_key
from genaudit.settings import Settings
from tests.fixtures.redis import free_port
from tests.integration.test_gateway_server import png as random_png
from tests.unit.test_gateway_screening import HighFrequencyTestScreener

pytestmark = pytest.mark.integration

KEY_A, KEY_B = "cli-key-of-acme", "cli-key-of-beta"
MAX_IMAGE = 1024 * 1024


def png(seed: int, size: int = 32) -> bytes:
    return random_png(seed, size)


@dataclass
class CliGateway:
    server: GatewayServer

    @property
    def ctx(self) -> GatewayContext:
        return self.server.context

    def run(self, *args: str, key: str | None = KEY_A) -> Result:
        """``genaudit ARGS --target ... --api-key KEY`` in this process; stdout and stderr kept apart."""
        options = ["--target", f"127.0.0.1:{self.server.port}", *(["--api-key", key] if key is not None else [])]
        return CliRunner().invoke(app, [*args, *options], env={"GENAUDIT_API_KEY": None, "GENAUDIT_TARGET": None,
                                                             "COLUMNS": "200"})

    def ok(self, *args: str, key: str = KEY_A) -> Result:
        result = self.run(*args, key=key)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--json").stdout)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        store_dir=tmp_path / "store", device="cpu", grpc_host="127.0.0.1", grpc_port=0,
        api_keys=f"acme:{hash_api_key(KEY_A)},beta:{hash_api_key(KEY_B)}",
        max_message_bytes=2 * 1024 * 1024, max_image_bytes=MAX_IMAGE, shutdown_grace_s=1.0,
    )


def _on_s3(settings: Settings, s3: Settings) -> Settings:
    """``settings`` with the object store of the S3 fixture."""
    return dataclasses.replace(settings, **{f: getattr(s3, f) for f in (
        "s3_endpoint", "s3_access_key", "s3_secret_key", "s3_region", "s3_bucket", "s3_secure")})


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[Settings], CliGateway]]:
    started: list[GatewayServer] = []

    def start(settings: Settings) -> CliGateway:
        server = build_server(settings, build_context(settings, screener=HighFrequencyTestScreener()))
        server.start()
        started.append(server)
        return CliGateway(server)

    yield start
    for server in started:
        server.stop(0)


@pytest.fixture
def local_gateway(start_gateway: Callable[[Settings], CliGateway], tmp_path: Path) -> CliGateway:
    return start_gateway(_settings(tmp_path))


@pytest.fixture(params=["local", "s3"])
def gateway(request: pytest.FixtureRequest, start_gateway: Callable[[Settings], CliGateway],
            tmp_path: Path) -> CliGateway:
    settings = _settings(tmp_path)
    if request.param == "s3":
        settings = _on_s3(settings, request.getfixturevalue("s3_settings"))
    return start_gateway(settings)


def photo_folder(root: Path) -> dict[str, bytes]:
    """Three valid images (one in a subfolder), one corrupt PNG and a text file that is not picked up;
    returns the expected object name -> bytes of the valid ones."""
    (root / "sub").mkdir(parents=True)
    valid = {"a.png": png(1), "b.png": png(2, size=300), "sub__c.png": png(3)}
    (root / "a.png").write_bytes(valid["a.png"])
    (root / "b.png").write_bytes(valid["b.png"])  # ~270 KB: several chunks on the stream
    (root / "sub" / "c.png").write_bytes(valid["sub__c.png"])
    (root / "corrupt.png").write_bytes(png(4)[:40])
    (root / "notes.txt").write_text("not an image")
    return valid


# --- the whole flow, on both stores -------------------------------------------------------------------------


def test_upload_submit_watch_fetch(gateway: CliGateway, tmp_path: Path) -> None:
    presigned = gateway.ctx.settings.s3_endpoint != ""
    valid = photo_folder(tmp_path / "photos")

    upload = gateway.ok("datasets", "upload", str(tmp_path / "photos"), "--name", "photos", "--json")
    report = json.loads(upload.stdout)
    assert report["method"] == ("presigned" if presigned else "stream")
    assert ("through presigned URLs" if presigned else "streaming through UploadImages") in upload.stderr
    assert sorted(a["filename"] for a in report["accepted"]) == sorted(valid)
    assert [(r["filename"], r["reason"]) for r in report["rejected"]] == [("corrupt.png", "invalid image")]
    assert "corrupt.png" in upload.stderr and "1 rejected" in upload.stderr
    dataset = report["dataset"]
    assert (int(dataset["image_count"]), int(dataset["total_bytes"])) == (3, sum(map(len, valid.values())))
    for name, data in valid.items():  # stored byte for byte; the corrupt file never reached the store
        assert gateway.ctx.store.get_bytes(dataset_image_key("acme", dataset["id"], name)) == data
    assert not gateway.ctx.store.exists(dataset_image_key("acme", dataset["id"], "corrupt.png"))

    assert [d["id"] for d in gateway.json("datasets", "list")["datasets"]] == [dataset["id"]]
    assert gateway.json("datasets", "get", dataset["id"])["name"] == "photos"
    assert dataset["id"] in gateway.ok("datasets", "list").stdout  # the table shows whole ids
    assert dataset["id"] not in gateway.ok("datasets", "list", key=KEY_B).stdout  # another tenant's

    submit = gateway.ok("jobs", "submit", "feature_extraction", "--set", f"dataset_id={dataset['id']}",
                        "--set", "batch_size=2", "--idempotency-key", "cli-run-1", "--watch")
    job_id = submit.stdout.strip().splitlines()[0]
    assert job_id.startswith("job_") and "SUCCEEDED" in submit.stderr
    again = gateway.ok("jobs", "submit", "feature_extraction", "--spec",
                       json.dumps({"dataset_id": dataset["id"], "batch_size": 2}), "--idempotency-key", "cli-run-1")
    assert again.stdout.strip() == job_id and "used before" in again.stderr
    job = gateway.json("jobs", "get", job_id)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["spec"]["feature_extraction"]["batch_size"] == 2
    assert gateway.ok("jobs", "watch", job_id).exit_code == 0  # a finished job: one message, exit 0

    artifacts = {a["name"]: a for a in gateway.json("results", "list", job_id)["artifacts"]}
    assert {"features", "index", "manifest"} <= set(artifacts)
    assert bool(artifacts["features"].get("download_url")) == presigned
    out = tmp_path / "results"
    fetched = gateway.json("results", "fetch", job_id, "features", "index", "--out", str(out))
    assert set(fetched) == {"features", "index"}
    assert {f["via"] for f in fetched.values()} == {"presigned" if presigned else "stream"}
    for name, entry in fetched.items():
        path = Path(entry["path"])
        assert path.parent == out and path.read_bytes() == gateway.ctx.store.get_bytes(artifacts[name]["key"])
    assert sorted(p.name for p in out.iterdir()) == ["features.npy", "index.json"]  # no temp files left
    features = np.load(out / "features.npy", allow_pickle=False)
    assert features.shape == (3, 1280) and features.dtype == np.float32

    everything = gateway.ok("results", "fetch", job_id, "--out", str(tmp_path / "all"))
    assert len(everything.stdout.split()) == len(artifacts)
    missing = gateway.run("results", "fetch", job_id, "nope", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "no artifact 'nope'" in missing.stderr


def test_an_unreachable_object_store_falls_back_to_the_gateway(
        start_gateway: Callable[[Settings], CliGateway], s3_settings: Settings, tmp_path: Path) -> None:
    """The gateway signs its URLs for a public endpoint nobody listens on (a real refused connection): the
    upload streams through UploadImages instead and the download through FetchArtifact, with the same bytes."""
    closed = f"127.0.0.1:{free_port()}"
    settings = dataclasses.replace(_on_s3(_settings(tmp_path), s3_settings), s3_public_endpoint=closed)
    gateway = start_gateway(settings)
    valid = photo_folder(tmp_path / "photos")
    upload = gateway.ok("datasets", "upload", str(tmp_path / "photos"), "--name", "photos", "--json")
    report = json.loads(upload.stdout)
    assert report["method"] == "stream"
    assert "unreachable" in upload.stderr and closed in gateway.ctx.store.presigned_put_url("k", 60)
    assert sorted(a["filename"] for a in report["accepted"]) == sorted(valid)
    assert [(r["filename"], r["reason"]) for r in report["rejected"]] == [("corrupt.png", "invalid image")]
    dataset = report["dataset"]
    assert int(dataset["image_count"]) == 3
    for name, data in valid.items():
        assert gateway.ctx.store.get_bytes(dataset_image_key("acme", dataset["id"], name)) == data

    job_id = gateway.ok("jobs", "submit", "feature_extraction", "--set", f"dataset_id={dataset['id']}",
                        "--watch").stdout.strip().splitlines()[0]
    [features] = [a for a in gateway.json("results", "list", job_id)["artifacts"] if a["name"] == "features"]
    assert closed in features["download_url"]
    fetched = gateway.json("results", "fetch", job_id, "features", "--out", str(tmp_path / "out"))
    assert fetched["features"]["via"] == "stream"
    assert Path(fetched["features"]["path"]).read_bytes() == gateway.ctx.store.get_bytes(features["key"])


# --- errors -------------------------------------------------------------------------------------------------


def test_wrong_or_missing_api_key_is_one_clear_line(local_gateway: CliGateway) -> None:
    for args in (("datasets", "list"), ("jobs", "list"), ("jobs", "watch", "job_x"), ("results", "list", "job_x")):
        result = local_gateway.run(*args, key="wrong-key")
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == "error UNAUTHENTICATED: invalid API key"
        assert "Traceback" not in result.output and result.stdout == ""
    missing = local_gateway.run("datasets", "list", key=None)
    assert missing.exit_code == 2 and "no API key" in missing.output


def test_unknown_ids_are_not_found(local_gateway: CliGateway, tmp_path: Path) -> None:
    for args in (("jobs", "get", "job_nope"), ("jobs", "watch", "job_nope"), ("jobs", "cancel", "job_nope"),
                 ("results", "fetch", "job_nope", "--out", str(tmp_path)), ("datasets", "get", "ds_nope")):
        result = local_gateway.run(*args)
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert line.startswith("error NOT_FOUND: ") and "nope" in line and "\n" not in line, line
    unreachable = CliRunner().invoke(app, ["jobs", "get", "job_x", "--target", "127.0.0.1:1", "--api-key", "k"])
    assert unreachable.exit_code == 2 and unreachable.stderr.startswith("error UNAVAILABLE: ")


def test_a_failed_job_exits_non_zero_with_its_error(local_gateway: CliGateway) -> None:
    ctx = local_gateway.ctx
    dataset = ctx.records.create_dataset("acme", "broken")
    ctx.store.put_bytes(dataset_image_key("acme", dataset.id, "bad.png"), b"\x89PNG\r\n\x1a\n broken")
    dataset_id = dataset.id
    commit_dataset(ctx.records, ctx.store, "acme", dataset_id)  # as after a presigned upload of junk
    result = local_gateway.run("jobs", "submit", "feature_extraction", "--set", f"dataset_id={dataset_id}", "--watch")
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stderr and "bad.png" in result.stderr
    failed = local_gateway.json("jobs", "list", "--state", "failed", "--type", "feature_extraction")["jobs"]
    assert [j["state"] for j in failed] == ["JOB_STATE_FAILED"] and failed[0]["error"]


# --- jobs list paging, cancel, schedules, screen, specs -----------------------------------------------------


def test_paging_cancel_and_schedules(local_gateway: CliGateway, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "x.png").write_bytes(png(9))
    dataset_id = local_gateway.ok("datasets", "upload", str(tmp_path / "one")).stdout.strip()
    assert dataset_id.startswith("ds_")
    ids = [local_gateway.ok("jobs", "submit", "feature_extraction", "--set", f"dataset_id={dataset_id}",
                            "--watch").stdout.split()[0] for _ in range(2)]
    page = local_gateway.json("jobs", "list", "--page-size", "1")
    assert [j["id"] for j in page["jobs"]] == [ids[1]] and page["next_page_token"]
    second = local_gateway.json("jobs", "list", "--page-size", "1", "--page-token", page["next_page_token"])
    assert [j["id"] for j in second["jobs"]] == [ids[0]]
    every = local_gateway.json("jobs", "list", "--page-size", "1", "--all")
    assert [j["id"] for j in every["jobs"]] == ids[::-1] and every["next_page_token"] == ""
    table = local_gateway.ok("jobs", "list", "--page-size", "1")
    assert ids[1] in table.stdout and "--page-token" in table.stderr
    bad = local_gateway.run("jobs", "list", "--state", "sleeping")
    assert bad.exit_code == 2 and "unknown state" in bad.output
    assert local_gateway.json("jobs", "cancel", ids[0])["state"] == "JOB_STATE_SUCCEEDED"  # finished: unchanged

    schedule_id = local_gateway.ok("schedules", "create", "0 3 * * *", "feature_extraction",
                                   "--spec", json.dumps({"dataset_id": dataset_id}), "--name", "nightly").stdout.strip()
    listed = local_gateway.json("schedules", "list")["schedules"]
    assert [(s["id"], s["name"], s["cron"]) for s in listed] == [(schedule_id, "nightly", "0 3 * * *")]
    assert local_gateway.run("schedules", "list", key=KEY_B).stdout.count(schedule_id) == 0
    bad_cron = local_gateway.run("schedules", "create", "61 * * * *", "feature_extraction", "--set",
                                 f"dataset_id={dataset_id}")
    assert bad_cron.exit_code == 2 and bad_cron.stderr.startswith("error INVALID_ARGUMENT")
    local_gateway.ok("schedules", "delete", schedule_id)
    assert local_gateway.json("schedules", "list") == {}


def test_screen_prints_the_verdict_of_each_image(local_gateway: CliGateway, tmp_path: Path) -> None:
    from genaudit.images import ImageLimits, decode_image

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"img{i}.png")
        paths[-1].write_bytes(png(20 + i))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    result = local_gateway.run("screen", *map(str, paths), str(junk), "--json")
    assert result.exit_code == 2 and "junk.png" in result.stderr and "INVALID_ARGUMENT" in result.stderr
    rows = json.loads(result.stdout)
    reference = HighFrequencyTestScreener()
    limits = ImageLimits.from_settings(local_gateway.ctx.settings)
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    for row, path in zip(rows, paths, strict=True):
        expected = reference.score(decode_image(path.read_bytes(), limits)).probability_generated
        assert row["probability_generated"] == pytest.approx(expected)
        assert row["model_version"] == "test-hf-energy-1" and row["threshold"] == 0.5
        assert row["label"] == ("SCREEN_LABEL_GENERATED" if expected >= 0.5 else "SCREEN_LABEL_REAL")
    table = local_gateway.ok("screen", str(paths[0])).stdout
    assert "test-hf-energy-1" in table and ("GENERATED" in table or "REAL" in table)


def test_job_specs_are_built_from_the_descriptors() -> None:
    assert job_type_names()[:2] == ["feature_extraction", "metrics"]
    spec = build_spec("metrics", '{"real_dataset_id": "ds_r", "k": 2}',
                      assignments=["generated_dataset_ids=ds_a,ds_b", "generated_dataset_ids=ds_c", "prdc_k=4"])
    assert spec.WhichOneof("spec") == "metrics"
    assert spec.metrics.real_dataset_id == "ds_r"
    assert list(spec.metrics.generated_dataset_ids) == ["ds_a", "ds_b", "ds_c"]
    assert (spec.metrics.k, spec.metrics.prdc_k) == (2, 4)
    listed = build_spec("metrics", assignments=['generated_dataset_ids=["x"]', "k=5"])
    assert list(listed.metrics.generated_dataset_ids) == ["x"] and listed.metrics.k == 5
    assert build_spec("feature-extraction").WhichOneof("spec") == "feature_extraction"  # all defaults still typed
    import typer

    for args, message in (
        (("metrics", None, None, ["k=three"]), "k must be an integer"),
        (("metrics", None, None, ["nope=1"]), "has no field 'nope'"),
        (("metrics", None, None, ["k"]), "key=value"),
        (("metrics", "[1]", None, None), "JSON object"),
        (("metrics", "{", None, None), "not valid JSON"),
        (("metrics", '{"k": "x"}', None, None), "invalid metrics spec"),
        (("detection", None, None, None), "known: feature_extraction, metrics"),
    ):
        with pytest.raises(typer.BadParameter, match=message):
            build_spec(*args)


def test_the_client_path_does_not_import_torch() -> None:
    code = ("import sys, genaudit.cli, genaudit.cli.client_commands, genaudit.cli.uploads, genaudit.cli.downloads, "
            "genaudit.cli.views, genaudit.cli.job_specs; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'celery')]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
