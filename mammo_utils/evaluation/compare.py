"""Two models on the same images: paired patient-level bootstrap of the difference of their headline metrics.

Two 95 % CIs that overlap do not say whether one model is better: the models were scored on the *same* patients,
so the honest comparison resamples patients once per replicate and scores both models on that resample.
:func:`paired_comparison` does that for density accuracy, quadratic-weighted κ and malignancy ROC AUC, and
reports ``b - a`` with its percentile interval. :func:`benchmark_table` lays out the JSON written by
``benchmarks/models_vs_seed.py`` (costs as ratios, metrics as paired differences) for the notebooks. No TensorFlow
here: numpy and pandas on predictions tables (:mod:`mammo_utils.evaluation.predictions`), e.g. two run directories'
``predictions_test.csv``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mammo_utils.evaluation import bootstrap as boot
from mammo_utils.evaluation.metrics import density_metrics, malignancy_metrics
from mammo_utils.evaluation.predictions import (
    DENSITY_PROB_COLUMNS,
    MALIGNANCY_PROB_COLUMN,
    density_labels,
    malignancy_labels,
)
from mammo_utils.labels import DENSITY_CLASSES

COMPARED_METRICS: tuple[str, ...] = ("density.accuracy", "density.kappa_quadratic", "malignancy.roc_auc")


def _aligned(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """``b``'s probabilities joined to ``a``'s rows by ``image_path``; both must hold the same images."""
    for name, frame in (("a", a), ("b", b)):
        if "image_path" not in frame.columns or frame["image_path"].duplicated().any():
            raise ValueError(f"predictions {name} need a unique 'image_path' per row to be paired")
    only_a = set(a["image_path"]) - set(b["image_path"])
    only_b = set(b["image_path"]) - set(a["image_path"])
    if only_a or only_b:
        raise ValueError(
            f"the two predictions tables must hold the same images: {len(only_a)} only in a, "
            f"{len(only_b)} only in b (e.g. {sorted(only_a | only_b)[:2]})"
        )
    probs = list(DENSITY_PROB_COLUMNS) + [MALIGNANCY_PROB_COLUMN]
    right = b[["image_path", *probs]].rename(columns={c: f"b_{c}" for c in probs})
    return a.merge(right, on="image_path", how="left", validate="one_to_one")


def _replicates(frame: pd.DataFrame, prefix: str, weights: np.ndarray) -> dict[str, np.ndarray]:
    y_d, y_m = density_labels(frame), malignancy_labels(frame)
    has_d, has_m = np.isfinite(y_d), np.isfinite(y_m)
    true_d = y_d[has_d].astype(int) - 1
    pred_d = frame[[prefix + c for c in DENSITY_PROB_COLUMNS]].to_numpy(np.float64)[has_d].argmax(axis=1)
    p_m = frame[prefix + MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)[has_m]
    w_d, w_m = weights[:, has_d], weights[:, has_m]
    confusion = boot.weighted_confusion(true_d, pred_d, len(DENSITY_CLASSES), w_d)
    return {
        "density.accuracy": boot.weighted_mean(true_d == pred_d, w_d),
        "density.kappa_quadratic": boot.kappa_from_confusion(confusion, "quadratic"),
        "malignancy.roc_auc": boot.weighted_roc_auc(y_m[has_m].astype(bool), p_m, w_m),
    }


def _points(frame: pd.DataFrame, prefix: str) -> dict[str, float]:
    y_d, y_m = density_labels(frame), malignancy_labels(frame)
    has_d, has_m = np.isfinite(y_d), np.isfinite(y_m)
    density = density_metrics(
        y_d[has_d].astype(int), frame[[prefix + c for c in DENSITY_PROB_COLUMNS]].to_numpy(np.float64)[has_d]
    )
    malignancy = malignancy_metrics(
        y_m[has_m].astype(int), frame[prefix + MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)[has_m]
    )
    return {
        "density.accuracy": float(density["accuracy"]),
        "density.kappa_quadratic": float(density["kappa_quadratic"]),
        "malignancy.roc_auc": float(malignancy["roc_auc"]),
    }


def paired_comparison(
    a: pd.DataFrame,
    b: pd.DataFrame,
    names: tuple[str, str] = ("a", "b"),
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Headline metrics of two models on the same images, and ``b - a`` with a paired patient-bootstrap CI.

    Parameters
    ----------
    a, b : pandas.DataFrame
        Predictions tables of the same images (matched by ``image_path``; labels and ``patient_id`` are taken
        from ``a``).
    names : tuple of str
        Column labels for the two models.
    n_boot, seed, alpha
        Bootstrap replicates (patients resampled with replacement, the same draw for both models), the draw's seed
        and the CI level (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Indexed by metric (:data:`COMPARED_METRICS`); columns ``<name_a>``, ``<name_b>``, ``difference``
        (``b - a``), ``ci_low``, ``ci_high`` (of the difference), ``p_b_better`` (share of replicates with
        ``b > a``) and ``n_images``.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if names[0] == names[1]:
        raise ValueError(f"the two models need different names, got {names!r}")
    frame = _aligned(a, b)
    weights = boot.bootstrap_weights(boot.group_codes(frame, "patient_id"), n_boot=n_boot, seed=seed)
    reps_a, reps_b = _replicates(frame, "", weights), _replicates(frame, "b_", weights)
    points_a, points_b = _points(frame, ""), _points(frame, "b_")
    rows = []
    for metric in COMPARED_METRICS:
        diff = reps_b[metric] - reps_a[metric]
        ci = boot.percentile_ci(diff, points_b[metric] - points_a[metric], alpha)
        finite = diff[np.isfinite(diff)]
        rows.append(
            {
                "metric": metric,
                names[0]: points_a[metric],
                names[1]: points_b[metric],
                "difference": ci.value,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "p_b_better": float((finite > 0).mean()) if finite.size else math.nan,
                "n_images": len(frame),
            }
        )
    return pd.DataFrame(rows).set_index("metric")


_COST_ROWS: tuple[tuple[str, str, str], ...] = (
    ("parameters", "params", "{:,.0f}"),
    ("training images/s", "train_images_per_s", "{:.1f}"),
    ("inference images/s", "inference_images_per_s", "{:.1f}"),
    ("peak RSS (GB)", "peak_rss_gb", "{:.2f}"),
)
_METRIC_LABELS = {
    "density.accuracy": "density accuracy",
    "density.kappa_quadratic": "density κ (quadratic)",
    "malignancy.roc_auc": "malignancy ROC AUC",
}


def _interval(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def benchmark_table(saved: dict, baseline: str = "seed", model: str = "default") -> pd.DataFrame:
    """The table of ``benchmarks/models_vs_seed.py``'s JSON: costs as ratios, metrics as paired differences.

    Parameters
    ----------
    saved : dict
        The benchmark's JSON: ``results`` (per model: ``params``, ``train_images_per_s``,
        ``inference_images_per_s``, ``peak_rss_gb``, ``metrics`` with ``value``/``ci_low``/``ci_high``) and,
        when both models ran, ``paired_difference`` (rows of :func:`paired_comparison`, ``model - baseline``).
    baseline, model : str
        The two result keys to compare.

    Returns
    -------
    pandas.DataFrame
        One row per cost and metric; columns ``baseline``, ``model`` (formatted strings, metrics with their 95 % CI)
        and ``"<model> vs <baseline>"``: the ratio for costs, the paired difference with its CI for metrics.
    """
    results = saved.get("results", {})
    missing = [name for name in (baseline, model) if name not in results]
    if missing:
        raise ValueError(f"benchmark results have no {' or '.join(missing)!r} entry (models run: {sorted(results)})")
    base, other = results[baseline], results[model]
    paired = saved.get("paired_difference", {})
    rows = {}
    for label, key, fmt in _COST_ROWS:
        ratio = other[key] / base[key] if base[key] else math.nan
        rows[label] = (fmt.format(base[key]), fmt.format(other[key]), f"{ratio:.4g} ×")
    for key, label in _METRIC_LABELS.items():
        diff = paired.get(key)
        change = (
            f"{diff['difference']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]"
            if diff
            else f"{other['metrics'][key]['value'] - base['metrics'][key]['value']:+.3f} (unpaired)"
        )
        rows[label] = (_interval(base["metrics"][key]), _interval(other["metrics"][key]), change)
    return pd.DataFrame.from_dict(rows, orient="index", columns=[baseline, model, f"{model} vs {baseline}"])
