"""Tests for mammo_utils.evaluation.localization: findings on the model grid, hit / miss, flips, the hit-rate CI."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from _phantoms import synthetic_phantom

from mammo_utils.datasets.findings import findings_in_model, make_findings
from mammo_utils.evaluation.localization import (
    DEFAULT_MARGIN,
    FindingLocation,
    attach_findings,
    default_margin,
    finding_circles,
    finding_in_model,
    gradcam_localization,
    pointing_game,
    score_map,
    wilson_interval,
)
from mammo_utils.imaging.standardize import Standardized, standardize

# A crop of 400 x 200 original pixels resized by 0.5 to a 200 x 100 content, padded to 224 x 224 (12 rows on top).
_RECORD = {
    "crop_top": 100,
    "crop_left": 50,
    "crop_bottom": 500,
    "crop_right": 250,
    "flipped": False,
    "scale": 0.5,
    "content_height": 200,
    "content_width": 100,
}
_FINDING = {"finding_y": 300.0, "finding_x": 100.0, "finding_radius": 20.0}


def _bump(y: float, x: float, shape: tuple[int, int] = (224, 224), sigma: float = 8.0) -> np.ndarray:
    """A map in [0, 1] peaked at ``(y, x)``."""
    rows, cols = np.indices(shape)
    return np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)


def test_finding_in_model_follows_crop_resize_padding_and_flip():
    plain = Standardized.from_record(_RECORD, (224, 224))
    assert plain.content_shape == (200, 100) and plain.image.shape == (224, 224)
    spot = finding_in_model(plain, 300.0, 100.0, 20.0)
    # (300 + 0.5 - 100) * 0.5 - 0.5 + 12 padding rows; (100 + 0.5 - 50) * 0.5 - 0.5
    assert (spot.y, spot.x, spot.radius) == pytest.approx((111.75, 24.75, 10.0))
    mirrored = finding_in_model(Standardized.from_record(_RECORD | {"flipped": True}, (224, 224)), 300.0, 100.0, 20.0)
    assert (mirrored.y, mirrored.x, mirrored.radius) == pytest.approx((111.75, 99 - 24.75, 10.0))


def test_finding_in_model_agrees_with_the_findings_table_on_the_model_grid():
    finding = {"image_path": "a.png", "kind": "mass", "origin": "generator", "centre_y": 300.0, "centre_x": 100.0}
    findings = make_findings([finding | {"radius": 20.0}])
    for flipped in (False, True):
        record = _RECORD | {"flipped": flipped, "crop_right": 263}
        mapped = findings_in_model(findings, pd.DataFrame([record | {"image_path": "a.png"}]), (224, 224)).iloc[0]
        spot = finding_in_model(Standardized.from_record(record, (224, 224)), 300.0, 100.0, 20.0)
        assert (spot.y, spot.x, spot.radius) == (mapped["model_y"], mapped["model_x"], mapped["model_radius"])


def test_a_map_peaked_on_the_finding_hits_and_one_peaked_elsewhere_misses():
    finding = FindingLocation(111.75, 24.75, 10.0)
    on = score_map(_bump(112, 25), finding, content_shape=(200, 100))
    assert on["hit"] and on["peak_distance"] < 1.0
    assert on["mass_share"] > 0.9 and 0 < on["area_share"] < 0.2
    near = score_map(_bump(112, 25 + 10 + DEFAULT_MARGIN - 1), finding)
    assert near["hit"], "radius plus margin counts"
    off = score_map(_bump(40, 80), finding, content_shape=(200, 100))
    assert not off["hit"] and off["peak_distance"] > 50 and off["mass_share"] < 0.05
    blank = score_map(np.zeros((224, 224)), finding)
    assert not blank["hit"] and math.isnan(blank["peak_y"]) and math.isnan(blank["mass_share"])
    assert blank["flat"] and not on["flat"] and not off["flat"]
    with pytest.raises(ValueError, match="2-D"):
        score_map(np.zeros((1, 224, 224)), finding)


def test_the_default_margin_is_half_a_gradcam_cell_at_any_input_size():
    assert default_margin((224, 224)) == DEFAULT_MARGIN and default_margin((64, 64, 1)) == pytest.approx(64 / 14)
    records = pd.DataFrame([_RECORD | _FINDING])
    assert gradcam_localization([_bump(112, 25)], records).summary["margin"] == DEFAULT_MARGIN
    assert gradcam_localization([_bump(112, 25)], records, margin=3.0).summary["margin"] == 3.0


def test_flipped_images_are_scored_in_the_mirrored_column():
    flipped = _RECORD | {"flipped": True} | _FINDING
    records = pd.DataFrame([flipped, flipped])
    unmirrored, mirrored = _bump(111.75, 24.75), _bump(111.75, 74.25)
    result = gradcam_localization([mirrored, unmirrored], records)
    assert result.table["hit"].tolist() == [True, False]


def test_gradcam_localization_table_and_summary():
    records = pd.DataFrame(
        [
            _RECORD | _FINDING | {"image_path": "a.png", "malignant": 1},
            _RECORD | _FINDING | {"image_path": "b.png", "malignant": 1},
            _RECORD | {"flipped": True} | _FINDING | {"image_path": "c.png", "malignant": 1},
            _RECORD | {"finding_y": np.nan, "finding_x": np.nan, "finding_radius": np.nan, "image_path": "d.png"},
        ]
    )
    cams = [_bump(112, 25), _bump(40, 80), _bump(112, 74), _bump(0, 0)]
    result = gradcam_localization(cams, records)
    table, summary = result.table, result.summary
    assert table["image_path"].tolist() == ["a.png", "b.png", "c.png"] and table["hit"].tolist() == [True, False, True]
    assert {"finding_model_y", "finding_model_x", "finding_model_radius", "mass_share", "area_share"} <= set(table)
    assert (summary["n"], summary["hits"], summary["n_skipped"]) == (3, 2, 1)
    assert summary["hit_rate"] == pytest.approx(2 / 3)
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(wilson_interval(2, 3))
    assert summary["method"] == "wilson" and summary["level"] == pytest.approx(0.95)
    assert "2 of 3 images" in result.describe()


def test_gradcam_localization_without_findings_and_with_bad_input():
    records = pd.DataFrame([_RECORD | {"finding_y": 1.0, "finding_x": 1.0, "finding_radius": 0.0}])
    empty = gradcam_localization([_bump(1, 1)], records)
    assert empty.table.empty and empty.summary["n"] == 0 and math.isnan(empty.summary["hit_rate"])
    assert "no image with a finding" in empty.describe()
    with pytest.raises(ValueError, match="one map per record"):
        gradcam_localization([], records)
    with pytest.raises(KeyError, match="finding_y"):
        gradcam_localization([_bump(1, 1)], pd.DataFrame([_RECORD]))
    with pytest.raises(KeyError, match="standardization record"):
        gradcam_localization([_bump(1, 1)], pd.DataFrame([_FINDING]))


def _record_of(std: Standardized) -> dict:
    """The image-cache record of a standardization (as ``training.cache`` writes it)."""
    top, left, bottom, right = std.crop_box
    return (
        {"crop_top": top, "crop_left": left, "crop_bottom": bottom, "crop_right": right}
        | {k: v for k, v in asdict(std).items() if k in ("flipped", "scale", "labels_removed", "found_breast")}
        | {"content_height": std.content_shape[0], "content_width": std.content_shape[1]}
    )


@pytest.mark.parametrize("mirror", [False, True])
def test_a_real_standardization_puts_a_painted_finding_where_it_is_scored(mirror: bool):
    """A bright disc painted at a known centre: its excess after standardization, used as the map, is a hit."""
    h, w = 900, 600
    image, _ = synthetic_phantom(h=h, w=w, seed=3, label=False, strip=False)
    if mirror:
        image = np.ascontiguousarray(image[:, ::-1])
    centre, radius = (400, 160 if mirror else 440), 25
    rows, cols = np.indices((h, w))
    painted = image.copy()
    painted[np.hypot(rows - centre[0], cols - centre[1]) <= radius] = 1.0
    std = standardize(painted, normalize=False)
    assert std.flipped != mirror
    excess = np.clip(std.image - standardize(image, normalize=False).image, 0, None)
    record = _record_of(std) | {"finding_y": centre[0], "finding_x": centre[1], "finding_radius": radius}
    elsewhere = np.roll(excess, 60, axis=0)
    result = gradcam_localization([excess, elsewhere], pd.DataFrame([record, record]), margin=2.0)
    assert result.table["hit"].tolist() == [True, False]
    assert result.table["mass_share"].iloc[0] > 0.9


def test_attach_findings_joins_on_the_image_path_and_keeps_the_row_order():
    manifest = pd.DataFrame({"image_path": ["a", "b", "c"], "finding_y": [1, 2, 3], "finding_x": [4, 5, 6]})
    manifest["finding_radius"] = [7.0, np.nan, 9.0]
    rows = pd.DataFrame({"image_path": ["c", "x", "a"], "p_malignant": [0.1, 0.2, 0.3]}, index=[5, 6, 7])
    joined = attach_findings(rows, manifest)
    assert joined.index.tolist() == [5, 6, 7] and joined["p_malignant"].tolist() == [0.1, 0.2, 0.3]
    assert joined["finding_y"].tolist()[0::2] == [3, 1] and math.isnan(joined["finding_y"].iloc[1])
    real = attach_findings(rows, pd.DataFrame({"image_path": ["a"]}))  # a real data set: no finding columns
    assert real[["finding_y", "finding_x", "finding_radius"]].isna().all().all()


def test_finding_circles_are_on_the_model_grid_and_none_without_a_finding():
    records = pd.DataFrame([_RECORD | _FINDING, _RECORD | {"flipped": True} | _FINDING, _RECORD])
    records.loc[2, ["finding_y", "finding_x", "finding_radius"]] = np.nan
    plain, mirrored, none = finding_circles(records, (224, 224))
    assert plain == pytest.approx((111.75, 24.75, 10.0)) and mirrored == pytest.approx((111.75, 74.25, 10.0))
    assert none is None


def test_a_flat_map_has_no_peak_and_counts_as_a_miss():
    """A barely trained model gives a constant map over the breast: its argmax (the first pixel) is no peak."""
    constant = np.zeros((224, 224), np.float32)
    constant[12:212, :100] = 1.0 - 0.005 * _bump(150, 60)[12:212, :100]  # within 0.5 % of constant on the content
    records = pd.DataFrame([_RECORD | _FINDING, _RECORD | _FINDING])
    result = gradcam_localization([constant, _bump(112, 25)], records)
    flat, peaked = result.table.to_dict("records")
    assert flat["flat"] and not flat["hit"] and math.isnan(flat["peak_y"]) and peaked["hit"] and not peaked["flat"]
    assert flat["mass_share"] == pytest.approx(flat["area_share"], abs=1e-3), (
        "an even map puts the area share in the disc"
    )
    assert result.summary["n_flat"] == 1 and result.summary["hits"] == 1
    assert "1 flat map(s) without a peak count as misses" in result.describe()


def test_the_pointing_game_allows_no_margin():
    records = pd.DataFrame(
        [
            {
                "finding_y": 100.0,
                "finding_x": 50.0,
                "finding_radius": 5.0,
                "crop_top": 0,
                "crop_left": 0,
                "crop_bottom": 224,
                "crop_right": 224,
                "flipped": False,
                "content_height": 224,
                "content_width": 224,
            }
        ]
    )
    near = _bump(100, 50 + 5 + 4)  # outside the radius, inside radius + the default margin
    assert gradcam_localization([near], records).summary["hits"] == 1
    assert pointing_game([near], records).summary["hits"] == 0
    assert pointing_game([_bump(100, 52)], records).summary["hits"] == 1
