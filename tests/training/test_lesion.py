"""Lesion-model training: per-cell targets, crops that hold the finding, the validation AUC, the stages."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from mammo_utils.datasets.catalog import load_findings
from mammo_utils.datasets.findings import empty_findings, findings_in_model
from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.models.lesion import LESION_STRIDE, build_lesion_model
from mammo_utils.training.cache import build_cache
from mammo_utils.training.lesion import (
    LESION_CELL_WEIGHT,
    ImageAUC,
    ImageFindings,
    LesionCrops,
    LesionRun,
    cell_targets,
    fit_lesion_model,
    image_findings,
)


def _one(y: float, x: float, radius: float, label: int = 2) -> ImageFindings:
    return ImageFindings(np.array([y]), np.array([x]), np.array([radius]), np.array([label], dtype=np.int32))


def test_cell_targets_mark_the_cells_within_the_finding() -> None:
    target, weight = cell_targets(_one(40.0, 24.0, 10.0), top=0, left=0, size=64)
    assert target.shape == (4, 4)
    # cell centres are at 7.5, 23.5, 39.5, 55.5: only cell (2, 1) lies within 12 px (3/4 cell) of (40, 24)
    assert np.argwhere(target == 2).tolist() == [[2, 1]] and target.sum() == 2
    assert weight[2, 1] == LESION_CELL_WEIGHT and weight[0, 0] == 1.0
    shifted, _ = cell_targets(_one(40.0, 24.0, 10.0), top=16, left=16, size=64)
    assert np.argwhere(shifted == 2).tolist() == [[1, 0]]
    background, _ = cell_targets(None, 0, 0, 64)
    assert not background.any()


def test_malignant_wins_where_findings_overlap() -> None:
    both = ImageFindings(np.array([24.0, 24.0]), np.array([24.0, 30.0]), np.array([20.0, 20.0]), np.array([1, 2]))
    target, _ = cell_targets(both, 0, 0, 48)
    assert target[1, 1] == 2 and target[1, 0] == 1  # (23.5, 23.5) is in both, (23.5, 7.5) in the benign one only


def test_crops_hold_their_finding_and_repeat_with_the_seed() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 128, 128), dtype=np.uint8)
    found = [_one(30.0, 100.0, 8.0), None, _one(110.0, 20.0, 8.0, label=1)]
    content = [(0, 0, 128, 128)] * 3
    crops = LesionCrops(images, found, content, patch_size=64, batch_size=4, seed=3)
    assert crops.rows == [0, 2] and len(crops) == 1  # two images with findings, two crops each
    x, y, w = crops[0]
    assert x.shape == (4, 64, 64, 1) and x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
    assert y.shape == w.shape == (4, 64 // LESION_STRIDE, 64 // LESION_STRIDE)
    assert sorted(int(t.max()) for t in y)[-2:] == [1, 2]  # each positive crop shows its finding's class
    again = LesionCrops(images, found, content, patch_size=64, batch_size=4, seed=3)
    np.testing.assert_array_equal(again[0][0], x)
    crops.on_epoch_end()
    assert not np.array_equal(crops[0][0], x)  # fresh crops every epoch


def test_crops_need_a_finding() -> None:
    with pytest.raises(ValueError, match="no image with a finding"):
        LesionCrops(np.zeros((1, 64, 64), np.uint8), [None], [(0, 0, 64, 64)], patch_size=32)


def test_image_auc_logs_the_whole_image_validation_auc() -> None:
    model = build_lesion_model((64, 64, 1), width=4, density_width=4)
    images = np.random.default_rng(1).integers(0, 255, (6, 64, 64), dtype=np.uint8)
    callback = ImageAUC(model, images, np.array([0, 1, 0, 1, np.nan, 1.0]), batch_size=4)
    logs: dict[str, float] = {}
    callback.on_epoch_end(0, logs)
    assert 0.0 <= logs["val_malignancy_auc"] <= 1.0
    ImageAUC(model, images, np.zeros(6)).on_epoch_end(0, logs)
    assert np.isnan(logs["val_malignancy_auc"])  # one class only: no AUC


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("lesion")
    manifest = split_by_patient(generate_synthetic(folder / "synthetic", n=24, seed=5, workers=1), seed=5)
    cached = build_cache(manifest, folder / "cache", size=(64, 64), progress=False, workers=1)
    return manifest, cached


def _run(tiny: tuple, findings: pd.DataFrame) -> LesionRun:
    manifest, cached = tiny
    frame = cached.manifest
    located = findings_in_model(findings, cached.standardization(frame), (64, 64))
    return LesionRun(
        cached, frame[frame.split == "train"], frame[frame.split == "val"], located, 8, 1, 0, 1e-3, 1, True, 0
    )


@pytest.mark.parametrize("with_findings", [True, False])
def test_fit_with_findings_or_image_labels_only(tiny: tuple, with_findings: bool) -> None:
    manifest, _ = tiny
    findings = load_findings("synthetic", manifest) if with_findings else empty_findings()
    keras.utils.set_random_seed(0)
    model = build_lesion_model((64, 64, 1), width=4, density_width=4)
    before = model.get_layer("lesion_map").get_weights()[0].copy()
    history = fit_lesion_model(model, _run(tiny, findings))
    first = "lesion_loss" if with_findings else "image_loss"
    assert {"epoch", first, "val_malignancy_auc", "density_loss", "val_density_loss"} <= set(history.columns)
    assert np.isfinite(history[first]).all() and len(history) == 1
    assert not np.allclose(model.get_layer("lesion_map").get_weights()[0], before)  # the map learned either way


def test_image_findings_keep_known_pathology_only(tiny: tuple) -> None:
    manifest, cached = tiny
    findings = load_findings("synthetic", manifest)
    findings.loc[0, "pathology"] = pd.NA
    located = findings_in_model(findings, cached.standardization(cached.manifest), (64, 64))
    found = image_findings(cached.manifest, located)
    first = cached.manifest["image_path"].tolist().index(findings.loc[0, "image_path"])
    assert found[first] is None and sum(f is not None for f in found) == len(cached.manifest) - 1
