"""``genaudit audit --detect`` end to end on the embedded default, with the shipped detector.

The detection numbers are checked against the shipped Detector called directly on the same files and scikit-learn's
AP; the shipped detector must also tell samples of the shipped photo generator from real crops it never saw (the
generator's weights were trained apart from the detector's ForenSynth build).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from genaudit.cli import app
from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.forensics.detector import Detector
from genaudit.generators import load_shipped, sample_images

COUNT = 24


def _write(images, folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for name, image in images:
        paths.append(folder / f"{name}.png")
        image.save(paths[-1])
    return paths


def test_audit_with_detection_matches_the_detector_called_directly(tmp_path: Path) -> None:
    real = _write(random_crops(load_photos(), COUNT, size=64, seed=4242), tmp_path / "real")
    generator = load_shipped("pggan-photos").eval()
    fake = _write(((f"s{i:03d}", im) for i, im in enumerate(sample_images(generator, COUNT, seed=7))),
                  tmp_path / "pggan")
    out = tmp_path / "store"

    result = CliRunner().invoke(app, ["audit", str(tmp_path / "real"), str(tmp_path / "pggan"), "--out", str(out),
                                      "--detect", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    detector = Detector.load_default()
    assert detector.version in result.output

    summaries = [json.loads(p.read_text()) for p in out.rglob("summary.json")]
    detect = next(s for s in summaries if "model" in s and "datasets" in s)
    assert detect["model"]["version"] == detector.version
    scores = detector.probabilities([Image.open(p) for p in real + fake])
    labels = np.r_[np.zeros(COUNT), np.ones(COUNT)]
    expected_ap = average_precision_score(labels, scores)
    (entry,) = detect["evaluation"]["generated"]
    assert abs(entry["metrics"]["ap"] - expected_ap) < 1e-9
    assert expected_ap > 0.9
    flagged = {d["name"]: d["labels"]["generated"] for d in detect["datasets"]}
    assert flagged == {"real": int((scores[:COUNT] >= detector.threshold).sum()),
                       "pggan": int((scores[COUNT:] >= detector.threshold).sum())}
