"""Tests for mammo_utils.imaging.mammogram: the Mammogram record, MammogramReadError and the helpers both decoders
share.

All arrays here are synthetic (ramps and hand-written values).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from mammo_utils.imaging import io
from mammo_utils.imaging.mammogram import (
    Mammogram,
    MammogramReadError,
    check_dimensions,
    laterality_view_from_text,
    minmax_scale,
    scale_to_unit,
)


def test_mammogram_is_a_frozen_record_with_defaults() -> None:
    pixels = np.zeros((4, 3), np.float32)
    mammogram = Mammogram(pixels, "png", 8, "L", (4, 3))
    assert (mammogram.laterality, mammogram.view, mammogram.modality, mammogram.filename) == (None,) * 4
    assert mammogram.warnings == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        mammogram.view = "CC"  # type: ignore[misc]
    assert dataclasses.replace(mammogram, view="CC").view == "CC"


def test_read_error_is_a_value_error() -> None:
    assert issubclass(MammogramReadError, ValueError)
    with pytest.raises(ValueError, match="what to do"):
        raise MammogramReadError("scan.png: what to do")


def test_io_re_exports_the_same_objects() -> None:
    for name in (
        "Mammogram",
        "MammogramReadError",
        "check_dimensions",
        "laterality_view_from_text",
        "minmax_scale",
        "scale_to_unit",
    ):
        assert getattr(io, name) is globals()[name], name


def test_importing_it_loads_neither_pillow_nor_pydicom() -> None:
    code = (
        "import sys, mammo_utils.imaging.mammogram\n"
        "heavy = ('PIL', 'pydicom', 'mammo_utils.imaging.io', 'mammo_utils.imaging.dicom')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("rows, columns", [(64, 64), (100, 5000), (6000, 10000)])
def test_check_dimensions_accepts_sizes_inside_the_limits(rows: int, columns: int) -> None:
    check_dimensions("ok.png", rows, columns, max_pixels=60_000_000, min_side=64)


def test_check_dimensions_refuses_small_and_huge_images_with_actionable_messages() -> None:
    with pytest.raises(MammogramReadError, match=r"thumb\.png: image is only 500×63 px.*at least 64 px.*thumbnail"):
        check_dimensions("thumb.png", 63, 500, max_pixels=60_000_000, min_side=64)
    huge = r"big\.tif: image is 9000×9000 = 81\.0 Mpx.*limit of 60 Mpx.*larger max_pixels"
    with pytest.raises(MammogramReadError, match=huge):
        check_dimensions("big.tif", 9000, 9000, max_pixels=60_000_000, min_side=64)
    with pytest.raises(MammogramReadError, match="limit of 0.01 Mpx"):  # the size limit is checked first
        check_dimensions("x", 200, 200, max_pixels=10_000, min_side=500)


def test_scale_to_unit_maps_the_range_linearly_to_float32() -> None:
    values = np.array([[0, 32768, 65535]], np.uint16)
    out = scale_to_unit(values, 65535.0)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out, [[0.0, 32768 / 65535, 1.0]], rtol=1e-6)
    shifted = scale_to_unit(np.array([-1024, 0, 3071], np.int16), 3071.0, -1024.0)
    assert shifted.dtype == np.float32
    np.testing.assert_allclose(shifted, [0.0, 1024 / 4095, 1.0], rtol=1e-6)
    assert scale_to_unit(np.array([300.0]), 255.0)[0] > 1.0  # out of range is not clipped here: callers clip
    assert not np.shares_memory(out, values)


def test_minmax_scale_stretches_and_handles_non_finite_and_constant_input() -> None:
    ramp = np.arange(-5.0, 6.0).reshape(1, 11)
    out = minmax_scale(ramp)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, (ramp + 5) / 10, rtol=1e-6)
    messy = minmax_scale(np.array([np.nan, 2.0, np.inf, 4.0, -np.inf]))
    np.testing.assert_array_equal(messy, [0.0, 0.0, 0.0, 1.0, 0.0])  # non-finite values become the minimum
    assert not minmax_scale(np.full((3, 3), 7.0)).any()  # constant: zeros, no 0/0
    assert not minmax_scale(np.full(2, np.nan)).any()


def test_minmax_scale_keep_unit_leaves_unit_data_alone() -> None:
    unit = np.array([0.2, 0.4, 0.6], np.float32)
    np.testing.assert_array_equal(minmax_scale(unit, keep_unit=True), unit)
    np.testing.assert_allclose(minmax_scale(unit), [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(minmax_scale(np.array([0.0, 2.0]), keep_unit=True), [0.0, 1.0])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mass-Test_P_00820_LEFT_CC", ("L", "CC")),
        ("P_00001_LEFT_MLO.png", ("L", "MLO")),
        ("Calc-Training_P_00005_RIGHT_MLO", ("R", "MLO")),
        ("L_CC", ("L", "CC")),
        ("RMLO.dcm", ("R", "MLO")),
        ("22678622_MG_R_CC_ANON.dcm", ("R", "CC")),
        ("mdb001.pgm", ("R", "MLO")),
        ("mdb322", ("L", "MLO")),
        ("xccl-left", ("L", "CC")),
        ("scan.png", (None, None)),
        ("LEFT_RIGHT_CC", (None, "CC")),
        ("CC and MLO", (None, None)),
        ("Calcium_left", ("L", None)),
        ("", (None, None)),
    ],
)
def test_laterality_view_from_text(text: str, expected: tuple[str | None, str | None]) -> None:
    assert laterality_view_from_text(text) == expected
