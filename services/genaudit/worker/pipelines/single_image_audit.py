"""single_image_audit: SIFID, diversity and copy detection of a single-image generator (``singleimage.audit``).

1. The generator (``unit_jobs.load_spec_generator``: shipped, or tenant weights pinned by sha256; SinGAN or InGAN)
   and its training image (``single_image_inputs.read_training_image``), shrunk to the generator's longest side;
   it must then have the generator's height and width (else it is not the image the generator learnt).
2. ``audit_single_image``: seeded samples plus the reconstruction path; SIFID in the local feature space; copy
   detection with ``patch_size`` patches at several scales; pixel and feature diversity.
3. Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec, the weights' and the image's sha256
   and both extractors' ids: ``summary.json``, ``per_sample.csv`` (one row per sample and one for the
   reconstruction), ``samples.png``, ``sifid_hist.png``, ``copy_maps.png`` and ``report.html``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from genaudit.errors import InvalidArgument
from genaudit.features import get_extractor
from genaudit.generators.sampling import to_uint8
from genaudit.jobs.models import Job
from genaudit.reports.grids import image_grid, png_bytes
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.reports.single_image_plots import copy_maps_png, sifid_histogram_png
from genaudit.singleimage.audit import SingleImageAudit, audit_single_image
from genaudit.singleimage.copies import CopyReport
from genaudit.singleimage.local_features import get_local_extractor
from genaudit.singleimage.training_image import training_tensor
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.single_image_inputs import read_training_image
from genaudit.worker.pipelines.unit_jobs import (
    CSV_TYPE,
    HTML_TYPE,
    JSON_TYPE,
    PNG_TYPE,
    StagedProgress,
    json_bytes,
    load_spec_generator,
    result_hash,
    write_results,
)

SUMMARY_VERSION = 1
GRID_COLUMNS = 8
COPY_MAP_SAMPLES = 6  # the samples with the largest copied regions, after the reconstruction


def _copy_row(index: str, kind: str, shape: tuple[int, ...], sifid: float, rmse: float | None,
              copies: CopyReport) -> list[Any]:
    region = copies.largest_region
    offset = region.offset if region is not None else (None, None)
    return [index, kind, shape[2], shape[3], repr(float(sifid)), "" if rmse is None else repr(rmse),
            repr(copies.near_copy_share), repr(copies.largest_region_fraction), offset[0], offset[1],
            int(copies.is_copy)]


def _per_sample_csv(audit: SingleImageAudit) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "kind", "height", "width", "sifid", "rmse_to_image", "near_copy_share",
                     "largest_copied_region_fraction", "offset_dy", "offset_dx", "is_copy"])
    for i, (sample, score, rmse, copies) in enumerate(zip(audit.samples, audit.sifid, audit.sample_rmse(),
                                                          audit.copies, strict=True)):
        writer.writerow(_copy_row(str(i), "sample", tuple(sample.shape), score, rmse, copies))
    writer.writerow(_copy_row("reconstruction", "reconstruction", tuple(audit.reconstruction.shape),
                              audit.reconstruction_sifid, audit.reconstruction_rmse, audit.reconstruction_copies))
    return out.getvalue()


def _copy_maps(audit: SingleImageAudit) -> bytes:
    order = np.argsort([-c.largest_region_fraction for c in audit.copies], kind="stable")[:COPY_MAP_SAMPLES]
    picked = [("reconstruction", audit.reconstruction, audit.reconstruction_copies)]
    picked += [(f"sample {i}", audit.samples[i], audit.copies[i]) for i in order.tolist()]
    return copy_maps_png(
        [to_uint8(t)[0] for _, t, _ in picked],
        [c.scales[0].nn_distance for _, _, c in picked],
        [None if c.largest_region is None else c.largest_region.bbox for _, _, c in picked],
        [f"{name}: largest copied region {c.largest_region_fraction:.0%}" for name, _, c in picked])


def _report(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    s, r = summary["audit"], summary["audit"]["reconstruction"]
    sifid, copies, diversity = s["sifid"], s["copies"], s["diversity"]
    rows = [
        ["SIFID mean / median", f"{sifid['mean']:.4g} / {sifid['median']:.4g}"],
        ["SIFID of the reconstruction", f"{r['sifid']:.4g}"],
        ["reconstruction RMSE (in [-1, 1])", f"{r['rmse']:.4g}"],
        ["reconstruction flagged as a copy", r["is_copy"]],
        ["samples flagged as copies", f"{copies['samples_flagged']} of {s['n_samples']}"],
        ["pixel diversity", "n/a (sizes differ)" if diversity["pixel"] is None else f"{diversity['pixel']:.4g}"],
        ["mean pairwise feature distance", diversity["feature_mean_pairwise_distance"]],
    ]
    generator = summary["generator"]
    sections = [
        Section("Summary", f"{s['n_samples']} samples of {generator['generator']} ({generator['arch']}) against "
                           f"{summary['image']['name']}; SIFID in {s['local_feature_space']}, diversity in "
                           f"{s['feature_space']}, copies with {s['patch_size']} px patches.",
                tables=[Table(["", ""], rows)]),
        Section("Samples", "The samples in order (8-bit).", figures=[Figure(figures["samples"], "samples")]),
        Section("SIFID", "Per-sample SIFID; the line marks the reconstruction's.",
                figures=[Figure(figures["sifid_hist"], "SIFID histogram")]),
        Section("Copies", "Left: the sample with its largest region copied at one offset outlined; right: the "
                          "distance of each patch to its nearest patch of the training image (scale 1).",
                figures=[Figure(figures["copy_maps"], "copy maps")]),
    ]
    return render_sections_report(f"Single-image audit of {generator['generator']}",
                                  f"training image {summary['image']['name']}", sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    staged = StagedProgress(progress, {"load": 5, "audit": 90, "write": 5})
    staged.start("load", "loading the generator and the training image")
    with progress.stage("load_model"):
        loaded = load_spec_generator(ctx, job.tenant, spec, latent_only=False)
        generator = loaded.generator
        if not hasattr(generator, "height") or not hasattr(generator, "width"):
            raise InvalidArgument(f"{loaded.arch} is not a single-image generator; single_image_audit takes singan "
                                  "or ingan")
        local = get_local_extractor(spec["local_feature_space"], ctx.settings.device, settings=ctx.settings,
                                    store=ctx.store)
        features = get_extractor(spec["feature_space"], ctx.settings.device, settings=ctx.settings, store=ctx.store)
    with progress.stage("decode"):
        source = read_training_image(ctx, job.tenant, spec["dataset_id"], spec["image"])
        image = training_tensor(source.image, max(generator.height, generator.width))
    if tuple(image.shape[2:]) != (generator.height, generator.width):
        raise InvalidArgument(f"image {source.name!r} shrinks to {image.shape[2]}x{image.shape[3]} px, but the "
                              f"generator makes {generator.height}x{generator.width} px: it is not the image the "
                              "generator was trained on")
    with progress.stage("audit"):
        audit = audit_single_image(
            generator, image.to(next(generator.parameters()).device), local_extractor=local,
            global_extractor=features, n_samples=spec["n_samples"], seed=spec["seed"],
            patch_size=spec["patch_size"], batch_size=spec["batch_size"],
            progress=lambda done, total, what: staged.report("audit", done, total, what),
            check_cancelled=progress.throttled_cancel_check())
    staged.start("write", "writing the report")
    with progress.stage("report"):
        summary = {
            "summary_version": SUMMARY_VERSION,
            "parameters": dict(spec),
            "generator": loaded.describe(),
            "image": {"dataset_id": source.dataset_id, "name": source.name, "sha256": source.sha256},
            "extractors": {"local": local.preprocessing_id, "global": features.preprocessing_id},
            "audit": audit.summary(),
            "definitions": {
                "sifid": "Fréchet distance between the per-location features of the sample and of the image",
                "pixel_diversity": "per-pixel std over the samples, averaged, divided by the std of the image",
                "near_copy_share": "share of the sample's patches (scale 1) within the copy threshold of an "
                                   "image patch",
                "largest_copied_region_fraction": "largest 4-connected region of near-copy patches sharing one "
                                                  "offset, as a share of the sample's area (max over scales)",
            },
        }
        figures = {
            "samples": png_bytes(image_grid([to_uint8(t)[0] for t in audit.samples], GRID_COLUMNS)),
            "sifid_hist": sifid_histogram_png(audit.sifid.tolist(), reference=audit.reconstruction_sifid),
            "copy_maps": _copy_maps(audit),
        }
        html = _report(summary, figures)
        table = _per_sample_csv(audit)
    progress.check_cancelled()  # a cancelled job writes no results
    identity = {**loaded.describe(), "image_sha256": source.sha256, "local": local.preprocessing_id,
                "global": features.preprocessing_id}
    files = {
        "summary": ("summary.json", json_bytes(summary), JSON_TYPE),
        "per_sample": ("per_sample.csv", table.encode(), CSV_TYPE),
        **{name: (f"{name}.png", data, PNG_TYPE) for name, data in figures.items()},
        "report": ("report.html", html.encode(), HTML_TYPE),
    }
    with progress.stage("write"):
        result_keys = write_results(ctx, job.tenant, result_hash(job, SUMMARY_VERSION, identity), files)
    flagged = summary["audit"]["copies"]["samples_flagged"]
    progress.report(1, 1, f"SIFID mean {summary['audit']['sifid']['mean']:.4g}; {flagged} of {spec['n_samples']} "
                          "samples flagged as copies")
    return result_keys
