"""detect: score every image of datasets with a detector (DESIGN.md §5) and, where real sets are marked,
evaluate it.

The detector is ``detector_models.load_detector(model)``. Each image is decoded safely and scored by
``Detector.score_batch`` in batches of ``batch_size``: the calibrated log-odds logit / T, the probability
sigmoid(logit / T) and the spectral evidence of the same centre crop the net sees. An image that cannot be
decoded or is smaller than the detector scores is skipped and listed with its reason; a dataset with no
scorable image fails the job. Label at the card's threshold t: "generated" when p >= t, else "real".

Evaluation (``real_dataset_ids`` given): every other dataset's images are the positives against ALL the
real images as negatives: ``forensics.evaluation.detection_metrics`` of the log-odds at t (AP, ROC AUC,
accuracy, real and fake accuracy, balanced accuracy, TPR at 1% FPR; the rankings use the log-odds, which keep
the order of probabilities rounded to 1.0); plus the false-positive rate on the real images.

Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec, the model's identity (version,
weights sha256, calibration) and every dataset's name and content: ``per_image.csv`` (dataset_id, dataset,
file, image_key, log_odds, probability, label, evidence...), ``summary.json``, ``report.html``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy.special import expit

from genaudit.errors import InvalidArgument
from genaudit.features import dataset_content_hash
from genaudit.forensics.detector import Detector
from genaudit.forensics.evaluation import detection_metrics
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.reports.detection_plots import probability_histograms_png
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.storage.base import ObjectInfo
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import DatasetReader, list_dataset_images
from genaudit.worker.pipelines.dataset_records import display_names
from genaudit.worker.pipelines.detector_models import LoadedDetector, load_detector
from genaudit.worker.pipelines.json_values import finite_or_none

SUMMARY_FILE = "summary.json"
PER_IMAGE_FILE = "per_image.csv"
REPORT_FILE = "report.html"
SUMMARY_VERSION = 2  # 2: rankings on log-odds, log_odds column in per_image.csv
GENERATED, REAL = "generated", "real"
METRIC_COLUMNS = (("ap", "AP"), ("auc", "AUC"), ("accuracy", "Accuracy"), ("real_accuracy", "Real acc."),
                  ("fake_accuracy", "Fake acc."), ("balanced_accuracy", "Balanced acc."),
                  ("tpr_at_1pct_fpr", "TPR at 1% FPR"))


@dataclass
class ScoredSet:
    dataset_id: str
    name: str
    is_real: bool
    n_listed: int
    keys: list[str] = field(default_factory=list)
    log_odds: list[float] = field(default_factory=list)
    evidence: list[dict[str, float]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    content_hash: str = ""

    @property
    def probabilities(self) -> np.ndarray:
        """sigmoid(log-odds) of each scored image, in order (float64)."""
        return expit(np.asarray(self.log_odds, dtype=np.float64))


def _score_set(
    ctx: WorkerContext, progress: JobProgress, detector: Detector, dataset_id: str, name: str, is_real: bool,
    objects: list[ObjectInfo], done_before: int, total: int,
) -> ScoredSet:
    prefix = keys.dataset_images_prefix(progress.job.tenant, dataset_id)
    result = ScoredSet(dataset_id, name, is_real, n_listed=len(objects))
    reader = DatasetReader(ctx, progress, prefix, objects)
    batch: list[tuple[str, Image.Image]] = []

    def flush() -> None:
        with progress.stage("score"):
            log_odds, evidence = detector.score_batch([image for _, image in batch])
        result.keys += [key for key, _ in batch]
        result.log_odds += log_odds.tolist()
        result.evidence += evidence
        batch.clear()
        handled = len(result.keys) + len(result.skipped) + len(reader.failures)
        progress.report(done_before + handled, total, f"dataset {name}: scored {len(result.keys)} of {len(objects)}")
        progress.check_cancelled()

    for image in reader.images():
        key = reader.decoded_keys[-1]
        try:
            detector.crop_side(image.height, image.width)
        except InvalidArgument as exc:
            result.skipped.append({"key": key, "reason": exc.message})
            continue
        batch.append((key, image))
        if len(batch) == progress.job.spec["batch_size"]:
            flush()
    if batch:
        flush()
    result.skipped = sorted(reader.failures + result.skipped, key=lambda s: s["key"])
    result.content_hash = dataset_content_hash(reader.content_hashes)
    if not result.keys:
        first = result.skipped[0]
        raise InvalidArgument(f"none of the {len(objects)} images of dataset {dataset_id} could be scored "
                              f"(first: {first['key']}: {first['reason']})")
    return result


def evaluate(sets: list[ScoredSet], threshold: float) -> dict[str, Any]:
    """Per non-real set, ``detection_metrics`` of its images (positives) against every real image."""
    real = np.concatenate([s.log_odds for s in sets if s.is_real])
    per_set = []
    for s in sets:
        if s.is_real:
            continue
        scores = np.concatenate([real, s.log_odds])
        labels = np.concatenate([np.zeros(real.size, dtype=np.int64), np.ones(len(s.log_odds), dtype=np.int64)])
        metrics = detection_metrics(scores, labels, threshold)
        per_set.append({"dataset_id": s.dataset_id, "name": s.name,
                        "metrics": {k: v if isinstance(v, int) else finite_or_none(v) for k, v in metrics.items()}})
    return {"n_real": int(real.size), "real_false_positive_rate": float(np.mean(expit(real) >= threshold)),
            "generated": per_set}


def dataset_record(s: ScoredSet, threshold: float) -> dict[str, Any]:
    flagged = int((s.probabilities >= threshold).sum())
    return {
        "dataset_id": s.dataset_id, "name": s.name, "role": REAL if s.is_real else "scored",
        "n_listed": s.n_listed, "n_scored": len(s.keys), "n_skipped": len(s.skipped), "skipped": s.skipped,
        "labels": {GENERATED: flagged, REAL: len(s.keys) - flagged},
        "mean_probability": float(s.probabilities.mean()), "content_hash": s.content_hash,
    }


def result_hash(job: Job, model: dict[str, Any], sets: list[ScoredSet]) -> str:
    identity = {"job_type": str(job.job_type), "spec": job.spec, "model": model, "summary_version": SUMMARY_VERSION,
                "datasets": [[s.dataset_id, s.name, s.content_hash] for s in sets]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _per_image_csv(sets: list[ScoredSet], prefix_of: dict[str, str], threshold: float) -> str:
    names = sorted(sets[0].evidence[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset_id", "dataset", "file", "image_key", "log_odds", "probability", "label", *names])
    for s in sets:
        for key, z, p, evidence in zip(s.keys, s.log_odds, s.probabilities.tolist(), s.evidence, strict=True):
            label = GENERATED if p >= threshold else REAL
            writer.writerow([s.dataset_id, s.name, key[len(prefix_of[s.dataset_id]):], key, repr(z), repr(p), label,
                             *(repr(evidence[n]) for n in names)])
    return out.getvalue()


def _report(model: dict[str, Any], summary: dict[str, Any], sets: list[ScoredSet]) -> str:
    threshold = model["threshold"]
    datasets = Table(
        ["Dataset", "Role", "Scored", "Skipped", "Labelled generated", "Share generated", "Mean probability"],
        [[r["name"], r["role"], r["n_scored"], r["n_skipped"], r["labels"][GENERATED],
          r["labels"][GENERATED] / r["n_scored"], r["mean_probability"]] for r in summary["datasets"]],
    )
    sections = [
        Section("Model", f"{model['arch']} version {model['version']} ({model['model']}); calibrated probability "
                         f"sigmoid(logit / {model['temperature']:.4g}); label generated when p ≥ {threshold:.4g}."),
        Section("Datasets", tables=[datasets], figures=[Figure(
            probability_histograms_png([s.name for s in sets], [s.probabilities for s in sets],
                                       [s.is_real for s in sets], threshold),
            "probability histograms of the datasets")]),
    ]
    evaluation = summary.get("evaluation")
    if evaluation is not None:
        rows = [[g["name"], *(g["metrics"][k] for k, _ in METRIC_COLUMNS), g["metrics"]["n_fake"]]
                for g in evaluation["generated"]]
        sections.append(Section(
            "Evaluation", f"Each set's images against all {evaluation['n_real']} real images; false-positive rate "
                          f"on the real images at the threshold: {evaluation['real_false_positive_rate']:.4g}.",
            tables=[Table(["Set", *(title for _, title in METRIC_COLUMNS), "Images"], rows)],
            definitions={"AP": "average precision (threshold-free; the headline of Wang et al.)",
                         "Real / fake acc.": "share of real images below the threshold / of generated ones at or "
                                             "above it", "TPR at 1% FPR": "recall on the set at the threshold "
                                                                          "that flags 1% of the real images"}))
    skipped = [[s["key"], s["reason"]] for r in summary["datasets"] for s in r["skipped"]]
    if skipped:
        sections.append(Section("Skipped images", tables=[Table(["Image", "Reason"], skipped)]))
    return render_sections_report("Detection", f"{len(sets)} dataset(s) scored by {model['version']}", sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    names = display_names(ctx, job.tenant, spec["dataset_ids"])  # NotFound for an unknown dataset
    with progress.stage("list"):
        listings = {d: list_dataset_images(ctx, job.tenant, d) for d in spec["dataset_ids"]}
    total = sum(len(o) for o in listings.values())
    progress.report(0, total, "loading the detector")
    progress.check_cancelled()
    with progress.stage("load_model"):
        loaded: LoadedDetector = load_detector(ctx, job.tenant, spec["model"])
    model = loaded.describe()
    sets: list[ScoredSet] = []
    done = 0
    for dataset_id, objects in listings.items():
        sets.append(_score_set(ctx, progress, loaded.detector, dataset_id, names[dataset_id],
                               dataset_id in spec["real_dataset_ids"], objects, done, total))
        done += len(objects)

    with progress.stage("report"):
        threshold = loaded.detector.threshold
        summary: dict[str, Any] = {
            "summary_version": SUMMARY_VERSION, "parameters": dict(spec), "model": model,
            "datasets": [dataset_record(s, threshold) for s in sets],
        }
        if spec["real_dataset_ids"]:
            summary["evaluation"] = evaluate(sets, threshold)
        prefix_of = {d: keys.dataset_images_prefix(job.tenant, d) for d in spec["dataset_ids"]}
        table = _per_image_csv(sets, prefix_of, threshold)
        html = _report(model, summary, sets)
    progress.check_cancelled()  # a cancelled job writes no results

    prefix = keys.result_prefix(job.tenant, result_hash(job, model, sets))
    result_keys = {"summary": prefix + SUMMARY_FILE, "per_image": prefix + PER_IMAGE_FILE,
                   "report": prefix + REPORT_FILE}
    with progress.stage("write"):
        ctx.store.put_bytes(result_keys["summary"], json.dumps(summary, indent=2, sort_keys=True,
                                                               allow_nan=False).encode(),
                            content_type="application/json")
        ctx.store.put_bytes(result_keys["per_image"], table.encode(), content_type="text/csv")
        ctx.store.put_bytes(result_keys["report"], html.encode(), content_type="text/html; charset=utf-8")
    progress.report(1, 1, f"scored {sum(len(s.keys) for s in sets)} images of {len(sets)} dataset(s)")
    return result_keys
