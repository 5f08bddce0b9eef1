"""Point metrics of one task on labelled rows: density, malignancy, the seed's joint class, and the threshold.

Every function takes true labels (rows with a missing label are dropped, see
:func:`~mammo_utils.evaluation.predictions.label_array`) and predicted probabilities, and uses scikit-learn.
Conventions: the malignancy decision is ``p_malignant >= threshold``; the threshold is chosen on the validation split
(:func:`choose_threshold`, Youden's J by default) and applied unchanged to test. Confusion matrices have true classes
in rows, predictions in columns (density labels 1..4; malignancy ``[[TN, FP], [FN, TP]]``). Undefined values
(e.g. an AUC with one class present) are NaN.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

from mammo_utils.evaluation.predictions import finite_rows, label_array
from mammo_utils.labels import DENSITY_CLASSES


def density_metrics(y_true: Any, probs: Any) -> dict[str, Any]:
    """Density metrics for true BI-RADS 1–4 and (N, 4) probabilities; rows with a missing label are dropped.

    Returns ``n``, ``accuracy``, ``kappa_quadratic``, ``kappa_linear``, ``dense_accuracy`` (dense = c or d,
    collapsing the argmax class, so it can be read off the confusion matrix), ``majority_class_rate`` and
    ``confusion_matrix`` (4×4 array, labels 1..4). Undefined values are NaN.
    """
    y, probs = finite_rows(y_true, probs)
    if probs.ndim != 2 or probs.shape[1] != len(DENSITY_CLASSES):
        raise ValueError(f"density probabilities must have shape (N, 4), got {probs.shape}")
    if not np.isin(y, DENSITY_CLASSES).all():
        raise ValueError("density labels must be BI-RADS 1-4 (convert class indices 0-3 by adding 1)")
    pred = probs.argmax(axis=1) + 1.0
    result: dict[str, Any] = {"n": len(y)}
    if len(y) == 0:
        return (
            result
            | dict.fromkeys(
                ("accuracy", "kappa_quadratic", "kappa_linear", "dense_accuracy", "majority_class_rate"), math.nan
            )
            | {"confusion_matrix": np.zeros((4, 4), int)}
        )
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
    y, p = finite_rows(y_true, np.asarray(p, dtype=np.float64).reshape(-1))
    if not np.isin(y, (0, 1)).all():
        raise ValueError("malignancy labels must be 0 (benign) or 1 (malignant)")
    pred = (p >= threshold).astype(float)
    cm = confusion_matrix(y, pred, labels=[0.0, 1.0]) if len(y) else np.zeros((2, 2), int)
    (tn, fp), (fn, tp) = cm
    both = len(np.unique(y)) == 2
    ratio = lambda a, b: float(a / b) if b else math.nan  # noqa: E731
    return {
        "n": len(y),
        "n_malignant": int(tp + fn),
        "prevalence": ratio(tp + fn, len(y)),
        "roc_auc": float(roc_auc_score(y, p)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both else math.nan,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if len(y) else math.nan,
        "threshold": float(threshold),
        "accuracy": ratio(tp + tn, len(y)),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "confusion_matrix": cm,
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
    y, p = finite_rows(y_true_val, p_val)
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
    d, m, joint = finite_rows(density_true, label_array(malignant_true), joint_probs)
    keep = np.isfinite(m)
    if not keep.any():
        return math.nan
    return float(np.mean(joint[keep].argmax(axis=1) == (d[keep] - 1) * 2 + m[keep]))
