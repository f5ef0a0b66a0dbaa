"""Argument checks of ``genaudit forensics`` that need no build."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from genaudit.cli import app


def test_eval_refuses_seeds_that_are_not_integers(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["forensics", "eval", "--build", str(tmp_path), "--card", str(tmp_path / "c.json"),
                                      "--out", str(tmp_path / "out"), "--seeds", "0,one", "--threads", "1"])
    assert result.exit_code == 2
    assert "seeds must be comma-separated integers, got '0,one'" in result.output
    assert not (tmp_path / "out").exists()  # refused before any work
