"""Tests for mammo_utils.datasets.figures: save_figure and the data-notebook figures (class balance, image grid,
intensity histograms, standardization grid and steps).

The images are small synthetic phantoms written to a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from _phantoms import synthetic_phantom
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from PIL import Image

from mammo_utils.datasets import figures as plots
from mammo_utils.datasets.schema import make_manifest
from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.mammogram import Mammogram
from mammo_utils.imaging.standardize import standardize

DENSITIES = [1, 1, 2, 3, 3, None]
PATHOLOGIES = ["benign", "malignant", "benign", "malignant", None, "benign"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def synthetic_manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Six synthetic phantoms (240×160 PNG) of five patients, densities 1, 1, 2, 3, 3 and one unlabelled."""
    folder = tmp_path_factory.mktemp("synthetic_images")
    rows = []
    for i, (density, pathology) in enumerate(zip(DENSITIES, PATHOLOGIES, strict=True)):
        image, _ = synthetic_phantom(240, 160, seed=i)
        side, view = ("L", "CC") if i % 2 else ("R", "MLO")
        path = folder / f"synthetic_{i}_{side}_{view}.png"
        Image.fromarray((image * 255).astype(np.uint8)).save(path)
        rows.append(
            {
                "image_path": str(path),
                "patient_id": f"P{min(i, 4)}",
                "laterality": side,
                "view": view,
                "density": density,
                "pathology": pathology,
                "source": "synthetic",
            }
        )
    return make_manifest(rows)


def assert_labelled(ax: Axes) -> None:
    """A data panel: title, x label and y label all set."""
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())


def test_save_figure_writes_a_modest_png(tmp_path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    out = plots.save_figure(fig, "line (synthetic)", tmp_path / "new" / "folder")
    assert out == tmp_path / "new" / "folder" / "line (synthetic).png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    with Image.open(out) as png:
        assert png.info["dpi"] == pytest.approx((100, 100), abs=0.5)
        assert png.width <= 4 * 100 + 10 and png.height <= 3 * 100 + 10  # tight bbox: never larger than the figure
    sharper = plots.save_figure(fig, "sharper", tmp_path, dpi=150)
    with Image.open(sharper) as png:
        assert png.info["dpi"] == pytest.approx((150, 150), abs=0.5)


def test_save_figure_defaults_to_the_figures_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    fig, _ = plt.subplots()
    out = plots.save_figure(fig, "empty")
    assert out == tmp_path / "figures" / "empty.png" and out.stat().st_size > 0


def test_class_balance_counts_and_labels(synthetic_manifest: pd.DataFrame, tmp_path: Path) -> None:
    fig = plots.class_balance(synthetic_manifest, title_prefix="Synthetic data — ")
    assert fig._suptitle.get_text() == "Synthetic data — class balance, 6 images, 5 patients"
    bars, heat = fig.axes[:2]
    for ax in (bars, heat):
        assert_labelled(ax)
    assert "count" in bars.get_xlabel() and "BI-RADS" in bars.get_ylabel()
    assert sum(patch.get_width() for patch in bars.patches) == len(synthetic_manifest)  # one bar length per count
    cells = sorted(int(t.get_text()) for t in heat.texts)
    expected = pd.crosstab(
        synthetic_manifest["density"].astype(object).fillna("unknown"),
        synthetic_manifest["pathology"].fillna("unknown"),
    )
    assert cells == sorted(expected.to_numpy().ravel().tolist()) and sum(cells) == 6
    assert {t.get_text() for t in heat.get_yticklabels()} == {
        "1 (a) almost entirely fatty",
        "2 (b) scattered fibroglandular",
        "3 (c) heterogeneously dense",
        "unknown",
    }
    assert "count" in fig.axes[2].get_ylabel()  # the colour bar says what the colours count
    assert plots.save_figure(fig, "balance", tmp_path).stat().st_size > 0


@pytest.mark.parametrize("plot", ["class_balance", "image_grid_by_density", "intensity_histograms"])
def test_manifest_figures_refuse_unusable_manifests(plot: str, synthetic_manifest: pd.DataFrame) -> None:
    function = getattr(plots, plot)
    with pytest.raises(ValueError, match=rf"{plot}: the manifest has no column\(s\) \['density'"):
        function(synthetic_manifest.drop(columns=["density"]))
    with pytest.raises(ValueError, match=rf"{plot}: the manifest has no rows"):
        function(synthetic_manifest.iloc[:0])
    if plot != "class_balance":  # counting unlabelled images is fine; showing them by density is not
        with pytest.raises(ValueError, match=rf"{plot}: no image has a BI-RADS density label"):
            function(synthetic_manifest.assign(density=pd.array([None] * 6, dtype="Int64")))


def test_image_grid_has_one_row_per_density_present(synthetic_manifest: pd.DataFrame) -> None:
    fig = plots.image_grid_by_density(synthetic_manifest, per_class=2, seed=0, title_prefix="Synthetic data — ")
    assert "Synthetic data — images by BI-RADS density" in fig._suptitle.get_text()
    axes = np.array(fig.axes).reshape(3, 2)  # densities 1, 2, 3 are present; 4 and unlabelled are not shown
    row_labels = [t.get_text() for ax in axes[:, 0] for t in ax.texts]
    assert row_labels == [
        "1 (a) almost entirely fatty",
        "2 (b) scattered fibroglandular",
        "3 (c) heterogeneously dense",
    ]
    shown = [[bool(ax.images) for ax in row] for row in axes]
    assert shown == [[True, True], [True, False], [True, True]]  # density 2 has a single image
    for ax in axes.ravel():
        if ax.images:
            assert ax.get_title().count(" ") >= 3 and ax.get_title().split(" · ")[1] in ("benign", "malignant", "<NA>")
            assert ax.images[0].get_array().shape == (120, 80)  # shown at half resolution
    with pytest.raises(ValueError, match="per_class must be at least 1, not 0"):
        plots.image_grid_by_density(synthetic_manifest, per_class=0)


def test_image_grid_sample_depends_on_the_seed_only(synthetic_manifest: pd.DataFrame) -> None:
    def titles(seed: int) -> list[str]:
        fig = plots.image_grid_by_density(synthetic_manifest, per_class=1, seed=seed)
        return [ax.get_title() for ax in fig.axes]

    assert titles(3) == titles(3)
    assert len({tuple(titles(seed)) for seed in range(6)}) > 1


def test_intensity_histograms_one_normalized_curve_per_density(
    synthetic_manifest: pd.DataFrame, tmp_path: Path
) -> None:
    fig = plots.intensity_histograms(synthetic_manifest, per_class=2, bins=20, title_prefix="Synthetic data — ")
    (ax,) = fig.axes
    assert_labelled(ax)
    assert ax.get_title().startswith("Synthetic data — intensity")
    assert "0 = black, 1 = white" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "1 (a) almost entirely fatty",
        "2 (b) scattered fibroglandular",
        "3 (c) heterogeneously dense",
    ]
    for curve in ax.patches:  # a step outline: its area over [0, 1] is 1 (density=True)
        x, y = curve.get_xy().T
        heights = y[1:-1:2]
        assert x.min() == pytest.approx(0) and x.max() == pytest.approx(1)
        assert np.sum(heights) * (1 / 20) == pytest.approx(1.0, rel=1e-6)
    out = plots.save_figure(fig, "histograms", tmp_path)
    assert out.stat().st_size > 0


def test_standardization_grid_pairs_raw_and_standardized(synthetic_manifest: pd.DataFrame) -> None:
    chosen = list(synthetic_manifest["image_path"][:3])
    fig = plots.standardization_grid(chosen, title="Synthetic phantoms — before and after standardization")
    assert fig._suptitle.get_text() == "Synthetic phantoms — before and after standardization"
    axes = np.array(fig.axes).reshape(2, 4)  # 3 images: one before/after pair of rows, 4 columns
    for col, path in enumerate(chosen):
        before, after = axes[0, col], axes[1, col]
        assert before.get_title().startswith(Path(path).name) and "240×160 px" in before.get_title()
        box = [p for p in before.patches if isinstance(p, Rectangle)]
        assert len(box) == 1 and 0 < box[0].get_width() <= 160 and 0 < box[0].get_height() <= 240
        assert after.get_title().startswith("standardized 224×224") and "label(s) removed" in after.get_title()
        assert after.images[0].get_array().shape == (224, 224)
    assert not axes[0, 3].images and not axes[1, 3].images
    assert not axes[0, 3].get_visible() and not axes[1, 3].get_visible()  # no empty framed panels
    assert all(ax.get_visible() for ax in axes[:, :3].ravel())
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in axes.ravel())
    with pytest.raises(ValueError, match="no image paths given"):
        plots.standardization_grid([], title="empty")


def test_standardization_grid_full_rows_hide_nothing(synthetic_manifest: pd.DataFrame) -> None:
    fig = plots.standardization_grid(list(synthetic_manifest["image_path"][:4]), title="four")
    assert len(fig.axes) == 8 and all(ax.get_visible() for ax in fig.axes)


def test_standardization_steps_five_titled_panels(synthetic_manifest: pd.DataFrame, tmp_path: Path) -> None:
    path = synthetic_manifest["image_path"].iloc[0]
    mammogram = read_mammogram(path)
    out = tmp_path / "steps" / "standardization_steps.png"
    fig = plots.standardization_steps(mammogram, size=(128, 96), path=out)
    assert len(fig.axes) == 5
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("original (as read)") and "240×160 px" in titles[0]
    for title, step in zip(
        titles[1:], ("find_breast", "blank_outside_breast", "crop_to_breast", "resize_and_pad"), strict=True
    ):
        assert step in title
    expected = standardize(mammogram, size=(128, 96))
    assert f"{expected.labels_removed} label(s) removed" in titles[2]
    assert f"box {expected.crop_box}" in titles[3] and ("not flipped" in titles[3]) != expected.flipped
    assert f"scale {expected.scale:.3g}" in titles[4] and "128×96" in titles[4]
    np.testing.assert_array_equal(fig.axes[4].images[0].get_array(), expected.image)
    mask = fig.axes[1].images[0].get_array()
    assert mask.min() == 0 and mask.max() == 1
    blanked = fig.axes[2].images[0].get_array()
    assert blanked.shape == (240, 160) and blanked[-2:].max() == 0  # the bright bottom strip is blanked
    assert out.is_file() and out.stat().st_size > 0
    with Image.open(out) as png:
        assert png.width > 800  # five panels side by side at the module's dpi


def test_standardization_steps_without_path_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    image, _ = synthetic_phantom(200, 140, seed=3)
    mammogram = Mammogram(
        pixels=image, source_format="array", bit_depth=32, photometric="MONOCHROME2", original_shape=image.shape
    )
    fig = plots.standardization_steps(mammogram)
    assert len(fig.axes) == 5 and not list(tmp_path.iterdir())
