"""Calibration: expected calibration error, reliability bins and temperature scaling.

Pure numpy / scipy, so it runs on predictions saved to CSV without TensorFlow.

Two kinds of prediction are handled everywhere, told apart by the shape of ``p``:

* **binary** — ``p`` is 1-D, the probability of the positive class (malignant); ``y`` is 0/1.
  The reliability diagram bins ``p`` itself and compares it with the observed frequency of ``y == 1``.
* **multiclass, top-label** — ``p`` is 2-D ``(N, K)`` (the density softmax); ``y`` holds class labels
  (``classes[k]`` is the label of column ``k``, default ``0..K-1``; pass ``classes=(1, 2, 3, 4)`` for BI-RADS).
  The confidence is the largest probability and the outcome is whether that class is the true one.

Bins are equal-width on [0, 1]: bin ``b`` holds confidences in ``[b / n_bins, (b + 1) / n_bins)``, the last bin
also holds 1.0. ECE = sum over bins of ``count_b / N * |observed_b - mean_confidence_b|``.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar ``T > 0`` fitted on the validation split by
minimizing the negative log-likelihood. Models here output probabilities, so logits are recovered as
``log(p / (1 - p))`` (binary) or ``log p`` (softmax; log-probabilities differ from the logits by a per-row constant,
which the softmax ignores, so scaling them is exactly scaling the logits). Probabilities are clipped to
``[EPS, 1 - EPS]`` first. ``T > 1`` softens over-confident predictions; the ranking (binary) and the argmax
(multiclass) never change, so AUC and accuracy are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

EPS: float = 1e-7
TEMPERATURE_BOUNDS: tuple[float, float] = (1e-2, 1e2)


def _labels_to_index(y: np.ndarray, classes: Sequence | None, n_classes: int) -> np.ndarray:
    classes = tuple(range(n_classes)) if classes is None else tuple(classes)
    if len(classes) != n_classes:
        raise ValueError(f"{len(classes)} classes given for probabilities with {n_classes} columns")
    lookup = {float(c): i for i, c in enumerate(classes)}
    try:
        return np.array([lookup[float(v)] for v in y], dtype=np.int64)
    except KeyError as error:
        raise ValueError(f"label {error.args[0]!r} is not one of the classes {classes}") from None


def _checked(y: np.ndarray | Sequence, p: np.ndarray | Sequence) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim not in (1, 2) or len(p) != len(y):
        raise ValueError(f"y has {len(y)} rows but p has shape {p.shape}; expected (N,) or (N, K)")
    if np.isnan(y).any() or np.isnan(p).any():
        raise ValueError("y and p must not contain missing values; drop unlabelled rows first")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def confidence_and_outcome(
    y: np.ndarray | Sequence, p: np.ndarray | Sequence, classes: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (confidence, outcome) pairs a reliability diagram bins.

    Binary ``p`` (N,): ``(p, y)``, with ``y`` checked to be 0/1. Multiclass ``p`` (N, K):
    ``(max probability, 1.0 if the argmax class is the true class else 0.0)``.
    """
    y, p = _checked(y, p)
    if p.ndim == 1:
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("binary labels must be 0 or 1")
        return p, y
    index = _labels_to_index(y, classes, p.shape[1])
    return p.max(axis=1), (p.argmax(axis=1) == index).astype(np.float64)


def reliability_bins(
    y: np.ndarray | Sequence, p: np.ndarray | Sequence, n_bins: int = 10, classes: Sequence | None = None
) -> pd.DataFrame:
    """Equal-width reliability bins for a reliability diagram.

    Returns
    -------
    pandas.DataFrame
        One row per bin (empty bins included, with NaN means): ``bin``, ``bin_low``, ``bin_high``,
        ``bin_centre``, ``mean_predicted`` (mean confidence), ``observed_frequency`` (fraction positive, or
        fraction correct for multiclass) and ``count``.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    confidence, outcome = confidence_and_outcome(y, p, classes)
    index = np.clip(np.floor(confidence * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=confidence, minlength=n_bins) / count
        observed = np.bincount(index, weights=outcome, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "bin_centre": (edges[:-1] + edges[1:]) / 2,
            "mean_predicted": mean_predicted,
            "observed_frequency": observed,
            "count": count,
        }
    )


def expected_calibration_error(
    y: np.ndarray | Sequence, p: np.ndarray | Sequence, n_bins: int = 10, classes: Sequence | None = None
) -> float:
    """Expected calibration error with equal-width bins weighted by bin count (NaN when there are no rows).

    Binary for 1-D ``p`` (probability of class 1), top-label for 2-D ``p`` (see the module docstring).
    """
    bins = reliability_bins(y, p, n_bins=n_bins, classes=classes)
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    filled = bins[bins["count"] > 0]
    gap = (filled["observed_frequency"] - filled["mean_predicted"]).abs()
    return float((filled["count"] * gap).sum() / total)


def to_logits(p: np.ndarray | Sequence, eps: float = EPS) -> np.ndarray:
    """Logits from probabilities: ``log(p / (1 - p))`` for 1-D, ``log p`` for 2-D, after clipping to [eps, 1 - eps]."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    if p.ndim == 1:
        return np.log(p) - np.log1p(-p)
    if p.ndim == 2:
        return np.log(p)
    raise ValueError(f"p must have shape (N,) or (N, K), got {p.shape}")


def apply_temperature(p: np.ndarray | Sequence, temperature: float, from_logits: bool = False) -> np.ndarray:
    """Temperature-scaled probabilities, same shape as ``p``.

    Parameters
    ----------
    p
        (N,) probabilities of class 1 (binary) or (N, K) class probabilities; logits if ``from_logits``.
    temperature
        ``T > 0``; the logits are divided by it.
    from_logits
        ``p`` already holds logits.
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    logits = np.asarray(p, dtype=np.float64) if from_logits else to_logits(p)
    if logits.ndim == 1:
        return expit(logits / temperature)
    if logits.ndim == 2:
        return softmax(logits / temperature, axis=1)
    raise ValueError(f"p must have shape (N,) or (N, K), got {logits.shape}")


def _nll(logits: np.ndarray, target: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    if z.ndim == 1:  # binary cross-entropy, stable: log(1 + e^z) - y z
        return float(np.mean(np.logaddexp(0.0, z) - target * z))
    return float(-np.mean(log_softmax(z, axis=1)[np.arange(len(z)), target]))


def fit_temperature(
    p: np.ndarray | Sequence,
    y: np.ndarray | Sequence,
    from_logits: bool = False,
    classes: Sequence | None = None,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """Fit the temperature ``T > 0`` that minimizes the negative log-likelihood of ``y`` (use the validation split).

    Parameters
    ----------
    p
        (N,) probabilities of class 1 or (N, K) class probabilities (logits if ``from_logits``).
    y
        0/1 labels (binary) or class labels (multiclass, mapped through ``classes``, default ``0..K-1``).
    bounds
        Search interval for ``T``; the search is over ``log T`` (bounded Brent), so the result lies inside it.

    Returns
    -------
    float
        The fitted temperature; ``T > 1`` means the model was over-confident.
    """
    logits = np.asarray(p, dtype=np.float64) if from_logits else to_logits(p)
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) == 0 or len(y) != len(logits):
        raise ValueError(f"need matching, non-empty p and y; got {len(logits)} and {len(y)} rows")
    if np.isnan(y).any() or not np.isfinite(logits).all():
        raise ValueError("y and p must not contain missing values; drop unlabelled rows first")
    if logits.ndim == 1:
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("binary labels must be 0 or 1")
        target = y
    else:
        target = _labels_to_index(y, classes, logits.shape[1])
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    result = minimize_scalar(
        lambda log_t: _nll(logits, target, float(np.exp(log_t))),
        bounds=(np.log(low), np.log(high)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def negative_log_likelihood(
    y: np.ndarray | Sequence, p: np.ndarray | Sequence, classes: Sequence | None = None
) -> float:
    """Mean negative log-likelihood (log loss) of the labels under the (clipped) probabilities."""
    y, p = _checked(y, p)
    logits = to_logits(p)
    target = y if p.ndim == 1 else _labels_to_index(y, classes, p.shape[1])
    return _nll(logits, target, 1.0)


def calibration_report(
    y_val: np.ndarray,
    p_val: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    n_bins: int = 10,
    classes: Sequence | None = None,
) -> dict[str, object]:
    """Fit a temperature on validation, apply it to test; ECE / NLL before and after, and reliability bins.

    Returns ``temperature``, ``ece_before``, ``ece_after`` (test), ``val_ece_before``, ``val_ece_after``,
    ``nll_before``, ``nll_after`` (test) and ``reliability_before`` / ``reliability_after`` (test, lists of bin
    records). Values are NaN (bins empty lists) when either split has no labelled rows.
    """
    if len(y_val) == 0 or len(y_test) == 0:
        keys = ("temperature", "ece_before", "ece_after", "val_ece_before", "val_ece_after", "nll_before", "nll_after")
        return dict.fromkeys(keys, float("nan")) | {"reliability_before": [], "reliability_after": []}
    temperature = fit_temperature(p_val, y_val, classes=classes)
    val_after, test_after = apply_temperature(p_val, temperature), apply_temperature(p_test, temperature)
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(y_test, p_test, n_bins, classes),
        "ece_after": expected_calibration_error(y_test, test_after, n_bins, classes),
        "val_ece_before": expected_calibration_error(y_val, p_val, n_bins, classes),
        "val_ece_after": expected_calibration_error(y_val, val_after, n_bins, classes),
        "nll_before": negative_log_likelihood(y_test, p_test, classes),
        "nll_after": negative_log_likelihood(y_test, test_after, classes),
        "reliability_before": reliability_bins(y_test, p_test, n_bins, classes).to_dict("records"),
        "reliability_after": reliability_bins(y_test, test_after, n_bins, classes).to_dict("records"),
    }
