"""genaudit.generators: architectures and canonical layer names, safe safetensors loading and its refusals,
the shipped reference generators (trained, not random)."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save, save_file

from genaudit.errors import IntegrityError, InvalidArgument
from genaudit.generators import (
    ARCHITECTURES,
    build_discriminator,
    build_generator,
    load_generator,
    load_shipped,
    save_generator,
    shipped_generators,
)
from genaudit.generators.loading import expected_tensors
from genaudit.settings import Settings
from genaudit.storage import LocalStore

# Small configs of every registered architecture: one grey, one RGB, several resolutions.
SMALL_CONFIGS = [
    ("dcgan", {"latent_dim": 16, "base_width": 8, "resolution": 32, "out_channels": 1}),
    ("dcgan", {"latent_dim": 8, "base_width": 4, "resolution": 64, "out_channels": 3}),
    ("pggan", {"latent_dim": 16, "base_width": 4, "max_width": 16, "resolution": 32, "out_channels": 3}),
    ("pggan", {"latent_dim": 8, "base_width": 4, "max_width": 8, "resolution": 16, "out_channels": 1,
               "equalized_lr": False}),
]
DCGAN_SMALL = SMALL_CONFIGS[0][1]


def test_every_registered_architecture_is_covered() -> None:
    # Adversarially trained ones here; the others (no discriminator) in test_generators_families.py.
    assert {arch for arch, _ in SMALL_CONFIGS} == {name for name, spec in ARCHITECTURES.items() if spec.discriminator}


@pytest.mark.parametrize(("arch", "config"), SMALL_CONFIGS)
def test_generator_contract(arch: str, config: dict) -> None:
    torch.manual_seed(0)
    model = build_generator(arch, config).eval()
    assert (model.latent_dim, model.out_channels, model.resolution) == (
        config["latent_dim"], config["out_channels"], config["resolution"])
    z = model.sample_latents(5, torch.Generator().manual_seed(3))
    assert z.shape == (5, config["latent_dim"])
    assert torch.equal(z, model.sample_latents(5, torch.Generator().manual_seed(3)))
    names = model.layer_names()
    assert len(names) == len(set(names)) > 4
    fired: list[str] = []
    handles = [model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: fired.append(name))
               for name in names]
    with torch.no_grad():
        images = model(z)
    for h in handles:
        h.remove()
    assert fired == names  # every canonical layer runs once, in the listed order
    assert images.shape == (5, config["out_channels"], config["resolution"], config["resolution"])
    assert images.min() >= -1 and images.max() <= 1
    discriminator = build_discriminator(arch, config)
    assert discriminator(images).shape == (5,)


def test_layer_outputs_are_feature_maps() -> None:
    """The units code counts neurons (channel, y, x) per layer: every hooked output is a 4-D map."""
    model = build_generator("pggan", SMALL_CONFIGS[2][1]).eval()
    shapes = {}
    for name in model.layer_names():
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: shapes.update({name: o.shape}))
    model(model.sample_latents(2))
    assert shapes["block1.dense"] == (2, 16, 4, 4)
    assert shapes["block3.upsample"][2:] == (16, 16)
    assert all(len(s) == 4 for name, s in shapes.items() if name != "latent_norm")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"resolution": 48}, "one of"),
        ({"latent_dim": 0}, ">= 1"),
        ({"base_width": 100_000}, "<= 256"),
        ({"latent_dim": 16.0}, "must be int"),
        ({"latent_dim": True}, "must be int"),
        ({"out_channels": 2}, "one of"),
        ({"width": 8}, "unknown config keys"),
    ],
)
def test_bad_config_values_are_refused(config: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build_generator("dcgan", config)
    path = tmp_path / "g.safetensors"
    save_generator(build_generator("dcgan", DCGAN_SMALL), path, "dcgan", DCGAN_SMALL)
    with pytest.raises(InvalidArgument, match=message):
        load_generator("dcgan", path, config)


def test_unknown_architecture_and_bool_param() -> None:
    with pytest.raises(InvalidArgument, match="unknown generator architecture"):
        build_generator("stylegan9")
    with pytest.raises(InvalidArgument, match="must be bool"):
        build_generator("pggan", {"equalized_lr": 1})


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A DCGAN with non-default weights and batch-norm statistics, saved by save_generator."""
    torch.manual_seed(7)
    model = build_generator("dcgan", DCGAN_SMALL)
    for name, t in model.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            t.uniform_(0.5, 1.5)
    model.eval()
    path = tmp_path_factory.mktemp("gen") / "dcgan.safetensors"
    save_generator(model, path, "dcgan", DCGAN_SMALL)
    return path, model


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(model.sample_latents(6, torch.Generator().manual_seed(11)))


def test_round_trip_path_bytes_and_metadata_config(trained_like) -> None:
    path, model = trained_like
    reference = _outputs(model)
    for loaded in (
        load_generator("dcgan", path, DCGAN_SMALL),
        load_generator("dcgan", str(path)),  # config from the file's metadata
        load_generator("dcgan", path.read_bytes(), expected_sha256=hashlib.sha256(path.read_bytes()).hexdigest()),
    ):
        assert not loaded.training
        assert torch.equal(_outputs(loaded), reference)


def test_saved_files_are_byte_reproducible_and_name_their_architecture(trained_like, tmp_path: Path) -> None:
    path, model = trained_like
    again = tmp_path / "again.safetensors"
    save_generator(model, again, "dcgan", DCGAN_SMALL)
    assert again.read_bytes() == path.read_bytes()
    with pytest.raises(InvalidArgument, match="saved for architecture 'dcgan', not 'pggan'"):
        load_generator("pggan", path)


def test_half_precision_file_loads_into_float32(trained_like, tmp_path: Path) -> None:
    _, model = trained_like
    state = {k: v.to(torch.float16) for k, v in model.state_dict().items() if v.is_floating_point()}
    half = tmp_path / "half.safetensors"
    save_file(state, str(half))
    loaded = load_generator("dcgan", half, DCGAN_SMALL)
    assert next(loaded.parameters()).dtype == torch.float32
    torch.testing.assert_close(_outputs(loaded), _outputs(model), atol=2e-2, rtol=0)


def test_s3_uri_pinned_and_unpinned(trained_like, tmp_path: Path) -> None:
    path, model = trained_like
    store = LocalStore(tmp_path / "store")
    store.put_file("gens/dcgan.safetensors", path)
    settings = Settings(weights_dir=tmp_path / "weights")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    pinned = load_generator("dcgan", "s3://b/gens/dcgan.safetensors", settings=settings, store=store,
                            expected_sha256=sha)
    unpinned = load_generator("dcgan", "s3://b/gens/dcgan.safetensors", settings=settings, store=store)
    assert torch.equal(_outputs(pinned), _outputs(model)) and torch.equal(_outputs(unpinned), _outputs(model))
    assert len(list((tmp_path / "weights").iterdir())) == 1  # the pinned copy is cached by hash
    with pytest.raises(IntegrityError, match="expected"):
        load_generator("dcgan", path, expected_sha256="0" * 64)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def test_missing_and_unexpected_names_are_listed(trained_like) -> None:
    _, model = trained_like
    state = _state(model)
    del state["block2.conv.weight"]
    state["block9.conv.weight"] = torch.zeros(3)
    with pytest.raises(InvalidArgument, match=r"missing tensors \['block2.conv.weight'\], unexpected tensors "
                                              r"\['block9.conv.weight'\]"):
        load_generator("dcgan", save(state), DCGAN_SMALL)


def test_wrong_shape_and_wrong_config_are_refused(trained_like) -> None:
    _, model = trained_like
    state = _state(model)
    state["to_rgb.conv.weight"] = torch.zeros(8, 1, 3, 3)
    with pytest.raises(InvalidArgument, match=r"to_rgb.conv.weight: file \[8, 1, 3, 3\], expected \[8, 1, 4, 4\]"):
        load_generator("dcgan", save(state), DCGAN_SMALL)
    with pytest.raises(InvalidArgument, match="wrong shapes"):  # right file, other latent size
        load_generator("dcgan", save(_state(model)), {**DCGAN_SMALL, "latent_dim": 17})


def test_integer_and_double_dtypes_are_refused(trained_like) -> None:
    _, model = trained_like
    for dtype, name in ((torch.int64, "I64"), (torch.float64, "F64")):
        state = _state(model)
        state["block1.norm.running_mean"] = state["block1.norm.running_mean"].to(dtype)
        with pytest.raises(InvalidArgument, match=f"dtype {name} is not allowed"):
            load_generator("dcgan", save(state), DCGAN_SMALL)
    state = {**_state(model), "block1.norm.num_batches_tracked": torch.tensor(3)}  # torch's own int buffer
    with pytest.raises(InvalidArgument, match="num_batches_tracked"):
        load_generator("dcgan", save(state), DCGAN_SMALL)


def _crafted(header: dict, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def test_oversize_header_claims_are_refused_before_loading() -> None:
    huge = {"block1.conv.weight": {"dtype": "F32", "shape": [2**31, 4], "data_offsets": [0, 2**33 * 4]}}
    with pytest.raises(InvalidArgument, match=r"declares 34359738368 bytes of tensors, over the cap"):
        load_generator("dcgan", _crafted(huge, b"\0" * 64), DCGAN_SMALL)
    # Within the cap but larger than the file: refused from the header alone too.
    claim = {"block1.conv.weight": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}
    with pytest.raises(InvalidArgument, match="declares 4000000 bytes of tensor data but the file holds 64"):
        load_generator("dcgan", _crafted(claim, b"\0" * 64), DCGAN_SMALL)
    # Offsets that disagree with the shape, overlapping tensors, a header length beyond the file.
    lying = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}
    with pytest.raises(InvalidArgument, match="needs 16 bytes"):
        load_generator("dcgan", _crafted(lying, b"\0" * 8), DCGAN_SMALL)
    overlap = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    with pytest.raises(InvalidArgument, match="overlapping or gapped"):
        load_generator("dcgan", _crafted(overlap, b"\0" * 12), DCGAN_SMALL)
    with pytest.raises(InvalidArgument, match="does not fit"):
        load_generator("dcgan", struct.pack("<Q", 10_000) + b"{}", DCGAN_SMALL)
    with pytest.raises(InvalidArgument, match="cap"):
        load_generator("dcgan", struct.pack("<Q", 2**62) + b"{}", DCGAN_SMALL)


def test_pickle_and_torch_files_are_refused(trained_like, tmp_path: Path) -> None:
    _, model = trained_like
    pt = tmp_path / "g.pt"
    torch.save(model.state_dict(), pt)  # zip container with a pickle inside
    legacy = tmp_path / "g.pth"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    raw_pickle = tmp_path / "g.pkl"
    raw_pickle.write_bytes(pickle.dumps({k: v.numpy() for k, v in _state(model).items()}))
    for path in (pt, legacy, raw_pickle):
        with pytest.raises(InvalidArgument, match="not a safetensors file"):
            load_generator("dcgan", path, DCGAN_SMALL)
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_generator("dcgan", tmp_path / "absent.safetensors", DCGAN_SMALL)


def test_registry_import_stays_torch_free() -> None:
    code = ("import sys, genaudit.generators as g; g.ARCHITECTURES['dcgan'].validate_config({'resolution': 32}); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- shipped reference generators -------------------------------------------------------------------------


def _fashion_statistics(images: torch.Tensor) -> tuple[float, float, float]:
    """(mean pixel, mean of the 2-px padding border, mean per-pixel std across samples) in [-1, 1]."""
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    return images.mean().item(), images[..., border].mean().item(), images.std(dim=0).mean().item()


def test_shipped_cards_match_their_files() -> None:
    cards = shipped_generators()
    assert set(cards) == {"dcgan-fashion", "pggan-photos", "singan-chelsea"}
    for card in cards.values():
        path = Path(__file__).parents[2] / "services/genaudit/generators/weights" / card["weights_file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == card["sha256"]
        assert path.stat().st_size < 3 * 1024 * 1024
        model = load_shipped(card["name"])
        assert sum(p.numel() for p in model.parameters()) == card["parameters"]
        assert set(expected_tensors(model)) == set(json.loads(path.read_bytes()[8:8 + struct.unpack(
            "<Q", path.read_bytes()[:8])[0]])) - {"__metadata__"}


def test_shipped_fashion_generator_draws_fashion_mnist_statistics() -> None:
    """Fashion-MNIST padded to 32 px (all 70,000): mean pixel -0.56, border exactly -1 (black), per-pixel std
    across images 0.42; the shipped net: -0.59, -0.998, 0.39. A fresh DCGAN gives mean ~0.05, a grey border
    and a std across samples of 0.001; a collapsed generator would also fail the std check."""
    trained = load_shipped("dcgan-fashion")
    fresh = build_generator("dcgan", shipped_generators()["dcgan-fashion"]["config"]).eval()
    z = trained.sample_latents(256, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, border, spread = _fashion_statistics(trained(z))
        fresh_mean, fresh_border, _ = _fashion_statistics(fresh(z))
    assert -0.75 < mean < -0.4, mean
    assert border < -0.9, border
    assert spread > 0.3, spread
    assert fresh_mean > -0.2 and fresh_border > -0.5  # the same checks fail for an untrained net


def _photo_statistics(images: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(mean of each RGB channel, std across images of their mean brightness)."""
    return images.mean(dim=(0, 2, 3)), images.mean(dim=(1, 2, 3)).std().item()


def test_shipped_photo_generator_moved_towards_photo_statistics() -> None:
    """The CPU-scale PGGAN draws no objects (blotchy textures, see docs/examples/generators), but its colours
    and the spread of brightness across images follow the photo crops: measured channel means -0.09/-0.22/-0.27
    (real) vs -0.21/-0.39/-0.39 (shipped) vs -0.04/-0.71/+0.67 (fresh), brightness spread 0.37 / 0.41 / 0.02."""
    from genaudit.generators.recipes import photo_crops_64px

    real_means, real_spread = _photo_statistics(photo_crops_64px(Path("unused"), seed=1, count=512))
    trained = load_shipped("pggan-photos")
    torch.manual_seed(0)
    fresh = build_generator("pggan", shipped_generators()["pggan-photos"]["config"]).eval()
    z = trained.sample_latents(256, torch.Generator().manual_seed(0))
    with torch.no_grad():
        means, spread = _photo_statistics(trained(z))
        fresh_means, fresh_spread = _photo_statistics(fresh(z))
    assert (means - real_means).norm() < 0.35, (means, real_means)
    assert (fresh_means - real_means).norm() > 0.7  # the same check fails for an untrained net
    assert 0.5 * real_spread < spread < 2 * real_spread and fresh_spread < 0.5 * real_spread


def test_samples_are_seeded_batch_independent_and_the_generator_outputs() -> None:
    import numpy as np

    from genaudit.generators import sample_images, to_uint8

    torch.manual_seed(0)
    generator = build_generator("pggan", SMALL_CONFIGS[2][1]).eval()
    whole = np.stack([np.asarray(im) for im in sample_images(generator, 5, seed=7, batch_size=5)])
    batched = np.stack([np.asarray(im) for im in sample_images(generator, 5, seed=7, batch_size=2)])
    # the latents are the same whatever the batch size; CPU convolutions pick kernels by batch size, so an
    # output may round to the neighbouring 8-bit level, no further
    difference = np.abs(whole.astype(np.int16) - batched.astype(np.int16))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert whole.shape == (5, 32, 32, 3) and whole.dtype == np.uint8
    assert not np.array_equal(np.asarray(next(sample_images(generator, 1, seed=8))), whole[0])

    # the generator's own output for the seed's latents, converted here directly
    z = torch.randn(5, generator.latent_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = ((generator(z).clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).to(torch.uint8)
    assert np.array_equal(whole, expected.numpy())

    grey = to_uint8(torch.tensor([-1.0, -0.999, 0.0, 1.0, 2.0]).view(1, 1, 1, 5))
    assert grey.shape == (1, 1, 5, 1) and grey.ravel().tolist() == [0, 0, 128, 255, 255]
