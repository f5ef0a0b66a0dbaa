"""train_single_image: a SinGAN or InGAN trained on one image of a dataset (``singleimage.recipes``).

1. The training image (``single_image_inputs.read_training_image``), shrunk so that its longest side is at most
   ``max_side`` (0: the scale's cap, ``recipes.MAX_SIDE``).
2. ``recipes.train_single_image`` at the spec's scale (``iterations`` overrides the schedule's count), seeded, on
   the worker's device; progress per iteration, cancellation checked between iterations.
3. Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec, the image's bytes and
   ``TRAINING_VERSION``: ``model.safetensors`` (``generators.save_generator``: arch and config in the metadata),
   ``model.json`` (the card: arch, config, sha256, image, recipe, scale, losses, device, seconds),
   ``training_image.png`` (the pixels it trained on), ``samples.png`` (SinGAN: random samples; InGAN: retargetings
   to random sizes), ``reconstruction.png`` (image | reconstruction path), ``summary.json`` and ``report.html``.

The weights feed ``single_image_audit`` and, for SinGAN, ``unit_stats`` / ``correct``: pass the ``model`` key
with arch and the card's sha256.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from genaudit.devices import resolve_device
from genaudit.generators.sampling import to_uint8
from genaudit.jobs.models import Job
from genaudit.reports.grids import image_grid, png_bytes
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.singleimage.audit import draw_samples, reconstruct
from genaudit.singleimage.recipes import MAX_SIDE, model_card, train_single_image, weights_bytes
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.single_image_inputs import read_training_image
from genaudit.worker.pipelines.unit_jobs import (
    HTML_TYPE,
    JSON_TYPE,
    PNG_TYPE,
    StagedProgress,
    json_bytes,
    result_hash,
    write_results,
)

# Bump when the training code changes what a spec and an image produce: results then get new keys.
TRAINING_VERSION = 1
PREVIEW_SAMPLES = 16
PREVIEW_SEED = 1234
WEIGHTS_TYPE = "application/octet-stream"


def _png_of(image: torch.Tensor) -> bytes:
    return png_bytes(to_uint8(image)[0])


def _report(card: dict[str, Any], figures: dict[str, bytes]) -> str:
    rows = [["architecture", card["arch"]], ["image", f"{card['image']['name']} ({card['image']['height']}x"
                                                       f"{card['image']['width']} px)"],
            ["scale", card["scale"]], ["device", card["device"]], ["training seconds", card["training_seconds"]],
            ["reconstruction RMSE", card["reconstruction_rmse"]], ["parameters", card["parameters"]]]
    what = "random samples" if card["arch"] == "singan" else "retargetings to random sizes"
    sections = [
        Section("Model", card["description"], tables=[Table(["", ""], rows)]),
        Section("Reconstruction", "The training image beside the deterministic reconstruction path, which should "
                                  "reproduce it.",
                figures=[Figure(figures["reconstruction"], "image | reconstruction")]),
        Section("Samples", f"{PREVIEW_SAMPLES} {what} (seed {PREVIEW_SEED}); audit them with a single_image_audit "
                           "job (SIFID, diversity, copy detection).", figures=[Figure(figures["samples"], what)]),
    ]
    return render_sections_report(f"{card['arch']} trained on {card['image']['name']}", card["scale_note"], sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    staged = StagedProgress(progress, {"read": 1, "train": 95, "write": 4})
    staged.start("read", "reading the training image")
    with progress.stage("decode"):
        source = read_training_image(ctx, job.tenant, spec["dataset_id"], spec["image"])
    staged.start("train", f"training {spec['arch']}")
    with progress.stage("train"):
        trained = train_single_image(
            spec["arch"], source.image, scale=spec["scale"], max_side=spec["max_side"] or None,
            iterations=spec["iterations"] or None, seed=spec["seed"], device=resolve_device(ctx.settings.device),
            progress=staged.callback("train", f"training {spec['arch']}"),
            check_cancelled=progress.throttled_cancel_check())
    staged.start("write", "writing the model")
    with progress.stage("write"):
        model = trained.generator
        weights = weights_bytes(trained)
        reconstruction = reconstruct(model)
        samples = draw_samples(model, PREVIEW_SAMPLES, PREVIEW_SEED)
        height = trained.image.shape[2]
        image = {"dataset_id": source.dataset_id, "name": source.name, "sha256": source.sha256,
                 "max_side": spec["max_side"] or MAX_SIDE[spec["scale"]]}
        command = f"genaudit jobs submit train_single_image --spec '{json.dumps(spec, sort_keys=True)}'"
        card = model_card(trained, weights, reconstruction, name=f"{trained.arch}-{source.name}",
                          weights_file="model.safetensors", image=image, seed=spec["seed"],
                          iterations_override=spec["iterations"] or None, command=command)
        figures = {
            "training_image": _png_of(trained.image),
            "reconstruction": png_bytes(np.concatenate([to_uint8(trained.image.cpu())[0],
                                                        np.full((int(height), 2, 3), 64, np.uint8),
                                                        to_uint8(reconstruction)[0]], axis=1)),
            "samples": png_bytes(image_grid([to_uint8(s)[0] for s in samples], 4)),
        }
        summary = {"summary_version": TRAINING_VERSION, "parameters": dict(spec), "card": card}
        files = {
            "model": ("model.safetensors", weights, WEIGHTS_TYPE),
            "model_card": ("model.json", json_bytes(card), JSON_TYPE),
            **{name: (f"{name}.png", data, PNG_TYPE) for name, data in figures.items()},
            "summary": ("summary.json", json_bytes(summary), JSON_TYPE),
            "report": ("report.html", _report(card, figures).encode(), HTML_TYPE),
        }
        progress.check_cancelled()  # a cancelled job writes no results
        digest = result_hash(job, TRAINING_VERSION, {"image_sha256": source.sha256})
        result_keys = write_results(ctx, job.tenant, digest, files)
    progress.report(1, 1, f"{trained.arch} trained on {source.name} in {trained.seconds:.0f} s")
    return result_keys
