"""Held-out evaluation: every metric of a test split, with patient-level bootstrap CIs, calibration, subgroups.

:func:`evaluate_predictions` takes the predictions tables (one row per image, see
:mod:`mammo_utils.evaluation.predictions`) of the test and validation splits and returns the whole report as one
strict-JSON-ready dict. Rows whose label is missing are left out of that task's metrics. No TensorFlow here:
everything is numpy / pandas / scikit-learn.

The threshold is chosen on the validation split (:func:`~mammo_utils.evaluation.metrics.choose_threshold`, Youden's J
by default) and applied unchanged to test. Point estimates use scikit-learn (:mod:`mammo_utils.evaluation.metrics`);
bootstrap replicates use the equivalent weighted numpy metrics of :mod:`mammo_utils.evaluation.bootstrap`. Tables and
the JSON file are made by :mod:`mammo_utils.evaluation.tables`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils.evaluation import bootstrap as boot
from mammo_utils.evaluation import calibration as cal
from mammo_utils.evaluation.metrics import choose_threshold, density_metrics, joint_accuracy, malignancy_metrics
from mammo_utils.evaluation.predictions import (
    DENSITY_PROB_COLUMNS,
    JOINT_PROB_COLUMNS,
    MALIGNANCY_PROB_COLUMN,
    density_labels,
    finite_rows,
    joint_from_heads,
    malignancy_labels,
)
from mammo_utils.evaluation.tables import most_confident_mistakes, subgroup_table, to_jsonable
from mammo_utils.labels import DENSITY_CLASSES, is_missing

# Re-exported for callers that use them as evaluate.X (notebooks/03_evaluate.ipynb, evaluate_run, gate, tests of
# other modules, benchmarks): their home is predictions_table / evaluate_tables.
__all__ = ["evaluate_predictions"]


def _joint_probs(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    if all(c in frame.columns for c in JOINT_PROB_COLUMNS):
        return frame[list(JOINT_PROB_COLUMNS)].to_numpy(np.float64), "model's 8-way softmax"
    return (
        joint_from_heads(
            frame[list(DENSITY_PROB_COLUMNS)].to_numpy(np.float64), frame[MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)
        ),
        "product of the density and malignancy heads (assumes independence)",
    )


def _headline_replicates(
    frame: pd.DataFrame, threshold: float
) -> Callable[[pd.DataFrame, np.ndarray], dict[str, np.ndarray]]:
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
        y_val, p_val = finite_rows(get_labels(val), val[columns].to_numpy(np.float64))
        y_test, p_test = finite_rows(get_labels(test), test[columns].to_numpy(np.float64))
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
        "split": split,
        "n_images": len(test),
        "n_patients": len(patients(test)) if "patient_id" in test else None,
        "n_density_labelled": int(np.isfinite(density_labels(test)).sum()),
        "n_malignancy_labelled": int(np.isfinite(malignancy_labels(test)).sum()),
        "source": ", ".join(sources) or "unknown",
        "synthetic": sources == ["synthetic"],
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
    threshold, rule = _threshold(val_preds, threshold_rule)
    dens = density_metrics(density_labels(test_preds), test_preds[list(DENSITY_PROB_COLUMNS)])
    mal = malignancy_metrics(malignancy_labels(test_preds), test_preds[MALIGNANCY_PROB_COLUMN], threshold)
    half = malignancy_metrics(malignancy_labels(test_preds), test_preds[MALIGNANCY_PROB_COLUMN], 0.5)
    joint, joint_source = _joint_probs(test_preds)
    points = _headline_points(test_preds, dens, mal, half, joint)
    group = "patient_id" if "patient_id" in test_preds.columns else None
    entries = _headline_entries(test_preds, points, threshold, n_boot, seed, group, alpha)
    metrics = {
        "data": _data(test_preds, val_preds, split),
        "density": _density_section(entries, dens),
        "malignancy": _malignancy_section(entries, mal, half, threshold, rule),
        "joint_accuracy": _joint_section(test_preds, entries, joint_source),
        "calibration": _calibration(test_preds, val_preds, n_bins),
        "subgroups": subgroup_table(test_preds, subgroups, threshold).to_dict("records"),
        "most_confident_mistakes": most_confident_mistakes(test_preds, k_mistakes, threshold).to_dict("records"),
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "level": 1 - alpha,
            "method": "percentile",
            "unit": "patient" if group else "image",
        },
    }
    return to_jsonable(metrics)


def _threshold(val_preds: pd.DataFrame, threshold_rule: str) -> tuple[float, str]:
    """The malignancy threshold chosen on validation, and the rule; 0.5 when validation lacks a class."""
    y_val = malignancy_labels(val_preds)
    if len(np.unique(y_val[np.isfinite(y_val)])) == 2:
        return choose_threshold(y_val, val_preds[MALIGNANCY_PROB_COLUMN], threshold_rule), threshold_rule
    return 0.5, "fixed 0.5 (the validation split lacks benign or malignant cases)"


def _headline_points(
    test_preds: pd.DataFrame,
    dens: dict[str, Any],
    mal: dict[str, Any],
    half: dict[str, Any],
    joint: np.ndarray,
) -> dict[str, float]:
    """The point estimate of every headline metric, keyed ``"density.accuracy"`` etc."""
    points = {f"density.{k}": dens[k] for k in ("accuracy", "kappa_quadratic", "kappa_linear", "dense_accuracy")}
    points |= {f"malignancy.{k}": mal[k] for k in ("roc_auc", "pr_auc", "sensitivity", "specificity")}
    points |= {f"malignancy.{k}_at_0.5": half[k] for k in ("sensitivity", "specificity")}
    points["joint_accuracy"] = joint_accuracy(density_labels(test_preds), malignancy_labels(test_preds), joint)
    return points


def _headline_entries(
    test_preds: pd.DataFrame,
    points: dict[str, float],
    threshold: float,
    n_boot: int,
    seed: int,
    group: str | None,
    alpha: float,
) -> dict[str, dict[str, Any]]:
    """Each headline point with its bootstrap percentile interval: ``{value, ci_low, ci_high, n_boot_used, ...}``."""
    replicates = boot.bootstrap_replicates(
        test_preds, _headline_replicates(test_preds, threshold), n_boot, seed, group, vectorized=True
    )
    entries = {}
    for name, point in points.items():
        ci = boot.percentile_ci(replicates[name], point, alpha)
        entries[name] = {
            "value": ci.value,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "n_boot_used": ci.n_used,
            "ci_widened": ci.widened,
        }
    return entries


def _section(entries: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    """The headline entries whose name starts with ``prefix + "."``, keyed without the prefix."""
    return {k.split(".", 1)[1]: v for k, v in entries.items() if k.startswith(prefix + ".")}


def _density_section(entries: dict[str, dict[str, Any]], dens: dict[str, Any]) -> dict[str, Any]:
    return _section(entries, "density") | {
        "n": dens["n"],
        "majority_class_rate": dens["majority_class_rate"],
        "labels": list(DENSITY_CLASSES),
        "confusion_matrix": dens["confusion_matrix"],
    }


def _malignancy_section(
    entries: dict[str, dict[str, Any]], mal: dict[str, Any], half: dict[str, Any], threshold: float, rule: str
) -> dict[str, Any]:
    counts = ("n", "n_malignant", "prevalence", "brier", "accuracy", "ppv", "npv", "confusion_matrix")
    return (
        _section(entries, "malignancy")
        | {"threshold": {"value": threshold, "chosen_on": "val", "rule": rule}}
        | {k: mal[k] for k in counts}
        | {"confusion_matrix_at_0.5": half["confusion_matrix"], "ppv_at_0.5": half["ppv"], "npv_at_0.5": half["npv"]}
    )


def _joint_section(test_preds: pd.DataFrame, entries: dict[str, dict[str, Any]], joint_source: str) -> dict[str, Any]:
    """The joint accuracy entry with its n, where the joint probabilities came from and the majority-class rate."""
    y_joint = density_labels(test_preds) * 2 + malignancy_labels(test_preds) - 2
    y_joint = y_joint[np.isfinite(y_joint)]
    majority = float(np.unique(y_joint, return_counts=True)[1].max() / len(y_joint)) if len(y_joint) else math.nan
    return entries["joint_accuracy"] | {"n": len(y_joint), "joint_probs": joint_source, "majority_class_rate": majority}
