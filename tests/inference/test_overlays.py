"""Tests for mammo_utils.inference.overlays: Grad-CAM maps kept to the breast content, blended, drawn (no TF)."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mammo_utils.imaging.standardize import standardize
from mammo_utils.inference.overlays import gradcam_gallery, mask_to_content, overlay, plot_overlay


def test_mask_to_content_zeroes_padding():
    cam = np.random.default_rng(0).random((2, 224, 224), dtype=np.float32)
    masked = mask_to_content(cam, (100, 150), renormalize=False)
    top = (224 - 100) // 2
    inside = np.zeros((224, 224), dtype=bool)
    inside[top : top + 100, :150] = True
    assert not masked[:, ~inside].any()
    np.testing.assert_array_equal(masked[:, inside], cam[:, inside])
    renormalized = mask_to_content(cam[0], (100, 150))
    assert renormalized.max() == pytest.approx(1.0) and not renormalized[~inside].any()
    assert not mask_to_content(np.zeros((224, 224)), (10, 10)).any()
    with pytest.raises(ValueError):
        mask_to_content(cam[0], (300, 10))


def test_mask_to_content_matches_standardize_padding():
    """The content box used by mask_to_content is where standardize puts the breast (synthetic image)."""
    yy, xx = np.mgrid[0:300, 0:600]
    synthetic = ((xx - 600) ** 2 / 420**2 + (yy - 150) ** 2 / 120**2 < 1).astype(np.float32) * 0.6  # on the right
    std = standardize(synthetic)
    h, w = std.content_shape
    assert h < 200  # wide content: padding above and below to check
    masked = mask_to_content(np.ones((224, 224), dtype=np.float32), std)
    assert np.all(masked[std.image > 0] == 1.0)  # every content pixel is kept
    assert masked.sum() == h * w


def test_overlay_rgb_range():
    rng = np.random.default_rng(0)
    image, cam = rng.random((40, 30), dtype=np.float32), rng.random((40, 30), dtype=np.float32)
    rgb = overlay(image, cam)
    assert rgb.shape == (40, 30, 3) and rgb.dtype == np.float32 and rgb.min() >= 0.0 and rgb.max() <= 1.0
    np.testing.assert_allclose(overlay(image, cam, alpha=0.0), np.repeat(image[..., None], 3, axis=2), atol=1e-6)
    jet = plt.get_cmap("jet")(cam)[..., :3]
    np.testing.assert_allclose(overlay(image[..., None], cam, alpha=1.0), jet, atol=1e-6)
    assert overlay(image * 5 - 2, cam * 3).max() <= 1.0  # out-of-range inputs are clipped
    with pytest.raises(ValueError):
        overlay(image, cam[:20])


def test_plot_overlay_and_gallery():
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32)) for _ in range(5)]
    cams = [rng.random((32, 32)) for _ in range(5)]
    fig, ax = plt.subplots()
    plot_overlay(ax, images[0], cams[0], title="case 1", colorbar=True)
    assert ax.get_title() == "case 1" and not ax.axison and len(fig.axes) == 2
    plt.close(fig)
    titles = [f"case {i}" for i in range(5)]
    gallery = gradcam_gallery(images, cams, titles, ncols=3)
    drawn = [a for a in gallery.axes if a.images]
    assert [a.get_title() for a in drawn] == titles
    assert all(not a.axison for a in gallery.axes[:6])
    plt.close(gallery)
    with pytest.raises(ValueError):
        gradcam_gallery(images, cams[:2], titles)


def test_gallery_outlines_the_given_circles():
    rng = np.random.default_rng(1)
    images, cams = [rng.random((32, 32)) for _ in range(3)], [rng.random((32, 32)) for _ in range(3)]
    gallery = gradcam_gallery(images, cams, circles=[(10.0, 20.0, 5.0), None, (3, 4, 2)])
    circles = [[p for p in a.patches if isinstance(p, mpatches.Circle)] for a in gallery.axes[:3]]
    assert [len(c) for c in circles] == [1, 0, 1]
    assert circles[0][0].center == (20.0, 10.0) and circles[0][0].radius == 5.0, "(row, column) -> (x, y)"
    plt.close(gallery)
    with pytest.raises(ValueError, match="one circle"):
        gradcam_gallery(images, cams, circles=[None])


def test_overlays_do_not_import_tensorflow():
    code = "import sys, mammo_utils.inference.overlays; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
