"""The predictions table: one row per image, its true labels and the model's probabilities.

Built by :func:`predictions_frame` from manifest rows and model outputs, or read back from CSV, it holds
``image_path, patient_id, laterality, view, source, split`` (metadata), ``density`` (true BI-RADS 1–4 or NA),
``pathology`` / ``malignant`` (true benign/malignant, 0/1 or NA), ``p_density_1..p_density_4``, ``p_malignant`` and,
for the seed model, ``p_joint_0..p_joint_7`` (joint index ``(density - 1) * 2 + malignant``). The label helpers
here turn its columns into float arrays with NaN where a label is missing, so that every metric of
:mod:`mammo_utils.evaluation.metrics` drops those rows. No TensorFlow here: numpy and pandas only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils import labels
from mammo_utils.labels import DENSITY_CLASSES, N_JOINT, density_from_any, is_missing, pathology_from_any

DENSITY_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_density_{d}" for d in DENSITY_CLASSES)
MALIGNANCY_PROB_COLUMN = "p_malignant"
JOINT_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_joint_{i}" for i in range(N_JOINT))
METADATA_COLUMNS: tuple[str, ...] = ("image_path", "patient_id", "laterality", "view", "source", "split")


def joint_from_heads(density_probs: np.ndarray, malignancy_prob: np.ndarray) -> np.ndarray:
    """(N, 8) joint probabilities of two independent heads; same as ``models.joint_probabilities`` without TF."""
    density = np.asarray(density_probs, dtype=np.float64)
    malignant = np.asarray(malignancy_prob, dtype=np.float64).reshape(-1)
    return np.einsum("nd,nm->ndm", density, np.stack([1.0 - malignant, malignant], axis=1)).reshape(-1, N_JOINT)


def predictions_frame(
    manifest_rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    density_probs: np.ndarray | None = None,
    malignancy_prob: np.ndarray | None = None,
    joint_probs: np.ndarray | None = None,
) -> pd.DataFrame:
    """Build the predictions table from manifest rows and model outputs (in the same row order).

    Give the two heads (``density_probs`` (N, 4) in BI-RADS order 1..4, ``malignancy_prob`` (N,) or (N, 1)), or
    the seed's ``joint_probs`` (N, 8) alone — its marginals then fill the head columns — or all three.

    Returns
    -------
    pandas.DataFrame
        The metadata columns present in ``manifest_rows``, ``density`` (Int64 1–4/NA), ``malignant`` (Int64 0/1/NA),
        ``pathology``, ``p_density_1..4``, ``p_malignant`` and, if given, ``p_joint_0..7``.
    """
    frame = pd.DataFrame(list(manifest_rows)) if not isinstance(manifest_rows, pd.DataFrame) else manifest_rows
    frame = frame.reset_index(drop=True)
    n = len(frame)
    joint = None if joint_probs is None else _probs(joint_probs, n, N_JOINT, "joint_probs")
    if density_probs is None or malignancy_prob is None:
        if joint is None:
            raise ValueError("give density_probs and malignancy_prob, or joint_probs")
        pairs = joint.reshape(n, len(DENSITY_CLASSES), 2) / joint.sum(axis=1)[:, None, None]
        density_probs = pairs.sum(axis=2) if density_probs is None else density_probs
        malignancy_prob = pairs[:, :, 1].sum(axis=1) if malignancy_prob is None else malignancy_prob
    out = pd.DataFrame({c: frame[c] for c in METADATA_COLUMNS if c in frame.columns})
    density = [density_from_any(v) for v in frame["density"]] if "density" in frame.columns else [None] * n
    out["density"] = pd.array(density, dtype="Int64")
    malignant = malignancy_labels(frame)
    out["malignant"] = pd.array([None if np.isnan(v) else int(v) for v in malignant], dtype="Int64")
    out["pathology"] = pd.Series(
        [pd.NA if np.isnan(v) else labels.PATHOLOGY_CLASSES[int(v)] for v in malignant], dtype=object
    )
    out[list(DENSITY_PROB_COLUMNS)] = _probs(density_probs, n, len(DENSITY_CLASSES), "density_probs")
    out[MALIGNANCY_PROB_COLUMN] = _probs(np.asarray(malignancy_prob).reshape(-1, 1), n, 1, "malignancy_prob")[:, 0]
    if joint is not None:
        out[list(JOINT_PROB_COLUMNS)] = joint
    return out


def _probs(values: Any, n: int, k: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n, k) and not (k == 1 and array.shape == (n,)):
        raise ValueError(f"{name} must have shape ({n}, {k}) to match the {n} manifest rows, got {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise ValueError(f"{name} must be probabilities in [0, 1] without missing values")
    return array.reshape(n, k)


def density_labels(frame: pd.DataFrame) -> np.ndarray:
    """True density 1–4 as float, NaN where missing (all NaN without a ``density`` column)."""
    return label_array(frame["density"]) if "density" in frame.columns else np.full(len(frame), np.nan)


def malignancy_labels(frame: pd.DataFrame) -> np.ndarray:
    """True malignancy 0/1 as float (from ``malignant``, else ``pathology``), NaN where missing."""
    if "malignant" in frame.columns:
        return label_array(frame["malignant"])
    if "pathology" not in frame.columns:
        return np.full(len(frame), np.nan)
    return np.array(
        [np.nan if is_missing(v) else float(pathology_from_any(v) == "malignant") for v in frame["pathology"]]
    )


def label_array(values: Any) -> np.ndarray:
    """Numeric labels (list, array, nullable Series) as a float array with NaN where missing.

    Raises
    ------
    ValueError
        If a present value is not a number (e.g. a density letter: build the table with :func:`predictions_frame`).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(np.asarray(values, dtype=object).reshape(-1)))
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~series.isna().to_numpy()
    if bad.any():
        raise ValueError(f"labels must be numbers; got {series[bad].iloc[0]!r} (use predictions_frame to convert)")
    return numbers


def finite_rows(labels: Any, *others: Any) -> tuple[np.ndarray, ...]:
    """Labels as float and the matching rows of ``others`` (as float arrays), for the rows with a label.

    Raises
    ------
    ValueError
        If a label is not a number, or an array of ``others`` is not as long as ``labels``.
    """
    y = label_array(labels)
    arrays = [np.asarray(a, dtype=np.float64) for a in others]
    for a in arrays:
        if len(a) != len(y):
            raise ValueError(f"{len(y)} labels but {len(a)} prediction rows")
    keep = np.isfinite(y)
    return (y[keep], *(a[keep] for a in arrays))
