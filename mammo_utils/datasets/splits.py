"""Patient-level, stratified train/val/test splits.

All images of one patient land in the same split, so no patient's anatomy leaks from training into
validation or test. Patients are stratified by a per-patient label: the density class (its most frequent
value) and whether any of the patient's images is malignant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mammo_utils.datasets.schema import ManifestError, validate_manifest


def patient_strata(manifest: pd.DataFrame) -> pd.Series:
    """One stratum label per patient: ``"d<density>-m<any malignant>"`` (``?`` where unknown)."""

    def stratum(group: pd.DataFrame) -> str:
        density = group["density"].dropna()
        dens = str(int(density.mode().iloc[0])) if len(density) else "?"
        pathology = group["pathology"].dropna()
        mal = "?" if pathology.empty else str(int((pathology == "malignant").any()))
        return f"d{dens}-m{mal}"

    return manifest.groupby("patient_id", sort=True)[["density", "pathology"]].apply(stratum)


def _stratify_or_none(strata: pd.Series, n_take: int) -> pd.Series | None:
    """Strata usable by ``train_test_split``: rare strata merged; ``None`` when stratifying is impossible."""
    counts = strata.value_counts()
    merged = strata.where(strata.map(counts) >= 2, "rare")
    counts = merged.value_counts()
    if counts.min() < 2 or n_take < counts.size or len(strata) - n_take < counts.size:
        return None
    return merged


def _split_patients(patients: pd.Index, strata: pd.Series, fraction: float, seed: int) -> tuple[pd.Index, pd.Index]:
    n_take = int(round(fraction * len(patients)))
    if n_take == 0:
        return patients, patients[:0]
    if n_take >= len(patients):
        raise ManifestError(
            f"cannot hold out {fraction:.0%} of only {len(patients)} patient(s); add data or lower the fraction"
        )
    stratify = _stratify_or_none(strata.loc[patients], n_take)
    keep, take = train_test_split(
        np.asarray(patients), test_size=n_take, random_state=seed, shuffle=True, stratify=stratify
    )
    return pd.Index(keep), pd.Index(take)


def split_by_patient(
    manifest: pd.DataFrame,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
) -> pd.DataFrame:
    """Assign ``split`` = train / val / test by patient, stratified by density and malignancy.

    Parameters
    ----------
    manifest
        A manifest (see ``mammo_utils.datasets.schema``); rows with a missing ``patient_id`` use their
        ``image_path`` as the patient, so they still split cleanly.
    val_fraction, test_fraction
        Fractions of *patients* held out for validation and test.
    seed
        Seed of the shuffle; the same manifest and seed give the same split.

    Returns
    -------
    pandas.DataFrame
        A copy of ``manifest`` with the ``split`` column filled.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    frame = validate_manifest(manifest).copy()
    if frame.empty:
        raise ManifestError("cannot split an empty manifest")
    frame["patient_id"] = frame["patient_id"].fillna(frame["image_path"])
    strata = patient_strata(frame)
    patients = strata.index
    rest, test = _split_patients(patients, strata, test_fraction, seed)
    train, val = _split_patients(rest, strata, val_fraction / (1 - test_fraction), seed + 1)
    assignment = pd.Series("train", index=patients, dtype=object)
    assignment[val] = "val"
    assignment[test] = "test"
    frame["split"] = frame["patient_id"].map(assignment).astype(object)
    return frame


def check_no_patient_overlap(manifest: pd.DataFrame) -> None:
    """Raise ``ManifestError`` if any patient appears in more than one split."""
    per_patient = manifest.dropna(subset=["split"]).groupby("patient_id")["split"].nunique()
    leaked = per_patient[per_patient > 1]
    if len(leaked):
        raise ManifestError(f"{len(leaked)} patient(s) appear in several splits, e.g. {list(leaked.index[:5])}")
