"""Lesion-model training: the findings' cell targets, whole-image batches, validation AUC, with and without findings."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from mammo_utils.datasets.catalog import load_findings
from mammo_utils.datasets.findings import empty_findings, findings_in_model
from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.models.lesion import ATTENTION, CELL_MALIGNANCY, FINDING_PROBABILITY, build_lesion_model
from mammo_utils.training.cache import build_cache
from mammo_utils.training.lesion import (
    FINDING_CELL_WEIGHT,
    ImageAUC,
    ImageFindings,
    LesionImages,
    LesionRun,
    fit_lesion_model,
    image_findings,
    image_targets,
)


def _one(y: float, x: float, radius: float, label: int = 2) -> ImageFindings:
    return ImageFindings(np.array([y]), np.array([x]), np.array([radius]), np.array([label], dtype=np.int32))


def test_targets_mark_the_cells_within_the_finding() -> None:
    targets = image_targets([_one(40.0, 24.0, 10.0), None], (64, 64))
    assert targets.attention.shape == targets.finding.shape == (2, 4, 4)
    # cell centres are at 7.5, 23.5, 39.5, 55.5: only cell (2, 1) lies within 12 px (the minimum radius) of (40, 24)
    assert np.argwhere(targets.finding[0]).tolist() == [[2, 1]]
    assert targets.attention[0, 2, 1] == 1.0 and targets.malignant_cells[0, 2, 1] == 1.0
    assert targets.has_findings.tolist() == [True, False] and not targets.attention[1].any()
    big = image_targets([_one(32.0, 32.0, 40.0, label=1)], (64, 64))
    # 0.75 x 40 = 30 px around (32, 32): all cells but the 4 corners (33.2 px and more away)
    assert big.finding[0].sum() == 12 and not big.finding[0][[0, 0, 3, 3], [0, 3, 0, 3]].any()
    assert np.isclose(big.attention[0].sum(), 1.0)
    assert not big.malignant_cells.any()  # a benign finding


def test_a_tiny_finding_gets_its_nearest_cell_and_malignant_wins_where_findings_overlap() -> None:
    tiny = image_targets([_one(100.0, 100.0, 1.0)], (64, 64))  # off the grid's cell centres, far from all
    assert tiny.finding[0].sum() == 1 and tiny.finding[0, 3, 3] == 1
    both = ImageFindings(np.array([24.0, 24.0]), np.array([24.0, 30.0]), np.array([24.0, 24.0]), np.array([1, 2]))
    targets = image_targets([both], (48, 48))  # cells within 18 px of either centre
    assert targets.malignant_cells[0, 1, 1] == 1 and targets.finding[0, 1, 1] == 1  # (23.5, 23.5): in both
    assert targets.finding[0, 1, 0] == 1 and targets.malignant_cells[0, 1, 0] == 0  # (23.5, 7.5): benign only


def _batch_data() -> tuple[np.ndarray, pd.DataFrame, list]:
    images = np.zeros((3, 64, 64), dtype=np.uint8)
    images[0, 32:48, 16:32] = 200  # a bright square where the first image's finding is
    rows = pd.DataFrame({"pathology": ["malignant", "benign", None], "density": [2, np.nan, 4]})
    return images, rows, [_one(40.0, 24.0, 10.0), None, _one(8.0, 8.0, 10.0, label=1)]


def test_batches_carry_targets_and_weights_that_flip_with_the_image() -> None:
    images, rows, found = _batch_data()
    data = LesionImages(images, rows, found, batch_size=3, seed=3, augment=False)
    x, y, w = data[0]
    assert x.shape == (3, 64, 64, 1) and x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0
    assert y[ATTENTION].shape == (3, 16) and y[FINDING_PROBABILITY].shape == y[CELL_MALIGNANCY].shape == (3, 4, 4, 1)
    assert w[ATTENTION].tolist() == [1.0, 0.0, 1.0]  # the image without findings trains on image labels only
    assert w[FINDING_PROBABILITY][0, 2, 1] == FINDING_CELL_WEIGHT and not w[FINDING_PROBABILITY][1].any()
    assert w[CELL_MALIGNANCY][0, 2, 1] == 16.0 and w[CELL_MALIGNANCY][0].sum() == 16.0  # mean over its cells
    assert w["malignancy"].tolist() == [1.0, 1.0, 0.0] and w["density"].tolist() == [1.0, 0.0, 1.0]  # unknown: 0
    assert y["malignancy"][:, 0].tolist() == [1.0, 0.0, 0.0] and y["density"][[0, 2], 0].tolist() == [1, 3]
    flipped = LesionImages(images, rows, found, batch_size=3, seed=0)
    seen = set()
    for _ in range(8):  # the epochs flip image 0 differently: its finding cell moves with the bright square
        xs, ys, _ = flipped[0]
        i = int(np.flatnonzero(flipped.order == 0)[0])
        cell = np.unravel_index(int(np.argmax(ys[ATTENTION][i])), (4, 4))
        bright = np.unravel_index(int(np.argmax(xs[i, ..., 0].reshape(4, 16, 4, 16).mean(axis=(1, 3)))), (4, 4))
        assert cell == bright
        seen.add(cell)
        flipped.on_epoch_end()
    assert len(seen) > 1
    again = LesionImages(images, rows, found, batch_size=3, seed=0)
    np.testing.assert_array_equal(again[0][0], LesionImages(images, rows, found, batch_size=3, seed=0)[0][0])


def test_batches_refuse_mismatched_or_empty_inputs() -> None:
    images, rows, found = _batch_data()
    with pytest.raises(ValueError, match="must match"):
        LesionImages(images[:2], rows, found)
    with pytest.raises(ValueError, match="no images"):
        LesionImages(images[:0], rows.iloc[:0], [])


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
    return LesionRun(cached, frame[frame.split == "train"], frame[frame.split == "val"], located, 8, 1, 0, 1e-3, 1, 0)


@pytest.mark.parametrize("with_findings", [True, False])
def test_fit_with_findings_or_image_labels_only(tiny: tuple, with_findings: bool) -> None:
    manifest, _ = tiny
    findings = load_findings("synthetic", manifest) if with_findings else empty_findings()
    keras.utils.set_random_seed(0)
    model = build_lesion_model((64, 64, 1), width=4, density_width=4)
    before = model.get_layer(CELL_MALIGNANCY).get_weights()[0].copy()
    history = fit_lesion_model(model, _run(tiny, findings))
    losses = {"attention_loss", "finding_probability_loss", "cell_malignancy_loss", "malignancy_loss"}
    assert {"epoch", "val_malignancy_auc", "density_loss", "val_density_loss", *losses} <= set(history.columns)
    assert np.isfinite(history[["malignancy_loss", "density_loss"]]).all().all() and len(history) == 1
    where = history["attention_loss"].iloc[0]
    assert where > 0 if with_findings else where == 0  # without findings only the image labels teach
    assert not np.allclose(model.get_layer(CELL_MALIGNANCY).get_weights()[0], before)  # the map learned either way


def test_image_findings_keep_known_pathology_only(tiny: tuple) -> None:
    manifest, cached = tiny
    findings = load_findings("synthetic", manifest)
    findings.loc[0, "pathology"] = pd.NA
    located = findings_in_model(findings, cached.standardization(cached.manifest), (64, 64))
    found = image_findings(cached.manifest, located)
    first = cached.manifest["image_path"].tolist().index(findings.loc[0, "image_path"])
    assert found[first] is None and sum(f is not None for f in found) == len(cached.manifest) - 1


def test_batches_read_labels_as_the_image_pipeline_does() -> None:
    images, _, found = _batch_data()
    rows = pd.DataFrame({"pathology": ["MALIGNANT", "benign", ""], "density": ["c", "B", ""]})  # letters, case
    _, y, w = LesionImages(images, rows, found, batch_size=3, augment=False)[0]
    assert y["density"][:2, 0].tolist() == [2, 1] and w["density"].tolist() == [1.0, 1.0, 0.0]
    assert y["malignancy"][:, 0].tolist() == [1.0, 0.0, 0.0] and w["malignancy"].tolist() == [1.0, 1.0, 0.0]
