"""genaudit.forensics.synth: tiny builds of the synthetic detection set, checked from the files they wrote.

A build of the five multi-image families and one of ``singan`` alone. Layout and counts; every file an 8-bit
64x64 RGB PNG, reals and fakes alike down to their chunk lists; the digests of the manifest recomputed; each real
found back, pixel for pixel, in the photos, test reals only in the held-out regions and generator training crops
only in the generator regions; latent families' fakes are the saved generator's samples; the super-resolution
family's input is Pillow's bilinear x4 downscale; a second call changes nothing; a damaged family alone is
rebuilt, identically. ``singan``: several models, each on its own training crop (digests in the cards, the crops
drawn again), every model's share of the fakes regenerated from its weights and seed by a direct forward pass,
the grid's rows are the models' samples, and a changed weights file or a deleted card makes the family rebuild,
identically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.data.offline_photos import load_photos
from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.forensics.synth import (
    DEFAULT_COUNTS,
    RECIPES,
    SCALES,
    CropDrawer,
    build_forensynth,
    generate,
    generate_round_robin,
    get_recipe,
    split_photos,
    write_png,
)
from genaudit.generators import build_generator, load_generator

FAMILIES = ("dcgan", "pggan", "ae-pixelshuffle", "sr-bilinear", "ddpm-tiny")
SPLITS = ("train", "val", "test")
BUILDS = ("built", "singan_built")


@pytest.fixture(scope="module")
def built(tmp_path_factory, one_torch_thread) -> tuple[Path, list[str], float]:
    out = tmp_path_factory.mktemp("forensynth")
    lines: list[str] = []
    start = time.perf_counter()
    build_forensynth(out, scale="tiny", families=FAMILIES, log=lines.append)
    return out, lines, time.perf_counter() - start


@pytest.fixture(scope="module")
def singan_built(tmp_path_factory, one_torch_thread) -> tuple[Path, list[str], float]:
    out = tmp_path_factory.mktemp("forensynth-singan")
    lines: list[str] = []
    start = time.perf_counter()
    build_forensynth(out, scale="tiny", families="singan", log=lines.append)
    return out, lines, time.perf_counter() - start


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _read(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file, CRCs checked (an independent minimal parser)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def test_layout_counts_generators_and_time(built) -> None:
    out, lines, seconds = built
    assert seconds < 30, seconds
    expected = DEFAULT_COUNTS["tiny"]
    for split in SPLITS:
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(FAMILIES)
        for family in FAMILIES:
            reals = sorted(p.name for p in (out / split / family / "0_real").iterdir())
            fakes = sorted(p.name for p in (out / split / family / "1_fake").iterdir())
            n_real, n_fake = expected[split]
            assert reals == [f"{i:05d}.png" for i in range(n_real)]
            assert fakes == [f"{i:05d}.png" for i in range(n_fake)]
    manifest = _manifest(out)
    assert manifest["scale"] == "tiny" and set(manifest["families"]) == set(FAMILIES)
    for family, entry in manifest["families"].items():
        card = _card(out, family)
        assert card["scale_name"] == "tiny" and card["scale"].startswith("tiny scale")
        assert card["scale_used"]["iterations"] == get_recipe(family).tiny.iterations
        weights = out / entry["generator"]["weights"]
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["sha256"] == entry["generator"]["sha256"]
        model = load_generator(card["arch"], weights, expected_sha256=card["sha256"])
        assert sum(p.numel() for p in model.parameters()) == card["parameters"]
        assert (out / entry["generator"]["samples"]).is_file()
        assert entry["durations"]["training_s"] >= 0 and entry["seeds"]["test-real"] != entry["seeds"]["train-real"]
    assert sum("step" in line for line in lines) >= len(FAMILIES)  # training progress went through log


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _card(out: Path, family: str) -> dict:
    return json.loads((out / "generators" / f"{family}.json").read_text())


@pytest.mark.parametrize("build", BUILDS)
def test_every_file_is_a_64px_rgb_png_and_reals_look_like_fakes_on_disk(build: str, request) -> None:
    out, _, _ = request.getfixturevalue(build)
    layouts = {"0_real": set(), "1_fake": set()}
    for path in sorted(out.glob("*/*/*/*.png")):
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size, im.info) == ("PNG", "RGB", (64, 64), {})
        chunks = _chunks(path.read_bytes())
        ihdr = chunks[0][1]
        # width, height, bit depth 8, colour type 2 (RGB), compression 0, filter 0, interlace 0
        assert chunks[0][0] == b"IHDR" and ihdr == struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
        kinds = tuple(dict.fromkeys(kind for kind, _ in chunks))  # distinct chunk types, in order
        layouts[path.parent.name].add((kinds, ihdr))
    assert layouts["0_real"] == layouts["1_fake"] == {((b"IHDR", b"IDAT", b"IEND"),
                                                       struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))}


@pytest.mark.parametrize("build", BUILDS)
def test_manifest_digests_match_the_files(build: str, request) -> None:
    out, _, _ = request.getfixturevalue(build)
    for family, entry in _manifest(out)["families"].items():
        assert set(entry["files"]) == {f"{s}/{family}/{label}" for s in SPLITS for label in ("0_real", "1_fake")}
        for folder, digest in entry["files"].items():
            listing = "".join(f"{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                              for p in sorted((out / folder).glob("*.png")))
            assert digest == {"count": listing.count("\n"), "sha256": hashlib.sha256(listing.encode()).hexdigest()}


class _PhotoIndex:
    """Finds a crop back in the photos: candidates by the crop's two corner pixels, then an exact comparison."""

    def __init__(self) -> None:
        self.photos = {name: np.asarray(im) for name, im in load_photos()}
        self.keys = {name: self._key(a[:-63, :-63]) << np.uint64(24) | self._key(a[63:, 63:])
                     for name, a in self.photos.items()}

    @staticmethod
    def _key(pixels: np.ndarray) -> np.ndarray:
        p = pixels.astype(np.uint64)
        return p[..., 0] << np.uint64(16) | p[..., 1] << np.uint64(8) | p[..., 2]

    def locate(self, crop: np.ndarray) -> list[tuple[str, int, int]]:
        key = self._key(crop[0, 0]) << np.uint64(24) | self._key(crop[63, 63])
        found = []
        for name, keys in self.keys.items():
            for y, x in zip(*np.nonzero(keys == key), strict=True):
                if np.array_equal(self.photos[name][y:y + 64, x:x + 64], crop):
                    found.append((name, int(x), int(y)))
        return found


def _inside(location: tuple[str, int, int], boxes: dict, region: str) -> bool:
    name, x, y = location
    left, upper, right, lower = boxes[name][region]
    return left <= x and x + 64 <= right and upper <= y and y + 64 <= lower


@pytest.mark.parametrize("build", BUILDS)
def test_reals_come_from_their_region_and_test_reals_never_from_training_crops(build: str, request) -> None:
    out, _, _ = request.getfixturevalue(build)
    manifest = _manifest(out)
    boxes = manifest["photos"]["regions"]
    for regions in boxes.values():  # the regions of a photo share no pixel column
        assert regions["generator"][2] <= regions["held_out"][0]
    index = _PhotoIndex()
    drawer_regions = split_photos(load_photos())
    for family, entry in manifest["families"].items():
        test_reals = _read(out / "test" / family / "0_real")
        for crop in test_reals:
            locations = index.locate(crop)
            assert locations and all(_inside(loc, boxes, "held_out") for loc in locations)
        for split in ("train", "val"):
            for crop in _read(out / split / family / "0_real"):
                assert any(_inside(loc, boxes, "generator") for loc in index.locate(crop))
        # The generator's training crops, drawn again from the manifest's seed: all in the generator region...
        training = CropDrawer(drawer_regions).draw("generator", entry["training_crops"],
                                                   entry["seeds"]["training-crops"])
        assert len(training) == get_recipe(family).training_crops["tiny"]
        for crop in training[:8]:
            assert any(_inside(loc, boxes, "generator") for loc in index.locate(crop))
        # ...and none of them is a test real.
        assert not {c.tobytes() for c in training} & {c.tobytes() for c in test_reals}


def test_latent_families_fakes_are_the_saved_generators_samples(built) -> None:
    out, _, _ = built
    manifest = _manifest(out)
    for family in ("dcgan", "pggan", "ddpm-tiny"):
        entry = manifest["families"][family]
        model = load_generator(entry["arch"], out / entry["generator"]["weights"],
                               expected_sha256=entry["generator"]["sha256"])
        for split in SPLITS:
            fakes = _read(out / split / family / "1_fake")
            again = generate(model, len(fakes), seed=entry["seeds"][f"{split}-fake"])
            assert np.array_equal(again, fakes)
        assert len({_read(out / s / family / "1_fake")[0].tobytes() for s in SPLITS}) == 3  # own seeds per split


def test_image_to_image_fakes_are_made_from_the_prepared_sources(one_torch_thread) -> None:
    """generate() feeds the super-resolution net Pillow's bilinear x4 downscale of each source crop (captured at
    the net's first layer) and returns its output; the autoencoder gets the crop itself."""
    crops = CropDrawer(split_photos(load_photos())).draw("held_out", 5, seed=3)
    reference = np.array([[np.asarray(Image.fromarray(c).resize((16, 16), Image.BILINEAR))
                           for c in np.moveaxis(crop.astype(np.float32) / 127.5 - 1, -1, 0)] for crop in crops])
    for arch, expected_input in (("sr-bilinear", reference),
                                 ("ae-pixelshuffle", np.moveaxis(crops.astype(np.float32) / 127.5 - 1, -1, 1))):
        torch.manual_seed(0)
        model = build_generator(arch, {"base_width": 4}).eval()
        first_layer = model.get_submodule(model.layer_names()[0])
        seen = []
        first_layer.register_forward_hook(lambda m, i, o, seen=seen: seen.append(i[0].clone()))
        fakes = generate(model, 5, seed=0, sources=crops, batch_size=2)
        np.testing.assert_allclose(torch.cat(seen).numpy(), expected_input, atol=1e-5)
        with torch.no_grad():
            direct = model(torch.from_numpy(expected_input))
        assert fakes.shape == (5, 64, 64, 3) and fakes.dtype == np.uint8
        assert np.abs(fakes.astype(int) - ((direct.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
                      ).max() <= 1
    with pytest.raises(InvalidArgument, match="needs 5 source images"):
        generate(model, 5, seed=0)
    with pytest.raises(InvalidArgument, match="takes no source images"):
        generate(build_generator("dcgan", {"base_width": 4}), 5, seed=0, sources=crops)


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_second_call_is_a_no_op_and_a_damaged_family_alone_is_rebuilt(built, tmp_path: Path) -> None:
    out, _, _ = built
    before = _mtimes(out)
    lines: list[str] = []
    build_forensynth(out, scale="tiny", families=FAMILIES, log=lines.append)
    assert _mtimes(out) == before
    assert lines == [f"{family}: complete in {out}, skipped" for family in FAMILIES]

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    digests = _manifest(copy)["families"]["sr-bilinear"]["files"]
    (copy / "test" / "sr-bilinear" / "1_fake" / "00001.png").unlink()
    lines.clear()
    build_forensynth(copy, scale="tiny", families=FAMILIES, log=lines.append)
    skipped = [line for line in lines if line.endswith("skipped")]
    assert skipped == [f"{family}: complete in {copy}, skipped" for family in FAMILIES if family != "sr-bilinear"]
    assert all(line.startswith("sr-bilinear") for line in lines if line not in skipped)
    assert any(line.startswith("sr-bilinear step") for line in lines)  # retrained
    assert _manifest(copy)["families"]["sr-bilinear"]["files"] == digests  # same seeds, same files

    with pytest.raises(FailedPrecondition, match="holds a build with scale 'tiny'"):
        build_forensynth(copy, scale="cpu", log=lines.append)


def test_the_png_writer_takes_only_64px_rgb_uint8(tmp_path: Path) -> None:
    for bad in (np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64, 3), np.float32), np.zeros((32, 32, 3), np.uint8)):
        with pytest.raises(InvalidArgument, match="uint8"):
            write_png(bad, tmp_path / "x.png")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    write_png(image, tmp_path / "ok.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ok.png")), image)  # lossless


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scale": "huge"}, "unknown scale"), ({"families": ["stylegan"]}, "unknown generator family"),
     ({"counts": {"test": 0}}, "positive int"), ({"counts": {"holdout": 3}}, "unknown split"),
     ({"families": []}, "no family")],
)
def test_bad_arguments_are_refused_before_any_work(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build_forensynth(tmp_path / "out", **{"scale": "tiny", **kwargs})
    assert not (tmp_path / "out").exists()


def test_the_families_and_their_recipes() -> None:
    assert list(RECIPES) == [*FAMILIES, "singan"]  # a build without ``families`` makes all six
    for recipe in RECIPES.values():  # JSON-ready: what a resumed build reads back compares equal
        assert json.loads(json.dumps(recipe.describe())) == recipe.describe()
        assert ("schedules" in recipe.describe()) == (recipe.family == "singan")
    singan = get_recipe("singan")
    assert singan.upsampling == "bilinear resize between scales + 3x3 convolutions (no learned upsampling)"
    assert singan.training_crops["tiny"] >= 2 and singan.training_crops["cpu"] >= singan.training_crops["tiny"]
    assert all(singan.singan_schedule(s).iterations_per_scale == singan.scale(s).iterations for s in SCALES)
    with pytest.raises(InvalidArgument, match="not a single-image family"):
        get_recipe("dcgan").singan_schedule("tiny")


def _direct_samples(model: torch.nn.Module, count: int, seed: int) -> np.ndarray:
    """Samples by a plain forward pass of seeded standard normal latents, scaled to uint8 here."""
    z = torch.randn(count, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x = model(z)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _singan_models(out: Path) -> tuple[list[dict], list[torch.nn.Module]]:
    records = _manifest(out)["families"]["singan"]["generators"]
    return records, [load_generator("singan", out / r["weights"], expected_sha256=r["sha256"]) for r in records]


def test_singan_builds_several_models_each_on_its_own_crop(singan_built) -> None:
    out, lines, seconds = singan_built
    assert seconds < 30, seconds
    recipe = get_recipe("singan")
    n_models = recipe.training_crops["tiny"]
    assert n_models >= 2
    for split in SPLITS:
        assert [p.name for p in (out / split).iterdir()] == ["singan"]
        for label, n in zip(("0_real", "1_fake"), DEFAULT_COUNTS["tiny"][split], strict=True):
            assert sorted(p.name for p in (out / split / "singan" / label).iterdir()) == [f"{i:05d}.png"
                                                                                         for i in range(n)]
    entry = _manifest(out)["families"]["singan"]
    assert "generator" not in entry and len(entry["generators"]) == n_models
    names = [f"singan-{k:02d}" for k in range(n_models)]
    assert sorted(p.name for p in (out / "generators").iterdir()) == sorted(
        [f"{n}.{ext}" for n in names for ext in ("safetensors", "json")] + ["singan-samples.png"])
    crops = CropDrawer(split_photos(load_photos())).draw("generator", n_models, entry["seeds"]["training-crops"])
    records, models = _singan_models(out)
    for k, (record, model, crop) in enumerate(zip(records, models, crops, strict=True)):
        card = json.loads((out / record["card"]).read_text())
        assert record["weights"] == f"generators/{names[k]}.safetensors" and card["name"] == names[k]
        assert _sha256(out / record["weights"]) == card["sha256"] == record["sha256"]
        assert sum(p.numel() for p in model.parameters()) == card["parameters"] == record["parameters"]
        # Model k trained on crop k of the family's seeded draw (the crop's digest in its card).
        crop_digest = hashlib.sha256(crop.tobytes()).hexdigest()
        assert card["training_crop_sha256"] == record["training_crop_sha256"] == crop_digest
        assert card["scale_name"] == "tiny" and card["scale"].startswith(f"tiny scale (tests only): {n_models} models")
        assert card["scale_used"]["iterations"] == card["schedule"]["iterations_per_scale"] == recipe.tiny.iterations
        assert card["config"]["base_width"] == recipe.tiny.base_width and len(card["pyramid"]) == model.num_scales
        assert card["upsampling"] == recipe.upsampling and card["samples_file"] == "singan-samples.png"
        assert card["seed"] == record["seeds"]["training"]
    assert len({c.tobytes() for c in crops}) == n_models  # distinct crops ...
    assert len({r["sha256"] for r in records}) == n_models  # ... distinct models
    assert len({r["seeds"]["train-fake"] for r in records} | {r["seeds"]["training"] for r in records}) == 2 * n_models
    assert sum(line.startswith(f"singan model {k + 1}/{n_models}: singan scale") for line in lines
               for k in range(n_models)) == n_models * models[0].num_scales


def test_singan_fakes_come_round_robin_from_every_model(singan_built) -> None:
    out, _, _ = singan_built
    records, models = _singan_models(out)
    n_models, drew = len(models), set()
    for split in SPLITS:
        fakes = _read(out / split / "singan" / "1_fake")
        for k, (record, model) in enumerate(zip(records, models, strict=True)):
            share = fakes[k::n_models]
            if len(share):
                assert np.array_equal(_direct_samples(model, len(share), record["seeds"][f"{split}-fake"]), share)
                drew.add(k)
        assert not np.array_equal(fakes[0], fakes[1])  # two models, two images
    assert drew == set(range(n_models))
    # The grid: row k holds model k's samples for the grid seed.
    grid = np.asarray(Image.open(out / "generators" / "singan-samples.png"))
    columns = (grid.shape[1] - 1) // 65
    assert columns >= 2 and grid.shape == (n_models * 65 + 1, columns * 65 + 1, 3)
    for k, model in enumerate(models):
        row = _direct_samples(model, columns, 1234)
        for c in range(columns):
            assert np.array_equal(grid[1 + 65 * k:65 * (k + 1), 1 + 65 * c:65 * (c + 1)], row[c])


def test_round_robin_sampling_shares_the_fakes_out_in_turn(one_torch_thread) -> None:
    torch.manual_seed(0)
    models = [build_generator("dcgan", {"base_width": 4}).eval() for _ in range(3)]
    fakes = generate_round_robin(models, 7, seeds=[5, 6, 7], batch_size=2)
    assert fakes.shape == (7, 64, 64, 3) and fakes.dtype == np.uint8
    for k, (model, seed) in enumerate(zip(models, (5, 6, 7), strict=True)):
        assert np.abs(fakes[k::3].astype(int) - _direct_samples(model, len(range(k, 7, 3)), seed)).max() <= 1
    assert np.array_equal(generate_round_robin(models, 1, seeds=[5, 6, 7]), generate(models[0], 1, seed=5))
    with pytest.raises(InvalidArgument, match="one seed per model"):
        generate_round_robin(models, 4, seeds=[1, 2])


def test_singan_resumes_and_a_changed_or_deleted_model_file_rebuilds_it(singan_built, tmp_path: Path) -> None:
    out, _, _ = singan_built
    before = _mtimes(out)
    lines: list[str] = []
    build_forensynth(out, scale="tiny", families=["singan"], log=lines.append)
    assert _mtimes(out) == before and lines == [f"singan: complete in {out}, skipped"]
    entry = _manifest(out)["families"]["singan"]

    def damaged(name: str, damage) -> list[str]:
        copy = tmp_path / name
        shutil.copytree(out, copy)
        damage(copy / "generators")
        (copy / "generators" / "singan-07.safetensors").write_bytes(b"left by an earlier build")
        log: list[str] = []
        build_forensynth(copy, scale="tiny", families=["singan"], log=log.append)
        again = _manifest(copy)["families"]["singan"]
        # Retrained from the same seeds: the same weights, the same images; the stray model file is gone.
        assert [r["sha256"] for r in again["generators"]] == [r["sha256"] for r in entry["generators"]]
        assert again["files"] == entry["files"]
        assert all(_sha256(copy / r["weights"]) == r["sha256"] and (copy / r["card"]).is_file()
                   for r in again["generators"])
        assert not (copy / "generators" / "singan-07.safetensors").exists()
        return log

    def change_weights(folder: Path) -> None:
        data = bytearray((folder / "singan-01.safetensors").read_bytes())
        data[-1] ^= 1
        (folder / "singan-01.safetensors").write_bytes(bytes(data))

    for log in (damaged("changed", change_weights),
                damaged("deleted", lambda folder: (folder / "singan-02.json").unlink())):
        assert not any(line.endswith("skipped") for line in log)
        assert any(line.startswith("singan model 1/") for line in log)  # retrained
