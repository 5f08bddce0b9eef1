"""Tests for mammo_utils.imaging.segmentation: the breast mask, the segmentation record, and the image helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _phantoms import REAL_LABEL_BOXES, synthetic_phantom

from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.segmentation import as_float01, block_mean, breast_mask, segment


def test_phantom_breast_mask() -> None:
    img, boxes = synthetic_phantom(seed=1)
    mask = breast_mask(img)
    assert mask.shape == img.shape and mask.dtype == bool
    t, left, b, r = boxes["breast"]
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    inside = ((yy - img.shape[0] / 2) / (0.36 * img.shape[0])) ** 2 + (
        (xx - img.shape[1]) / (0.55 * img.shape[1])
    ) ** 2 <= 1
    assert mask[inside].mean() > 0.95
    assert mask[~inside].mean() < 0.05
    lt, ll, lb, lr = boxes["label"]
    assert not mask[lt:lb, ll:lr].any()


def test_real_breast_mask_full_resolution(sample_dicom_paths: list[Path]) -> None:
    path = sample_dicom_paths[0]
    mammo = read_mammogram(path)
    mask = breast_mask(mammo)
    assert mask.shape == mammo.pixels.shape
    assert 0.15 < mask.mean() < 0.6
    for lt, ll, lb, lr in REAL_LABEL_BOXES[path.stem]:
        assert not mask[lt:lb, ll:lr].any()


def test_segment_on_the_working_grid() -> None:
    img, boxes = synthetic_phantom()  # 900 x 600, breast on the right edge, corner label, bright bottom strip
    seg = segment(img, 300, None, 0.01, None)
    assert seg.factor == 3 and seg.working.shape == seg.mask.shape == seg.keep.shape == (300, 200)
    assert seg.found and not seg.breast_left and seg.labels >= 1
    assert (seg.keep | ~seg.mask).all() and seg.keep.sum() > seg.mask.sum()  # kept = mask + margin
    lt, ll, lb, lr = (v // 3 for v in boxes["label"])
    assert not seg.keep[lt:lb, ll:lr].any()
    np.testing.assert_allclose(seg.working, block_mean(img, 3, 3), atol=1e-6)
    fixed = segment(img, 300, 0.2, 0.0, None)
    assert fixed.found and abs(int(fixed.mask.sum()) - int(seg.mask.sum())) < 0.1 * seg.mask.sum()


def test_segment_without_a_breast_keeps_everything() -> None:
    for blank in (np.zeros((64, 48), np.float32), np.full((64, 48), 0.7, np.float32)):
        for laterality, left in (("L", True), ("R", False), (None, True)):
            seg = segment(blank, 512, None, 0.01, laterality)
            assert not seg.found and seg.labels == 0 and not seg.mask.any() and seg.keep.all()
            assert seg.breast_left == left  # nothing to see: the laterality hint decides


def test_as_float01_scales_by_type() -> None:
    assert as_float01(np.array([[0, 65535]], np.uint16)).tolist() == [[0.0, 1.0]]
    assert as_float01(np.array([[0, 255]], np.uint8)).dtype == np.float32
    np.testing.assert_allclose(as_float01(np.array([[-2.0, 0.0, 2.0]])), [[0.0, 0.5, 1.0]])  # min-max
    inside = np.array([[0.2, 0.4]], np.float32)
    assert as_float01(inside) is inside  # already in [0, 1]: no copy
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    np.testing.assert_allclose(as_float01(rgb), 1 / 3)  # colour channels averaged
    assert np.isfinite(as_float01(np.array([[np.nan, 1.0, np.inf]]))).all()
    assert not as_float01(np.full((3, 3), 5.0)).any()  # constant out-of-range image
    with pytest.raises(ValueError, match="2-D grey image"):
        as_float01(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="non-empty"):
        as_float01(np.zeros((0, 5)))


def test_block_mean_drops_partial_blocks() -> None:
    arr = np.arange(7 * 10, dtype=np.float32).reshape(7, 10)
    expected = arr[:6, :9].reshape(2, 3, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(block_mean(arr, 3, 3), expected, rtol=1e-6)
    np.testing.assert_allclose(block_mean(arr, 2, 5), arr[:6].reshape(3, 2, 2, 5).mean(axis=(1, 3)), rtol=1e-6)
    same = block_mean(arr, 1, 1)
    np.testing.assert_array_equal(same, arr)
    assert same is not arr  # a copy: callers may write into it
