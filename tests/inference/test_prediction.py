"""Tests for mammo_utils.inference.prediction: the Prediction record, its flat row, BatchResult (no model)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from mammo_utils.inference.prediction import STAGES, BatchResult, Prediction
from mammo_utils.inference.regions import LesionRegion


def _prediction(source: str = "case.dcm", malignant: bool = True) -> Prediction:
    """A hand-made prediction with arrays, as the Predictor would return it."""
    image = np.zeros((8, 8), np.float32)
    return Prediction(
        source=source,
        density=3,
        density_letter="c",
        density_name="heterogeneously dense",
        density_probs=(0.1, 0.2, 0.6, 0.1),
        malignancy_prob=0.7123456789,
        malignancy_prob_raw=0.8,
        malignant=malignant,
        threshold=0.4,
        calibrated=True,
        temperature=1.5,
        image=image,
        cams={"density": image, "malignancy": image},
        thumbnail=np.ones((4, 4), np.float32),
        crop_box=(1, 0, 7, 6),
        flipped=False,
        found_breast=True,
        content_shape=(6, 6),
        original_shape=(80, 60),
        source_format="dicom",
        laterality="L",
        view="CC",
        warnings=("a remark",),
        timings={"decode": 0.1, "standardize": 0.2, "model_gradcam": 0.3, "total": 0.65},
        model_version="run/default",
    )


def test_call_and_without_arrays():
    p = _prediction()
    assert p.call == "malignant" and _prediction(malignant=False).call == "benign"
    light = p.without_arrays()
    assert light.image is None and light.cams == {} and light.thumbnail is None
    assert light.density_probs == p.density_probs and light.crop_box == p.crop_box and p.image is not None
    with pytest.raises(AttributeError):
        p.density = 1  # frozen: a prediction is a record, not a mutable state


def test_to_record_is_one_flat_json_row():
    record = _prediction().to_record()
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert [record[f"p_density_{k}"] for k in "abcd"] == [0.1, 0.2, 0.6, 0.1]
    assert record["malignancy_prob"] == 0.712346 and record["call"] == "malignant"
    assert record["crop_box"] == [1, 0, 7, 6] and record["warnings"] == ["a remark"]
    assert [record[f"seconds_{stage}"] for stage in STAGES] == [0.1, 0.2, 0.3, 0.65]
    assert not {"image", "cams", "thumbnail"} & set(record)
    missing_stage = replace(_prediction(), timings={"total": 1.0})
    assert math.isnan(missing_stage.to_record()["seconds_decode"])


def test_batch_result_frame_has_predictions_then_errors():
    batch = BatchResult()
    assert batch.ok and batch.to_frame().empty
    batch.predictions += [_prediction("a.dcm"), _prediction("b.png", malignant=False)]
    batch.errors.append(("c.jpg", "c.jpg: not a mammogram"))
    assert not batch.ok
    frame = batch.to_frame()
    assert frame["source"].tolist() == ["a.dcm", "b.png", "c.jpg"]
    assert frame["error"].isna().tolist() == [True, True, False]
    assert frame["call"].tolist()[:2] == ["malignant", "benign"]


def test_lesion_map_and_regions_travel_with_the_record():
    region = LesionRegion(0.9, (0.0, 0.0, 4.0, 4.0), (10.0, 20.0, 40.0, 50.0))
    p = replace(_prediction(), lesion_map=np.full((8, 8), 0.5, np.float32), regions=(region,))
    assert p.to_record()["regions"] == [region.to_record()] and _prediction().to_record()["regions"] == []
    assert p.without_arrays().lesion_map is None and p.without_arrays().regions == (region,)
    frame = BatchResult(predictions=[p, _prediction("plain.dcm")]).to_frame()
    assert [json.loads(cell) for cell in frame["regions"]] == [[region.to_record()], []]  # JSON text in a CSV cell
