"""The spectrum, detect and train_detector jobs end to end in embedded mode (in-process record store, local
object store, the workers' runner) on small real-photo crops. Numbers are checked against independent
computations: numpy float64 spectra, numpy annulus statistics, the detector's own scoring of the same
images, and scikit-learn's metrics on the job's CSV."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from PIL import Image
from scipy.special import expit

from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.jobs import MemoryRecordStore, keys
from genaudit.jobs.models import Job, JobState, JobType
from genaudit.jobs.specs import validate_spec
from genaudit.settings import Settings
from genaudit.storage import LocalStore
from genaudit.worker.context import WorkerContext
from genaudit.worker.runner import execute_job
from tests.fixtures.images import png_bytes

pytestmark = pytest.mark.integration

TENANT = "lab"
SIZE = 64
BROKEN = b"\x89PNG\r\n\x1a\n broken"
LUMA = np.array([0.299, 0.587, 0.114])


class CancellingRecords(MemoryRecordStore):
    """Requests cancellation of a job as soon as it reports progress past zero (a deterministic race)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancel_job_id = ""

    def update_progress(self, job_id: str, progress: float, message: str = "") -> Job:
        job = super().update_progress(job_id, progress, message)
        if job_id == self.cancel_job_id and 0 < progress < 1:
            self.request_cancel(TENANT, job_id)
        return job


@functools.cache
def _photos() -> list[tuple[str, Image.Image]]:
    return load_photos()


def _crops(count: int, size: int, seed: int) -> list[tuple[str, Image.Image]]:
    return list(random_crops(_photos(), count, size, seed=seed))


def _upload(ctx: WorkerContext, name: str, images: list[tuple[str, Image.Image]],
            extra: dict[str, bytes] | None = None) -> str:
    dataset = ctx.records.create_dataset(TENANT, name)
    for image_name, image in images:
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, dataset.id, f"{image_name}.png"), png_bytes(image))
    for filename, data in (extra or {}).items():
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, dataset.id, filename), data)
    return dataset.id


def _run(ctx: WorkerContext, job_type: JobType, spec: dict) -> Job:
    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    execute_job(job.id, ctx)
    return ctx.records.load_job(job.id)


def _json(ctx: WorkerContext, key: str) -> dict:
    return json.loads(ctx.store.get_bytes(key))


def _npy(ctx: WorkerContext, key: str) -> np.ndarray:
    return np.load(io.BytesIO(ctx.store.get_bytes(key)), allow_pickle=False)


def _csv(ctx: WorkerContext, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(ctx.store.get_bytes(key).decode())))


def _result_objects(ctx: WorkerContext) -> set[str]:
    return {o.key for o in ctx.store.list(keys.tenant_prefix(TENANT) + "results/")}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> WorkerContext:
    store_dir = tmp_path_factory.mktemp("forensics-store")
    # every progress report is written, so the cancelling store sees the first one past zero (no throttling race)
    settings = Settings(store_dir=store_dir, device="cpu", batch_size=8, progress_interval_s=0.0)
    return WorkerContext(settings, CancellingRecords(), LocalStore(store_dir))


# --- spectrum ---------------------------------------------------------------------------------------------

def _nearest_x2(image: Image.Image) -> Image.Image:
    return image.resize((2 * image.width, 2 * image.height), Image.Resampling.NEAREST)


def _reference_spectra(ctx: WorkerContext, image_keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean windowed FFT spectrum (dB) and mean log-DCT spectrum of the luma of the centre crops, numpy/scipy
    float64, straight from the definitions in the job's summary."""
    hann = np.hanning(SIZE + 1)[:-1]  # periodic Hann
    window = np.outer(hann, hann)
    fft, dct = [], []
    for key in image_keys:
        image = np.asarray(Image.open(io.BytesIO(ctx.store.get_bytes(key))).convert("RGB"), dtype=np.float64) / 255
        top, left = (image.shape[0] - SIZE) // 2, (image.shape[1] - SIZE) // 2
        luma = image[top : top + SIZE, left : left + SIZE] @ LUMA
        spectrum = np.fft.fftshift(np.fft.fft2((luma - luma.mean()) * window))
        fft.append(20 * np.log10(np.abs(spectrum) + 1e-8))
        dct.append(np.log(np.abs(scipy.fft.dctn(luma, norm="ortho")) + 1e-6))
    return np.mean(fft, axis=0), np.mean(dct, axis=0)


def _annulus_reference(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max - median of a shifted spectrum over annuli of rounded distance to DC (a pixel loop)."""
    h, w = spectrum.shape
    rings: dict[int, list[float]] = {}
    for i in range(h):
        for j in range(w):
            rings.setdefault(round(((i - h // 2) ** 2 + (j - w // 2) ** 2) ** 0.5), []).append(spectrum[i, j])
    values = [np.array(rings[r]) for r in range(max(rings) + 1)]
    # torch's median of an even count is the lower middle value, not the average of both
    lower_median = [np.sort(v)[(len(v) - 1) // 2] for v in values]
    peak = [v.max() - m for v, m in zip(values, lower_median, strict=True)]
    return np.array([v.mean() for v in values]), np.array(peak)


@pytest.fixture(scope="module")
def spectrum_job(ctx: WorkerContext) -> tuple[Job, str, str]:
    real = [*_crops(20, SIZE, seed=1), ("wide", _crops(1, 96, seed=9)[0][1].crop((0, 0, 96, 80)))]
    real_id = _upload(ctx, "real photos", real, extra={"zz_small.png": png_bytes(_crops(1, 40, seed=4)[0][1]),
                                                       "zz_broken.png": BROKEN})
    upsampled_id = _upload(ctx, "nearest x2", [(n, _nearest_x2(im)) for n, im in _crops(20, SIZE // 2, seed=2)])
    job = _run(ctx, JobType.SPECTRUM, {"real_dataset_id": real_id, "generated_dataset_ids": [upsampled_id],
                                       "size": SIZE})
    assert job.state == JobState.SUCCEEDED, job.error
    return job, real_id, upsampled_id


def test_spectrum_job_means_match_numpy(ctx: WorkerContext, spectrum_job: tuple[Job, str, str]) -> None:
    job, real_id, upsampled_id = spectrum_job
    assert job.progress == 1.0
    assert set(job.result_keys) == {"summary", "per_image", "report", "mean_fft_db", "mean_log_dct", "profiles_db",
                                    "peak_profiles_db", "manifest"}
    summary = _json(ctx, job.result_keys["summary"])
    real, upsampled = summary["datasets"]
    assert [(d["dataset_id"], d["role"]) for d in summary["datasets"]] == [(real_id, "real"),
                                                                          (upsampled_id, "generated")]
    assert (real["n_listed"], real["n_used"], real["n_skipped"]) == (23, 21, 2)
    reasons = {s["key"].rsplit("/", 1)[1]: s["reason"] for s in real["skipped"]}
    assert reasons["zz_small.png"] == f"image 40x40 is smaller than the {SIZE}x{SIZE} centre crop"
    assert "invalid image" in reasons["zz_broken.png"]
    rows = _csv(ctx, job.result_keys["per_image"])
    assert len(rows) == 21 + 20 and set(rows[0]) >= {"dataset_id", "image_key", "hf_energy_ratio", "periodic_peak_db"}

    fft, dct = _npy(ctx, job.result_keys["mean_fft_db"]), _npy(ctx, job.result_keys["mean_log_dct"])
    profiles, peaks = _npy(ctx, job.result_keys["profiles_db"]), _npy(ctx, job.result_keys["peak_profiles_db"])
    assert fft.shape == dct.shape == (2, SIZE, SIZE) and profiles.shape == peaks.shape
    for index, record in enumerate((real, upsampled)):
        used = [r["image_key"] for r in rows if r["dataset_id"] == record["dataset_id"]]
        assert len(used) == record["n_used"] and all("zz_" not in k for k in used)
        expected_fft, expected_dct = _reference_spectra(ctx, used)
        np.testing.assert_allclose(fft[index], expected_fft, atol=1e-9)
        np.testing.assert_allclose(dct[index], expected_dct, atol=1e-9)
        expected_profile, expected_peaks = _annulus_reference(expected_fft)
        np.testing.assert_allclose(profiles[index], expected_profile, atol=1e-9)
        np.testing.assert_allclose(peaks[index], expected_peaks, atol=1e-9)
        # the evidence summary is the per-image table's aggregate
        hf = np.array([float(r["hf_energy_ratio"]) for r in rows if r["dataset_id"] == record["dataset_id"]])
        assert record["evidence"]["hf_energy_ratio"]["mean"] == pytest.approx(hf.mean(), rel=1e-12)


def test_nearest_x2_peak_lies_on_the_nyquist_annulus(ctx: WorkerContext, spectrum_job: tuple[Job, str, str]) -> None:
    """Nearest x2 = zero insertion (replicas of the base band N/2 pixels from DC along each axis and on the
    diagonal) followed by a 2x2 box. The box's response 4 |cos(pi k / N) cos(pi l / N)| nulls the diagonal
    replica and the axis replicas' centres, but not their surroundings, and the Hann window leaks them into
    the Nyquist bins: the set's largest peak excess lies on the Nyquist annulus (radius N/2), where the
    generated-minus-real spectrum peaks on an axis."""
    job = spectrum_job[0]
    summary = _json(ctx, job.result_keys["summary"])
    upsampled = summary["datasets"][1]
    peaks = _npy(ctx, job.result_keys["peak_profiles_db"])
    assert upsampled["peak_profile_max"]["radius"] == SIZE // 2
    assert int(np.argmax(peaks[1, 1 : SIZE // 2 + 1])) + 1 == SIZE // 2  # the summary agrees with the array
    assert peaks[1, SIZE // 2] > peaks[0, SIZE // 2] + 10  # measured: 20 dB against 6 dB on real crops
    peak = upsampled["difference_peak"]
    assert sorted(map(abs, peak["offset"])) == [0, SIZE // 2] and peak["radius_nyquist"] == 1.0
    assert peak["db"] > 3
    html = ctx.store.get_bytes(job.result_keys["report"]).decode()
    assert html.count("data:image/png;base64,") == 3 and "nearest x2" in html and "zz_small.png" in html


# --- train_detector and detect ----------------------------------------------------------------------------

def _images(ctx: WorkerContext, image_keys: list[str]) -> list[Image.Image]:
    return [Image.open(io.BytesIO(ctx.store.get_bytes(k))).convert("RGB") for k in image_keys]


def _listed(ctx: WorkerContext, dataset_id: str) -> list[str]:
    return [o.key for o in ctx.store.list(keys.dataset_images_prefix(TENANT, dataset_id))]


def _detector_from_store(ctx: WorkerContext, card_key: str, folder: Path):
    from genaudit.forensics import Detector

    card = _json(ctx, card_key)
    (folder / "model.json").write_bytes(ctx.store.get_bytes(card_key))
    weights_key = card_key.rsplit("/", 1)[0] + "/" + card["weights_file"]
    (folder / card["weights_file"]).write_bytes(ctx.store.get_bytes(weights_key))
    return Detector.from_card(folder / "model.json", "cpu")


@pytest.fixture(scope="module")
def trained(ctx: WorkerContext) -> tuple[Job, str, str]:
    """A detector trained on real crops against nearest-x2 upsampled ones (separable by their spectra): Frank et
    al.'s log-DCT linear model learns it in two epochs (validation AP 0.99-1.0 over seeds 0-5; freqnet needs
    more than this file can spend)."""
    real_id = _upload(ctx, "train real", _crops(48, SIZE, seed=11))
    fake_id = _upload(ctx, "train nearest x2", [(n, _nearest_x2(im)) for n, im in _crops(48, SIZE // 2, seed=12)],
                      extra={"zz_tiny.png": png_bytes(_crops(1, 24, seed=13)[0][1])})
    job = _run(ctx, JobType.TRAIN_DETECTOR, {"real_dataset_ids": [real_id], "generated_dataset_ids": [fake_id],
                                             "arch": "logdct-linear", "max_epochs": 2, "batch_size": 8,
                                             "val_fraction": 0.25, "blur_prob": 0.0, "jpeg_prob": 0.0, "seed": 1,
                                             "target_fpr": 0.1})
    assert job.state == JobState.SUCCEEDED, job.error
    return job, real_id, fake_id


def test_train_detector_writes_a_card_with_its_data_and_validation_metrics(
    ctx: WorkerContext, trained: tuple[Job, str, str], tmp_path: Path,
) -> None:
    from sklearn.metrics import average_precision_score

    job, real_id, fake_id = trained
    assert set(job.result_keys) == {"model_weights", "model_card", "summary", "report", "manifest"}
    card = _json(ctx, job.result_keys["model_card"])
    assert job.result_keys["model_card"].endswith("/model.json") and card["weights_file"] == "model.safetensors"
    assert card["sha256"] == hashlib.sha256(ctx.store.get_bytes(job.result_keys["model_weights"])).hexdigest()
    assert card["arch"] == "logdct-linear" and card["target_fpr"] == 0.1
    assert card["parameters"] == card["scale"]["parameters"] == 3 * SIZE * SIZE + 1  # one weight per coefficient
    assert card["recipe"]["spec"] == job.spec and len(card["recipe"]["training"]["history"]) == 2

    # the split is the seeded hash of each image's name in its dataset, recomputed here
    def in_val(key: str) -> bool:
        name = key.rsplit("/", 1)[1]
        return int.from_bytes(hashlib.sha256(f"1:{name}".encode()).digest()[:8], "big") / 2**64 < 0.25

    data = {d["dataset_id"]: d for d in card["data"]["datasets"]}
    assert card["data"]["real_dataset_ids"] == [real_id] and card["data"]["generated_dataset_ids"] == [fake_id]
    tiny = keys.dataset_image_key(TENANT, fake_id, "zz_tiny.png")
    assert data[fake_id]["skipped"] == [{"key": tiny, "reason": "image 24x24 is smaller than 64x64, the side the "
                                                                "detector needs"}]
    val_keys = {d: [k for k in _listed(ctx, d) if k != tiny and in_val(k)] for d in (real_id, fake_id)}
    for dataset_id in (real_id, fake_id):
        assert data[dataset_id]["n_val"] == len(val_keys[dataset_id]) > 0
        assert data[dataset_id]["n_train"] == 48 - len(val_keys[dataset_id])
    assert card["data"]["n_val"] == {"real": len(val_keys[real_id]), "generated": len(val_keys[fake_id])}

    # the reported validation metrics are those of the saved, calibrated detector on the clean val images
    detector = _detector_from_store(ctx, job.result_keys["model_card"], tmp_path)
    real_p = detector.probabilities(_images(ctx, val_keys[real_id]))
    fake_p = detector.probabilities(_images(ctx, val_keys[fake_id]))
    scores, labels = np.r_[real_p, fake_p], np.r_[np.zeros(real_p.size), np.ones(fake_p.size)]
    metrics = card["metrics"]["validation"]
    assert metrics["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert metrics["ap"] > 0.9  # the pair is separable
    assert np.mean(real_p >= card["threshold"]) <= 0.1  # the threshold keeps the target FPR on the val reals
    assert (detector.threshold, detector.temperature) == (card["threshold"], card["temperature"])
    html = ctx.store.get_bytes(job.result_keys["report"]).decode()
    assert card["version"] in html and "train nearest x2" in html


def test_detect_with_the_trained_model_matches_the_detector_and_sklearn(
    ctx: WorkerContext, trained: tuple[Job, str, str], tmp_path: Path,
) -> None:
    from sklearn.metrics import accuracy_score, average_precision_score, recall_score, roc_auc_score, roc_curve

    card_key = trained[0].result_keys["model_card"]
    real_id = _upload(ctx, "held-out real", _crops(16, SIZE, seed=21), extra={"zz_broken.png": BROKEN})
    fake_id = _upload(ctx, "held-out nearest x2", [(n, _nearest_x2(im)) for n, im in _crops(12, SIZE // 2, seed=22)])
    other_id = _upload(ctx, "held-out real 2", _crops(6, 80, seed=23),
                       extra={"zz_small.png": png_bytes(_crops(1, 40, seed=24)[0][1])})
    job = _run(ctx, JobType.DETECT, {"dataset_ids": [real_id, fake_id, other_id],
                                     "real_dataset_ids": [real_id, other_id], "model": card_key, "batch_size": 5})
    assert job.state == JobState.SUCCEEDED, job.error
    summary, rows = _json(ctx, job.result_keys["summary"]), _csv(ctx, job.result_keys["per_image"])
    detector = _detector_from_store(ctx, card_key, tmp_path)
    assert summary["model"]["version"] == detector.version and summary["model"]["threshold"] == detector.threshold

    by_set = {d: [r for r in rows if r["dataset_id"] == d] for d in (real_id, fake_id, other_id)}
    for dataset_id, set_rows in by_set.items():
        image_keys = [k for k in _listed(ctx, dataset_id) if "/zz_" not in k]
        assert [r["image_key"] for r in set_rows] == image_keys
        assert all(r["image_key"].endswith("/" + r["file"]) for r in set_rows)
        expected = detector.log_odds(_images(ctx, image_keys))
        np.testing.assert_allclose([float(r["log_odds"]) for r in set_rows], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([float(r["probability"]) for r in set_rows], expit(expected), rtol=1e-5, atol=1e-7)
        record = next(d for d in summary["datasets"] if d["dataset_id"] == dataset_id)
        flagged = sum(r["label"] == "generated" for r in set_rows)
        assert record["labels"] == {"generated": flagged, "real": len(set_rows) - flagged}
        assert all((r["label"] == "generated") == (float(r["probability"]) >= detector.threshold) for r in set_rows)
        assert "periodic_peak_db" in set_rows[0]
    skipped = {d["dataset_id"]: [s["reason"] for s in d["skipped"]] for d in summary["datasets"]}
    assert len(skipped[real_id]) == 1 and "invalid image" in skipped[real_id][0] and skipped[fake_id] == []
    assert skipped[other_id] == ["image 40x40 is smaller than 64x64, the smallest this detector scores"]

    # evaluation: the generated set against all real images, recomputed with scikit-learn from the CSV
    # (rankings on the log-odds, decisions on the probabilities)
    (evaluated,) = summary["evaluation"]["generated"]
    real_z = np.array([float(r["log_odds"]) for d in (real_id, other_id) for r in by_set[d]])
    fake_z = np.array([float(r["log_odds"]) for r in by_set[fake_id]])
    real_p = np.array([float(r["probability"]) for d in (real_id, other_id) for r in by_set[d]])
    fake_p = np.array([float(r["probability"]) for r in by_set[fake_id]])
    y, z, p = np.r_[np.zeros(real_z.size), np.ones(fake_z.size)], np.r_[real_z, fake_z], np.r_[real_p, fake_p]
    predicted = p >= detector.threshold
    fpr, tpr, _ = roc_curve(y, z, drop_intermediate=False)
    expected = {"ap": average_precision_score(y, z), "auc": roc_auc_score(y, z),
                "accuracy": accuracy_score(y, predicted), "real_accuracy": recall_score(y, predicted, pos_label=0),
                "fake_accuracy": recall_score(y, predicted), "tpr_at_1pct_fpr": tpr[fpr <= 0.01].max()}
    assert evaluated["dataset_id"] == fake_id and evaluated["metrics"]["n_real"] == 22
    for name, value in expected.items():
        assert evaluated["metrics"][name] == pytest.approx(value, abs=1e-12), name
    assert summary["evaluation"]["real_false_positive_rate"] == pytest.approx(np.mean(real_p >= detector.threshold))
    html = ctx.store.get_bytes(job.result_keys["report"]).decode()
    assert "TPR at 1% FPR" in html and "held-out nearest x2" in html and "data:image/png;base64," in html


def test_detect_refuses_unknown_and_foreign_model_keys(ctx: WorkerContext, trained: tuple[Job, str, str]) -> None:
    real_id = trained[1]
    card_key = trained[0].result_keys["model_card"]
    foreign = card_key.replace(f"tenants/{TENANT}/", "tenants/other/", 1)
    ctx.store.put_bytes(foreign, ctx.store.get_bytes(card_key))  # exists, but belongs to another tenant
    missing = card_key.rsplit("/", 2)[0] + "/" + "0" * 64 + "/model.json"
    for model in (missing, foreign):
        job = _run(ctx, JobType.DETECT, {"dataset_ids": [real_id], "model": model})
        assert job.state == JobState.FAILED
        assert job.error.startswith(f"unknown model {model!r}: give \"default\" or the model_card key")


def test_gateway_checks_every_dataset_and_the_model_of_a_detect_spec(
    ctx: WorkerContext, trained: tuple[Job, str, str],
) -> None:
    from types import SimpleNamespace

    from genaudit.api.v1 import jobs_pb2 as pb
    from genaudit.errors import NotFound
    from genaudit.gateway.servicers.jobs import checked_spec

    job, real_id, fake_id = trained
    for dataset_id in (real_id, fake_id):
        ctx.records.update_dataset_counts(TENANT, dataset_id, 48, 1)
    gateway = SimpleNamespace(records=ctx.records, store=ctx.store)  # what checked_spec reads

    def check(tenant: str = TENANT, **fields: object) -> dict:
        spec = pb.JobSpec(detect=pb.DetectSpec(**{"dataset_ids": [real_id, fake_id], **fields}))
        return checked_spec(gateway, tenant, spec, require_images=True)[1]

    card = job.result_keys["model_card"]
    assert check(model=card, real_dataset_ids=[real_id])["model"] == card
    assert check()["model"] == "default"
    with pytest.raises(NotFound, match="ds_nope"):
        check(dataset_ids=[real_id, "ds_nope"])
    with pytest.raises(NotFound, match="unknown model"):
        check(model=card.replace("model.json", "other.json"))
    ctx.store.put_bytes(card.replace(f"tenants/{TENANT}/", "tenants/rival/", 1), ctx.store.get_bytes(card))
    with pytest.raises(NotFound):  # the datasets are not the rival's, nor is the card under the rival's results
        check("rival", model=card)
    with pytest.raises(NotFound, match="unknown model"):  # a key of another tenant that exists
        check(model=card.replace(f"tenants/{TENANT}/", "tenants/rival/", 1))


@pytest.mark.parametrize("job_type", [JobType.SPECTRUM, JobType.DETECT, JobType.TRAIN_DETECTOR])
def test_jobs_cancelled_while_running_write_nothing(
    ctx: WorkerContext, trained: tuple[Job, str, str], job_type: JobType,
) -> None:
    real_id = _upload(ctx, f"real for cancel {job_type}", _crops(24, SIZE, seed=5))
    other_id = _upload(ctx, f"other for cancel {job_type}", [(n, _nearest_x2(im)) for n, im in _crops(24, 32, seed=6)])
    spec = {
        JobType.SPECTRUM: {"real_dataset_id": real_id, "generated_dataset_ids": [other_id]},
        JobType.DETECT: {"dataset_ids": [real_id, other_id], "model": trained[0].result_keys["model_card"],
                         "batch_size": 4},
        JobType.TRAIN_DETECTOR: {"real_dataset_ids": [real_id], "generated_dataset_ids": [other_id],
                                 "arch": "logdct-linear", "max_epochs": 1},
    }[job_type]
    before = _result_objects(ctx)
    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    ctx.records.cancel_job_id = job.id
    execute_job(job.id, ctx)
    done = ctx.records.load_job(job.id)
    # stopped at the check after the first progress write (reports are throttled: where depends on timing)
    assert done.state == JobState.CANCELLED and done.started_at is not None and 0 < done.progress < 1
    assert _result_objects(ctx) == before and not list(ctx.store.list(keys.job_prefix(TENANT, job.id)))
