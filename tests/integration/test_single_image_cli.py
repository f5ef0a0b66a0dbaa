"""``genaudit single-image train`` and ``audit`` end to end on the embedded default: the CLI runs the very jobs the
workers run, so what it writes must be what the library computes from the weights it wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from genaudit.cli import app
from genaudit.data.offline_photos import load_photos
from genaudit.generators import load_generator
from genaudit.singleimage.audit import reconstruct
from genaudit.singleimage.training_image import training_tensor


def _summaries(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.rglob("summary.json"))]


def test_train_then_audit_from_the_command_line(tmp_path: Path) -> None:
    photo = dict(load_photos())["coffee"].crop((200, 100, 264, 164))
    image = tmp_path / "coffee.png"
    photo.save(image)
    out = tmp_path / "store"
    result = CliRunner().invoke(app, ["single-image", "train", str(image), "--out", str(out), "--max-side", "24",
                                      "--iterations", "10", "--n-samples", "3"])
    assert result.exit_code == 0, result.output
    assert "SIFID mean" in result.output and "samples flagged as copies" in result.output

    cards = [json.loads(p.read_text()) for p in out.rglob("model.json")]
    assert len(cards) == 1 and cards[0]["arch"] == "singan" and cards[0]["image"]["height"] == 24
    weights = next(out.rglob("model.safetensors"))
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == cards[0]["sha256"]
    audit = next(s for s in _summaries(out) if "audit" in s)["audit"]
    model = load_generator("singan", weights, None, "cpu")
    expected = training_tensor(photo, 24)
    rmse = float((reconstruct(model) - expected).pow(2).mean().sqrt())
    assert abs(audit["reconstruction"]["rmse"] - rmse) < 1e-6

    # the same weights audited on their own: the same numbers (seeded)
    again = tmp_path / "again"
    result = CliRunner().invoke(app, ["single-image", "audit", str(image), "--weights", str(weights), "--arch",
                                      "singan", "--out", str(again), "--n-samples", "3"])
    assert result.exit_code == 0, result.output
    repeated = next(s for s in _summaries(again) if "audit" in s)["audit"]
    assert repeated["sifid"] == audit["sifid"] and repeated["copies"] == audit["copies"]
    assert repeated["reconstruction"] == audit["reconstruction"]


def test_cli_refuses_conflicting_generator_options(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    dict(load_photos())["coffee"].crop((0, 0, 32, 32)).save(image)
    result = CliRunner().invoke(app, ["single-image", "audit", str(image), "--out", str(tmp_path / "s")])
    assert result.exit_code != 0 and "exactly one of --weights" in result.output
    result = CliRunner().invoke(app, ["single-image", "train", str(image), "--arch", "dcgan", "--out",
                                      str(tmp_path / "s"), "--iterations", "1"])
    assert result.exit_code != 0 and "arch" in result.output
