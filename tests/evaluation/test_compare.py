"""Tests for mammo_utils.evaluation.compare: paired patient-level bootstrap of the difference between two models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from mammo_utils.evaluation.compare import COMPARED_METRICS, benchmark_table, paired_comparison
from mammo_utils.evaluation.predictions import predictions_frame


def _table(rng: np.random.Generator, skill: float, n_patients: int = 60) -> pd.DataFrame:
    """Synthetic predictions: two images per patient; ``skill`` in [0, 1] moves the probabilities to the truth."""
    rows = [
        {"image_path": f"p{p}_{v}.png", "patient_id": f"P{p}", "density": 1 + (p % 4), "malignant": (p // 4) % 2}
        for p in range(n_patients)
        for v in ("CC", "MLO")
    ]
    truth_d = np.array([r["density"] - 1 for r in rows])
    truth_m = np.array([r["malignant"] for r in rows], dtype=float)
    noise = rng.dirichlet(np.ones(4), size=len(rows))
    density = (1 - skill) * noise + skill * np.eye(4)[truth_d]
    malignancy = np.clip((1 - skill) * rng.uniform(size=len(rows)) + skill * truth_m, 0, 1)
    return predictions_frame(pd.DataFrame(rows), density_probs=density, malignancy_prob=malignancy)


def test_points_match_scikit_learn_and_difference_is_b_minus_a() -> None:
    rng = np.random.default_rng(0)
    a, b = _table(rng, 0.1), _table(rng, 0.6)
    table = paired_comparison(a, b, names=("seed", "default"), n_boot=200, seed=1)
    assert list(table.index) == list(COMPARED_METRICS)
    y_d = b["density"].to_numpy(int)
    pred = b[[f"p_density_{d}" for d in range(1, 5)]].to_numpy().argmax(axis=1) + 1
    assert table.loc["density.kappa_quadratic", "default"] == pytest.approx(
        cohen_kappa_score(y_d, pred, weights="quadratic")
    )
    assert table.loc["malignancy.roc_auc", "seed"] == pytest.approx(
        roc_auc_score(a["malignant"].astype(int), a["p_malignant"])
    )
    diff = table["default"] - table["seed"]
    np.testing.assert_allclose(table["difference"], diff)
    assert (table["ci_low"] <= table["difference"]).all() and (table["difference"] <= table["ci_high"]).all()
    assert (table["ci_low"] > 0).all(), "a much better model b must have a difference CI above 0"
    assert (table["p_b_better"] > 0.95).all() and (table["n_images"] == len(a)).all()


def test_pairing_makes_the_interval_of_identical_models_a_point() -> None:
    a = _table(np.random.default_rng(3), 0.4)
    table = paired_comparison(a, a.sample(frac=1.0, random_state=0), n_boot=100)  # same rows, other order
    assert (table["difference"] == 0).all() and (table["ci_low"] == 0).all() and (table["ci_high"] == 0).all()
    assert (table["p_b_better"] == 0).all()


def test_same_images_and_distinct_names_are_required() -> None:
    rng = np.random.default_rng(4)
    a, b = _table(rng, 0.2), _table(rng, 0.2)
    with pytest.raises(ValueError, match="same images: 2 only in a"):
        paired_comparison(a, b.iloc[2:])
    with pytest.raises(ValueError, match="unique 'image_path'"):
        paired_comparison(pd.concat([a, a.iloc[:1]]), b)
    with pytest.raises(ValueError, match="different names"):
        paired_comparison(a, b, names=("m", "m"))
    with pytest.raises(ValueError, match="n_boot"):
        paired_comparison(a, b, n_boot=0)


def _entry(value: float) -> dict:
    return {"value": value, "ci_low": value - 0.1, "ci_high": value + 0.1}


def _result(params: int, speed: float, kappa: float) -> dict:
    return {
        "params": params,
        "train_images_per_s": speed,
        "inference_images_per_s": 2 * speed,
        "peak_rss_gb": 1.5,
        "metrics": {
            "density.accuracy": _entry(0.5),
            "density.kappa_quadratic": _entry(kappa),
            "malignancy.roc_auc": _entry(0.6),
        },
    }


def test_benchmark_table_shows_cost_ratios_and_paired_differences() -> None:
    saved = {
        "results": {"seed": _result(200, 1.0, 0.0), "default": _result(2, 20.0, 0.7)},
        "paired_difference": {"density.kappa_quadratic": {"difference": 0.7, "ci_low": 0.6, "ci_high": 0.8}},
    }
    table = benchmark_table(saved)
    assert list(table.columns) == ["seed", "default", "default vs seed"]
    assert table.loc["parameters", "default vs seed"] == "0.01 ×"
    assert table.loc["training images/s", "default vs seed"] == "20 ×"
    assert table.loc["density κ (quadratic)", "default vs seed"] == "+0.700 [+0.600, +0.800]"
    assert table.loc["density κ (quadratic)", "seed"] == "0.000 [-0.100, 0.100]"
    assert table.loc["malignancy ROC AUC", "default vs seed"] == "+0.000 (unpaired)"  # no paired entry saved


def test_benchmark_table_needs_both_models() -> None:
    with pytest.raises(ValueError, match="no 'seed' entry"):
        benchmark_table({"results": {"default": _result(2, 20.0, 0.7)}})
