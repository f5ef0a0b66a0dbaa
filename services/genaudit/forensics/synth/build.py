"""``build_forensynth``: a ForenSynth-style labelled set of real and CNN-generated 64 px images, made here.

Layout (CNNDetection's): ``<out>/<split>/<family>/0_real/NNNNN.png`` and ``.../1_fake/NNNNN.png`` for split in
train, val, test; ``<out>/generators/<family>.safetensors`` + ``.json`` card + ``-samples.png`` (a single-image
family: ``<family>-NN.safetensors`` + ``.json`` per model, one ``-samples.png``); ``<out>/manifest.json``. For
each family, in order:

1. crops: a ``CropDrawer`` per family; the generator trains on ``training_crops`` crops of the photos'
   generator region (a single-image family: one model per crop, each on its crop alone); train and val reals
   (and image-to-image fake sources) are further crops of that region, test ones crops of the held-out region
   (``crops``); all distinct, each set with a seed of its own;
2. training (``training``), on the GPU when there is one; the files of the generator(s) (``cards``);
3. fakes (``fakes``): samples for seeded latents, or the generator's outputs for the fake sources; a
   single-image family's fake i comes from model i mod K, each model's share from its own seed (``model_seeds``);
4. every image through ``pngs.write_png``; then the family's manifest entry (per-folder file-list digests).

Manifest entry of a family: ``generator`` (weights, card, samples, sha256, ...) for the one-model families; a
single-image family has ``generators`` instead, one such record per model (with its seeds and training crop's
digest), and ``samples``, its one grid.

Resumable: the manifest is rewritten after each family; a family whose entry has the same recipe, scale,
seed and counts, and whose files (every model's weights by digest, cards and grid present, every image folder
by digest) still match, is skipped; any other family's outputs are removed and rebuilt. An output folder holds
one build (scale, seed, counts): another one is refused.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch

from genaudit.data.offline_photos import load_photos
from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.features.weights import sha256_file
from genaudit.forensics.synth.cards import save_single_image_models, save_trained
from genaudit.forensics.synth.crops import HELD_OUT_FRACTION, SIDE, CropDrawer, PhotoRegions, derive_seed, split_photos
from genaudit.forensics.synth.fakes import generate, generate_round_robin
from genaudit.forensics.synth.pngs import folder_digest, write_folder
from genaudit.forensics.synth.recipes import RECIPES, SCALES, FamilyRecipe, get_recipe
from genaudit.forensics.synth.training import train_generator, train_single_image_models
from genaudit.generators.registry import get_architecture

FORMAT = "genaudit-forensynth/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
LABELS = ("0_real", "1_fake")
# (reals, fakes) per family and split.
DEFAULT_COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "full": {"train": (4000, 4000), "val": (500, 500), "test": (1000, 1000)},
    "cpu": {"train": (1000, 1000), "val": (200, 200), "test": (500, 500)},
    "tiny": {"train": (4, 4), "val": (2, 2), "test": (4, 4)},
}


def build_forensynth(
    out_dir: str | Path,
    *,
    scale: str = "cpu",
    families: Iterable[str] | None = None,
    counts: Mapping[str, tuple[int, int] | int] | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    """Builds (or completes) the set in ``out_dir`` and returns ``out_dir``.

    ``scale``: "cpu" (default), "full" (for a GPU) or "tiny" (tests). ``families``: names from ``RECIPES``
    (default all six). ``counts``: split -> (reals, fakes) per family, or one int for both (default
    ``DEFAULT_COUNTS[scale]``; splits left out keep their default). ``seed``: the build's seed, from which every
    crop set, latent set and training run derives its own (``derive_seed``).
    """
    if scale not in SCALES:
        raise InvalidArgument(f"unknown scale {scale!r}; known: {list(SCALES)}")
    if isinstance(families, str):
        families = [families]
    recipes = [get_recipe(f) for f in (RECIPES if families is None else families)]
    if not recipes:
        raise InvalidArgument("no family to build")
    per_split = _counts(scale, counts)
    out = Path(out_dir)
    manifest = _load_manifest(out)
    settings = {"scale": scale, "seed": seed, "counts": {s: {"real": r, "fake": f} for s, (r, f) in per_split.items()}}
    if manifest is None:
        manifest = {"format": FORMAT, **settings, "families": {}}
    elif any(manifest.get(key) != value for key, value in settings.items()):
        raise FailedPrecondition(
            f"{out} holds a build with scale {manifest.get('scale')!r}, seed {manifest.get('seed')}, counts "
            f"{manifest.get('counts')}; this call asks for {settings}: use another output folder")
    regions = split_photos(load_photos())
    manifest.update(_description(regions))
    out.mkdir(parents=True, exist_ok=True)
    for recipe in recipes:
        entry = manifest["families"].get(recipe.family)
        if entry is not None and _complete(out, recipe, entry, settings):
            log(f"{recipe.family}: complete in {out}, skipped")
            continue
        manifest["families"][recipe.family] = _build_family(out, recipe, scale, per_split, seed, regions, log)
        manifest["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        _write_manifest(out, manifest)
    return out


def _counts(scale: str, counts: Mapping[str, tuple[int, int] | int] | None) -> dict[str, tuple[int, int]]:
    merged = dict(DEFAULT_COUNTS[scale])
    for split, value in (counts or {}).items():
        if split not in SPLITS:
            raise InvalidArgument(f"unknown split {split!r} in counts; known: {list(SPLITS)}")
        pair = (value, value) if isinstance(value, int) else tuple(value)
        if len(pair) != 2 or any(type(n) is not int or n < 1 for n in pair):
            raise InvalidArgument(f"counts[{split!r}] must be a positive int or (reals, fakes), got {value!r}")
        merged[split] = pair
    return merged


def _description(regions: PhotoRegions) -> dict[str, Any]:
    return {
        "layout": "{split}/{family}/{0_real|1_fake}/NNNNN.png",
        "splits": list(SPLITS),
        "image": {"size": SIDE, "mode": "RGB", "format": "PNG", "bit_depth": 8,
                  "writer": "genaudit.forensics.synth.pngs.write_png"},
        "photos": {
            "source": "genaudit.data.offline_photos.load_photos (photos bundled in scikit-image, scikit-learn, "
                      "matplotlib)",
            "held_out_fraction": HELD_OUT_FRACTION,
            "regions": {name: {region: list(box) for region, box in boxes.items()}
                        for name, boxes in regions.boxes.items()},
            "use": "generator region: generator training crops, train and val reals and fake sources; held_out "
                   "region: test reals and fake sources",
        },
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "safetensors": version("safetensors"), "genaudit": version("genaudit")}


def family_seeds(seed: int, family: str) -> dict[str, int]:
    """The seeds of one family's crop sets, latents and training run."""
    roles = ["training-crops", "training"] + [f"{split}-{kind}" for split in SPLITS for kind in ("real", "fake")]
    return {role: derive_seed(seed, family, role) for role in roles}


def model_seeds(seeds: Mapping[str, int], family: str, index: int) -> dict[str, int]:
    """The training and per-split fake seeds of model ``index`` of a single-image family, each derived from the
    family's seed of that role (``family_seeds``): derive_seed(seeds[role], family, "model-<index>")."""
    roles = ["training"] + [f"{split}-fake" for split in SPLITS]
    return {role: derive_seed(seeds[role], family, f"model-{index}") for role in roles}


def _build_family(
    out: Path, recipe: FamilyRecipe, scale: str, per_split: dict[str, tuple[int, int]], seed: int,
    regions: PhotoRegions, log: Callable[[str], None],
) -> dict[str, Any]:
    family = recipe.family
    _remove_outputs(out, family)
    start, cpu_start = time.perf_counter(), time.process_time()
    seeds = family_seeds(seed, family)
    takes_images = get_architecture(recipe.arch).input_kind == "image"
    drawer = CropDrawer(regions)
    n_train = recipe.training_crops[scale]
    training_crops = drawer.draw("generator", n_train, seeds["training-crops"])
    if recipe.single_image:
        log(f"{family}: drawing {n_train} training crops; training {n_train} {recipe.arch} models, one per crop, at "
            f"the {scale} scale ({recipe.scale(scale).iterations} iterations per pyramid scale)")
        members = [model_seeds(seeds, family, k) for k in range(n_train)]
        fits = train_single_image_models(recipe, scale, training_crops, seeds=[m["training"] for m in members],
                                         log=log)
        training_s = sum(fit.seconds for fit in fits)

        def make_fakes(split: str, count: int, sources: np.ndarray | None) -> np.ndarray:
            return generate_round_robin([fit.generator for fit in fits], count,
                                        seeds=[m[f"{split}-fake"] for m in members])
    else:
        log(f"{family}: drawing {n_train} training crops; training {recipe.arch} at the {scale} scale "
            f"({recipe.scale(scale).iterations} iterations)")
        trained = train_generator(recipe, scale, training_crops, seed=seeds["training"], log=log)
        training_s = trained.seconds
        del training_crops

        def make_fakes(split: str, count: int, sources: np.ndarray | None) -> np.ndarray:
            return generate(trained.model, count, seed=seeds[f"{split}-fake"], sources=sources)
    durations = {"training_s": round(training_s, 1), "generation_s": 0.0, "writing_s": 0.0}

    files, grid_pairs = {}, None
    for split in SPLITS:
        n_real, n_fake = per_split[split]
        region = "held_out" if split == "test" else "generator"
        reals = drawer.draw(region, n_real, seeds[f"{split}-real"])
        sources = drawer.draw(region, n_fake, seeds[f"{split}-fake"]) if takes_images else None
        t0 = time.perf_counter()
        fakes = make_fakes(split, n_fake, sources)
        t1 = time.perf_counter()
        for label, images in zip(LABELS, (reals, fakes), strict=True):
            folder = out / split / family / label
            write_folder(images, folder)
            files[f"{split}/{family}/{label}"] = folder_digest(folder)
        durations["generation_s"] += t1 - t0
        durations["writing_s"] += time.perf_counter() - t1
        if split == "test" and sources is not None:
            grid_pairs = (sources, fakes)
        log(f"{family}: {split} written ({n_real} real, {n_fake} fake) in {time.perf_counter() - t0:.0f} s")

    region_text = f"the generator region (left {1 - HELD_OUT_FRACTION:.0%}) of the offline photos"
    if recipe.single_image:
        data = [f"one {SIDE} px crop of {region_text}: crop {k + 1} of {n_train} distinct crops drawn with the "
                f"family's training-crops seed; no flips" for k in range(n_train)]
        cards = save_single_image_models(out / "generators", recipe, scale, fits, training_crops,
                                         seeds=[m["training"] for m in members], data=data)
        generator_entry = {
            "generators": [
                {**_generator_record(card), "sha256": card["sha256"], "parameters": card["parameters"], "seeds": m,
                 "training_crop_sha256": card["training_crop_sha256"], "final_losses": card["final_losses"]}
                for card, m in zip(cards, members, strict=True)],
            "samples": f"generators/{cards[0]['samples_file']}",
        }
        card = cards[0]
    else:
        data = (f"{n_train} distinct {SIDE} px crops (seeded) of {region_text}; random horizontal flips")
        card = save_trained(out / "generators", recipe, scale, trained, seed=seeds["training"], data=data,
                            pairs=grid_pairs)
        generator_entry = {"generator": {**_generator_record(card),
                                         "samples": f"generators/{card['samples_file']}",
                                         "sha256": card["sha256"], "parameters": card["parameters"],
                                         "final_losses_last_100": card["final_losses_last_100"]}}
    durations = {key: round(value, 1) for key, value in durations.items()}
    durations["total_s"] = round(time.perf_counter() - start, 1)
    # CPU seconds of this process (all threads): on a shared machine, what the family costs without contention.
    durations["cpu_s"] = round(time.process_time() - cpu_start, 1)
    log(f"{family}: done in {durations['total_s']:.0f} s (training {durations['training_s']:.0f} s, "
        f"{durations['cpu_s']:.0f} CPU s)")
    return {
        "arch": recipe.arch,
        "method": recipe.method,
        "upsampling": recipe.upsampling,
        "recipe": recipe.describe(),
        "scale": scale,
        "scale_used": card["scale_used"],
        "training_crops": n_train,
        "seeds": seeds,
        "counts": {split: {"real": r, "fake": f} for split, (r, f) in per_split.items()},
        "device": card["device"],
        "threads": card["threads"],
        "versions": _versions(),
        "durations": durations,
        **generator_entry,
        "files": files,
        "complete": True,
    }


def _generator_record(card: Mapping[str, Any]) -> dict[str, Any]:
    return {"weights": f"generators/{card['weights_file']}", "card": f"generators/{card['name']}.json"}


def _complete(out: Path, recipe: FamilyRecipe, entry: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    if not entry.get("complete") or entry.get("recipe") != recipe.describe() or entry.get("scale") != settings["scale"]:
        return False
    if entry.get("counts") != settings["counts"]:
        return False
    if recipe.single_image:
        models, samples = entry.get("generators"), entry.get("samples")
        if not isinstance(models, list) or len(models) != recipe.training_crops[settings["scale"]]:
            return False
    else:
        models, samples = [entry["generator"]], entry["generator"]["samples"]
    for model in models:
        weights = out / model["weights"]
        if not weights.is_file() or sha256_file(weights) != model["sha256"] or not (out / model["card"]).is_file():
            return False
    if not (out / samples).is_file():
        return False
    expected = {f"{split}/{recipe.family}/{label}" for split in SPLITS for label in LABELS}
    return set(entry["files"]) == expected and all(folder_digest(out / folder) == digest
                                                   for folder, digest in entry["files"].items())


def _remove_outputs(out: Path, family: str) -> None:
    for split in SPLITS:
        shutil.rmtree(out / split / family, ignore_errors=True)
    for name in (f"{family}.safetensors", f"{family}.json", f"{family}-samples.png"):
        (out / "generators" / name).unlink(missing_ok=True)
    # A single-image family's models (``cards.model_name``), however many an earlier build made.
    model_file = re.compile(re.escape(family) + r"-\d{2,}\.(safetensors|json)")
    for path in (out / "generators").glob(f"{family}-*"):
        if model_file.fullmatch(path.name):
            path.unlink()


def _load_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FailedPrecondition(f"{path} is not JSON ({exc}): not a build of this tool, or damaged") from None
    if manifest.get("format") != FORMAT:
        raise FailedPrecondition(f"{path} has format {manifest.get('format')!r}, not {FORMAT!r}")
    return manifest


def _write_manifest(out: Path, manifest: Mapping[str, Any]) -> None:
    """Atomically: a build stopped mid-write leaves the previous manifest."""
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)
