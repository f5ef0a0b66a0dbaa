"""VGG16-fc2 and FID Inception: the loading code exercised with weights we make (the official files are not
available offline), verification against pinned hashes, refusal without weights, s3:// fetching."""

from __future__ import annotations

import hashlib
import pathlib
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import save_file

from genaudit.errors import FailedPrecondition, IntegrityError, InvalidArgument
from genaudit.features import extract_features, get_extractor
from genaudit.features.networks import FIDInceptionA, FIDInceptionE, fid_inception_v3, max_pool3x3
from genaudit.features.spaces import SPACES
from genaudit.features.weights import load_state_dict, verify_sha256
from genaudit.settings import Settings
from genaudit.storage import LocalStore


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> tuple[Path, str, torchvision.models.VGG]:
    torch.manual_seed(0)
    net = torchvision.models.vgg16(weights=None).eval()
    path = tmp_path_factory.mktemp("vgg") / "our-vgg16.safetensors"
    save_file(net.state_dict(), str(path))
    return path, _sha256(path), net


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (96 + 8 * i, 128, 3), dtype=np.uint8)) for i in range(2)]


def _settings(tmp_path: Path) -> Settings:
    return Settings(weights_dir=tmp_path / "weights", store_dir=tmp_path / "store")


def _hooked_output(net: torch.nn.Module, layer: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().clone()))
    with torch.no_grad():
        net(batch)
    handle.remove()
    return captured[0].flatten(1)


def test_vgg16_fc2_with_our_weights_equals_the_full_network_fc2(vgg_file, images, tmp_path):
    path, sha, net = vgg_file
    extractor = get_extractor("vgg16-fc2", "cpu", str(path), sha, settings=_settings(tmp_path))
    assert (extractor.dim, extractor.input_size, extractor.weights_sha256) == (4096, 224, sha)
    features = extract_features(extractor, images[:1], batch_size=1)
    assert features.shape == (1, 4096) and features.dtype == np.float32
    # Independent reference: the complete torchvision network run end to end, fc2's ReLU read by a hook.
    expected = _hooked_output(net, net.classifier[4], extractor.preprocess(images[0])[None])
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert (features >= 0).all() and (features > 0).any()


def test_fid_inception_pool3_with_our_weights_equals_the_full_network_pool(inception_file, images, tmp_path):
    path, sha, net = inception_file
    extractor = get_extractor("inception-v3-pool3", "cpu", str(path), sha, settings=_settings(tmp_path))
    assert (extractor.dim, extractor.input_size) == (2048, 299)
    features = extract_features(extractor, images, batch_size=2)
    assert features.shape == (2, 2048)
    batch = torch.stack([extractor.preprocess(img) for img in images])
    expected = _hooked_output(net, net.avgpool, batch)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_fid_inception_has_the_layout_of_the_published_file():
    state = fid_inception_v3().state_dict()
    # pt_inception-2015-12-05-6726825d.pth holds 566 tensors, a 1008-class fc and no auxiliary classifier.
    assert len(state) == 566
    assert tuple(state["fc.weight"].shape) == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in state)


def test_fid_blocks_pool_like_tensorflow():
    torch.manual_seed(2)
    fid_block, tv_block = FIDInceptionA(192, pool_features=32).eval(), torchvision.models.inception.InceptionA(
        192, pool_features=32
    ).eval()
    tv_block.load_state_dict(fid_block.state_dict())
    x = torch.rand(1, 192, 9, 9) + 0.5
    with torch.no_grad():
        ours, theirs = fid_block(x), tv_block(x)
    # Only the pool branch (last 32 channels) changes, and only where the 3x3 window hits the padding.
    assert torch.equal(ours[:, :-32], theirs[:, :-32])
    assert torch.allclose(ours[:, -32:, 1:-1, 1:-1], theirs[:, -32:, 1:-1, 1:-1], atol=1e-6)
    assert not torch.allclose(ours[:, -32:, 0, :], theirs[:, -32:, 0, :], atol=1e-4)

    last = FIDInceptionE(2048, pool=max_pool3x3).eval()
    x = torch.randn(1, 2048, 5, 5)
    # Reference max pool computed with unfold over a -inf padded input.
    windows = F.unfold(F.pad(x, (1, 1, 1, 1), value=float("-inf")), kernel_size=3).view(1, 2048, 9, 25)
    reference_pool = windows.max(dim=2).values.view(1, 2048, 5, 5)
    with torch.no_grad():
        assert torch.allclose(last(x)[:, -192:], last.branch_pool(reference_pool), atol=1e-5)


def test_refused_without_weights(tmp_path):
    settings = _settings(tmp_path)
    for space, filename in (("vgg16-fc2", "vgg16-397923af.pth"), ("inception-v3-pool3", "pt_inception-2015-12-05")):
        with pytest.raises(FailedPrecondition) as info:
            get_extractor(space, "cpu", settings=settings)
        message = info.value.message
        assert filename in message and "weights=" in message and "GENAUDIT_WEIGHTS_DIR" in message
        assert SPACES[space].weights.sha256 in message
    with pytest.raises(FailedPrecondition, match="does not exist"):
        get_extractor("vgg16-fc2", "cpu", str(tmp_path / "nowhere.pth"), settings=settings)


def test_official_hash_is_enforced_and_tampering_refused(inception_file, tmp_path):
    path, sha, _ = inception_file
    settings = _settings(tmp_path)
    with pytest.raises(IntegrityError, match=SPACES["inception-v3-pool3"].weights.sha256):
        get_extractor("inception-v3-pool3", "cpu", str(path), settings=settings)  # ours is not the official file
    tampered = tmp_path / "tampered.pth"
    shutil.copyfile(path, tampered)
    with open(tampered, "r+b") as f:
        f.seek(tampered.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(IntegrityError):
        get_extractor("inception-v3-pool3", "cpu", str(tampered), sha, settings=settings)
    # A published 8-hex prefix is checked the way torchvision checks its file names.
    assert verify_sha256(path, sha[:8]) == sha
    with pytest.raises(IntegrityError):
        verify_sha256(tampered, sha[:8])
    with pytest.raises(InvalidArgument, match="hex"):
        get_extractor("inception-v3-pool3", "cpu", str(path), "not-a-hash", settings=settings)


def test_weights_dir_holds_the_official_file_name(inception_file, tmp_path):
    path, sha, _ = inception_file
    settings = _settings(tmp_path)
    settings.weights_dir.mkdir(parents=True)
    shutil.copyfile(path, settings.weights_dir / SPACES["inception-v3-pool3"].weights.filename)
    extractor = get_extractor("inception-v3-pool3", "cpu", expected_sha256=sha, settings=settings)
    assert extractor.weights_sha256 == sha


def test_weights_of_another_architecture_are_refused(inception_file, tmp_path):
    path, sha, _ = inception_file
    with pytest.raises(InvalidArgument, match="do not fit the 'vgg16-fc2' architecture"):
        get_extractor("vgg16-fc2", "cpu", str(path), sha, settings=_settings(tmp_path))


def test_s3_uri_fetched_through_the_object_store_and_verified(inception_file, tmp_path):
    path, sha, _ = inception_file
    settings = _settings(tmp_path)
    store = LocalStore(tmp_path / "bucket")
    store.put_file("models/fid.pth", path)
    uri = "s3://genaudit-models/models/fid.pth"
    extractor = get_extractor("inception-v3-pool3", "cpu", uri, sha, settings=settings, store=store)
    assert extractor.weights_sha256 == sha
    copies = list(settings.weights_dir.iterdir())
    assert [c.name for c in copies] == [f"sha256-{sha[:16]}-fid.pth"] and _sha256(copies[0]) == sha

    # A tampered object is refused and leaves nothing behind in the weights directory.
    other = _settings(tmp_path / "second")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    store.put_bytes("models/fid.pth", bytes(data))
    with pytest.raises(IntegrityError):
        get_extractor("inception-v3-pool3", "cpu", uri, sha, settings=other, store=store)
    assert not other.weights_dir.exists() or list(other.weights_dir.iterdir()) == []

    with pytest.raises(FailedPrecondition, match="not found"):
        get_extractor("inception-v3-pool3", "cpu", "s3://b/missing.pth", sha, settings=other, store=store)
    with pytest.raises(FailedPrecondition, match="GENAUDIT_S3_ENDPOINT"):
        get_extractor("inception-v3-pool3", "cpu", "s3://b/models/x.pth", "ab" * 32, settings=other)
    with pytest.raises(InvalidArgument, match="s3://bucket/key"):
        get_extractor("inception-v3-pool3", "cpu", "s3://only-bucket", sha, settings=other, store=store)


class _TouchOnLoad:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_zip_format_state_dicts_load(tmp_path):
    state = {"a.weight": torch.arange(6.0).view(2, 3), "a.bias": torch.tensor([1, 2])}
    torch.save(state, tmp_path / "zip.pth")
    loaded = load_state_dict(tmp_path / "zip.pth")
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_pickled_code_in_a_weights_file_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": _TouchOnLoad(marker)}, evil)
    with pytest.raises(InvalidArgument, match="not a readable state dict"):
        load_state_dict(evil)
    assert not marker.exists()
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"w": [1, 2]}, f, protocol=2)
    with pytest.raises(InvalidArgument):
        load_state_dict(tmp_path / "plain.pkl")
