import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mammo_utils.datasets.schema import ManifestError, make_manifest
from mammo_utils.datasets.splits import check_no_patient_overlap, split_by_patient


def _manifest(n_patients: int, views: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        density = int(rng.integers(1, 5))
        for v in range(views):
            rows.append(
                {
                    "image_path": f"/x/p{p}_{v}.png",
                    "patient_id": f"P{p:04d}",
                    "density": density,
                    "pathology": "malignant" if rng.random() < 0.4 else "benign",
                    "source": "synthetic",
                }
            )
    return make_manifest(rows)


def test_no_patient_in_two_splits():
    frame = split_by_patient(_manifest(200), seed=3)
    check_no_patient_overlap(frame)
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(frame["split"]) == {"train", "val", "test"}


def test_fractions_and_stratification():
    frame = split_by_patient(_manifest(400), val_fraction=0.15, test_fraction=0.15, seed=1)
    per_patient = frame.drop_duplicates("patient_id")
    shares = per_patient["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.15, abs=0.01)
    assert shares["val"] == pytest.approx(0.15, abs=0.01)
    # each density class is represented in every split in about the same proportion
    table = pd.crosstab(per_patient["density"], per_patient["split"], normalize="columns")
    assert (table.max(axis=1) - table.min(axis=1)).max() < 0.06


def test_same_seed_same_split_and_different_seed_differs():
    manifest = _manifest(100)
    a = split_by_patient(manifest, seed=7)
    b = split_by_patient(manifest, seed=7)
    c = split_by_patient(manifest, seed=8)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()


def test_overlap_is_detected():
    frame = split_by_patient(_manifest(20), seed=0)
    frame.loc[0, "split"] = "test" if frame.loc[0, "split"] != "test" else "train"
    with pytest.raises(ManifestError, match="several splits"):
        check_no_patient_overlap(frame)


def test_missing_patient_ids_use_the_image():
    manifest = _manifest(30, views=1)
    manifest["patient_id"] = pd.NA
    frame = split_by_patient(manifest, seed=0)
    assert frame["split"].notna().all()


def test_bad_fractions_and_too_small():
    with pytest.raises(ValueError):
        split_by_patient(_manifest(10), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ManifestError, match="cannot hold out"):
        split_by_patient(_manifest(1), test_fraction=0.9, val_fraction=0.05)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(min_value=3, max_value=60), views=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_split_property(n, views, seed):
    frame = split_by_patient(_manifest(n, views, seed), seed=seed)
    check_no_patient_overlap(frame)
    assert len(frame) == n * views
    assert frame["split"].notna().all()
