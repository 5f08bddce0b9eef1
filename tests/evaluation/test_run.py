"""Tests for mammo_utils.evaluation.run: a saved run is evaluated on its own held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.evaluation.localization import gradcam_localization, pointing_game
from mammo_utils.evaluation.run import (
    METRICS_FILE,
    evaluate_run,
    finding_maps,
    gradcam_cached,
    lesion_maps_cached,
    read_split,
)
from mammo_utils.evaluation.tables import HEADLINE_METRICS, metric_entry
from mammo_utils.inference.gradcam import GradCAM
from mammo_utils.models.networks import build_whole_image_model
from mammo_utils.training.config import TrainConfig
from mammo_utils.training.runs import RunResult
from mammo_utils.training.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAMMO_HOME", str(home))
        manifest = split_by_patient(generate_synthetic(out_dir=home / "synthetic", n=40, workers=1), seed=3)
        config = TrainConfig(epochs=1, batch_size=8, image_size=64, seed=3, fast=True, verbose=0)
        yield train(manifest, config)


def test_metrics_json_has_every_headline_metric_with_bracketing_ci(run: RunResult) -> None:
    evaluation = evaluate_run(run.run_dir, n_boot=100, seed=0)
    saved = json.loads((run.run_dir / METRICS_FILE).read_text())
    assert saved["data"]["split"] == "test" and saved["data"]["synthetic"] is True
    assert saved["model"]["name"] == "lesion"
    for name in HEADLINE_METRICS:
        entry = metric_entry(saved, name)
        assert set(entry) >= {"value", "ci_low", "ci_high"}, name
        if entry["value"] is not None:  # undefined only when a class is absent from the tiny test split
            assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
    assert saved["bootstrap"]["n_boot"] == 100 and saved["bootstrap"]["unit"] == "patient"
    assert saved["calibration"]["malignancy"]["temperature"] > 0
    assert saved["malignancy"]["threshold"]["chosen_on"] == "val"
    assert len(evaluation.test) == (read_split(run.run_dir)["split"] == "test").sum()


def test_predictions_are_saved_and_splits_kept_apart(run: RunResult) -> None:
    evaluate_run(run.run_dir, n_boot=20, seed=0)
    val = pd.read_csv(run.run_dir / "predictions_val.csv")
    test = pd.read_csv(run.run_dir / "predictions_test.csv")
    assert set(val["split"]) == {"val"} and set(test["split"]) == {"test"}
    assert not set(val["patient_id"]) & set(test["patient_id"])
    probs = test[[f"p_density_{d}" for d in (1, 2, 3, 4)]].sum(axis=1)
    assert probs.sub(1).abs().max() < 1e-4
    assert test["p_malignant"].between(0, 1).all()


def test_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        evaluate_run(tmp_path / "no-such-run", n_boot=10)


def test_gradcam_cached_maps_the_test_images_with_their_findings(run: RunResult) -> None:
    evaluation = evaluate_run(run.run_dir, n_boot=10, seed=0)
    rows = evaluation.test.head(3)
    maps = gradcam_cached(evaluation.run.model, evaluation.cached, rows)
    assert maps.images.shape == maps.cams.shape == (3, 64, 64) and maps.cams.dtype == np.float32
    assert maps.cams.min() >= 0.0 and maps.cams.max() <= 1.0
    records = maps.records
    assert records["image_path"].tolist() == rows["image_path"].tolist()
    assert records[["finding_y", "finding_x", "finding_radius", "crop_top", "content_height"]].notna().all().all()
    for cam, height in zip(maps.cams, records["content_height"], strict=True):  # zero outside the content
        top = (64 - int(height)) // 2
        assert not cam[:top].any() and not cam[top + int(height) :].any()
    found = gradcam_localization(maps.cams, records)
    assert found.summary["n"] == 3 and set(found.table["hit"]) <= {True, False}
    with pytest.raises(ValueError, match="at least one"):
        gradcam_cached(evaluation.run.model, evaluation.cached, rows.head(0))


def test_finding_maps_of_a_lesion_model_are_its_own_probability_maps(run: RunResult) -> None:
    evaluation = evaluate_run(run.run_dir, n_boot=10, seed=0)
    rows = evaluation.test.head(3)
    maps = finding_maps(evaluation.run.model, evaluation.cached, rows)
    assert maps.kind == "lesion_map" and maps.cams.shape == (3, 64, 64)
    grids = GradCAM(evaluation.run.model)(maps.images).lesion_grids
    assert grids is not None
    for lesion, grid, height in zip(maps.cams, grids, maps.records["content_height"], strict=True):
        top = (64 - int(height)) // 2
        assert not lesion[:top].any() and lesion.max() <= grid.max() + 1e-5  # probabilities, not rescaled
    assert pointing_game(maps.cams, maps.records).summary["margin"] == 0.0
    whole = build_whole_image_model((64, 64, 1), width=4)
    assert finding_maps(whole, evaluation.cached, rows).kind == "gradcam"
    with pytest.raises(ValueError, match="no lesion map"):
        lesion_maps_cached(whole, evaluation.cached, rows)
