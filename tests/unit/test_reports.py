"""genaudit.reports on real metric computations over small random feature sets."""

from __future__ import annotations

import base64
import csv
import io
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.metrics import fid, kid, knn_radii, prdc, rarity, realism
from genaudit.reports import (
    GeneratedSetResult,
    MetricsAudit,
    generated_set_from_rarity,
    per_image_table,
    rarity_histograms_png,
    render_metrics_report,
    shared_bins,
    write_csv,
)
from genaudit.reports.thumbnails import make_thumbnail

K = 3
HOSTILE_NAME = '<script>alert("x")</script> & co'


def _features(seed: int, n: int, shift: float, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, scale, size=(n, 8)).astype(np.float32)


def _set(name: str, real: np.ndarray, fake: np.ndarray, keys: list[str], radii: np.ndarray) -> GeneratedSetResult:
    scored = rarity(real, fake, K, real_radii=radii, device="cpu")
    pr = prdc(real, fake, 5, device="cpu")
    kid_mean, kid_std = kid(real, fake, subsets=5, subset_size=20, device="cpu")
    summary = {"frechet_distance": fid(real, fake, device="cpu"), "kid_mean": kid_mean, "kid_std": kid_std,
               "precision": pr.precision, "recall": pr.recall, "density": pr.density, "coverage": pr.coverage}
    return generated_set_from_rarity(name, keys, scored, realism(real, fake, K, real_radii=radii, device="cpu"),
                                     summary)


@pytest.fixture(scope="module")
def audit() -> MetricsAudit:
    real = _features(0, 60, 0.0)
    radii = knn_radii(real, K, device="cpu")
    close = _features(1, 50, 0.0)  # mostly inside the real manifold
    wide = _features(2, 40, 0.0, scale=1.8)  # more spread: rarer, more often outside
    return MetricsAudit(
        feature_space="efficientnet-lite0",
        k=K,
        real_name="real & <ref>",
        real_image_keys=[f"real/{i:03d}.png" for i in range(60)],
        generated=[
            _set(HOSTILE_NAME, real, close, [f"close/{i:03d}.png" for i in range(50)], radii),
            _set("wide", real, wide, [f"wide/{i:03d}.png" for i in range(40)], radii),
        ],
    )


def _png(value: int, size: tuple[int, int] = (28, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, 255 - value, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _loader(broken: set[str]):
    def load_image(key: str) -> bytes:
        if key in broken:
            return b"\x89PNG\r\n\x1a\n not really a png"
        return _png(sum(key.encode()) % 256)

    return load_image


class _ReportParser(HTMLParser):
    """Collects gallery items per kind, image sources, placeholders and the metrics table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: Counter[str] = Counter()
        self.images: list[dict[str, str]] = []
        self.placeholders: list[str] = []
        self.header_cells: list[str] = []
        self.body_rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_thead = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "li" and "pair" in classes:
            self.pairs[next(c for c in classes if c != "pair")] += 1
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "div" and "placeholder" in classes:
            self.placeholders.append(" ".join(classes))
        elif tag == "thead":
            self._in_thead = True
        elif tag == "tr" and not self._in_thead:
            self.body_rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_thead = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.header_cells if self._in_thead else self.body_rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _ReportParser:
    parser = _ReportParser()
    parser.feed(html)
    return parser


def test_per_image_table_matches_arrays(audit):
    rows = per_image_table(audit)
    assert len(rows) == sum(g.n_images for g in audit.generated)
    position = 0
    for result in audit.generated:
        for j in range(result.n_images):
            row = rows[position]
            position += 1
            assert (row["set"], row["image_key"]) == (result.name, result.image_keys[j])
            assert row["in_manifold"] == bool(result.in_manifold[j])
            assert row["realism"] == result.realism[j]
            if result.in_manifold[j]:
                assert row["rarity"] == result.rarity[j]
                assert row["nearest_real_key"] == audit.real_image_keys[result.nearest_real_index[j]]
            else:
                assert row["rarity"] is None and row["nearest_real_key"] is None
    # Both states occur, so both branches above were exercised.
    assert {r["in_manifold"] for r in rows} == {True, False}


def test_rarity_in_table_matches_float64_brute_force(audit):
    # Independent reference: rarity from a dense float64 distance matrix.
    real = _features(0, 60, 0.0).astype(np.float64)
    wide = _features(2, 40, 0.0, scale=1.8).astype(np.float64)
    real_d = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    np.fill_diagonal(real_d, np.inf)
    radii = np.sort(real_d, axis=1)[:, K - 1]
    d = np.sqrt(((wide[:, None] - real[None]) ** 2).sum(-1))
    expected = np.where(d < radii[None], radii[None], np.inf).min(axis=1)
    rows = [r for r in per_image_table(audit) if r["set"] == "wide"]
    got = np.array([np.inf if r["rarity"] is None else r["rarity"] for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_write_csv_round_trips(audit):
    rows = per_image_table(audit)
    stream = io.StringIO()
    write_csv(rows, stream)
    parsed = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert len(parsed) == len(rows)
    for row, back in zip(rows, parsed, strict=True):
        assert back["set"] == row["set"] and back["image_key"] == row["image_key"]
        assert back["in_manifold"] == ("true" if row["in_manifold"] else "false")
        assert float(back["realism"]) == row["realism"]
        if row["rarity"] is None:
            assert back["rarity"] == "" and back["nearest_real_key"] == ""
        else:
            assert float(back["rarity"]) == row["rarity"]
            assert back["nearest_real_key"] == row["nearest_real_key"]


def test_histograms_share_bins_spanning_every_set(audit):
    edges = shared_bins(audit, 20)
    assert edges.shape == (21,) and np.all(np.diff(edges) > 0)
    all_scored = np.concatenate([g.scored_rarity for g in audit.generated])
    assert edges[0] == all_scored.min() and edges[-1] == all_scored.max()
    # Two sets with disjoint score ranges: the bins span both, so the shift between them shows.
    low = GeneratedSetResult("low", ["a", "b", "c"], np.array([1.0, 2.0, np.nan]), np.array([True, True, False]),
                             np.array([0, 1, -1]), np.ones(3))
    high = GeneratedSetResult("high", ["d", "e"], np.array([3.0, 5.0]), np.array([True, True]), np.array([0, 1]),
                              np.ones(2))
    disjoint = MetricsAudit("efficientnet-lite0", K, "real", ["r0", "r1"], [low, high])
    np.testing.assert_array_equal(shared_bins(disjoint, 4), [1.0, 2.0, 3.0, 4.0, 5.0])
    counts = [np.histogram(g.scored_rarity, bins=edges)[0] for g in audit.generated]
    assert [c.sum() for c in counts] == [int(g.in_manifold.sum()) for g in audit.generated]

    png = rarity_histograms_png(audit, 20, dpi=50)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.width == pytest.approx(2 * 4.0 * 50, abs=2)  # two panels side by side


def test_report_galleries_escaping_and_embedded_pngs(audit):
    broken = {"real/007.png", audit.generated[1].image_keys[0]}
    html = render_metrics_report(audit, _loader(broken), thumb_px=48)
    parsed = _parse(html)
    expected = Counter()
    for g in audit.generated:
        inside, outside = int(g.in_manifold.sum()), int((~g.in_manifold).sum())
        expected["rarest"] += min(16, inside)
        expected["common"] += min(16, inside)
        expected["outside"] += min(16, outside)
    assert parsed.pairs == expected

    # Text is escaped: the hostile set name never appears as markup.
    assert "<script>" not in html and "&lt;script&gt;" in html and "real &amp; &lt;ref&gt;" in html

    # Every <img> is an embedded PNG that PIL opens; thumbnails have thumb_px on their longer side.
    assert "http" not in " ".join(img["src"] for img in parsed.images)
    thumbnails = 0
    for img in parsed.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        picture = Image.open(io.BytesIO(base64.b64decode(img["src"][len(prefix):], validate=True)))
        picture.load()
        if "histogram" not in img.get("class", ""):
            assert max(picture.size) == 48
            thumbnails += 1

    # Placeholders: one per shown occurrence of a broken key, one "no real ball" per out-of-manifold item.
    shown_broken = 0
    for g in audit.generated:
        in_idx = np.flatnonzero(g.in_manifold)
        shown = list(in_idx[np.argsort(-g.rarity[in_idx], kind="stable")][:16])
        shown += list(in_idx[np.argsort(g.rarity[in_idx], kind="stable")][:16])
        shown += list(np.flatnonzero(~g.in_manifold)[:16])
        for i in shown:
            shown_broken += g.image_keys[i] in broken
            nearest = g.nearest_real_index[i]
            shown_broken += nearest >= 0 and audit.real_image_keys[nearest] in broken
    assert Counter(parsed.placeholders) == Counter(
        {"placeholder failed": shown_broken, "placeholder": expected["outside"]}
    )
    assert shown_broken > 0  # the broken keys were really on show
    assert thumbnails == 2 * sum(expected.values()) - shown_broken - expected["outside"]


def test_report_metrics_table_names_the_space(audit):
    parsed = _parse(render_metrics_report(audit, _loader(set()), thumb_px=32))
    assert "Fréchet distance (efficientnet-lite0)" in parsed.header_cells
    assert "FID" not in parsed.header_cells
    for result, row in zip(audit.generated, parsed.body_rows, strict=True):
        cells = dict(zip(parsed.header_cells, row, strict=True))
        assert cells["Set"] == result.name
        assert cells["Mean rarity"] == f"{np.nanmean(result.rarity):.4g}"
        assert cells["Median rarity"] == f"{np.nanmedian(result.rarity):.4g}"
        assert cells["In manifold"] == f"{100 * np.mean(~np.isnan(result.rarity)):.1f}%"
        assert cells["Precision"] == f"{result.summary['precision']:.3g}"

    inception = MetricsAudit("inception-v3-pool3", K, "real", audit.real_image_keys, audit.generated)
    assert "FID" in _parse(render_metrics_report(inception, _loader(set()), thumb_px=32)).header_cells


def test_report_renders_when_everything_is_outside_the_manifold():
    real = _features(3, 30, 0.0)
    far = _features(4, 20, 50.0)  # nowhere near any real ball
    radii = knn_radii(real, K, device="cpu")
    scored = rarity(real, far, K, real_radii=radii, device="cpu")
    assert not scored.in_manifold.any()
    result = generated_set_from_rarity("far", [f"far/{i}" for i in range(20)], scored,
                                       realism(real, far, K, real_radii=radii, device="cpu"))
    audit = MetricsAudit("efficientnet-lite0", K, "real", [f"real/{i}" for i in range(30)], [result])
    assert per_image_table(audit)[0]["rarity"] is None
    edges = shared_bins(audit, 10)
    assert edges[0] == -0.5 and edges[-1] == 0.5
    Image.open(io.BytesIO(rarity_histograms_png(audit))).load()
    html = render_metrics_report(audit, _loader(set()), thumb_px=32)
    parsed = _parse(html)
    assert parsed.pairs == Counter({"outside": 16})
    assert html.count('<p class="empty">none</p>') == 2  # rarest and most common galleries are empty
    assert parsed.body_rows[0][-3:] == ["—", "—", "0.0%"]  # mean, median rarity; in-manifold share
    assert parsed.body_rows[0][2] == "—"  # no Fréchet distance given


def test_thumbnails_enlarge_small_images_with_visible_pixels():
    checker = Image.fromarray((np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)).convert("RGB")
    big = np.asarray(make_thumbnail(checker, 96))
    assert big.shape == (96, 96, 3) and set(np.unique(big)) == {0, 255}  # NEAREST: no blur
    small = make_thumbnail(Image.new("RGB", (400, 200)), 96)
    assert small.size == (96, 48)


def test_result_validation():
    with pytest.raises(InvalidArgument, match="NaN exactly outside"):
        GeneratedSetResult("s", ["a", "b"], np.array([1.0, 2.0]), np.array([True, False]), np.array([0, -1]),
                           np.ones(2))
    with pytest.raises(InvalidArgument, match="shape"):
        GeneratedSetResult("s", ["a"], np.array([1.0, 2.0]), np.array([True, True]), np.array([0, 0]), np.ones(2))
    ok = GeneratedSetResult("s", ["a"], np.array([1.0]), np.array([True]), np.array([4]), np.ones(1))
    with pytest.raises(InvalidArgument, match="beyond"):
        MetricsAudit("efficientnet-lite0", 3, "real", ["r0", "r1"], [ok])
    with pytest.raises(InvalidArgument, match="unique"):
        MetricsAudit("efficientnet-lite0", 3, "real", [f"r{i}" for i in range(5)], [ok, ok])


def test_reports_do_not_import_torch():
    code = "import sys, genaudit.reports; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
