"""Held-out evaluation: density and malignancy metrics with patient-level bootstrap CIs, calibration, subgroups.

Works on a **predictions table** (one row per image), built by :func:`predictions_frame` or read back from CSV:
``image_path, patient_id, laterality, view, source, split`` (metadata), ``density`` (true BI-RADS 1–4 or NA),
``pathology`` / ``malignant`` (true benign/malignant, 0/1 or NA), ``p_density_1..p_density_4``, ``p_malignant`` and,
for the seed model, ``p_joint_0..p_joint_7`` (joint index ``(density - 1) * 2 + malignant``). Rows whose label is
missing are left out of that task's metrics. No TensorFlow here: everything is numpy / pandas / scikit-learn.

Conventions: the malignancy decision is ``p_malignant >= threshold``; the threshold is chosen on the validation split
(:func:`choose_threshold`, Youden's J by default) and applied unchanged to test. Confusion matrices have true classes
in rows, predictions in columns (density labels 1..4; malignancy ``[[TN, FP], [FN, TP]]``). Point estimates use
scikit-learn; bootstrap replicates use the equivalent weighted numpy metrics of :mod:`mammo_utils.bootstrap`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, cohen_kappa_score, confusion_matrix
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score, roc_curve

from mammo_utils import bootstrap as boot
from mammo_utils import calibration as cal
from mammo_utils import labels
from mammo_utils.labels import DENSITY_CLASSES, N_JOINT, density_from_any, is_missing, pathology_from_any

DENSITY_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_density_{d}" for d in DENSITY_CLASSES)
MALIGNANCY_PROB_COLUMN = "p_malignant"
JOINT_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_joint_{i}" for i in range(N_JOINT))
METADATA_COLUMNS: tuple[str, ...] = ("image_path", "patient_id", "laterality", "view", "source", "split")
HEADLINE_METRICS: tuple[str, ...] = (
    "density.accuracy", "density.kappa_quadratic", "density.kappa_linear", "density.dense_accuracy",
    "malignancy.roc_auc", "malignancy.pr_auc", "malignancy.sensitivity", "malignancy.specificity",
    "malignancy.sensitivity_at_0.5", "malignancy.specificity_at_0.5", "joint_accuracy",
)  # every one of these carries {"value", "ci_low", "ci_high"} in evaluate_predictions' output


# ---------------------------------------------------------------------------------------- the predictions table
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
    out["pathology"] = pd.Series([pd.NA if np.isnan(v) else labels.PATHOLOGY_CLASSES[int(v)] for v in malignant],
                                 dtype=object)
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
    return np.array([np.nan if is_missing(v) else float(pathology_from_any(v) == "malignant")
                     for v in frame["pathology"]])


def _joint_probs(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    if all(c in frame.columns for c in JOINT_PROB_COLUMNS):
        return frame[list(JOINT_PROB_COLUMNS)].to_numpy(np.float64), "model's 8-way softmax"
    return (joint_from_heads(frame[list(DENSITY_PROB_COLUMNS)].to_numpy(np.float64),
                             frame[MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)),
            "product of the density and malignancy heads (assumes independence)")


# --------------------------------------------------------------------------------------------------- metrics
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


def _finite_rows(labels: Any, *others: Any) -> tuple[np.ndarray, ...]:
    """Labels as float and the matching rows of ``others`` (as float arrays), for the rows with a label."""
    y = label_array(labels)
    arrays = [np.asarray(a, dtype=np.float64) for a in others]
    for a in arrays:
        if len(a) != len(y):
            raise ValueError(f"{len(y)} labels but {len(a)} prediction rows")
    keep = np.isfinite(y)
    return (y[keep], *(a[keep] for a in arrays))


def density_metrics(y_true: Any, probs: Any) -> dict[str, Any]:
    """Density metrics for true BI-RADS 1–4 and (N, 4) probabilities; rows with a missing label are dropped.

    Returns ``n``, ``accuracy``, ``kappa_quadratic``, ``kappa_linear``, ``dense_accuracy`` (dense = c or d,
    collapsing the argmax class, so it can be read off the confusion matrix), ``majority_class_rate`` and
    ``confusion_matrix`` (4×4 array, labels 1..4). Undefined values are NaN.
    """
    y, probs = _finite_rows(y_true, probs)
    if probs.ndim != 2 or probs.shape[1] != len(DENSITY_CLASSES):
        raise ValueError(f"density probabilities must have shape (N, 4), got {probs.shape}")
    if not np.isin(y, DENSITY_CLASSES).all():
        raise ValueError("density labels must be BI-RADS 1-4 (convert class indices 0-3 by adding 1)")
    pred = probs.argmax(axis=1) + 1.0
    result: dict[str, Any] = {"n": len(y)}
    if len(y) == 0:
        return result | dict.fromkeys(("accuracy", "kappa_quadratic", "kappa_linear", "dense_accuracy",
                                       "majority_class_rate"), math.nan) | {"confusion_matrix": np.zeros((4, 4), int)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one class: κ is NaN, which we report
        for weights in ("quadratic", "linear"):
            kappa = cohen_kappa_score(y, pred, labels=list(DENSITY_CLASSES), weights=weights)
            result[f"kappa_{weights}"] = float(kappa)
    result["accuracy"] = float(np.mean(y == pred))
    result["dense_accuracy"] = float(np.mean((y >= 3) == (pred >= 3)))
    result["majority_class_rate"] = float(np.unique(y, return_counts=True)[1].max() / len(y))
    result["confusion_matrix"] = confusion_matrix(y, pred, labels=list(DENSITY_CLASSES))
    return result


def malignancy_metrics(y_true: Any, p: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Malignancy metrics for 0/1 labels and probabilities; rows with a missing label are dropped.

    Returns ``n``, ``n_malignant``, ``prevalence``, ``roc_auc``, ``pr_auc`` (average precision), ``brier``,
    ``threshold``, ``accuracy``, ``sensitivity``, ``specificity``, ``ppv``, ``npv`` (at ``p >= threshold``) and
    ``confusion_matrix`` ``[[TN, FP], [FN, TP]]``. AUC and PR AUC are NaN unless both classes are present.
    """
    y, p = _finite_rows(y_true, np.asarray(p, dtype=np.float64).reshape(-1))
    if not np.isin(y, (0, 1)).all():
        raise ValueError("malignancy labels must be 0 (benign) or 1 (malignant)")
    pred = (p >= threshold).astype(float)
    cm = confusion_matrix(y, pred, labels=[0.0, 1.0]) if len(y) else np.zeros((2, 2), int)
    (tn, fp), (fn, tp) = cm
    both = len(np.unique(y)) == 2
    ratio = lambda a, b: float(a / b) if b else math.nan  # noqa: E731
    return {
        "n": len(y), "n_malignant": int(tp + fn), "prevalence": ratio(tp + fn, len(y)),
        "roc_auc": float(roc_auc_score(y, p)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both else math.nan,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if len(y) else math.nan,
        "threshold": float(threshold), "accuracy": ratio(tp + tn, len(y)),
        "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn), "confusion_matrix": cm,
    }


def choose_threshold(
    y_true_val: Any, p_val: Any, rule: str = "youden", target_sensitivity: float | None = None
) -> float:
    """Decision threshold for ``p >= threshold``, chosen on the validation split.

    Rules: ``"youden"`` maximizes Youden's J = sensitivity + specificity − 1 over the distinct validation scores
    (ties → the highest threshold); ``"sensitivity>=x"`` (or ``target_sensitivity=x``) is the highest threshold whose
    sensitivity is at least x (the most specific one); ``"specificity>=x"`` the lowest threshold whose specificity is
    at least x. Candidate thresholds are the validation scores themselves (scikit-learn's ``roc_curve``).

    Raises
    ------
    ValueError
        If the validation labels hold one class only, or the rule is unknown or unreachable.
    """
    if target_sensitivity is not None:
        rule = f"sensitivity>={target_sensitivity}"
    y, p = _finite_rows(y_true_val, p_val)
    if len(np.unique(y)) != 2:
        raise ValueError("cannot choose a threshold: the validation split needs both benign and malignant cases")
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    name, _, value = rule.replace(" ", "").partition(">=")
    if name == "youden" and not value:
        return float(thresholds[np.argmax(tpr - fpr)])
    try:
        target = float(value)
    except ValueError:
        raise ValueError(
            f"unknown threshold rule {rule!r}; use 'youden', 'sensitivity>=x' or 'specificity>=x'"
        ) from None
    if name == "sensitivity" and (tpr >= target).any():
        return float(thresholds[np.argmax(tpr >= target)])
    if name == "specificity" and (1 - fpr >= target).any():
        return float(thresholds[np.flatnonzero(1 - fpr >= target)[-1]])
    raise ValueError(f"unknown or unreachable threshold rule {rule!r}")


def joint_accuracy(density_true: Any, malignant_true: Any, joint_probs: Any) -> float:
    """The seed's 8-way accuracy: argmax of ``joint_probs`` vs ``(density - 1) * 2 + malignant``.

    Rows missing either label are dropped; NaN if none is left.
    """
    d, m, joint = _finite_rows(density_true, label_array(malignant_true), joint_probs)
    keep = np.isfinite(m)
    if not keep.any():
        return math.nan
    return float(np.mean(joint[keep].argmax(axis=1) == (d[keep] - 1) * 2 + m[keep]))


# ------------------------------------------------------------------------------------------ tables of rows
SUBGROUP_COLUMNS: tuple[str, ...] = (
    "group", "level", "n_images", "n_patients", "n_density", "density_accuracy", "kappa_quadratic",
    "n_malignancy", "n_malignant", "roc_auc", "sensitivity", "specificity",
)


def subgroup_table(
    predictions: pd.DataFrame, by: Sequence[str] = ("view", "laterality", "source"), threshold: float = 0.5
) -> pd.DataFrame:
    """Metrics per level of each column in ``by`` (one column at a time; a missing value is the level "missing").

    κ is NaN when undefined (e.g. one class), AUC NaN unless both classes occur in the subgroup.
    """
    rows = []
    for column in (c for c in by if c in predictions.columns):
        levels = pd.Series([("missing" if is_missing(v) else str(v)) for v in predictions[column]],
                           index=predictions.index, dtype=object)
        for level, part in predictions.groupby(levels, sort=True):
            dens = density_metrics(density_labels(part), part[list(DENSITY_PROB_COLUMNS)])
            mal = malignancy_metrics(malignancy_labels(part), part[MALIGNANCY_PROB_COLUMN], threshold)
            rows.append({
                "group": column, "level": level, "n_images": len(part),
                "n_patients": int(part["patient_id"].nunique()) if "patient_id" in part else math.nan,
                "n_density": dens["n"], "density_accuracy": dens["accuracy"],
                "kappa_quadratic": dens["kappa_quadratic"],
                "n_malignancy": mal["n"], "n_malignant": mal["n_malignant"], "roc_auc": mal["roc_auc"],
                "sensitivity": mal["sensitivity"], "specificity": mal["specificity"],
            })
    return pd.DataFrame(rows, columns=list(SUBGROUP_COLUMNS))


def most_confident_mistakes(
    predictions: pd.DataFrame, k: int = 10, threshold: float = 0.5, task: str = "both"
) -> pd.DataFrame:
    """The ``k`` most confident wrong predictions, per task: ``"density"``, ``"malignancy"`` or ``"both"``.

    Confidence in the wrong answer: the top density probability, or ``p`` (predicted malignant) / ``1 - p``
    (predicted benign) at ``threshold``. The scales differ (≥ 0.25 vs ≥ 0.5), so ``"both"`` ranks each task
    separately and stacks up to ``k`` rows of each. Columns: ``task, confidence, true, predicted``, the
    metadata (incl. ``image_path``) and the probabilities.
    """
    if task not in ("density", "malignancy", "both"):
        raise ValueError(f"task must be 'density', 'malignancy' or 'both', got {task!r}")
    keep = [c for c in (*METADATA_COLUMNS, *DENSITY_PROB_COLUMNS, MALIGNANCY_PROB_COLUMN) if c in predictions]
    parts = []
    if task in ("density", "both"):
        y = density_labels(predictions)
        probs = predictions[list(DENSITY_PROB_COLUMNS)].to_numpy(np.float64)
        parts.append(("density", y, probs.argmax(axis=1) + 1.0, probs.max(axis=1)))
    if task in ("malignancy", "both"):
        p = predictions[MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)
        predicted = (p >= threshold).astype(float)
        parts.append(("malignancy", malignancy_labels(predictions), predicted, np.where(predicted == 1, p, 1 - p)))
    tables = []
    for name, y, predicted, confidence in parts:
        wrong = np.isfinite(y) & (predicted != y)
        table = predictions.loc[wrong, keep].copy()
        table.insert(0, "predicted", predicted[wrong].astype(int))
        table.insert(0, "true", y[wrong].astype(int))
        table.insert(0, "confidence", confidence[wrong])
        table.insert(0, "task", name)
        tables.append(table.sort_values("confidence", ascending=False, kind="mergesort").head(k))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


# ------------------------------------------------------------------------------------------- the full report
def _headline_replicates(frame: pd.DataFrame, threshold: float):
    """Vectorized metric function for :func:`bootstrap.bootstrap_replicates`: weights (B, N) → headline metrics."""
    y_d, y_m = density_labels(frame), malignancy_labels(frame)
    has_d, has_m = np.isfinite(y_d), np.isfinite(y_m)
    true_d, pred_d = y_d[has_d].astype(int) - 1, frame[list(DENSITY_PROB_COLUMNS)].to_numpy()[has_d].argmax(axis=1)
    true_m, p_m = y_m[has_m].astype(bool), frame[MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)[has_m]
    has_j = has_d & has_m
    joint_hit = _joint_probs(frame)[0][has_j].argmax(axis=1) == (y_d[has_j] - 1) * 2 + y_m[has_j]

    def metrics(_: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        w_d, w_m = weights[:, has_d], weights[:, has_m]
        confusion = boot.weighted_confusion(true_d, pred_d, len(DENSITY_CLASSES), w_d)
        out = {
            "density.accuracy": boot.weighted_mean(true_d == pred_d, w_d),
            "density.kappa_quadratic": boot.kappa_from_confusion(confusion, "quadratic"),
            "density.kappa_linear": boot.kappa_from_confusion(confusion, "linear"),
            "density.dense_accuracy": boot.weighted_mean((true_d >= 2) == (pred_d >= 2), w_d),
            "malignancy.roc_auc": boot.weighted_roc_auc(true_m, p_m, w_m),
            "malignancy.pr_auc": boot.weighted_average_precision(true_m, p_m, w_m),
            "joint_accuracy": boot.weighted_mean(joint_hit, weights[:, has_j]),
        }
        for suffix, cut in (("", threshold), ("_at_0.5", 0.5)):
            positive = p_m >= cut
            out[f"malignancy.sensitivity{suffix}"] = boot.weighted_mean(positive[true_m], w_m[:, true_m])
            out[f"malignancy.specificity{suffix}"] = boot.weighted_mean(~positive[~true_m], w_m[:, ~true_m])
        return out

    return metrics


def _calibration(test: pd.DataFrame, val: pd.DataFrame, n_bins: int) -> dict[str, Any]:
    section: dict[str, Any] = {"n_bins": n_bins, "method": "temperature scaling", "fitted_on": "val"}
    for task, get_labels, columns, classes in (
        ("malignancy", malignancy_labels, MALIGNANCY_PROB_COLUMN, None),
        ("density", density_labels, list(DENSITY_PROB_COLUMNS), DENSITY_CLASSES),
    ):
        y_val, p_val = _finite_rows(get_labels(val), val[columns].to_numpy(np.float64))
        y_test, p_test = _finite_rows(get_labels(test), test[columns].to_numpy(np.float64))
        section[task] = cal.calibration_report(y_val, p_val, y_test, p_test, n_bins, classes)
    return section


def _data(test: pd.DataFrame, val: pd.DataFrame, split: str) -> dict[str, Any]:
    def patients(frame: pd.DataFrame) -> set:
        return set(frame["patient_id"].dropna()) if "patient_id" in frame else set()

    sources = sorted({str(s) for s in test.get("source", pd.Series(dtype=object)) if not is_missing(s)})
    shared = len(patients(test) & patients(val))
    if shared:
        warnings.warn(f"{shared} patient(s) appear in both the {split} and validation predictions", stacklevel=3)
    return {
        "split": split, "n_images": len(test), "n_patients": len(patients(test)) if "patient_id" in test else None,
        "n_density_labelled": int(np.isfinite(density_labels(test)).sum()),
        "n_malignancy_labelled": int(np.isfinite(malignancy_labels(test)).sum()),
        "source": ", ".join(sources) or "unknown", "synthetic": sources == ["synthetic"],
        "validation": {"split": "val", "n_images": len(val), "n_patients": len(patients(val))},
        "patients_shared_with_validation": shared,
    }


def evaluate_predictions(
    test_preds: pd.DataFrame,
    val_preds: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    threshold_rule: str = "youden",
    alpha: float = 0.05,
    n_bins: int = 10,
    k_mistakes: int = 10,
    subgroups: Sequence[str] = ("view", "laterality", "source"),
    split: str = "test",
) -> dict[str, Any]:
    """Every metric of the evaluation as one strict-JSON-ready dict (NaN already turned into ``None``).

    The threshold and the temperatures are fitted on ``val_preds`` and applied to ``test_preds``; if the validation
    split lacks a malignancy class the threshold falls back to 0.5 and the rule says so. Each headline metric
    (:data:`HEADLINE_METRICS`) is ``{"value", "ci_low", "ci_high", "n_boot_used", "ci_widened"}`` with a
    patient-level percentile bootstrap interval (``1 - alpha`` level).

    Layout: ``data`` (split, n_images, n_patients, labelled counts, source, synthetic, validation sizes, patients
    shared with validation); ``density`` (headline entries + n, majority_class_rate, labels, confusion_matrix);
    ``malignancy`` (headline entries + threshold {value, chosen_on, rule}, n, n_malignant, prevalence, brier,
    accuracy, ppv, npv, confusion_matrix, and the same at 0.5); ``joint_accuracy`` (entry + n, joint_probs,
    majority_class_rate); ``calibration`` ({malignancy, density}: :func:`calibration.calibration_report`);
    ``subgroups`` and ``most_confident_mistakes`` (lists of rows); ``bootstrap`` (n_boot, seed, level, method, unit).
    """
    y_val = malignancy_labels(val_preds)
    if len(np.unique(y_val[np.isfinite(y_val)])) == 2:
        threshold, rule = choose_threshold(y_val, val_preds[MALIGNANCY_PROB_COLUMN], threshold_rule), threshold_rule
    else:
        threshold, rule = 0.5, "fixed 0.5 (the validation split lacks benign or malignant cases)"
    dens = density_metrics(density_labels(test_preds), test_preds[list(DENSITY_PROB_COLUMNS)])
    mal = malignancy_metrics(malignancy_labels(test_preds), test_preds[MALIGNANCY_PROB_COLUMN], threshold)
    half = malignancy_metrics(malignancy_labels(test_preds), test_preds[MALIGNANCY_PROB_COLUMN], 0.5)
    joint, joint_source = _joint_probs(test_preds)
    points = {f"density.{k}": dens[k] for k in ("accuracy", "kappa_quadratic", "kappa_linear", "dense_accuracy")}
    points |= {f"malignancy.{k}": mal[k] for k in ("roc_auc", "pr_auc", "sensitivity", "specificity")}
    points |= {f"malignancy.{k}_at_0.5": half[k] for k in ("sensitivity", "specificity")}
    points["joint_accuracy"] = joint_accuracy(density_labels(test_preds), malignancy_labels(test_preds), joint)
    group = "patient_id" if "patient_id" in test_preds.columns else None
    replicates = boot.bootstrap_replicates(test_preds, _headline_replicates(test_preds, threshold), n_boot, seed,
                                           group, vectorized=True)
    entries = {}
    for name, point in points.items():
        ci = boot.percentile_ci(replicates[name], point, alpha)
        entries[name] = {"value": ci.value, "ci_low": ci.low, "ci_high": ci.high, "n_boot_used": ci.n_used,
                         "ci_widened": ci.widened}
    y_joint = density_labels(test_preds) * 2 + malignancy_labels(test_preds) - 2
    y_joint = y_joint[np.isfinite(y_joint)]
    metrics = {
        "data": _data(test_preds, val_preds, split),
        "density": {k.split(".", 1)[1]: v for k, v in entries.items() if k.startswith("density.")}
        | {"n": dens["n"], "majority_class_rate": dens["majority_class_rate"], "labels": list(DENSITY_CLASSES),
           "confusion_matrix": dens["confusion_matrix"]},
        "malignancy": {k.split(".", 1)[1]: v for k, v in entries.items() if k.startswith("malignancy.")}
        | {"threshold": {"value": threshold, "chosen_on": "val", "rule": rule}}
        | {k: mal[k] for k in ("n", "n_malignant", "prevalence", "brier", "accuracy", "ppv", "npv", "confusion_matrix")}
        | {"confusion_matrix_at_0.5": half["confusion_matrix"], "ppv_at_0.5": half["ppv"], "npv_at_0.5": half["npv"]},
        "joint_accuracy": entries["joint_accuracy"] | {
            "n": len(y_joint), "joint_probs": joint_source,
            "majority_class_rate": float(np.unique(y_joint, return_counts=True)[1].max() / len(y_joint))
            if len(y_joint) else math.nan},
        "calibration": _calibration(test_preds, val_preds, n_bins),
        "subgroups": subgroup_table(test_preds, subgroups, threshold).to_dict("records"),
        "most_confident_mistakes": most_confident_mistakes(test_preds, k_mistakes, threshold).to_dict("records"),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 1 - alpha, "method": "percentile",
                      "unit": "patient" if group else "image"},
    }
    return to_jsonable(metrics)


def metric_entry(metrics: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The ``{"value", "ci_low", "ci_high", ...}`` entry of a dotted headline name, e.g. ``"density.accuracy"``."""
    section, _, key = name.partition(".")
    return metrics[section][key] if key else metrics[section]


def metrics_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The headline metrics with their CIs as a table (one row per :data:`HEADLINE_METRICS` name)."""
    data = metrics["data"]
    rows = [{"metric": name, **{k: metric_entry(metrics, name).get(k) for k in ("value", "ci_low", "ci_high")},
             "split": data["split"], "source": data["source"]} for name in HEADLINE_METRICS]
    return pd.DataFrame(rows)


def to_jsonable(value: Any) -> Any:
    """Nested dicts/lists/arrays/numpy scalars → plain Python; NaN, ±inf and NA → ``None`` (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return to_jsonable(value.to_dict("records"))
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [to_jsonable(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if is_missing(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def write_metrics_json(metrics: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``metrics`` as strict JSON (NaN → null) atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(metrics), indent=2, allow_nan=False)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False, encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.replace(handle.name, path)
    except OSError:
        os.unlink(handle.name)
        raise
    return path
