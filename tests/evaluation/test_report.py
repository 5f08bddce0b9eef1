"""Tests for mammo_utils.evaluation.report: the full held-out report (CIs, calibration, thresholds, determinism)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _predictions import synthetic_predictions

from mammo_utils.evaluation import report as ev
from mammo_utils.evaluation.metrics import choose_threshold, density_metrics, malignancy_metrics
from mammo_utils.evaluation.predictions import DENSITY_PROB_COLUMNS, JOINT_PROB_COLUMNS, joint_from_heads
from mammo_utils.evaluation.tables import HEADLINE_METRICS, metric_entry, metrics_table


@pytest.fixture(scope="module")
def report():
    test, val = synthetic_predictions(split="test", seed=0), synthetic_predictions(split="val", seed=1)
    return ev.evaluate_predictions(test, val, n_boot=1000, seed=0), test, val


def test_report_is_strict_json_with_every_key(report):
    metrics, _, _ = report
    text = json.dumps(metrics, allow_nan=False)
    assert json.loads(text) == metrics
    assert set(metrics) == {
        "data",
        "density",
        "malignancy",
        "joint_accuracy",
        "calibration",
        "subgroups",
        "most_confident_mistakes",
        "bootstrap",
    }
    assert metrics["data"] | {"validation": None} == {
        "split": "test",
        "n_images": 300,
        "n_patients": 75,
        "n_density_labelled": 300,
        "n_malignancy_labelled": 300,
        "source": "synthetic",
        "synthetic": True,
        "validation": None,
        "patients_shared_with_validation": 0,
    }
    assert {"confusion_matrix", "n", "labels", "majority_class_rate"} <= set(metrics["density"])
    assert np.array(metrics["density"]["confusion_matrix"]).sum() == 300
    assert {"threshold", "confusion_matrix", "confusion_matrix_at_0.5", "prevalence", "brier"} <= set(
        metrics["malignancy"]
    )
    assert metrics["malignancy"]["threshold"]["chosen_on"] == "val"
    assert metrics["malignancy"]["threshold"]["rule"] == "youden"
    assert metrics["joint_accuracy"]["joint_probs"].startswith("product of")
    for task in ("malignancy", "density"):
        section = metrics["calibration"][task]
        assert {"temperature", "ece_before", "ece_after", "val_ece_before", "val_ece_after"} <= set(section)
        assert section["temperature"] > 0 and 0 <= section["ece_after"] <= 1
    assert metrics["bootstrap"] == {"n_boot": 1000, "seed": 0, "level": 0.95, "method": "percentile", "unit": "patient"}
    assert {row["group"] for row in metrics["subgroups"]} == {"view", "laterality", "source"}
    assert 0 < len(metrics["most_confident_mistakes"]) <= 20


def test_every_headline_metric_has_a_ci_that_brackets_it(report):
    metrics, test, _ = report
    for name in HEADLINE_METRICS:
        entry = metric_entry(metrics, name)
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
        assert entry["ci_high"] - entry["ci_low"] > 0, name
        assert entry["n_boot_used"] == 1000, name
    # the point estimates are the scikit-learn values on the full test split
    density = density_metrics(test["density"], test[list(DENSITY_PROB_COLUMNS)])
    assert metrics["density"]["kappa_quadratic"]["value"] == pytest.approx(density["kappa_quadratic"])
    threshold = metrics["malignancy"]["threshold"]["value"]
    malignancy = malignancy_metrics(test["malignant"], test["p_malignant"], threshold)
    assert metrics["malignancy"]["roc_auc"]["value"] == pytest.approx(malignancy["roc_auc"])
    assert metrics["malignancy"]["sensitivity"]["value"] == pytest.approx(malignancy["sensitivity"])
    table = metrics_table(metrics)
    assert table["metric"].tolist() == list(HEADLINE_METRICS) and (table["split"] == "test").all()


def test_bootstrap_replicates_match_scikit_learn_point_estimates(report):
    # the fast weighted metrics used for the replicates, with all weights 1, reproduce the reported values
    metrics, test, _ = report
    metric_fn = ev._headline_replicates(test, metrics["malignancy"]["threshold"]["value"])
    unit = metric_fn(test, np.ones((1, len(test))))
    for name in HEADLINE_METRICS:
        assert unit[name][0] == pytest.approx(metric_entry(metrics, name)["value"]), name


def test_report_is_deterministic_and_csv_round_trips(report, tmp_path):
    metrics, test, val = report
    test.to_csv(tmp_path / "test.csv", index=False)
    val.to_csv(tmp_path / "val.csv", index=False)
    again = ev.evaluate_predictions(
        pd.read_csv(tmp_path / "test.csv"), pd.read_csv(tmp_path / "val.csv"), n_boot=1000, seed=0
    )
    assert again == metrics
    other_seed = ev.evaluate_predictions(test, val, n_boot=200, seed=1)

    def bounds(m):
        return [(metric_entry(m, n)["ci_low"], metric_entry(m, n)["ci_high"]) for n in HEADLINE_METRICS]

    assert bounds(other_seed) != bounds(metrics)
    assert [metric_entry(other_seed, n)["value"] for n in HEADLINE_METRICS] == [
        metric_entry(metrics, n)["value"] for n in HEADLINE_METRICS
    ]


def test_report_with_undefined_metrics_and_a_seed_joint():
    test = synthetic_predictions(n_patients=10, seed=2)
    test["malignant"] = 0  # benign-only test split: no AUC, no sensitivity
    val = synthetic_predictions(n_patients=10, split="val", seed=3)
    val["malignant"] = 0  # ... and no threshold can be chosen on validation
    joint = joint_from_heads(test[list(DENSITY_PROB_COLUMNS)], test["p_malignant"])
    test[list(JOINT_PROB_COLUMNS)] = joint
    metrics = ev.evaluate_predictions(test, val, n_boot=100, seed=0)
    json.dumps(metrics, allow_nan=False)
    assert metrics["malignancy"]["roc_auc"] == {
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "n_boot_used": 0,
        "ci_widened": False,
    }
    assert metrics["malignancy"]["sensitivity"]["value"] is None
    assert metrics["malignancy"]["specificity"]["value"] is not None
    assert metrics["malignancy"]["threshold"]["value"] == 0.5
    assert metrics["malignancy"]["threshold"]["rule"].startswith("fixed 0.5")
    assert metrics["joint_accuracy"]["joint_probs"] == "model's 8-way softmax"
    entry = metrics["density"]["accuracy"]
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]


def test_report_threshold_rules():
    test, val = synthetic_predictions(n_patients=10, seed=4), synthetic_predictions(n_patients=10, split="val")
    metrics = ev.evaluate_predictions(test, val, n_boot=20, threshold_rule="sensitivity>=0.9")
    threshold = metrics["malignancy"]["threshold"]
    assert threshold["rule"] == "sensitivity>=0.9"
    assert threshold["value"] == choose_threshold(val["malignant"], val["p_malignant"], "sensitivity>=0.9")
    with pytest.raises(ValueError, match="threshold rule"):
        ev.evaluate_predictions(test, val, n_boot=20, threshold_rule="best")


def test_shared_patients_are_reported():
    test = synthetic_predictions(n_patients=5)
    with pytest.warns(UserWarning, match="both the test and validation"):
        metrics = ev.evaluate_predictions(test, test, n_boot=20)
    assert metrics["data"]["patients_shared_with_validation"] == 5


def test_evaluation_modules_do_not_import_tensorflow():
    code = (
        "import sys, mammo_utils.evaluation.report, mammo_utils.evaluation.calibration, "
        "mammo_utils.evaluation.bootstrap, mammo_utils.evaluation.localization; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
