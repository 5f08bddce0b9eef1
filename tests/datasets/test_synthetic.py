"""Tests of the synthetic data set generator (mammo_utils.datasets.synthetic and synthetic_phantom)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mammo_utils.datasets import schema, synthetic
from mammo_utils.datasets.synthetic import generate_synthetic, load_synthetic, plan_synthetic
from mammo_utils.datasets.synthetic_findings import BENIGN_FINDINGS, MALIGNANT_FINDINGS, sample_finding
from mammo_utils.datasets.synthetic_phantom import (
    IMAGE_SHAPE,
    density_from_fraction,
    sample_dense_fraction,
    synthetic_phantom,
)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("synthetic") / "set"
    return out, generate_synthetic(out, n=40, seed=3, workers=1)


def _snapshot(folder: Path) -> dict[str, bytes]:
    files = sorted((folder / "images").glob("*.png")) + [folder / "manifest.csv", folder / "params.json"]
    return {str(path.relative_to(folder)): path.read_bytes() for path in files}


# ---------- one phantom ----------


@pytest.mark.parametrize("view", ["CC", "MLO"])
@pytest.mark.parametrize("laterality", ["L", "R"])
def test_phantom_geometry_follows_cbis_ddsm_convention(view: str, laterality: str) -> None:
    image, truth = synthetic_phantom(np.random.default_rng(0), 2, True, view, laterality, tint=False, bit_depth=8)
    assert image.shape == IMAGE_SHAPE and image.dtype == np.uint8
    h, w = image.shape
    top, left, bottom, right = truth["breast_box"]
    middle = image[h // 4 : 3 * h // 4].astype(float)
    chest_side, far_side = (middle[:, : w // 3], middle[:, -(w // 3) :])[:: 1 if laterality == "L" else -1]
    assert chest_side.mean() > 3 * far_side.mean() + 10  # breast on the chest-wall side (L: image left)
    assert (left == 0) if laterality == "L" else (right == w)
    label_top, label_left, label_bottom, label_right = truth["label_box"]
    assert (label_left > w / 2) if laterality == "L" else (label_right < w / 2)
    assert image[label_top:label_bottom, label_left:label_right].max() >= 0.85 * 255
    assert truth["view"] == view and truth["laterality"] == laterality


def test_phantom_output_modes() -> None:
    grey16, truth16 = synthetic_phantom(np.random.default_rng(1), 3, False, "CC", "L", tint=False, bit_depth=16)
    rgb, truth_rgb = synthetic_phantom(np.random.default_rng(1), 3, False, "CC", "L", tint=True)
    assert grey16.dtype == np.uint16 and grey16.ndim == 2 and truth16["bit_depth"] == 16
    assert grey16.max() > 255 and not truth16["tinted"]
    assert rgb.dtype == np.uint8 and rgb.shape == (*IMAGE_SHAPE, 3) and truth_rgb["tinted"]
    assert np.ptp(rgb.reshape(-1, 3).mean(axis=0)) > 2  # the channels really differ
    with pytest.raises(ValueError, match="bit_depth"):
        synthetic_phantom(np.random.default_rng(1), 3, False, "CC", "L", tint=False, bit_depth=12)


def test_phantom_is_deterministic_and_seed_sensitive() -> None:
    first, truth = synthetic_phantom(np.random.default_rng([5, 1]), 4, True, "MLO", "R")
    again, truth_again = synthetic_phantom(np.random.default_rng([5, 1]), 4, True, "MLO", "R")
    other, _ = synthetic_phantom(np.random.default_rng([5, 2]), 4, True, "MLO", "R")
    assert np.array_equal(first, again) and truth == truth_again
    assert first.shape != other.shape or not np.array_equal(first, other)


@pytest.mark.parametrize("density", [1, 2, 3, 4])
def test_phantom_dense_fraction_sets_density(density: int) -> None:
    rng = np.random.default_rng(density)
    fractions = []
    for malignant in (False, True):
        _, truth = synthetic_phantom(rng, density, malignant, "CC", "L", tint=False)
        assert truth["density"] == density == density_from_fraction(truth["dense_fraction"])
        assert truth["pathology"] == ("malignant" if malignant else "benign")
        assert truth["finding"] in (MALIGNANT_FINDINGS if malignant else BENIGN_FINDINGS)
        assert 1 <= truth["subtlety"] <= 5
        fractions.append(truth["dense_fraction"])
    _, exact = synthetic_phantom(rng, density, False, "MLO", "L", dense_fraction=fractions[0])
    assert exact["dense_fraction"] == pytest.approx(fractions[0], abs=1e-4)


def test_denser_breasts_look_brighter() -> None:
    means = {}
    for density, fraction in ((1, 0.08), (4, 0.92)):
        values = []
        for i in range(4):
            image, truth = synthetic_phantom(
                np.random.default_rng([9, i]),
                density,
                False,
                "CC",
                "L",
                dense_fraction=fraction,
                tint=False,
                bit_depth=8,
            )
            top, left, bottom, right = truth["breast_box"]
            values.append(image[top:bottom, left : left + (right - left) // 2].mean())
        means[density] = np.mean(values)
    assert means[4] > means[1] + 15


def test_same_finding_spec_gives_same_lesion_in_both_views() -> None:
    spec = sample_finding(np.random.default_rng(2), True)
    _, cc = synthetic_phantom(np.random.default_rng(10), 2, True, "CC", "L", finding=spec)
    _, mlo = synthetic_phantom(np.random.default_rng(11), 2, True, "MLO", "L", finding=spec)
    assert cc["finding"] == mlo["finding"] == spec["kind"]
    assert cc["finding_radius"] == mlo["finding_radius"]


def test_phantom_rejects_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="view"):
        synthetic_phantom(rng, 1, False, "ML", "L")
    with pytest.raises(ValueError, match="laterality"):
        synthetic_phantom(rng, 1, False, "CC", "left")
    with pytest.raises(ValueError, match="interval"):
        synthetic_phantom(rng, 1, False, "CC", "L", dense_fraction=0.6)
    with pytest.raises(ValueError, match="contradicts"):
        synthetic_phantom(rng, 1, False, "CC", "L", finding=sample_finding(rng, True))


def test_density_intervals() -> None:
    assert [density_from_fraction(f) for f in (0.0, 0.2499, 0.25, 0.4999, 0.5, 0.7499, 0.75, 1.0)] == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
    ]
    with pytest.raises(ValueError):
        density_from_fraction(1.2)
    rng = np.random.default_rng(0)
    for density in (1, 2, 3, 4):
        draws = np.array([sample_dense_fraction(rng, density) for _ in range(400)])
        assert all(density_from_fraction(f) == density for f in draws)
        near_edge = np.minimum(np.abs(draws - 0.25), np.minimum(np.abs(draws - 0.5), np.abs(draws - 0.75)))
        assert 0.15 < (near_edge < 0.04).mean() < 0.8  # boundary cases exist but do not dominate


# ---------- the plan (labels, patients, noise) ----------


def test_plan_patients_labels_and_noise_rates() -> None:
    jobs = pd.DataFrame(plan_synthetic(6000, seed=7))
    assert len(jobs) == 6000 and list(jobs["index"]) == list(range(6000))
    per_patient = jobs.groupby("patient_id")
    assert set(per_patient.size()) <= {2, 4}
    assert (per_patient["true_density"].nunique() == 1).all() and (per_patient["density"].nunique() == 1).all()
    breasts = jobs.groupby(["patient_id", "laterality"])
    assert breasts["view"].apply(lambda views: sorted(views) == ["CC", "MLO"]).all()
    assert (breasts["true_pathology"].nunique() == 1).all()
    assert jobs["patient_id"].str.fullmatch(r"SYN-\d{5}").all()
    first = breasts.first()
    assert 0.40 < (first["true_pathology"] == "malignant").mean() < 0.50
    assert 0.03 < (first["pathology"] != first["true_pathology"]).mean() < 0.07
    patients = per_patient.first()
    assert 0.03 < (patients["density"] != patients["true_density"]).mean() < 0.07
    assert ((patients["density"] - patients["true_density"]).abs() <= 1).all()
    shares = patients["true_density"].value_counts(normalize=True)
    assert set(shares.index) == {1, 2, 3, 4} and shares.min() > 0.12 and shares[2] > shares[1]
    noisy = (jobs["density"] != jobs["true_density"]) | (jobs["pathology"] != jobs["true_pathology"])
    assert (jobs["label_noise"] == noisy).all()
    assert 0.06 < jobs["label_noise"].mean() < 0.14
    assert plan_synthetic(50, seed=7) == plan_synthetic(50, seed=7)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_plan_handles_odd_sizes(n: int) -> None:
    assert len(plan_synthetic(n, seed=1)) == n
    with pytest.raises(ValueError):
        plan_synthetic(0)


# ---------- the written set ----------


def test_generated_set_is_a_valid_manifest(small_set: tuple[Path, pd.DataFrame]) -> None:
    out, frame = small_set
    schema.validate_manifest(frame)
    assert list(frame.columns) == [*schema.MANIFEST_COLUMNS, *synthetic.EXTRA_COLUMNS]
    assert len(frame) == 40 and (frame["source"] == "synthetic").all() and frame["split"].isna().all()
    assert frame["image_path"].map(lambda p: os.path.isabs(p) and os.path.isfile(p)).all()
    assert set(frame["view"]) == {"CC", "MLO"} and set(frame["laterality"]) == {"L", "R"}
    assert set(frame["pathology"]) == {"benign", "malignant"}
    assert frame["label_noise"].dtype == bool and frame["density"].dtype == "Int64"
    clean = frame[~frame["label_noise"]]
    assert (clean["density"] == clean["true_density"]).all()
    assert (clean["pathology"] == clean["true_pathology"]).all()
    assert (frame["dense_fraction"].map(density_from_fraction) == frame["true_density"]).all()
    assert frame.groupby("patient_id")["density"].nunique().eq(1).all()
    names = frame["image_path"].map(lambda p: Path(p).stem)
    assert (names == frame["patient_id"] + "_" + frame["laterality"] + "_" + frame["view"]).all()


def test_generated_images_are_readable_in_several_modes(small_set: tuple[Path, pd.DataFrame]) -> None:
    _, frame = small_set
    modes = []
    for path in frame["image_path"]:
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.size == (IMAGE_SHAPE[1], IMAGE_SHAPE[0])
            modes.append(image.mode)
    assert "RGB" in modes and "I;16" in modes
    assert modes.count("L") > len(modes) / 2


def test_load_returns_the_same_frame(small_set: tuple[Path, pd.DataFrame]) -> None:
    out, frame = small_set
    pd.testing.assert_frame_equal(load_synthetic(out), frame)
    assert not list(out.glob("*.tmp"))
    params = json.loads((out / "params.json").read_text())
    assert params["name"] == "synthetic" and params["n"] == 40 and params["seed"] == 3
    assert pd.read_csv(out / "manifest.csv")["image_path"].str.startswith("images/").all()  # relocatable


def test_existing_set_is_reused_without_regenerating(small_set: tuple[Path, pd.DataFrame]) -> None:
    out, frame = small_set
    files = [out / "manifest.csv", *sorted((out / "images").glob("*.png"))[:5]]
    before = [path.stat().st_mtime_ns for path in files]
    again = generate_synthetic(out, n=40, seed=3, workers=1)
    assert [path.stat().st_mtime_ns for path in files] == before
    pd.testing.assert_frame_equal(again, frame)


def test_same_seed_is_byte_identical_for_any_worker_count(tmp_path: Path) -> None:
    generate_synthetic(tmp_path / "one", n=18, seed=11, workers=1)
    generate_synthetic(tmp_path / "two", n=18, seed=11, workers=2)
    first, second = _snapshot(tmp_path / "one"), _snapshot(tmp_path / "two")
    assert len(first) == 18 + 2 and first == second
    generate_synthetic(tmp_path / "other", n=18, seed=12, workers=1)
    assert _snapshot(tmp_path / "other")["manifest.csv"] != first["manifest.csv"]


def test_changed_parameters_or_incomplete_set_regenerate(tmp_path: Path) -> None:
    out = tmp_path / "set"
    generate_synthetic(out, n=8, seed=1, workers=1)
    smaller = generate_synthetic(out, n=4, seed=1, workers=1)
    assert len(smaller) == 4 and len(list((out / "images").glob("*.png"))) == 4  # stale images removed
    (out / "manifest.csv").unlink()  # as after a crash: no manifest means incomplete
    mtime = (out / "params.json").stat().st_mtime_ns
    assert len(generate_synthetic(out, n=4, seed=1, workers=1)) == 4
    assert (out / "manifest.csv").is_file() and (out / "params.json").stat().st_mtime_ns >= mtime
    before = (out / "manifest.csv").stat().st_mtime_ns
    generate_synthetic(out, n=4, seed=1, workers=1, overwrite=True)
    assert (out / "manifest.csv").stat().st_mtime_ns > before


def test_fast_mode_and_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    monkeypatch.setattr(synthetic, "FAST_N", 6)
    frame = generate_synthetic(n=500, fast=True, workers=1)
    assert len(frame) == 6
    assert (tmp_path / "data" / "synthetic_fast" / "manifest.csv").is_file()
    assert synthetic.default_dir() == tmp_path / "data" / "synthetic"
    pd.testing.assert_frame_equal(load_synthetic(fast=True), frame)


def test_bad_arguments_and_missing_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_synthetic(tmp_path, n=2, seed=-1)
    with pytest.raises(FileNotFoundError, match="generate_synthetic"):
        load_synthetic(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("args", "digest"),
    [
        (("MLO", "R", 3, True), "3fd6442668c8b00716d4e0402dab4cc0478bb73a8e03805a3c8c0f925c005cfe"),
        (("CC", "L", 2, False), "1b2d4c3d6873b32658784353e957cc854b2a94aefcf1b7cb0f33eb810a54f9e8"),
    ],
)
def test_phantom_pixels_are_pinned(args: tuple[str, str, int, bool], digest: str) -> None:
    """Regression: the same seed draws the same pixels (SHA-256 recorded before the generator was split into steps).

    A change here changes every synthetic data set: regenerate them (and the committed notebooks' numbers) on purpose.
    """
    view, laterality, density, malignant = args
    image, truth = synthetic_phantom(np.random.default_rng(123), density, malignant, view, laterality)
    assert image.dtype == np.uint8 and image.shape == IMAGE_SHAPE
    assert hashlib.sha256(image.tobytes()).hexdigest() == digest
    assert truth["finding_centre"] == ((229, 227) if laterality == "R" else (203, 181))
