"""Tests for mammo_utils.evaluation.compare: paired patient-level bootstrap of the difference between two models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, roc_auc_score, roc_curve

from mammo_utils.evaluation.compare import (
    COMPARED_METRICS,
    ablation_header,
    ablation_table,
    malignancy_cis,
    paired_comparison,
    seed_summary,
    weighted_sensitivity_at_specificity,
    with_true_pathology,
)
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


def _sklearn_sensitivity(y: np.ndarray, score: np.ndarray, min_specificity: float = 0.9) -> float:
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    return float(tpr[1 - fpr >= min_specificity - 1e-12].max())


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.booleans(), min_size=4, max_size=40),
    data=st.data(),
    min_specificity=st.sampled_from([0.5, 0.8, 0.9, 1.0]),
)
def test_sensitivity_at_specificity_matches_roc_curve(labels: list[bool], data, min_specificity: float) -> None:
    y = np.array(labels)
    if y.all() or not y.any():
        y[0] = not y[0]
    score = np.array(data.draw(st.lists(st.integers(0, 6), min_size=len(y), max_size=len(y))), dtype=float) / 6
    got = weighted_sensitivity_at_specificity(y, score, np.ones((1, len(y))), min_specificity)
    assert got[0] == pytest.approx(_sklearn_sensitivity(y.astype(int), score, min_specificity))


def test_sensitivity_weights_equal_duplicated_rows_and_need_both_classes() -> None:
    rng = np.random.default_rng(5)
    y, score = rng.integers(0, 2, 30).astype(bool), rng.uniform(size=30)
    counts = rng.integers(0, 3, size=30)
    got = weighted_sensitivity_at_specificity(y, score, counts[None, :].astype(float))
    repeated = np.repeat(np.arange(30), counts)
    assert got[0] == pytest.approx(_sklearn_sensitivity(y[repeated].astype(int), score[repeated]))
    one_class = weighted_sensitivity_at_specificity(y, score, np.where(y, 0.0, 1.0)[None, :])
    assert np.isnan(one_class[0])
    with pytest.raises(ValueError, match="min_specificity"):
        weighted_sensitivity_at_specificity(y, score, np.ones((1, 30)), 0.0)


def _with_truth(table: pd.DataFrame) -> pd.DataFrame:
    """A manifest of ``table``'s images whose true pathology flips the recorded label of every 5th image."""
    flip = np.arange(len(table)) % 5 == 0
    malignant = table["malignant"].astype(int).to_numpy() ^ flip
    return pd.DataFrame(
        {"image_path": table["image_path"], "true_pathology": np.where(malignant == 1, "malignant", "benign")}
    )


def test_with_true_pathology_swaps_the_labels_only() -> None:
    table = _table(np.random.default_rng(6), 0.5)
    manifest = _with_truth(table)
    swapped = with_true_pathology(table.iloc[::-1], manifest)  # joined by image_path, not by position
    expected = manifest.set_index("image_path")["true_pathology"]
    assert (swapped["pathology"].to_numpy() == expected[swapped["image_path"]].to_numpy()).all()
    assert (swapped["malignant"] == (swapped["pathology"] == "malignant").astype(int)).all()
    pd.testing.assert_series_equal(swapped["p_malignant"], table.iloc[::-1]["p_malignant"])
    with pytest.raises(ValueError, match="1 prediction row"):
        with_true_pathology(table, manifest.iloc[1:])
    with pytest.raises(KeyError, match="true_pathology"):
        with_true_pathology(table, manifest.drop(columns="true_pathology"))


def test_malignancy_cis_points_match_scikit_learn() -> None:
    table = _table(np.random.default_rng(7), 0.3)
    cis = malignancy_cis(table, n_boot=200, seed=1)
    y, score = table["malignant"].astype(int).to_numpy(), table["p_malignant"].to_numpy()
    assert cis["roc_auc"].value == pytest.approx(roc_auc_score(y, score))
    assert cis["sensitivity_at_specificity"].value == pytest.approx(_sklearn_sensitivity(y, score))
    for ci in cis.values():
        assert ci.low <= ci.value <= ci.high and ci.n_used == 200
    truth = malignancy_cis(with_true_pathology(table, _with_truth(table)), n_boot=50)
    assert truth["roc_auc"].value < cis["roc_auc"].value  # the recorded labels are what the scores were made from


def test_seed_summary_is_mean_and_sample_sd() -> None:
    summary = seed_summary([0.7, 0.8, 0.9])
    assert summary["mean"] == pytest.approx(0.8) and summary["sd"] == pytest.approx(0.1)
    assert summary["values"] == [0.7, 0.8, 0.9]
    assert np.isnan(seed_summary([0.5])["sd"])
    with pytest.raises(ValueError, match="at least one"):
        seed_summary([])


def _entry(value: float) -> dict:
    return {"value": value, "ci_low": value - 0.1, "ci_high": value + 0.1}


def _run(seed: int, auc: float, kappa: float, params: int = 1000) -> dict:
    metrics = {
        "malignancy.roc_auc": _entry(auc),
        "malignancy.roc_auc_true": _entry(auc + 0.05),
        "malignancy.sensitivity_at_specificity": _entry(0.5),
        "malignancy.sensitivity_at_specificity_true": _entry(0.55),
        "density.accuracy": _entry(0.6),
        "density.kappa_quadratic": _entry(kappa),
    }
    pointing = {"n": 40, "hits": 30, "hit_rate": 0.75, "ci_low": 0.6, "ci_high": 0.86}
    return {
        "seed": seed,
        "params": params,
        "n_train": 1400,
        "train_s": 600.0,
        "epochs_trained": 10 + seed % 3,
        "metrics": metrics,
        "pointing_game": pointing,
    }


def _saved() -> dict:
    diff = {"difference": 0.1, "ci_low": 0.05, "ci_high": 0.15, "p_b_better": 0.99}
    return {
        "config": {
            "models": ["lesion", "whole_image"],
            "seeds": [42, 43, 44],
            "n_test": 300,
            "n_test_patients": 120,
            "split_seed": 42,
            "epochs": 30,
            "patience": 5,
            "batch_size": 32,
            "n_train": 1400,
            "n_boot": 1000,
            "seed_max_train": 800,
        },
        "runs": {
            "lesion": [_run(42, 0.8, 0.7, 500), _run(43, 0.7, 0.6, 500), _run(44, 0.9, 0.8, 500)],
            "whole_image": [_run(42, 0.7, 0.7), _run(43, 0.7, 0.7), _run(44, 0.7, 0.7)],
        },
        "paired": {"lesion - whole_image": {"malignancy.roc_auc": diff, "malignancy.roc_auc_true": diff}},
    }


def test_ablation_table_shows_cis_seed_spread_and_paired_differences() -> None:
    table = ablation_table(_saved())
    assert list(table.columns) == ["lesion", "whole_image", "lesion − whole_image"]
    assert table.loc["malignancy ROC AUC, noisy labels (seed 42)", "lesion"] == "0.800 [0.700, 0.900]"
    assert table.loc["malignancy ROC AUC, true labels (seed 42)", "lesion − whole_image"] == "+0.100 [+0.050, +0.150]"
    assert table.loc["density κ (quadratic) (seed 42)", "lesion − whole_image"] == "+0.000 (unpaired)"
    spread = "malignancy ROC AUC, noisy labels, mean ± sd over seeds"
    assert table.loc[spread, "lesion"] == "0.800 ± 0.100 (0.800, 0.700, 0.900)"
    assert table.loc[spread, "whole_image"] == "0.700 ± 0.000 (0.700, 0.700, 0.700)"
    assert table.loc[spread, "lesion − whole_image"] == "+0.100 (difference of means)"
    assert table.loc["pointing game, malignant test images (seed 42)", "lesion"] == "0.750 [0.600, 0.860] (30/40)"
    assert table.loc["pointing game, malignant test images (seed 42)", "lesion − whole_image"] == "—"
    saved = _saved()
    saved["runs"]["whole_image"][0]["pointing_game"] |= {"hits": 0, "hit_rate": 0.0, "n_flat": 40}
    flat = ablation_table(saved).loc["pointing game, malignant test images (seed 42)", "whole_image"]
    assert flat == "0.000 [0.600, 0.860] (0/40, 40 flat)"
    assert table.loc["parameters", "lesion"] == "500" and table.loc["parameters", "lesion − whole_image"] == "0.5 ×"
    assert table.loc["epochs trained, per seed", "lesion"] == "10, 11, 12"
    header = ablation_header(_saved())
    assert "synthetic data, held-out synthetic test split, 300 test images" in header
    assert "seed model" not in header  # the seed model's cap is mentioned only when it ran


def test_ablation_table_with_one_seed_has_no_sd() -> None:
    saved = _saved()
    saved["runs"] = {name: runs[:1] for name, runs in saved["runs"].items()}
    spread = ablation_table(saved).loc["density κ (quadratic), mean ± sd over seeds", "lesion"]
    assert spread == "0.700 ± n/a (0.700)"


def test_ablation_table_names_the_missing_model() -> None:
    saved = _saved()
    saved["config"]["models"].append("seed")
    with pytest.raises(ValueError, match="no runs of 'seed'.*models run: \\['lesion', 'whole_image'\\]"):
        ablation_table(saved)
    with pytest.raises(ValueError, match="no runs of 'lesion'"):
        ablation_table({"runs": {"whole_image": saved["runs"]["whole_image"]}})
