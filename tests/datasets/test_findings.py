"""Tests for mammo_utils.datasets.findings: the schema, the synthetic findings, the CSV round trip, the model grid."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _phantoms import synthetic_phantom

from mammo_utils.datasets.findings import (
    FINDINGS_COLUMNS,
    MODEL_COLUMNS,
    FindingsError,
    box_to_model,
    circle_to_model,
    empty_findings,
    findings_from_synthetic,
    findings_in_model,
    make_findings,
    read_findings,
    validate_findings,
    write_findings,
)
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.imaging.standardize import Standardized, standardize

_CIRCLE = {"image_path": "a.png", "kind": "mass", "centre_y": 100.0, "centre_x": 50.0, "radius": 10.0}
_BOX = {"image_path": "a.png", "kind": "calcification", "box_top": 10, "box_left": 20, "box_bottom": 30}
# A crop of 400 x 200 original pixels resized by 0.5 to a 200 x 100 content, padded to 224 x 224 (12 rows on top).
_RECORD = {
    "crop_top": 100,
    "crop_left": 50,
    "crop_bottom": 500,
    "crop_right": 250,
    "flipped": False,
    "content_height": 200,
    "content_width": 100,
}


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return generate_synthetic(out_dir=tmp_path_factory.mktemp("synthetic"), n=8, workers=1)


def _record_of(std: Standardized, image_path: str) -> dict:
    """The image-cache record of a standardization (as ``training.cache`` writes it)."""
    top, left, bottom, right = std.crop_box
    return (
        {"image_path": image_path, "crop_top": top, "crop_left": left, "crop_bottom": bottom, "crop_right": right}
        | {k: v for k, v in asdict(std).items() if k in ("flipped", "scale", "labels_removed", "found_breast")}
        | {"content_height": std.content_shape[0], "content_width": std.content_shape[1]}
    )


# ---------- the schema ----------


def test_make_findings_types_the_columns_and_completes_the_geometry() -> None:
    rows = [
        _CIRCLE | {"pathology": "MALIGNANT", "origin": " Generator", "detail": "spiculated_mass"},
        _BOX | {"box_right": 60, "origin": "roi_mask"},
        {"image_path": "b.png", "kind": "Other", "origin": "expert_circle"},
    ]
    frame = validate_findings(make_findings(rows))
    assert tuple(frame.columns) == FINDINGS_COLUMNS
    assert frame["finding_id"].dtype == np.int64 and frame["finding_id"].tolist() == [0, 1, 0]
    assert all(frame[c].dtype == np.float64 for c in ("centre_y", "radius", "box_top", "box_right"))
    assert frame["kind"].tolist() == ["mass", "calcification", "other"]
    assert frame["origin"].tolist() == ["generator", "roi_mask", "expert_circle"]
    assert frame.loc[0, "pathology"] == "malignant" and frame.loc[1, "pathology"] is pd.NA
    # a disc centred on pixel (100, 50) with radius 10 spans pixel centres 90..110: edges 90.5 .. 110.5
    circle = frame.loc[0, ["box_top", "box_left", "box_bottom", "box_right"]].tolist()
    assert circle == [90.5, 40.5, 110.5, 60.5]
    # the box holds pixels 10..29 x 20..59: centre (19.5, 39.5), radius half the diagonal of 20 x 40
    assert frame.loc[1, ["centre_y", "centre_x"]].tolist() == [19.5, 39.5]
    assert frame.loc[1, "radius"] == pytest.approx(np.hypot(10, 20))
    assert frame.loc[2, list(FINDINGS_COLUMNS[4:11])].isna().all()  # a finding without a location


def test_a_box_with_an_off_centre_centre_gets_the_radius_to_its_farthest_corner() -> None:
    row = _BOX | {"box_right": 60, "centre_y": 10.0, "centre_x": 20.0, "origin": "expert_box"}
    frame = make_findings([row])
    assert frame.loc[0, "radius"] == pytest.approx(np.hypot(30 - 10.5, 60 - 20.5))


def test_make_findings_takes_a_dict_of_columns_a_frame_and_ids() -> None:
    columns = {
        "image_path": ["a", "a", "b"],
        "kind": ["mass"] * 3,
        "origin": ["generator"] * 3,
        "finding_id": [3, 1, 0],
    }
    by_dict, by_frame = make_findings(columns), make_findings(pd.DataFrame(columns), extra=["note"])
    assert by_dict["finding_id"].tolist() == [3, 1, 0]
    assert list(by_frame.columns) == [*FINDINGS_COLUMNS, "note"] and by_frame["note"].isna().all()
    with pytest.raises(FindingsError, match="'finding_id' must hold whole numbers"):
        make_findings([{"image_path": "a", "finding_id": 1.5}])
    with pytest.raises(FindingsError, match=r"column 'radius' must hold numbers .* rows \[1\]: \['big'\]"):
        make_findings([_CIRCLE, _CIRCLE | {"radius": "big"}])


def test_empty_findings_has_the_schema_and_no_rows() -> None:
    frame = validate_findings(empty_findings())
    assert tuple(frame.columns) == FINDINGS_COLUMNS and frame.empty
    assert frame["finding_id"].dtype == np.int64 and frame["radius"].dtype == np.float64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "tumour"}, r"column 'kind' must be one of \['mass', 'calcification', 'other'\]: rows \[1\]"),
        ({"radius": -1.0}, r"column 'radius' must not be negative: rows \[1\], values \[-1.0\]"),
        ({"origin": "guess"}, "column 'origin' must be one of"),
        ({"pathology": "maybe"}, "column 'pathology' must be benign, malignant or NA"),
        ({"image_path": ""}, "column 'image_path' must be a non-empty path"),
        ({"finding_id": 0}, "column 'finding_id' repeats an id of the same image"),
        ({"finding_id": -2}, "column 'finding_id' must be 0 or more"),
        ({"centre_x": np.inf}, "column 'centre_x' must be finite or NaN"),
    ],
)
def test_validate_findings_names_the_column_and_rows(change: dict, message: str) -> None:
    frame = make_findings([_CIRCLE | {"origin": "generator", "finding_id": 0}, _CIRCLE | {"origin": "generator"}])
    for column, value in change.items():
        frame.loc[1, column] = value
    with pytest.raises(FindingsError, match=message):
        validate_findings(frame)


def test_validate_findings_checks_columns_geometry_and_the_manifest() -> None:
    base = {"image_path": "a.png", "kind": "mass", "origin": "expert_box"}
    with pytest.raises(FindingsError, match=r"missing column\(s\) \['detail'\]"):
        validate_findings(make_findings([base]).drop(columns="detail"))
    with pytest.raises(FindingsError, match="needs centre_y and centre_x together"):
        validate_findings(make_findings([base | {"centre_y": 3.0}]))
    with pytest.raises(FindingsError, match="needs all four box columns"):
        validate_findings(make_findings([base | {"box_top": 3.0, "box_left": 3.0}]))
    with pytest.raises(FindingsError, match="'box_bottom' must be below box_top"):
        validate_findings(make_findings([base | {"box_top": 9, "box_left": 1, "box_bottom": 9, "box_right": 5}]))
    with pytest.raises(FindingsError, match="'radius' must be float pixels"):
        validate_findings(make_findings([base]).astype({"radius": object}))
    frame = make_findings([base, base | {"image_path": "ghost.png"}])
    manifest = pd.DataFrame({"image_path": ["a.png", "b.png"]})
    with pytest.raises(FindingsError, match=r"names images that are not in the manifest: rows \[1\].*ghost.png"):
        validate_findings(frame, manifest)
    assert validate_findings(frame.iloc[:1], manifest) is not None


# ---------- the synthetic findings ----------


def test_findings_from_synthetic_come_from_the_manifest_ground_truth(synthetic_set: pd.DataFrame) -> None:
    findings = findings_from_synthetic(synthetic_set)
    assert len(findings) == len(synthetic_set) == 8  # every synthetic image has one finding
    assert findings["image_path"].tolist() == synthetic_set["image_path"].tolist()
    assert (findings["finding_id"] == 0).all() and (findings["origin"] == "generator").all()
    assert findings["detail"].tolist() == synthetic_set["finding"].tolist()
    expected = ["mass" if k.endswith("_mass") else "calcification" for k in synthetic_set["finding"]]
    assert findings["kind"].tolist() == expected
    assert findings["pathology"].tolist() == synthetic_set["pathology"].tolist()  # the recorded (noisy) label
    assert findings["centre_y"].tolist() == synthetic_set["finding_y"].astype(float).tolist()
    assert findings["radius"].tolist() == synthetic_set["finding_radius"].tolist()
    assert (findings["box_bottom"] - findings["box_top"]).tolist() == pytest.approx((2 * findings["radius"]).tolist())


def test_findings_from_synthetic_skip_rows_without_a_finding_and_need_the_columns(synthetic_set: pd.DataFrame) -> None:
    rows = synthetic_set.copy()
    rows.loc[0, "finding"] = pd.NA
    rows.loc[1, "finding_radius"] = np.nan
    rows.loc[2, "pathology"] = "malignant"
    rows.loc[2, "true_pathology"] = "benign"
    findings = findings_from_synthetic(rows)
    assert findings["image_path"].tolist() == rows["image_path"].tolist()[2:]
    assert findings.loc[0, "pathology"] == "malignant"
    with pytest.raises(FindingsError, match=r"not a synthetic manifest: it lacks \['finding', 'finding_y'"):
        findings_from_synthetic(rows[["image_path", "pathology"]])


# ---------- the CSV ----------


def test_write_and_read_give_the_same_table(tmp_path: Path, synthetic_set: pd.DataFrame) -> None:
    frame = pd.concat(
        [
            findings_from_synthetic(synthetic_set),
            make_findings([_BOX | {"box_right": 60.25, "origin": "roi_mask", "detail": "NA", "pathology": "benign"}]),
            make_findings(
                [
                    {
                        "image_path": "c, d.png",
                        "kind": "other",
                        "origin": "expert_box",
                        "centre_y": 1 / 3,
                        "centre_x": 2 / 3,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    path = write_findings(frame, tmp_path / "findings.csv")
    assert path == tmp_path / "findings.csv" and [p.name for p in tmp_path.iterdir()] == ["findings.csv"]
    back = read_findings(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back.loc[len(frame) - 2, "detail"] == "NA" and back.loc[len(frame) - 1, "centre_y"] == 1 / 3
    empty = read_findings(write_findings(empty_findings(), tmp_path / "none.csv"))
    pd.testing.assert_frame_equal(empty, empty_findings())


def test_write_refuses_a_broken_table_and_read_a_missing_file(tmp_path: Path) -> None:
    broken = make_findings([_CIRCLE | {"origin": "rumour"}])
    with pytest.raises(FindingsError, match="origin"):
        write_findings(broken, tmp_path / "findings.csv")
    assert not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError, match="no findings table at"):
        read_findings(tmp_path / "findings.csv")


# ---------- the model-input grid ----------


def test_findings_in_model_follows_the_records_and_drops_images_without_one() -> None:
    findings = make_findings(
        [
            {"image_path": "a.png", "kind": "mass", "origin": "generator", "centre_y": 300.0, "centre_x": 100.0}
            | {"radius": 20.0},
            {"image_path": "a.png", "kind": "other", "origin": "expert_box"},  # no location
            {"image_path": "b.png", "kind": "mass", "origin": "generator", "centre_y": 1.0, "centre_x": 1.0},
            {"image_path": "c.png", "kind": "mass", "origin": "generator", "centre_y": 1.0, "centre_x": 1.0},
        ]
    )
    records = pd.DataFrame([_RECORD | {"image_path": "a.png"}, {"image_path": "c.png"}, _RECORD | {"image_path": "z"}])
    mapped = findings_in_model(findings, records, (224, 224, 1))
    assert mapped["image_path"].tolist() == ["a.png", "a.png"] and mapped.index.tolist() == [0, 1]
    assert list(mapped.columns) == [*FINDINGS_COLUMNS, *MODEL_COLUMNS]
    first = mapped.iloc[0]
    # (300 + 0.5 - 100) * 0.5 - 0.5 + 12 padding rows; (100 + 0.5 - 50) * 0.5 - 0.5; radius * 0.5
    assert (first["model_y"], first["model_x"], first["model_radius"]) == pytest.approx((111.75, 24.75, 10.0))
    # box edges 280.5 .. 320.5 and 80.5 .. 120.5 -> (edge - 100) * 0.5 + 12 and (edge - 50) * 0.5
    box = first[["model_box_top", "model_box_left", "model_box_bottom", "model_box_right"]].tolist()
    assert box == pytest.approx([102.25, 15.25, 122.25, 35.25])
    assert mapped.iloc[1][list(MODEL_COLUMNS)].isna().all()
    with pytest.raises(KeyError, match="standardization records lack"):
        findings_in_model(findings, records.drop(columns="flipped"), (224, 224))


@pytest.mark.parametrize("flipped", [False, True])
def test_boxes_map_to_the_model_grid_and_back(flipped: bool) -> None:
    std = Standardized.from_record(_RECORD | {"flipped": flipped, "crop_right": 263}, (224, 224))
    top, left, bottom, right = (
        np.array([150.0, 120.0]),
        np.array([60.0, 55.5]),
        np.array([170.0, 400.0]),
        np.array([99.0, 70.0]),
    )
    m_top, m_left, m_bottom, m_right = box_to_model(std, top, left, bottom, right)
    assert (m_left < m_right).all() and (m_top < m_bottom).all()
    y_top, x_a = std.to_original_coordinates(m_top - 0.5, m_left - 0.5)
    y_bottom, x_b = std.to_original_coordinates(m_bottom - 0.5, m_right - 0.5)
    assert np.allclose(np.asarray(y_top) + 0.5, top, atol=1e-9) and np.allclose(np.asarray(y_bottom) + 0.5, bottom)
    lefts, rights = (np.asarray(x_b), np.asarray(x_a)) if flipped else (np.asarray(x_a), np.asarray(x_b))
    assert np.allclose(lefts + 0.5, left, atol=1e-9) and np.allclose(rights + 0.5, right, atol=1e-9)
    row, col, radius = circle_to_model(std, 300.0, 100.0, 20.0)
    assert row.shape == () and float(radius) == pytest.approx(20.0 * (std.content_shape[1] / 213 + 0.5) / 2)


@pytest.mark.parametrize(("mirror", "size"), [(False, (224, 224)), (True, (256, 192)), (False, (160, 320))])
def test_a_drawn_disc_is_covered_by_its_mapped_finding_and_its_peak_maps_back(mirror: bool, size: tuple) -> None:
    """A bright disc drawn at a known centre: after standardize, its pixels are the mapped disc's, and back."""
    h, w = 900, 600
    image, _ = synthetic_phantom(h=h, w=w, seed=5, label=False, strip=False)
    if mirror:
        image = np.ascontiguousarray(image[:, ::-1])
    centre, radius = (400.0, 170.0 if mirror else 430.0), 30.0
    rows, cols = np.indices((h, w))
    image[np.hypot(rows - centre[0], cols - centre[1]) <= radius] = 1.0  # the breast itself stays below 0.8
    std = standardize(image, size, normalize=False)
    assert std.flipped != mirror
    finding = {"image_path": "x.png", "kind": "mass", "origin": "generator", "radius": radius}
    findings = make_findings([finding | {"centre_y": centre[0], "centre_x": centre[1]}])
    spot = findings_in_model(findings, pd.DataFrame([_record_of(std, "x.png")]), size).iloc[0]
    model_rows, model_cols = np.indices(size)
    distance = np.hypot(model_rows - spot["model_y"], model_cols - spot["model_x"])
    bright = std.image > 0.9
    assert bright.sum() > 50
    assert (distance[bright] <= spot["model_radius"] + 1.0).all(), "every bright pixel lies in the mapped disc"
    assert (std.image[distance <= spot["model_radius"] - 1.5] > 0.9).all(), "the mapped disc is all disc"
    in_box = (
        (model_rows + 0.5 >= spot["model_box_top"] - 1)
        & (model_rows + 0.5 <= spot["model_box_bottom"] + 1)
        & (model_cols + 0.5 >= spot["model_box_left"] - 1)
        & (model_cols + 0.5 <= spot["model_box_right"] + 1)
    )
    assert in_box[bright].all()
    peak = np.unravel_index(int(np.argmax(std.image)), size)
    peak_y, peak_x = std.to_original_coordinates(*peak)
    assert np.hypot(peak_y - centre[0], peak_x - centre[1]) <= radius, "the peak maps back onto the disc"
    weights = np.where(bright, std.image, 0.0)
    mean_y, mean_x = (model_rows * weights).sum() / weights.sum(), (model_cols * weights).sum() / weights.sum()
    back_y, back_x = std.to_original_coordinates(mean_y, mean_x)
    assert np.hypot(back_y - centre[0], back_x - centre[1]) < 3.0, "the disc's centroid maps back onto its centre"
