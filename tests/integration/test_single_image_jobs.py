"""The train_single_image and single_image_audit jobs end to end in embedded mode (in-process record store, local
object store, the workers' runner) on a 32 px photo crop, with a few iterations. What the jobs store is compared
with the library called directly (the stored weights reproduce the stored figures; the audit's numbers are those
of ``audit_single_image`` on the same generator and seed, recomputed here); a trained SinGAN feeds unit_stats;
bad inputs and cancellation are checked."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.data.offline_photos import load_photos
from genaudit.errors import InvalidArgument
from genaudit.features import get_extractor
from genaudit.generators import load_generator, to_uint8
from genaudit.jobs import keys
from genaudit.jobs.models import Job, JobState, JobType
from genaudit.jobs.specs import validate_spec
from genaudit.settings import Settings
from genaudit.singleimage.audit import audit_single_image, reconstruct
from genaudit.singleimage.local_features import get_local_extractor
from genaudit.singleimage.training_image import training_tensor
from genaudit.storage import LocalStore
from genaudit.units.monitored import default_monitored_layers
from genaudit.worker.context import WorkerContext
from genaudit.worker.runner import execute_job
from tests.fixtures.images import png_bytes
from tests.fixtures.records import CancellingRecords

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

TENANT = "lab"
SIDE = 32
ITERATIONS = {"singan": 30, "ingan": 40}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> WorkerContext:
    store_dir = tmp_path_factory.mktemp("single-image-store")
    settings = Settings(store_dir=store_dir, device="cpu", progress_interval_s=0.0)
    return WorkerContext(settings, CancellingRecords(TENANT), LocalStore(store_dir))


def _photo(name: str, box: tuple[int, int, int, int]) -> Image.Image:
    photos = dict(load_photos())
    return photos[name].crop(box)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    # a 64 x 48 crop with structure at several scales; the jobs shrink it to a 32 px longest side
    return _photo("chelsea", (100, 60, 164, 108))


def _upload(ctx: WorkerContext, name: str, images: dict[str, Image.Image]) -> str:
    dataset = ctx.records.create_dataset(TENANT, name)
    for filename, image in images.items():
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, dataset.id, filename), png_bytes(image))
    return dataset.id


def _submit(ctx: WorkerContext, job_type: JobType, spec: dict) -> Job:
    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    execute_job(job.id, ctx)
    return ctx.records.load_job(job.id)


def _run(ctx: WorkerContext, job_type: JobType, spec: dict) -> Job:
    done = _submit(ctx, job_type, spec)
    assert done.state == JobState.SUCCEEDED, done.error
    return done


def _json(ctx: WorkerContext, key: str) -> dict:
    return json.loads(ctx.store.get_bytes(key))


def _result_objects(ctx: WorkerContext) -> set[str]:
    return {o.key for o in ctx.store.list(keys.tenant_prefix(TENANT) + "results/")}


@pytest.fixture(scope="module")
def image_dataset(ctx: WorkerContext, photo: Image.Image) -> str:
    return _upload(ctx, "chelsea crop", {"chelsea.png": photo})


@pytest.fixture(scope="module", params=["singan", "ingan"])
def trained(request, ctx: WorkerContext, image_dataset: str) -> tuple[str, Job, dict]:
    arch = request.param
    job = _run(ctx, JobType.TRAIN_SINGLE_IMAGE, {"dataset_id": image_dataset, "arch": arch, "max_side": SIDE,
                                                 "iterations": ITERATIONS[arch], "seed": 5})
    return arch, job, _json(ctx, job.result_keys["model_card"])


def test_training_job_stores_weights_that_reproduce_its_figures(ctx: WorkerContext, trained, photo) -> None:
    arch, job, card = trained
    assert {"model", "model_card", "training_image", "samples", "reconstruction", "summary", "report",
            "manifest"} <= set(job.result_keys)
    weights = ctx.store.get_bytes(job.result_keys["model"])
    assert card["sha256"] == hashlib.sha256(weights).hexdigest()
    model = load_generator(arch, weights, None, "cpu", expected_sha256=card["sha256"])  # config from the metadata
    expected = training_tensor(photo, SIDE)
    assert (model.height, model.width) == tuple(expected.shape[2:]) == (card["image"]["height"],
                                                                         card["image"]["width"]) == (24, 32)
    assert card["config"]["height"] == 24 and card["scale"] == "cpu" and card["image"]["name"] == "chelsea.png"
    stored_image = np.asarray(Image.open(io.BytesIO(ctx.store.get_bytes(job.result_keys["training_image"]))))
    np.testing.assert_array_equal(stored_image, to_uint8(expected)[0])
    # reconstruction.png = training image | 2 px gutter | the reconstruction of the stored weights
    stored = np.asarray(Image.open(io.BytesIO(ctx.store.get_bytes(job.result_keys["reconstruction"]))))
    np.testing.assert_array_equal(stored[:, :32], to_uint8(expected)[0])
    np.testing.assert_array_equal(stored[:, 34:], to_uint8(reconstruct(model))[0])
    left = torch.from_numpy(stored[:, :32].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    rmse = float((reconstruct(model) - left).pow(2).mean().sqrt())
    assert card["reconstruction_rmse"] == pytest.approx(rmse, abs=1e-6)


def test_audit_job_stores_the_library_audit(ctx: WorkerContext, trained, image_dataset: str, photo) -> None:
    arch, job, card = trained
    n, seed = 6, 11
    audit_job = _run(ctx, JobType.SINGLE_IMAGE_AUDIT, {
        "generator": job.result_keys["model"], "arch": arch, "sha256": card["sha256"], "dataset_id": image_dataset,
        "n_samples": n, "seed": seed, "batch_size": 4})
    summary = _json(ctx, audit_job.result_keys["summary"])
    model = load_generator(arch, ctx.store.get_bytes(job.result_keys["model"]), None, "cpu")
    expected = audit_single_image(model, training_tensor(photo, SIDE),
                                  local_extractor=get_local_extractor(device="cpu"),
                                  global_extractor=get_extractor("efficientnet-lite0", "cpu"), n_samples=n, seed=seed,
                                  batch_size=4)
    audit = summary["audit"]
    assert audit["n_samples"] == n and summary["image"]["name"] == "chelsea.png"
    np.testing.assert_allclose(audit["sifid"]["mean"], expected.sifid.mean(), rtol=1e-4)
    assert audit["reconstruction"]["rmse"] == pytest.approx(expected.reconstruction_rmse, abs=1e-6)
    assert audit["copies"]["samples_flagged"] == sum(c.is_copy for c in expected.copies)

    rows = list(csv.DictReader(io.StringIO(ctx.store.get_bytes(audit_job.result_keys["per_sample"]).decode())))
    assert [r["kind"] for r in rows] == ["sample"] * n + ["reconstruction"]
    sifid = np.array([float(r["sifid"]) for r in rows[:n]])
    assert audit["sifid"]["median"] == pytest.approx(float(np.median(sifid)), rel=1e-9)
    assert audit["sifid"]["max"] == pytest.approx(float(sifid.max()), rel=1e-9)
    flagged = [r["is_copy"] == "1" for r in rows[:n]]
    assert audit["copies"]["samples_flagged"] == sum(flagged)
    largest = np.array([float(r["largest_copied_region_fraction"]) for r in rows[:n]])
    assert audit["copies"]["largest_copied_region_fraction"]["mean"] == pytest.approx(float(largest.mean()))
    if arch == "singan":  # equal-size samples: pixel diversity is defined
        assert audit["diversity"]["pixel"] == pytest.approx(expected.pixel_diversity, rel=1e-5)
        assert {(int(r["height"]), int(r["width"])) for r in rows} == {(24, 32)}
    else:  # retargetings to several sizes
        assert audit["diversity"]["pixel"] is None
        assert len({(int(r["height"]), int(r["width"])) for r in rows[:n]}) > 1
    for name in ("samples", "sifid_hist", "copy_maps"):
        assert Image.open(io.BytesIO(ctx.store.get_bytes(audit_job.result_keys[name]))).format == "PNG"
    assert b"SIFID" in ctx.store.get_bytes(audit_job.result_keys["report"])


def test_unit_stats_dissects_a_trained_singan(ctx: WorkerContext, trained) -> None:
    arch, job, card = trained
    if arch != "singan":
        spec = {"generator": job.result_keys["model"], "arch": arch, "sha256": card["sha256"]}
        with pytest.raises(InvalidArgument, match="arch must be one of"):
            validate_spec(JobType.UNIT_STATS, spec)
        return
    stats = _run(ctx, JobType.UNIT_STATS, {"generator": job.result_keys["model"], "arch": "singan",
                                           "sha256": card["sha256"], "n_samples": 20, "batch_size": 10,
                                           "top_images": 4})
    summary = _json(ctx, stats.result_keys["summary"])
    model = load_generator("singan", ctx.store.get_bytes(job.result_keys["model"]), None, "cpu")
    assert summary["generator"]["arch"] == "singan"
    assert list(summary["layers"]) == default_monitored_layers(model)
    for record in summary["layers"].values():
        # every neuron is dead, rare (0 < freq <= 0.3), always active or in between: the counts cannot exceed it
        assert record["n_neurons"] == int(np.prod(record["neuron_shape"]))
        assert record["n_dead"] + record["n_rare"] + record["n_always"] <= record["n_neurons"]


def test_audit_refuses_an_image_the_generator_did_not_learn(ctx: WorkerContext, trained) -> None:
    arch, job, card = trained
    square = _upload(ctx, "square", {"square.png": _photo("chelsea", (0, 0, 64, 64))})
    done = _submit(ctx, JobType.SINGLE_IMAGE_AUDIT, {
        "generator": job.result_keys["model"], "arch": arch, "sha256": card["sha256"], "dataset_id": square,
        "n_samples": 2})
    assert done.state == JobState.FAILED and "not the image the generator was trained on" in done.error


def test_training_image_must_be_named_when_a_dataset_holds_several(ctx: WorkerContext, photo) -> None:
    two = _upload(ctx, "two", {"a.png": photo, "b.png": photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)})
    done = _submit(ctx, JobType.TRAIN_SINGLE_IMAGE, {"dataset_id": two, "iterations": 1})
    assert done.state == JobState.FAILED and "holds 2 images" in done.error and "'a.png'" in done.error
    done = _submit(ctx, JobType.TRAIN_SINGLE_IMAGE, {"dataset_id": two, "image": "c.png", "iterations": 1})
    assert done.state == JobState.FAILED and "no image 'c.png'" in done.error


def test_specs_refuse_what_the_jobs_cannot_do() -> None:
    with pytest.raises(InvalidArgument, match="arch"):
        validate_spec(JobType.TRAIN_SINGLE_IMAGE, {"dataset_id": "ds", "arch": "dcgan"})
    with pytest.raises(InvalidArgument, match="max_side"):
        validate_spec(JobType.TRAIN_SINGLE_IMAGE, {"dataset_id": "ds", "max_side": 4})
    with pytest.raises(InvalidArgument, match="patch_size"):
        validate_spec(JobType.SINGLE_IMAGE_AUDIT, {"generator": "shipped:dcgan-fashion", "dataset_id": "ds",
                                                   "patch_size": 8})
    with pytest.raises(InvalidArgument, match="arch must be one of"):
        validate_spec(JobType.SINGLE_IMAGE_AUDIT, {"generator": "tenants/lab/results/h/model.safetensors",
                                                   "arch": "pggan", "sha256": "0" * 64, "dataset_id": "ds"})
    with pytest.raises(InvalidArgument, match="local feature space"):
        validate_spec(JobType.SINGLE_IMAGE_AUDIT, {"generator": "shipped:dcgan-fashion", "dataset_id": "ds",
                                                   "local_feature_space": "vgg16-fc2"})


def test_training_cancelled_while_running_writes_nothing(ctx: WorkerContext, image_dataset: str) -> None:
    before = _result_objects(ctx)
    job, _ = ctx.records.create_job(TENANT, JobType.TRAIN_SINGLE_IMAGE, validate_spec(
        JobType.TRAIN_SINGLE_IMAGE, {"dataset_id": image_dataset, "max_side": SIDE, "iterations": 400, "seed": 1}))
    ctx.records.cancel_job_id = job.id
    execute_job(job.id, ctx)
    done = ctx.records.load_job(job.id)
    assert done.state == JobState.CANCELLED and 0 < done.progress < 1
    assert _result_objects(ctx) == before
