"""Figures for the data notebook: class balance, image grids, intensity histograms, standardization.

Every function returns a matplotlib ``Figure`` with a title and labelled axes; ``save_figure`` writes it to
``figures/`` at a modest dpi so committed notebooks stay small.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mammo_utils import labels, paths
from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.mammogram import Mammogram
from mammo_utils.imaging.segmentation import Segmentation, as_float01
from mammo_utils.imaging.standardize import (
    BreastCrop,
    Standardized,
    blank_outside_breast,
    crop_to_breast,
    find_breast,
    resize_and_pad,
    standardize,
)

DPI = 100  # the dpi every figure of this module is saved at: committed notebooks stay small
_DISPLAY_SIDE = 1024  # long side, in pixels, of the copies drawn by standardization_steps


def save_figure(fig: Figure, name: str, directory: str | Path | None = None, dpi: int = DPI) -> Path:
    """Save ``fig`` as ``<directory>/<name>.png`` (default ``figures/``) and return the path."""
    directory = paths.ensure_dir(directory or paths.figures_dir())
    out = directory / f"{name}.png"
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out


def _density_label(density: int) -> str:
    return f"{density} ({labels.density_letter(density)}) {labels.density_name(density)}"


def _check_manifest(manifest: pd.DataFrame, columns: Sequence[str], caller: str, *, density: bool = False) -> None:
    """Raise ``ValueError`` naming ``caller`` if ``manifest`` lacks ``columns`` or rows, or (with ``density``)
    has no BI-RADS density label at all."""
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise ValueError(
            f"{caller}: the manifest has no column(s) {missing}; pass a table built by "
            "mammo_utils.datasets (see the manifest schema)"
        )
    if manifest.empty:
        raise ValueError(f"{caller}: the manifest has no rows; nothing to plot")
    if density and not manifest["density"].isin(labels.DENSITY_CLASSES).any():
        raise ValueError(f"{caller}: no image has a BI-RADS density label (1-4); nothing to plot by density")


def class_balance(manifest: pd.DataFrame, title_prefix: str = "") -> Figure:
    """Counts of images per BI-RADS density × pathology, as a bar chart and a heat map."""
    _check_manifest(manifest, ("density", "pathology", "patient_id"), "class_balance")
    frame = manifest.assign(
        density_label=manifest["density"].map(lambda d: "unknown" if pd.isna(d) else _density_label(int(d))),
        pathology_label=manifest["pathology"].fillna("unknown"),
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    order = sorted(frame["density_label"].unique())
    sns.countplot(
        data=frame,
        y="density_label",
        hue="pathology_label",
        order=order,
        ax=left,
        palette={"benign": "#4C72B0", "malignant": "#C44E52", "unknown": "#999999"},
    )
    left.set(xlabel="images (count)", ylabel="BI-RADS density", title="Images per density and pathology")
    table = pd.crosstab(frame["density_label"], frame["pathology_label"])
    sns.heatmap(table, annot=True, fmt="d", cmap="Blues", cbar_kws={"label": "images (count)"}, ax=right)
    right.set(xlabel="pathology", ylabel="BI-RADS density", title="Density × pathology (counts)")
    fig.suptitle(f"{title_prefix}class balance, {len(frame)} images, {frame['patient_id'].nunique()} patients")
    fig.tight_layout()
    return fig


def image_grid_by_density(manifest: pd.DataFrame, per_class: int = 4, seed: int = 0, title_prefix: str = "") -> Figure:
    """A grid of raw images: one row per density class, ``per_class`` random images per row."""
    _check_manifest(
        manifest, ("image_path", "density", "laterality", "view", "pathology"), "image_grid_by_density", density=True
    )
    if per_class < 1:
        raise ValueError(f"image_grid_by_density: per_class must be at least 1, not {per_class}")
    classes = [d for d in labels.DENSITY_CLASSES if (manifest["density"] == d).any()]
    fig, axes = plt.subplots(len(classes), per_class, figsize=(2.2 * per_class, 2.7 * len(classes)), squeeze=False)
    for row, density in enumerate(classes):
        chosen = manifest[manifest["density"] == density].sample(
            n=min(per_class, int((manifest["density"] == density).sum())), random_state=seed
        )
        for col in range(per_class):
            ax = axes[row, col]
            ax.axis("off")
            if col >= len(chosen):
                continue
            item = chosen.iloc[col]
            ax.imshow(read_mammogram(item["image_path"]).pixels[::2, ::2], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{item['laterality']} {item['view']} · {item['pathology']}", fontsize=8)
        axes[row, 0].text(
            -0.08,
            0.5,
            _density_label(density),
            transform=axes[row, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=9,
        )
    fig.suptitle(f"{title_prefix}images by BI-RADS density (rows) — raw, before standardization")
    fig.tight_layout()
    return fig


def intensity_histograms(
    manifest: pd.DataFrame, per_class: int = 30, bins: int = 50, seed: int = 0, title_prefix: str = ""
) -> Figure:
    """Pixel-intensity distributions inside the standardized breast, one curve per density class."""
    _check_manifest(manifest, ("image_path", "density"), "intensity_histograms", density=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for density in labels.DENSITY_CLASSES:
        rows = manifest[manifest["density"] == density]
        if rows.empty:
            continue
        rows = rows.sample(n=min(per_class, len(rows)), random_state=seed)
        values = []
        for path in rows["image_path"]:
            image = standardize(read_mammogram(path)).image
            values.append(image[image > 0.02])
        ax.hist(
            np.concatenate(values),
            bins=bins,
            range=(0, 1),
            density=True,
            histtype="step",
            linewidth=1.6,
            label=_density_label(density),
        )
    ax.set(
        xlabel="standardized intensity (0 = black, 1 = white)",
        ylabel="density of pixels (normalized)",
        title=f"{title_prefix}intensity inside the breast by BI-RADS density",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def standardization_grid(image_paths: Sequence[str | Path], title: str) -> Figure:
    """Before/after pairs: the raw image with its crop box, and the standardized model input."""
    n = len(image_paths)
    if not n:
        raise ValueError("standardization_grid: no image paths given; nothing to plot")
    cols = 4
    rows = int(np.ceil(n / cols)) * 2
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.3 * rows), squeeze=False)
    for i, path in enumerate(image_paths):
        mammogram = read_mammogram(path)
        result = standardize(mammogram)
        top, left, bottom, right = result.crop_box
        before = axes[(i // cols) * 2, i % cols]
        after = axes[(i // cols) * 2 + 1, i % cols]
        before.imshow(
            mammogram.pixels[::4, ::4],
            cmap="gray",
            vmin=0,
            vmax=1,
            extent=(0, mammogram.pixels.shape[1], mammogram.pixels.shape[0], 0),
        )
        before.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, edgecolor="#00d0ff", lw=1.5))
        before.set_title(
            f"{Path(path).name} {mammogram.laterality or '?'} {mammogram.view or '?'}\n"
            f"{mammogram.pixels.shape[0]}×{mammogram.pixels.shape[1]} px",
            fontsize=8,
        )
        after.imshow(result.image, cmap="gray", vmin=0, vmax=1)
        after.set_title(
            f"standardized {result.image.shape[0]}×{result.image.shape[1]}"
            f"{' (flipped)' if result.flipped else ''}, {result.labels_removed} label(s) removed",
            fontsize=8,
        )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for i in range(n, (rows // 2) * cols):  # the last row of pairs is not full: no empty frames
        axes[(i // cols) * 2, i % cols].set_visible(False)
        axes[(i // cols) * 2 + 1, i % cols].set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _show(ax: Axes, image: np.ndarray, title: str) -> None:
    """Draw ``image`` in [0, 1] (strided down to about ``_DISPLAY_SIDE`` pixels, in its own pixel coordinates)."""
    step = max(1, max(image.shape) // _DISPLAY_SIDE)
    height, width = image.shape
    ax.imshow(image[::step, ::step], cmap="gray", vmin=0, vmax=1, extent=(0, width, height, 0))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _step_titles(mammogram: Mammogram, segmentation: Segmentation, crop: BreastCrop, result: Standardized) -> list[str]:
    """Panel titles of :func:`standardization_steps`: each step's name and its numbers."""
    height, width = mammogram.pixels.shape[:2]
    grid_h, grid_w = segmentation.mask.shape
    chest = f"chest wall {'left' if segmentation.breast_left else 'right'}"
    top, left, bottom, right = crop.box
    (out_h, out_w), (content_h, content_w) = result.image.shape, result.content_shape
    return [
        f"original (as read)\n{height}×{width} px, {mammogram.laterality or '?'} {mammogram.view or '?'}",
        f"1. find_breast: breast mask\n{grid_h}×{grid_w} grid (÷{segmentation.factor}), "
        + (chest if segmentation.found else "no breast: whole image kept"),
        f"2. blank_outside_breast\n{segmentation.labels} label(s) removed",
        f"3. crop_to_breast\nbox ({top}, {left}, {bottom}, {right}), {'flipped' if crop.flipped else 'not flipped'}",
        f"4. resize_and_pad: model input\n{out_h}×{out_w}, scale {result.scale:.3g}, content {content_h}×{content_w}",
    ]


def standardization_steps(
    mammogram: Mammogram, size: tuple[int, int] = (224, 224), path: str | os.PathLike[str] | None = None
) -> Figure:
    """The four steps of :func:`~mammo_utils.imaging.standardize.standardize` on one mammogram, left to right.

    Panels: the original as read, the breast mask (:func:`~mammo_utils.imaging.standardize.find_breast`), labels
    blanked (:func:`~mammo_utils.imaging.standardize.blank_outside_breast`), cropped + flipped
    (:func:`~mammo_utils.imaging.standardize.crop_to_breast`) and the model input
    (:func:`~mammo_utils.imaging.standardize.resize_and_pad`), each titled with its step and its numbers.

    Parameters
    ----------
    mammogram : Mammogram
        The image as read (:func:`~mammo_utils.imaging.io.read_mammogram`); its laterality breaks ties.
    size : tuple of int
        Model input ``(height, width)``.
    path : str or os.PathLike, optional
        Where to save the figure (PNG at :data:`DPI`); not saved when None.

    Returns
    -------
    Figure
        One row of five panels; the model input is exactly ``standardize(mammogram, size=size).image``.
    """
    pixels = as_float01(mammogram)
    segmentation = find_breast(pixels, laterality=mammogram.laterality)
    blanked = blank_outside_breast(pixels, segmentation)
    crop = crop_to_breast(blanked, segmentation)  # the same box as on the raw pixels: it depends on the mask only
    result = resize_and_pad(crop_to_breast(pixels, segmentation), segmentation, size)
    fig, axes = plt.subplots(1, 5, figsize=(17, 4.2))
    panels = [pixels, segmentation.mask.astype(np.float32), blanked, crop.pixels, result.image]
    for ax, image, title in zip(axes, panels, _step_titles(mammogram, segmentation, crop, result), strict=True):
        _show(ax, image, title)
    fig.suptitle("standardization step by step" + (f" — {mammogram.filename}" if mammogram.filename else ""))
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig
