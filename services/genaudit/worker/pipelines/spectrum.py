"""spectrum: mean spectra of generated datasets beside a real one (DESIGN.md §5: Durall et al., Frank et al.).

The first ``max_images`` images of each dataset (key order) are decoded safely and centre-cropped to
``size`` x ``size``; an image that cannot be decoded or is smaller than the crop is skipped and listed with
its reason (the job fails only when a dataset has no usable image). In batches, on the worker's device,
in float64:

- FFT spectrum: ``forensics.fft_power_spectrum(x, window=True)``: 20 log10(|F| + 1e-8) of the luma's
  fft-shifted 2-D FFT after removing its mean and applying a Hann window (DC at (size/2, size/2));
- log-DCT spectrum: ``forensics.log_dct_spectrum`` of the luma: ln(|DCT-II| + 1e-6), DC at (0, 0);
- per-image evidence: ``forensics.batch_spectral_evidence``.

Per dataset: the mean of both spectra over its used images (running float64 sums), the azimuthal average
of the mean FFT spectrum (``forensics.azimuthal_average``) and its peak profile: on each annulus r of
``radial_bins``, max minus median of the mean FFT spectrum (dB). An upsampling layer puts replicas of the
base band at multiples of size/s pixels from DC; the azimuthal average dilutes such isolated peaks over
the whole annulus, the peak profile does not. Per generated set, the largest value of (generated - real)
mean FFT spectrum away from DC and where it lies.

Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec and every dataset's name and read
content: ``summary.json``; ``mean_fft_db.npy``, ``mean_log_dct.npy`` (D, size, size) and ``profiles_db.npy``,
``peak_profiles_db.npy`` (D, R) float64 with rows in the order real, generated...; ``per_image.csv``
(dataset, image key, evidence); ``report.html`` (figures embedded).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from genaudit.devices import resolve_device
from genaudit.errors import InvalidArgument
from genaudit.features import dataset_content_hash
from genaudit.forensics import (
    azimuthal_average,
    batch_spectral_evidence,
    fft_power_spectrum,
    log_dct_spectrum,
    rgb_to_luma,
    to_image_batch,
)
from genaudit.forensics.spectra import radial_bins
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.reports.spectra_plots import profiles_png, spectra_grid_png
from genaudit.storage.base import ObjectInfo
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import DatasetReader, list_dataset_images
from genaudit.worker.pipelines.dataset_records import display_names
from genaudit.worker.pipelines.json_values import finite_or_none

SUMMARY_FILE = "summary.json"
PER_IMAGE_FILE = "per_image.csv"
REPORT_FILE = "report.html"
ARRAY_FILES = {"mean_fft_db": "mean_fft_db.npy", "mean_log_dct": "mean_log_dct.npy",
               "profiles_db": "profiles_db.npy", "peak_profiles_db": "peak_profiles_db.npy"}
SUMMARY_VERSION = 1
FFT_EPS, DCT_EPS = 1e-8, 1e-6


def centre_crop(image: Image.Image, size: int) -> np.ndarray | str:
    """(size, size, 3) uint8 centre crop (offsets floor((W - size) / 2), floor((H - size) / 2)), or the
    reason it cannot be cut."""
    if image.width < size or image.height < size:
        return f"image {image.width}x{image.height} is smaller than the {size}x{size} centre crop"
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.convert("RGB").crop((left, top, left + size, top + size)), dtype=np.uint8)


def peak_profile(spectrum: torch.Tensor) -> torch.Tensor:
    """(R,) per annulus of ``radial_bins``: max minus median of a shifted (H, W) spectrum."""
    h, w = spectrum.shape
    index, counts = radial_bins(h, w, spectrum.device)
    flat = spectrum.flatten()
    return torch.stack([flat[index == r].max() - flat[index == r].median() for r in range(counts.numel())])


@dataclass
class SetSpectra:
    """Running sums, then means, of one dataset's spectra and its per-image evidence."""

    dataset_id: str
    name: str
    n_listed: int
    used_keys: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"key", "reason"}
    evidence: list[dict[str, float]] = field(default_factory=list)  # one per used key
    content_hash: str = ""
    fft_sum: torch.Tensor | None = None
    dct_sum: torch.Tensor | None = None

    def add(self, crops: list[np.ndarray], device: torch.device) -> None:
        x = to_image_batch(np.stack(crops), dtype=torch.float64).to(device)
        fft = fft_power_spectrum(x, FFT_EPS, window=True).sum(dim=0)
        dct = log_dct_spectrum(rgb_to_luma(x)[:, None], DCT_EPS).sum(dim=(0, 1))
        self.fft_sum = fft if self.fft_sum is None else self.fft_sum + fft
        self.dct_sum = dct if self.dct_sum is None else self.dct_sum + dct
        self.evidence.extend(batch_spectral_evidence(x))

    @property
    def mean_fft_db(self) -> torch.Tensor:
        assert self.fft_sum is not None
        return self.fft_sum / len(self.used_keys)

    @property
    def mean_log_dct(self) -> torch.Tensor:
        assert self.dct_sum is not None
        return self.dct_sum / len(self.used_keys)


def _read_set(
    ctx: WorkerContext, progress: JobProgress, tenant: str, dataset_id: str, name: str, objects: list[ObjectInfo],
    size: int, done_before: int, total: int,
) -> SetSpectra:
    prefix = keys.dataset_images_prefix(tenant, dataset_id)
    result = SetSpectra(dataset_id, name, n_listed=len(objects))
    read = objects[: progress.job.spec["max_images"]]
    reader = DatasetReader(ctx, progress, prefix, read)
    device = resolve_device(ctx.settings.device)
    batch: list[np.ndarray] = []

    def flush() -> None:
        with progress.stage("spectra"):
            result.add(batch, device)
        batch.clear()
        handled = len(result.used_keys) + len(result.skipped) + len(reader.failures)
        progress.report(done_before + handled, total, f"dataset {name}: {handled}/{len(read)} images")
        progress.check_cancelled()

    for image in reader.images():
        key = reader.decoded_keys[-1]
        crop = centre_crop(image, size)
        if isinstance(crop, str):
            result.skipped.append({"key": key, "reason": crop})
            continue
        result.used_keys.append(key)
        batch.append(crop)
        if len(batch) == ctx.settings.batch_size:
            flush()
    if batch:
        flush()
    # decode failures first, in key order like everything else
    result.skipped = sorted(reader.failures + result.skipped, key=lambda s: s["key"])
    result.content_hash = dataset_content_hash(reader.content_hashes)
    if not result.used_keys:
        first = result.skipped[0]
        raise InvalidArgument(f"none of the {len(read)} images read from dataset {dataset_id} could be used "
                              f"(first: {first['key']}: {first['reason']})")
    return result


def _evidence_stats(rows: list[dict[str, float]]) -> dict[str, dict[str, float | None]]:
    names = sorted(rows[0])
    values = {n: np.array([r[n] for r in rows], dtype=np.float64) for n in names}
    return {n: {"mean": finite_or_none(v.mean()), "median": finite_or_none(np.median(v))} for n, v in values.items()}


def _difference_peak(generated: torch.Tensor, real: torch.Tensor) -> dict[str, Any]:
    """Largest (generated - real) mean FFT value away from DC: offset (dy, dx) from DC, radius / Nyquist."""
    h, w = real.shape
    difference = (generated - real).clone()
    difference[h // 2, w // 2] = -math.inf  # the DC term is 0 after mean removal: not a frequency to report
    flat = int(torch.argmax(difference))
    dy, dx = flat // w - h // 2, flat % w - w // 2
    return {"offset": [dy, dx], "radius_nyquist": math.hypot(dy / (h / 2), dx / (w / 2)),
            "db": float(difference[flat // w, flat % w])}


def result_hash(job: Job, sets: list[SetSpectra]) -> str:
    identity = {"job_type": str(job.job_type), "spec": job.spec, "summary_version": SUMMARY_VERSION,
                "datasets": [[s.dataset_id, s.name, s.content_hash] for s in sets]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _summary(job: Job, sets: list[SetSpectra], profiles: np.ndarray, peaks: np.ndarray) -> dict[str, Any]:
    size = job.spec["size"]
    inscribed = peaks[:, 1 : size // 2 + 1]  # whole annuli only, DC excluded
    records = []
    for index, s in enumerate(sets):
        record = {
            "dataset_id": s.dataset_id, "name": s.name, "role": "real" if index == 0 else "generated",
            "n_listed": s.n_listed, "n_read": len(s.used_keys) + len(s.skipped), "n_used": len(s.used_keys),
            "n_skipped": len(s.skipped), "skipped": s.skipped, "content_hash": s.content_hash,
            "evidence": _evidence_stats(s.evidence),
            "peak_profile_max": {"radius": 1 + int(np.argmax(inscribed[index])), "db": float(inscribed[index].max())},
        }
        if index:
            record["difference_peak"] = _difference_peak(s.mean_fft_db, sets[0].mean_fft_db)
        records.append(record)
    return {
        "summary_version": SUMMARY_VERSION,
        "parameters": dict(job.spec),
        "definitions": {
            "mean_fft_db": f"mean over images of 20 log10(|F| + {FFT_EPS}), F = fftshift(fft2) of the BT.601 luma, "
                           "mean removed, periodic Hann window; DC at (size/2, size/2)",
            "mean_log_dct": f"mean over images of ln(|DCT-II| + {DCT_EPS}) of the luma (orthonormal); DC at (0, 0)",
            "profiles_db": "azimuthal average of mean_fft_db over annuli of integer radius (pixels from DC)",
            "peak_profiles_db": "per annulus, max minus median of mean_fft_db",
            "peak_profile_max": "largest peak_profiles_db value over the annuli 1..size/2 (whole circles)",
            "radius_nyquist": f"annulus radius / (size / 2) = radius / {size // 2}",
        },
        "profile_radii": list(range(profiles.shape[1])),
        "datasets": records,
    }


def _per_image_csv(sets: list[SetSpectra]) -> str:
    names = sorted(sets[0].evidence[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset_id", "dataset", "image_key", *names])
    for s in sets:
        for key, evidence in zip(s.used_keys, s.evidence, strict=True):
            writer.writerow([s.dataset_id, s.name, key, *(repr(evidence[n]) for n in names)])
    return out.getvalue()


def _report(job: Job, sets: list[SetSpectra], summary: dict[str, Any], radius_nyquist: np.ndarray,
            profiles: np.ndarray, peaks: np.ndarray) -> str:
    names = [s.name for s in sets]
    fft = [s.mean_fft_db.cpu().numpy() for s in sets]
    dct = [s.mean_log_dct.cpu().numpy() for s in sets]
    evidence_names = sorted(sets[0].evidence[0])
    datasets = Table(
        ["Dataset", "Role", "Used", "Skipped", *(f"mean {n}" for n in evidence_names)],
        [[r["name"], r["role"], r["n_used"], r["n_skipped"], *(r["evidence"][n]["mean"] for n in evidence_names)]
         for r in summary["datasets"]],
        caption="Spectral evidence: see genaudit.forensics.evidence for each number.",
    )
    peaks_table = Table(
        ["Generated set", "Peak of generated − real (dB)", "at offset (dy, dx)", "radius / Nyquist"],
        [[r["name"], r["difference_peak"]["db"], str(tuple(r["difference_peak"]["offset"])),
          r["difference_peak"]["radius_nyquist"]] for r in summary["datasets"][1:]],
    )
    skipped = [[s["key"], s["reason"]] for r in summary["datasets"] for s in r["skipped"]]
    sections = [
        Section("Datasets", f"Centre crops of {job.spec['size']} px; at most {job.spec['max_images']} images "
                            "per dataset, first in key order.", tables=[datasets]),
        Section("Mean FFT spectra", "Windowed luma power spectrum in dB, DC at the centre; each row: real, "
                                    "generated, generated − real.",
                tables=[peaks_table],
                figures=[Figure(spectra_grid_png(names, fft, "dB"), "mean FFT spectra and differences")]),
        Section("Mean log-DCT spectra", "ln |DCT-II| of the luma, DC at the top left.",
                figures=[Figure(spectra_grid_png(names, dct, "ln |DCT|"), "mean log-DCT spectra and differences")]),
        Section("Azimuthal profiles", "x2 upsampling puts replicas of the base band at the Nyquist radius (1.0), "
                                      "x4 at 0.5.",
                figures=[Figure(profiles_png(names, radius_nyquist, list(profiles), list(peaks)),
                                "azimuthal profiles of all sets")]),
    ]
    if skipped:
        sections.append(Section("Skipped images", tables=[Table(["Image", "Reason"], skipped)]))
    return render_sections_report(f"Spectra against {names[0]}",
                                  f"{len(sets) - 1} generated set(s) beside the real set {names[0]}", sections)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    dataset_ids = [spec["real_dataset_id"], *spec["generated_dataset_ids"]]
    names = display_names(ctx, job.tenant, dataset_ids)  # NotFound for an unknown dataset
    with progress.stage("list"):
        listings = {d: list_dataset_images(ctx, job.tenant, d) for d in dataset_ids}
    total = sum(min(len(o), spec["max_images"]) for o in listings.values())
    sets: list[SetSpectra] = []
    done = 0
    for dataset_id, objects in listings.items():
        sets.append(_read_set(ctx, progress, job.tenant, dataset_id, names[dataset_id], objects, spec["size"],
                              done, total))
        done += min(len(objects), spec["max_images"])

    progress.report(total, total, "writing the report")
    with progress.stage("report"):
        profiles = torch.stack([azimuthal_average(s.mean_fft_db) for s in sets]).cpu().numpy()
        peaks = torch.stack([peak_profile(s.mean_fft_db) for s in sets]).cpu().numpy()
        radius_nyquist = np.arange(profiles.shape[1]) / (spec["size"] / 2)
        summary = _summary(job, sets, profiles, peaks)
        arrays = {
            "mean_fft_db": torch.stack([s.mean_fft_db for s in sets]).cpu().numpy(),
            "mean_log_dct": torch.stack([s.mean_log_dct for s in sets]).cpu().numpy(),
            "profiles_db": profiles, "peak_profiles_db": peaks,
        }
        html = _report(job, sets, summary, radius_nyquist, profiles, peaks)
        table = _per_image_csv(sets)
    progress.check_cancelled()  # a cancelled job writes no results

    prefix = keys.result_prefix(job.tenant, result_hash(job, sets))
    result_keys = {"summary": prefix + SUMMARY_FILE, "per_image": prefix + PER_IMAGE_FILE,
                   "report": prefix + REPORT_FILE, **{name: prefix + f for name, f in ARRAY_FILES.items()}}
    with progress.stage("write"):
        for name, array in arrays.items():
            ctx.store.put_bytes(result_keys[name], _npy(array.astype(np.float64)))
        ctx.store.put_bytes(result_keys["summary"], json.dumps(summary, indent=2, sort_keys=True,
                                                               allow_nan=False).encode(),
                            content_type="application/json")
        ctx.store.put_bytes(result_keys["per_image"], table.encode(), content_type="text/csv")
        ctx.store.put_bytes(result_keys["report"], html.encode(), content_type="text/html; charset=utf-8")
    progress.report(1, 1, f"spectra of {len(sets)} datasets")
    return result_keys
