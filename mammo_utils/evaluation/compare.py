"""Models on the same images: paired patient-level bootstrap of their differences, and the ablation's table.

Two 95 % CIs that overlap do not say whether one model is better: the models were scored on the *same* patients,
so the honest comparison resamples patients once per replicate and scores both models on that resample.
:func:`paired_comparison` does that for density accuracy, quadratic-weighted κ, malignancy ROC AUC and the
sensitivity at specificity ≥ 0.9 (:func:`weighted_sensitivity_at_specificity`), and reports ``b - a`` with its
percentile interval. :func:`with_true_pathology` swaps a synthetic test split's recorded (noisy) malignancy labels
for the generator's truth, so the same functions score against it; :func:`malignancy_cis` gives ROC AUC and the
sensitivity at specificity ≥ 0.9 of one model with patient-bootstrap CIs. :func:`ablation_table` and
:func:`ablation_header` lay out the JSON written by ``benchmarks/ablation.py`` (every model, every training seed,
paired differences against the lesion model) for the notebooks. No TensorFlow here: numpy and pandas on
predictions tables (:mod:`mammo_utils.evaluation.predictions`), e.g. two run directories' ``predictions_test.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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

__all__ = [
    "ABLATION_METRICS",
    "COMPARED_METRICS",
    "MIN_SPECIFICITY",
    "SEED_SUMMARY_METRICS",
    "ablation_header",
    "ablation_table",
    "malignancy_cis",
    "paired_comparison",
    "seed_summary",
    "weighted_sensitivity_at_specificity",
    "with_true_pathology",
]

COMPARED_METRICS: tuple[str, ...] = (
    "density.accuracy",
    "density.kappa_quadratic",
    "malignancy.roc_auc",
    "malignancy.sensitivity_at_specificity",
)
MIN_SPECIFICITY = 0.9  # the operating point of "sensitivity at specificity >= 0.9"


def weighted_sensitivity_at_specificity(
    y: np.ndarray, score: np.ndarray, weights: np.ndarray, min_specificity: float = MIN_SPECIFICITY
) -> np.ndarray:
    """Sensitivity at the ROC operating point with specificity ≥ ``min_specificity``, per weight row.

    The standard reading of scikit-learn's ``roc_curve`` (``drop_intermediate=False``): the highest true-positive
    rate among the thresholds whose specificity is at least ``min_specificity``; the threshold is thus chosen on
    the scores being scored. NaN unless both classes have weight.

    Parameters
    ----------
    y : np.ndarray
        ``(N,)`` 0/1 or boolean labels.
    score : np.ndarray
        ``(N,)`` scores, higher = more malignant.
    weights : np.ndarray
        ``(B, N)`` row weights (a bootstrap replicate per row; ``np.ones((1, N))`` for the point estimate).
    min_specificity : float
        The specificity the operating point must reach, in (0, 1].

    Returns
    -------
    np.ndarray
        ``(B,)`` sensitivities.
    """
    if not 0.0 < min_specificity <= 1.0:
        raise ValueError(f"min_specificity must be in (0, 1], got {min_specificity}")
    positive = np.asarray(y, dtype=bool)
    values = np.asarray(score, dtype=np.float64)
    order = np.argsort(-values, kind="mergesort")
    ends = np.flatnonzero(np.r_[values[order][1:] != values[order][:-1], True]) if len(order) else order
    w = np.asarray(weights, dtype=np.float64)[:, order]
    tp = np.cumsum(w * positive[order], axis=1)[:, ends]
    fp = np.cumsum(w * ~positive[order], axis=1)[:, ends]
    n_pos, n_neg = w[:, positive[order]].sum(axis=1), w[:, ~positive[order]].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = tp / n_pos[:, None]
        specificity = (n_neg[:, None] - fp) / n_neg[:, None]
    allowed = specificity >= min_specificity - 1e-12  # the all-negative operating point (0, 0) always qualifies
    best = np.where(allowed, sensitivity, 0.0).max(axis=1, initial=0.0)
    return np.where((n_pos > 0) & (n_neg > 0), best, np.nan)


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
        "malignancy.sensitivity_at_specificity": weighted_sensitivity_at_specificity(
            y_m[has_m].astype(bool), p_m, w_m, MIN_SPECIFICITY
        ),
    }


def _points(frame: pd.DataFrame, prefix: str) -> dict[str, float]:
    y_d, y_m = density_labels(frame), malignancy_labels(frame)
    has_d, has_m = np.isfinite(y_d), np.isfinite(y_m)
    density = density_metrics(
        y_d[has_d].astype(int), frame[[prefix + c for c in DENSITY_PROB_COLUMNS]].to_numpy(np.float64)[has_d]
    )
    p_m = frame[prefix + MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)[has_m]
    malignancy = malignancy_metrics(y_m[has_m].astype(int), p_m)
    sensitivity = weighted_sensitivity_at_specificity(y_m[has_m], p_m, np.ones((1, len(p_m))), MIN_SPECIFICITY)
    return {
        "density.accuracy": float(density["accuracy"]),
        "density.kappa_quadratic": float(density["kappa_quadratic"]),
        "malignancy.roc_auc": float(malignancy["roc_auc"]),
        "malignancy.sensitivity_at_specificity": float(sensitivity[0]),
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


# ------------------------------------------------------------------ malignancy against either label
def with_true_pathology(predictions: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with ``malignant`` / ``pathology`` replaced by the manifest's ``true_pathology``.

    The synthetic manifest records a noisy ``pathology`` and the generator's ``true_pathology``; predictions tables
    carry the noisy one. Joined on ``image_path``; every prediction's image must be in ``manifest``. Density labels
    are left as they are.
    """
    if "true_pathology" not in manifest.columns:
        raise KeyError("the manifest has no 'true_pathology' column: only the synthetic data set records the truth")
    truth = manifest.drop_duplicates("image_path").set_index("image_path")["true_pathology"]
    missing = ~predictions["image_path"].isin(truth.index)
    if missing.any():
        example = predictions["image_path"][missing].iloc[0]
        raise ValueError(f"{int(missing.sum())} prediction row(s) have no manifest row (e.g. {example!r})")
    out = predictions.copy()
    pathology = predictions["image_path"].map(truth)
    out["pathology"] = pathology
    out["malignant"] = pathology.map({"malignant": 1, "benign": 0}).astype("Int64")
    return out


def malignancy_cis(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    min_specificity: float = MIN_SPECIFICITY,
    alpha: float = 0.05,
) -> dict[str, boot.BootstrapCI]:
    """Malignancy ROC AUC and sensitivity at specificity ≥ ``min_specificity``, with patient-bootstrap CIs.

    Parameters
    ----------
    predictions : pandas.DataFrame
        A predictions table (its ``malignant`` labels are used: the recorded ones, or the truth after
        :func:`with_true_pathology`); rows without a label are left out.
    n_boot, seed, alpha
        Bootstrap replicates (patients resampled), their seed and the CI level ``1 - alpha``.
    min_specificity : float
        See :func:`weighted_sensitivity_at_specificity` (the operating point is chosen again on each replicate).

    Returns
    -------
    dict
        ``roc_auc`` and ``sensitivity_at_specificity``, each a :class:`~mammo_utils.evaluation.bootstrap.BootstrapCI`.
    """
    y = malignancy_labels(predictions)
    known = np.isfinite(y)
    frame = predictions[known].reset_index(drop=True)
    truth, score = y[known].astype(bool), frame[MALIGNANCY_PROB_COLUMN].to_numpy(np.float64)

    def metrics(_: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "roc_auc": boot.weighted_roc_auc(truth, score, weights),
            "sensitivity_at_specificity": weighted_sensitivity_at_specificity(truth, score, weights, min_specificity),
        }

    return boot.bootstrap_cis(frame, metrics, n_boot=n_boot, seed=seed, alpha=alpha, vectorized=True)


# ------------------------------------------------------------------ the ablation's table
ABLATION_METRICS: dict[str, str] = {
    "malignancy.roc_auc": "malignancy ROC AUC, noisy labels",
    "malignancy.roc_auc_true": "malignancy ROC AUC, true labels",
    "malignancy.sensitivity_at_specificity": "sensitivity at specificity ≥ 0.9, noisy labels",
    "malignancy.sensitivity_at_specificity_true": "sensitivity at specificity ≥ 0.9, true labels",
    "density.accuracy": "density accuracy",
    "density.kappa_quadratic": "density κ (quadratic)",
}
SEED_SUMMARY_METRICS: tuple[str, ...] = ("malignancy.roc_auc", "malignancy.roc_auc_true", "density.kappa_quadratic")


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (``ddof=1``; NaN for one value) of a metric over training seeds."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("seed_summary needs at least one value")
    sd = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return {"mean": float(array.mean()), "sd": sd, "values": [float(v) for v in array]}


def _checked_runs(saved: Mapping[str, Any], reference: str) -> tuple[list[str], dict[str, list[dict]]]:
    """The models in table order (``reference`` first) and their runs; a clear error when one is missing."""
    runs = saved.get("runs", {})
    models = list(saved.get("config", {}).get("models") or runs)
    missing = [m for m in dict.fromkeys([reference, *models]) if not runs.get(m)]
    if missing:
        raise ValueError(
            f"ablation results have no runs of {', '.join(map(repr, missing))} (models run: {sorted(runs)}); "
            "run benchmarks/ablation.py with --models naming them"
        )
    return [reference, *[m for m in models if m != reference]], runs


def _cell(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "—"
    low, high = entry.get("ci_low"), entry.get("ci_high")
    bounds = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{entry['value']:.3f}{bounds}"


def _pointing_cell(entry: Mapping[str, Any] | None) -> str:
    if not entry or not entry.get("n"):
        return "—"
    flat = f", {entry['n_flat']} flat" if entry.get("n_flat") else ""  # a map without a peak counts as a miss
    return (
        f"{entry['hit_rate']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] ({entry['hits']}/{entry['n']}{flat})"
    )


def _spread_cell(summary: Mapping[str, Any]) -> str:
    values = ", ".join(f"{v:.3f}" for v in summary["values"])
    sd = "n/a" if summary["sd"] is None or not math.isfinite(summary["sd"]) else f"{summary['sd']:.3f}"
    return f"{summary['mean']:.3f} ± {sd} ({values})"


def _difference(paired: Mapping[str, Any] | None, key: str, first: dict, other: dict) -> str:
    """The paired difference with its CI if saved, else the difference of the point values marked unpaired."""
    entry = (paired or {}).get(key)
    if entry and entry.get("difference") is not None and entry.get("ci_low") is not None:
        return f"{entry['difference']:+.3f} [{entry['ci_low']:+.3f}, {entry['ci_high']:+.3f}]"
    a, b = first["metrics"].get(key, {}).get("value"), other["metrics"].get(key, {}).get("value")
    return "—" if a is None or b is None else f"{a - b:+.3f} (unpaired)"


def _cost_rows(models: list[str], runs: dict[str, list[dict]]) -> dict[str, dict[str, str]]:
    first = {m: runs[m][0] for m in models}
    rows = {
        "parameters": {m: f"{first[m]['params']:,}" for m in models},
        "training images": {m: f"{first[m]['n_train']:,}" for m in models},
        "train time (min), mean over seeds": {
            m: f"{np.mean([r['train_s'] for r in runs[m]]) / 60:.1f}" for m in models
        },
        "epochs trained, per seed": {m: ", ".join(str(r["epochs_trained"]) for r in runs[m]) for m in models},
    }
    for m in models[1:]:
        rows["parameters"][f"{models[0]} − {m}"] = f"{first[models[0]]['params'] / first[m]['params']:.3g} ×"
    return rows


def ablation_table(saved: Mapping[str, Any], reference: str = "lesion") -> pd.DataFrame:
    """The table of ``benchmarks/ablation.py``'s JSON: every model's metrics with CIs, seeds, paired differences.

    Parameters
    ----------
    saved : dict
        The benchmark's JSON: ``config`` (``models``, ``seeds``), ``runs`` (per model a list of runs in seed order,
        each with ``seed``, ``params``, ``n_train``, ``train_s``, ``epochs_trained``, ``metrics`` — the keys of
        :data:`ABLATION_METRICS`, each ``{"value", "ci_low", "ci_high"}`` — and ``pointing_game``: ``hits``, ``n``,
        ``hit_rate``, ``ci_low``, ``ci_high``) and ``paired`` (``"<reference> - <model>"``: per metric the
        ``difference``, ``ci_low``, ``ci_high`` of :func:`paired_comparison` on the first seed's runs).
    reference : str
        The model the others are compared with (its column comes first).

    Returns
    -------
    pandas.DataFrame
        Formatted strings. Rows: costs, the first seed's metrics with 95 % CIs, the pointing game (Wilson CI,
        hits/images, and how many maps were flat), then :data:`SEED_SUMMARY_METRICS` as mean ± sd over seeds with
        every seed's value. Columns: one per model, then ``"<reference> − <model>"`` per other model: the paired
        difference [CI] where saved, else the unpaired difference of point values (of the means for the rows over
        seeds), a ratio for parameters.

    Raises
    ------
    ValueError
        If ``reference`` or a model of ``config["models"]`` has no runs.
    """
    models, runs = _checked_runs(saved, reference)
    first = {m: runs[m][0] for m in models}
    tag = f"seed {first[reference]['seed']}"
    rows = _cost_rows(models, runs)
    versus = {m: f"{reference} − {m}" for m in models[1:]}
    for key, label in ABLATION_METRICS.items():
        row = {m: _cell(first[m]["metrics"].get(key)) for m in models}
        for m, column in versus.items():
            row[column] = _difference(
                saved.get("paired", {}).get(f"{reference} - {m}"), key, first[reference], first[m]
            )
        rows[f"{label} ({tag})"] = row
    rows[f"pointing game, malignant test images ({tag})"] = {
        m: _pointing_cell(first[m].get("pointing_game")) for m in models
    }
    for key in SEED_SUMMARY_METRICS:
        summary = {m: seed_summary([r["metrics"][key]["value"] for r in runs[m]]) for m in models}
        row = {m: _spread_cell(summary[m]) for m in models}
        for m, column in versus.items():
            row[column] = f"{summary[reference]['mean'] - summary[m]['mean']:+.3f} (difference of means)"
        rows[f"{ABLATION_METRICS[key]}, mean ± sd over seeds"] = row
    columns = [*models, *versus.values()]
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).fillna("—")


def ablation_header(saved: Mapping[str, Any]) -> str:
    """The caption of :func:`ablation_table`: data, split, test images, budget, how CIs and the threshold are made."""
    c = saved["config"]
    seed_cap = (
        f" The seed model (opt-in, ~1 image/s on this CPU) trains on at most {c['seed_max_train']:,} images "
        "(whole patients), so its paired differences compare different training budgets."
        if "seed" in c.get("models", ())
        else ""
    )
    return (
        f"Ablation on synthetic data, held-out synthetic test split, {c['n_test']} test images "
        f"({c['n_test_patients']} patients; patient-level split, seed {c['split_seed']}). Same budget for every "
        f"model: at most {c['epochs']} epoch{'s' if c['epochs'] != 1 else ''} (per stage for the lesion model) "
        f"with early stopping (patience {c['patience']}), batch {c['batch_size']}, {c['n_train']:,} training "
        f"images; training seeds {', '.join(map(str, c['seeds']))}.{seed_cap} 95 % CIs by patient-level "
        f"bootstrap ({c['n_boot']} "
        "replicates); the pointing game (map peak within the finding's radius, on the test images recorded as "
        "malignant; lesion map for the lesion model, Grad-CAM of the malignancy head for the others) with a Wilson "
        "interval. Sensitivity at specificity ≥ 0.9: the operating point is chosen on the test scores' own ROC "
        "curve. Difference columns: paired bootstrap on the first seed's runs (same test images, same resampled "
        "patients)."
    )
