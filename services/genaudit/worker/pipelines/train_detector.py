"""train_detector: train a detector on real and generated datasets, calibrate it and save it (DESIGN.md §5).

1. Images: every image of the datasets is decoded safely; one smaller than the side the net needs (the
   spec's ``crop``, else the net's ``input_size``, else ``detector.MIN_SIDE``) is skipped with its reason.
   The others are centre-cropped to one common square side L = the smallest kept side, at most
   ``MAX_SIDE`` and floored to a multiple of 8 (the detector crops test images the same way, without
   resizing). The job holds the images in memory as uint8.
2. Split: an image is in the validation split when sha256(f"{seed}:{file}") read as a 64-bit integer,
   divided by 2**64, is below ``val_fraction``, ``file`` being its key relative to its dataset (the name it
   was uploaded as). The split of an image never depends on the listing or on the other images; the same
   files uploaded again fall the same way; a real and a generated image of the same name (a generator's
   output named after its source) land in the same split, so no pair straddles train and validation.
3. Training: the architecture's config of its recipe (``detector_recipes.get_recipe(arch).config``, the one
   ``genaudit forensics train`` uses), then ``forensics.training.train_detector`` (Wang et al.'s recipe:
   blur / JPEG augmentation and simulated upsampling fakes with the spec's probabilities, early stopping on
   validation accuracy under the fixed validation transform).
   Progress and cancellation are checked after each epoch (the recipe has no finer hook).
4. Calibration on the clean validation images, scored exactly as ``Detector`` scores at test time:
   ``calibration.calibrate(logits, labels, target_fpr)`` (temperature T, and the threshold t at target_fpr
   on the reals' sigmoid(logit / T), capped at 1); validation metrics
   ``evaluation.detection_metrics(logit / T, labels, t)``.
5. Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec and every dataset's name and
   content: ``model.safetensors`` (``detectors.io.save_detector``), ``model.json`` (the card, layout.md:
   name, arch, config, version, temperature, threshold, target_fpr, data, recipe, scale, metrics,
   weights_file, sha256, parameters, date, command), ``summary.json`` and ``report.html``. A detect job
   uses the model with ``model = <the "model_card" result key>``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genaudit.devices import resolve_device
from genaudit.errors import InvalidArgument
from genaudit.features import dataset_content_hash
from genaudit.forensics.calibration import MIN_TEMPERATURE, calibrate
from genaudit.forensics.datasets import FAKE, REAL, LabelledImages
from genaudit.forensics.detector import MIN_SIDE, Detector
from genaudit.forensics.detector_recipes import get_recipe
from genaudit.forensics.detectors.io import save_detector, write_card
from genaudit.forensics.detectors.registry import build_detector_net, get_detector_architecture
from genaudit.forensics.evaluation import detection_metrics
from genaudit.forensics.training import TrainConfig, TrainResult, train_detector
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.reports.sections import Section, Table, render_sections_report
from genaudit.storage.base import ObjectInfo
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import DatasetReader, list_dataset_images
from genaudit.worker.pipelines.dataset_records import display_names
from genaudit.worker.pipelines.json_values import finite_or_none

MODEL_NAME = "model"
WEIGHTS_FILE = f"{MODEL_NAME}.safetensors"
CARD_FILE = f"{MODEL_NAME}.json"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
SUMMARY_VERSION = 1
MAX_SIDE = 256  # the largest crop Detector scores (its default max_side)
_LOAD_SHARE = 0.3  # of the progress bar; training takes the rest
_UNITS = 10_000


def _report_fraction(progress: JobProgress, fraction: float, message: str) -> None:
    # below 1 until the job is done: the last step always writes its report
    progress.report(min(round(fraction * _UNITS), _UNITS - 1), _UNITS, message)


def is_validation(file: str, seed: int, val_fraction: float) -> bool:
    """The seeded hash split of step 2 of the module docstring (``file``: the key within the dataset)."""
    digest = hashlib.sha256(f"{seed}:{file}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


@dataclass
class LoadedSet:
    dataset_id: str
    name: str
    label: int  # REAL or FAKE
    n_listed: int
    prefix: str  # of the dataset's image keys
    keys: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # uint8 (s, s, 3), s a multiple of 8
    skipped: list[dict[str, str]] = field(default_factory=list)
    content_hash: str = ""


def _load_set(
    ctx: WorkerContext, progress: JobProgress, dataset_id: str, name: str, label: int, objects: list[ObjectInfo],
    needed: int, done_before: int, total: int,
) -> LoadedSet:
    prefix = keys.dataset_images_prefix(progress.job.tenant, dataset_id)
    result = LoadedSet(dataset_id, name, label, len(objects), prefix)
    reader = DatasetReader(ctx, progress, prefix, objects)
    for index, image in enumerate(reader.images(), start=1):
        key = reader.decoded_keys[-1]
        side = min(image.width, image.height)
        if side < needed:
            result.skipped.append({"key": key, "reason": f"image {image.width}x{image.height} is smaller than "
                                                         f"{needed}x{needed}, the side the detector needs"})
            continue
        side = 8 * (min(side, MAX_SIDE) // 8)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        result.keys.append(key)
        result.images.append(np.asarray(image.convert("RGB").crop((left, top, left + side, top + side)),
                                        dtype=np.uint8))
        if index % ctx.settings.batch_size == 0:
            handled = len(reader.decoded_keys) + len(reader.failures)
            _report_fraction(progress, _LOAD_SHARE * (done_before + handled) / total, f"dataset {name}: read {handled}")
            progress.check_cancelled()
    result.skipped = sorted(reader.failures + result.skipped, key=lambda s: s["key"])
    result.content_hash = dataset_content_hash(reader.content_hashes)
    if not result.keys:
        first = result.skipped[0]
        raise InvalidArgument(f"none of the {len(objects)} images of dataset {dataset_id} can be used "
                              f"(first: {first['key']}: {first['reason']})")
    return result


def _centre(image: np.ndarray, side: int) -> np.ndarray:
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


def _split(sets: list[LoadedSet], seed: int, val_fraction: float) -> tuple[LabelledImages, LabelledImages, int]:
    """Train and validation images at the common side L (returned third), in dataset then key order."""
    side = min(im.shape[0] for s in sets for im in s.images)
    parts: dict[bool, list[tuple[np.ndarray, int, str, str]]] = {False: [], True: []}
    for s in sets:
        for key, image in zip(s.keys, s.images, strict=True):
            file = key[len(s.prefix):]
            parts[is_validation(file, seed, val_fraction)].append((_centre(image, side), s.label, s.dataset_id, key))

    def labelled(rows: list[tuple[np.ndarray, int, str, str]], split: str) -> LabelledImages:
        if not {label for _, label, _, _ in rows} >= {REAL, FAKE}:
            raise InvalidArgument(f"the {split} split holds no real or no generated image: use more images or "
                                  "another val_fraction or seed")
        return LabelledImages(np.stack([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=np.int64),
                              np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))

    return labelled(parts[False], "training"), labelled(parts[True], "validation"), side


def result_hash(job: Job, sets: list[LoadedSet]) -> str:
    identity = {"job_type": str(job.job_type), "spec": job.spec, "summary_version": SUMMARY_VERSION,
                "datasets": [[s.dataset_id, s.name, s.label, s.content_hash] for s in sets]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int) else finite_or_none(float(v)) for k, v in metrics.items()}


def _calibrate(detector: Detector, val: LabelledImages, target_fpr: float) -> tuple[float, float, dict[str, Any]]:
    """(temperature, threshold, validation metrics at the threshold), see step 4."""
    batch = torch.from_numpy(np.ascontiguousarray(val.images)).permute(0, 3, 1, 2)
    fitted = calibrate(detector.logits(batch), val.labels, target_fpr)
    return fitted.temperature, fitted.threshold, _plain(detection_metrics(fitted.log_odds, val.labels,
                                                                          fitted.threshold))


def _calibration_note(temperature: float) -> str:
    note = "temperature scaling and threshold at target_fpr on the clean validation images"
    if math.isclose(temperature, MIN_TEMPERATURE, rel_tol=1e-6):
        # separable validation logits: the likelihood keeps falling as T -> 0, probabilities saturate at 0 and 1
        note += (f"; the temperature sits at its lower bound {MIN_TEMPERATURE}: the validation set is perfectly "
                 "separated, so the probabilities are not calibrated (use a larger validation set)")
    return note


def _data_record(sets: list[LoadedSet], train: LabelledImages, val: LabelledImages, job: Job, side: int) -> dict:
    train_keys, val_keys = set(train.names.tolist()), set(val.names.tolist())
    spec = job.spec
    return {
        "real_dataset_ids": list(spec["real_dataset_ids"]),
        "generated_dataset_ids": list(spec["generated_dataset_ids"]),
        "datasets": [{"dataset_id": s.dataset_id, "name": s.name, "role": "real" if s.label == REAL else "generated",
                      "content_hash": s.content_hash, "n_listed": s.n_listed, "n_used": len(s.keys),
                      "n_skipped": len(s.skipped), "skipped": s.skipped,
                      "n_train": sum(k in train_keys for k in s.keys), "n_val": sum(k in val_keys for k in s.keys)}
                     for s in sets],
        "n_train": {"real": int((train.labels == REAL).sum()), "generated": int((train.labels == FAKE).sum())},
        "n_val": {"real": int((val.labels == REAL).sum()), "generated": int((val.labels == FAKE).sum())},
        "split": f"validation when sha256('{spec['seed']}:<file>')[:8] / 2**64 < {spec['val_fraction']}, <file> the "
                 "image's key within its dataset",
        "image_side": side,
    }


def _report(card: dict[str, Any], result: TrainResult) -> str:
    data, metrics = card["data"], card["metrics"]["validation"]
    sections = [
        Section("Model", f"{card['arch']} ({card['parameters']} parameters), version {card['version']}; "
                         f"temperature {card['temperature']:.4g}, threshold {card['threshold']:.4g} at target "
                         f"FPR {card['target_fpr']:.4g}; stopped by {result.stop_reason} after "
                         f"{len(result.history)} epoch(s), best epoch {result.best_epoch}."),
        Section("Data", data["split"], tables=[Table(
            ["Dataset", "Role", "Used", "Skipped", "Train", "Validation"],
            [[d["name"], d["role"], d["n_used"], d["n_skipped"], d["n_train"], d["n_val"]] for d in data["datasets"]],
        )]),
        Section("Validation", "Clean validation images, calibrated probabilities, label at the threshold.",
                tables=[Table(["AP", "AUC", "Accuracy", "Real acc.", "Fake acc.", "TPR at 1% FPR"],
                              [[metrics[k] for k in ("ap", "auc", "accuracy", "real_accuracy", "fake_accuracy",
                                                     "tpr_at_1pct_fpr")]])]),
        Section("Training", tables=[Table(["Epoch", "Train loss", "Val accuracy", "Val AP", "Learning rate"],
                                          [[e.epoch, e.train_loss, e.val_accuracy, e.val_ap, e.lr]
                                           for e in result.history],
                                          caption="Validation under the fixed blur/JPEG transform of the recipe.")]),
    ]
    return render_sections_report(f"Detector {card['version']}", f"trained on {sum(data['n_train'].values())} "
                                                                 f"images", sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    arch = spec["arch"]
    recipe = get_recipe(arch)
    config = get_detector_architecture(arch).validate_config(recipe.net_config(spec["surprise"]))
    device = resolve_device(ctx.settings.device)
    with torch.random.fork_rng(devices=[]):  # a seeded initialization, leaving the worker's state alone
        torch.manual_seed(spec["seed"])
        net = build_detector_net(arch, config)
    needed = spec["crop"] or net.input_size or MIN_SIDE
    labelled_ids = [(d, REAL) for d in spec["real_dataset_ids"]] + [(d, FAKE) for d in spec["generated_dataset_ids"]]
    names = display_names(ctx, job.tenant, [d for d, _ in labelled_ids])  # NotFound for an unknown dataset
    with progress.stage("list"):
        listings = {d: list_dataset_images(ctx, job.tenant, d) for d, _ in labelled_ids}
    total = sum(len(o) for o in listings.values())
    sets: list[LoadedSet] = []
    done = 0
    for dataset_id, label in labelled_ids:
        sets.append(_load_set(ctx, progress, dataset_id, names[dataset_id], label, listings[dataset_id], needed,
                              done, total))
        done += len(listings[dataset_id])
    train, val, side = _split(sets, spec["seed"], spec["val_fraction"])

    train_config = TrainConfig(batch_size=spec["batch_size"], max_epochs=spec["max_epochs"],
                               blur_prob=spec["blur_prob"], jpeg_prob=spec["jpeg_prob"], crop=spec["crop"] or None,
                               crop_grid=recipe.full.crop_grid,  # the recipe's (one value at both scales)
                               simulated_fake_prob=spec["simulated_fake_prob"], seed=spec["seed"], device=str(device))
    epochs = 0

    def log(message: str) -> None:
        nonlocal epochs
        if message.startswith("epoch "):  # the recipe logs one such line after each epoch
            epochs += 1
            _report_fraction(progress, _LOAD_SHARE + (1 - _LOAD_SHARE) * epochs / spec["max_epochs"], message)
        progress.check_cancelled()

    _report_fraction(progress, _LOAD_SHARE, f"training {arch} on {len(train)} images")
    with progress.stage("train"):
        result = train_detector(net, train, val, train_config, log=log)
    progress.check_cancelled()
    with progress.stage("calibrate"):
        detector = Detector(net, arch, config, device=device)
        temperature, threshold, val_metrics = _calibrate(detector, val, spec["target_fpr"])

    h = result_hash(job, sets)
    prefix = keys.result_prefix(job.tenant, h)
    result_keys = {"model_weights": prefix + WEIGHTS_FILE, "model_card": prefix + CARD_FILE,
                   "summary": prefix + SUMMARY_FILE, "report": prefix + REPORT_FILE}
    parameters = sum(p.numel() for p in net.parameters())
    card: dict[str, Any] = {
        "name": MODEL_NAME, "arch": arch, "config": config, "version": f"{arch}-{h[:12]}",
        "temperature": temperature, "threshold": threshold, "target_fpr": spec["target_fpr"],
        "data": _data_record(sets, train, val, job, side),
        "recipe": {"training": result.to_dict(), "spec": dict(spec), "calibration": _calibration_note(temperature)},
        "scale": {"image_side": side, "crop": result.crop, "n_train": len(train), "n_val": len(val),
                  "parameters": parameters, "train_seconds": result.seconds,
                  "device": device.type},
        "metrics": {"validation": val_metrics,
                    "selection": {"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                                  "best_val_ap": finite_or_none(result.best_val_ap)}},
        "weights_file": WEIGHTS_FILE, "parameters": parameters,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": f"genaudit jobs submit train_detector --spec '{json.dumps(spec, sort_keys=True)}'",
    }
    progress.check_cancelled()  # a cancelled job writes no results
    with progress.stage("write"), tempfile.TemporaryDirectory(prefix="genaudit-train-") as tmp:
        card["sha256"] = save_detector(net, Path(tmp) / WEIGHTS_FILE, arch, config)
        write_card(Path(tmp) / CARD_FILE, card)  # checks the card
        # weights first: a card that exists always finds its weights
        ctx.store.put_file(result_keys["model_weights"], Path(tmp) / WEIGHTS_FILE)
        ctx.store.put_file(result_keys["model_card"], Path(tmp) / CARD_FILE, content_type="application/json")
        summary = {"summary_version": SUMMARY_VERSION, "parameters": dict(spec),
                   "model_card": result_keys["model_card"], "card": json.loads((Path(tmp) / CARD_FILE).read_text())}
        ctx.store.put_bytes(result_keys["summary"], json.dumps(summary, indent=2, sort_keys=True,
                                                               allow_nan=False).encode(),
                            content_type="application/json")
        ctx.store.put_bytes(result_keys["report"], _report(card, result).encode(),
                            content_type="text/html; charset=utf-8")
    progress.report(1, 1, f"trained {card['version']}: validation AP {val_metrics['ap']}")
    return result_keys
