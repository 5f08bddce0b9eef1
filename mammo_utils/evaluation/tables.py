"""Tables and files made from predictions and from the evaluation report.

Tables of rows (from a predictions table, see :mod:`mammo_utils.evaluation.predictions`): metrics per subgroup
(:func:`subgroup_table`) and the most confident mistakes (:func:`most_confident_mistakes`). From the report of
:func:`mammo_utils.evaluation.report.evaluate_predictions`: the headline metrics with their CIs (:func:`metrics_table`,
:func:`metric_entry`) and the strict-JSON file (:func:`to_jsonable`, :func:`write_metrics_json`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils.evaluation.metrics import density_metrics, malignancy_metrics
from mammo_utils.evaluation.predictions import (
    DENSITY_PROB_COLUMNS,
    MALIGNANCY_PROB_COLUMN,
    METADATA_COLUMNS,
    density_labels,
    malignancy_labels,
)
from mammo_utils.labels import is_missing

HEADLINE_METRICS: tuple[str, ...] = (
    "density.accuracy",
    "density.kappa_quadratic",
    "density.kappa_linear",
    "density.dense_accuracy",
    "malignancy.roc_auc",
    "malignancy.pr_auc",
    "malignancy.sensitivity",
    "malignancy.specificity",
    "malignancy.sensitivity_at_0.5",
    "malignancy.specificity_at_0.5",
    "joint_accuracy",
)  # every one of these carries {"value", "ci_low", "ci_high"} in evaluate_predictions' output

SUBGROUP_COLUMNS: tuple[str, ...] = (
    "group",
    "level",
    "n_images",
    "n_patients",
    "n_density",
    "density_accuracy",
    "kappa_quadratic",
    "n_malignancy",
    "n_malignant",
    "roc_auc",
    "sensitivity",
    "specificity",
)


def subgroup_table(
    predictions: pd.DataFrame, by: Sequence[str] = ("view", "laterality", "source"), threshold: float = 0.5
) -> pd.DataFrame:
    """Metrics per level of each column in ``by`` (one column at a time; a missing value is the level "missing").

    κ is NaN when undefined (e.g. one class), AUC NaN unless both classes occur in the subgroup.
    """
    rows = []
    for column in (c for c in by if c in predictions.columns):
        levels = pd.Series(
            [("missing" if is_missing(v) else str(v)) for v in predictions[column]],
            index=predictions.index,
            dtype=object,
        )
        for level, part in predictions.groupby(levels, sort=True):
            dens = density_metrics(density_labels(part), part[list(DENSITY_PROB_COLUMNS)])
            mal = malignancy_metrics(malignancy_labels(part), part[MALIGNANCY_PROB_COLUMN], threshold)
            rows.append(
                {
                    "group": column,
                    "level": level,
                    "n_images": len(part),
                    "n_patients": int(part["patient_id"].nunique()) if "patient_id" in part else math.nan,
                    "n_density": dens["n"],
                    "density_accuracy": dens["accuracy"],
                    "kappa_quadratic": dens["kappa_quadratic"],
                    "n_malignancy": mal["n"],
                    "n_malignant": mal["n_malignant"],
                    "roc_auc": mal["roc_auc"],
                    "sensitivity": mal["sensitivity"],
                    "specificity": mal["specificity"],
                }
            )
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


def metric_entry(metrics: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The ``{"value", "ci_low", "ci_high", ...}`` entry of a dotted headline name, e.g. ``"density.accuracy"``."""
    section, _, key = name.partition(".")
    return metrics[section][key] if key else metrics[section]


def metrics_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The headline metrics with their CIs as a table (one row per :data:`HEADLINE_METRICS` name)."""
    data = metrics["data"]
    rows = [
        {
            "metric": name,
            **{k: metric_entry(metrics, name).get(k) for k in ("value", "ci_low", "ci_high")},
            "split": data["split"],
            "source": data["source"],
        }
        for name in HEADLINE_METRICS
    ]
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
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.replace(handle.name, path)
    except OSError:
        os.unlink(handle.name)
        raise
    return path
