import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mammo_utils import evaluate as ev
from mammo_utils import labels
from mammo_utils.datasets.schema import make_manifest


def _synthetic_predictions(n_patients=75, split="test", seed=0):
    """Synthetic predictions: 4 views per patient, informative but imperfect probabilities."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        density, malignant = int(rng.integers(1, 5)), bool(rng.random() < 0.35)
        for view in ("CC", "MLO"):
            for side in ("L", "R"):
                rows.append({"image_path": f"/synthetic/{split}/{i}_{side}_{view}.png", "patient_id": f"{split}-{i}",
                             "laterality": side, "view": view, "density": density,
                             "pathology": "malignant" if malignant else "benign", "source": "synthetic",
                             "split": split})
    manifest = make_manifest(rows)
    n = len(manifest)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), manifest["density"].to_numpy(int) - 1] += 1.5
    density_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (manifest["pathology"] == "malignant").to_numpy()
    p = 1 / (1 + np.exp(-(2.5 * (y - 0.5) + rng.normal(0, 1.5, n))))
    return ev.predictions_frame(manifest, density_probs, p)


@pytest.fixture(scope="module")
def report():
    test, val = _synthetic_predictions(split="test", seed=0), _synthetic_predictions(split="val", seed=1)
    return ev.evaluate_predictions(test, val, n_boot=1000, seed=0), test, val


# ------------------------------------------------------------------------------------- hand-computed metrics
def test_density_metrics_by_hand():
    # true [1,2,3,4,2,3], predicted [1,2,4,4,3,3]; confusion (rows true, cols predicted):
    #   [[1,0,0,0],[0,1,1,0],[0,0,1,1],[0,0,0,1]]; row sums r = [1,2,2,1], column sums c = [1,1,2,2], n = 6
    # quadratic: observed sum w*O = 1 + 1 = 2 (two cells one class off);
    #   expected sum (i-j)^2 r_i c_j / n = (27 + 22 + 14 + 15) / 6 = 78 / 6 = 13  ->  kappa = 1 - 2/13 = 11/13
    #   (row i=0: 1*1 + 4*2 + 9*2 = 27; i=1: 2*(1 + 2 + 8) = 22; i=2: 2*(4 + 1 + 2) = 14; i=3: 9 + 4 + 2 = 15)
    # linear: observed 2; expected (11 + 14 + 10 + 7) / 6 = 42 / 6 = 7  ->  kappa = 1 - 2/7 = 5/7
    #   (i=0: 1 + 2*2 + 3*2 = 11; i=1: 2*(1 + 2 + 4) = 14; i=2: 2*(2 + 1 + 2) = 10; i=3: 3 + 2 + 2 = 7)
    # accuracy 4/6; dense (c, d) vs not: true [0,0,1,1,0,1] predicted [0,0,1,1,1,1] -> 5/6
    true = [1, 2, 3, 4, 2, 3]
    predicted = [1, 2, 4, 4, 3, 3]
    probs = np.full((6, 4), 0.1)
    probs[np.arange(6), np.array(predicted) - 1] = 0.7
    metrics = ev.density_metrics(true, probs)
    assert metrics["kappa_quadratic"] == pytest.approx(11 / 13)
    assert metrics["kappa_linear"] == pytest.approx(5 / 7)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["dense_accuracy"] == pytest.approx(5 / 6)
    assert metrics["majority_class_rate"] == pytest.approx(2 / 6)
    assert metrics["confusion_matrix"].tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    with_missing = ev.density_metrics(pd.array([*true, None], dtype="Int64"), np.vstack([probs, probs[:1]]))
    assert with_missing["n"] == 6 and with_missing["kappa_quadratic"] == pytest.approx(11 / 13)


# malignancy example: negatives 0.1, 0.2, 0.55, 0.6; positives 0.5, 0.7, 0.9
Y_MAL = [0, 0, 0, 0, 1, 1, 1]
P_MAL = [0.1, 0.2, 0.55, 0.6, 0.5, 0.7, 0.9]


def test_malignancy_metrics_by_hand():
    # AUC = P(positive scores above negative) over 3 x 4 = 12 pairs: 0.5 beats 2, 0.7 beats 4, 0.9 beats 4 -> 10/12
    # PR AUC (average precision), scores descending: 0.9 + (P 1/1, R 1/3), 0.7 + (2/2, 2/3), 0.6 -, 0.55 -,
    #   0.5 + (3/5, 1) -> AP = 1/3 * 1 + 1/3 * 1 + 1/3 * 3/5 = 13/15
    # at threshold 0.7: TP 2 (0.7, 0.9), FN 1, TN 4, FP 0 -> sensitivity 2/3, specificity 1
    # at threshold 0.5: TP 3, FN 0, FP 2 (0.55, 0.6), TN 2 -> sensitivity 1, specificity 1/2, PPV 3/5
    at_07 = ev.malignancy_metrics(Y_MAL, P_MAL, threshold=0.7)
    assert at_07["roc_auc"] == pytest.approx(10 / 12)
    assert at_07["pr_auc"] == pytest.approx(13 / 15)
    assert (at_07["sensitivity"], at_07["specificity"]) == pytest.approx((2 / 3, 1.0))
    assert at_07["confusion_matrix"].tolist() == [[4, 0], [1, 2]]
    at_05 = ev.malignancy_metrics(Y_MAL, P_MAL, threshold=0.5)
    assert (at_05["sensitivity"], at_05["specificity"], at_05["ppv"]) == pytest.approx((1.0, 0.5, 0.6))
    assert at_05["confusion_matrix"].tolist() == [[2, 2], [0, 3]]
    assert at_05["n"] == 7 and at_05["n_malignant"] == 3 and at_05["prevalence"] == pytest.approx(3 / 7)


def test_choose_threshold_by_hand():
    # thresholds (descending) -> (sensitivity, specificity, Youden J = sens + spec - 1):
    #   0.9 (1/3, 1) 0.333 | 0.7 (2/3, 1) 0.667 | 0.6 (2/3, 3/4) 0.417 | 0.55 (2/3, 1/2) 0.167 | 0.5 (1, 1/2) 0.5
    assert ev.choose_threshold(Y_MAL, P_MAL) == 0.7
    assert ev.choose_threshold(Y_MAL, P_MAL, rule="sensitivity>=0.9") == 0.5  # first threshold reaching 3/3
    assert ev.choose_threshold(Y_MAL, P_MAL, target_sensitivity=0.6) == 0.7
    assert ev.choose_threshold(Y_MAL, P_MAL, rule="specificity>=0.75") == 0.6  # lowest threshold keeping 3/4
    with pytest.raises(ValueError, match="both benign and malignant"):
        ev.choose_threshold([0, 0, 0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="threshold rule"):
        ev.choose_threshold(Y_MAL, P_MAL, rule="f1")


def test_joint_accuracy_by_hand():
    # joint index = (density - 1) * 2 + malignant: (1, 0) -> 0, (3, 1) -> 5, (4, 0) -> 6, (2, 1) -> 3
    joint = np.full((4, 8), 0.01)
    joint[[0, 1, 2, 3], [0, 5, 7, 2]] = 0.93  # right, right, wrong (7 = d4 malignant), wrong (2 = d2 benign)
    assert ev.joint_accuracy([1, 3, 4, 2], [0, 1, 0, 1], joint) == pytest.approx(0.5)
    assert ev.joint_accuracy([1, 3, None, 2], [0, 1, 0, None], joint) == pytest.approx(1.0)  # rows 3, 4 lack a label
    assert math.isnan(ev.joint_accuracy([None], [1], joint[:1]))


def test_joint_from_heads_follows_the_label_convention():
    density = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    malignant = np.array([0.25, 0.9])
    joint = ev.joint_from_heads(density, malignant)
    assert np.allclose(joint.sum(axis=1), 1.0)
    for d in labels.DENSITY_CLASSES:
        for m in (0, 1):
            expected = density[:, d - 1] * (malignant if m else 1 - malignant)
            assert np.allclose(joint[:, labels.joint_index(d, m)], expected)


def test_joint_from_heads_agrees_with_models_joint_probabilities():
    models = pytest.importorskip("mammo_utils.models")  # imports TensorFlow (slow); evaluate itself does not
    rng = np.random.default_rng(0)
    density = rng.dirichlet(np.ones(4), size=20)
    malignant = rng.random(20)
    assert np.allclose(ev.joint_from_heads(density, malignant), models.joint_probabilities(density, malignant))
    back_density, back_malignant = models.marginals_from_joint(ev.joint_from_heads(density, malignant))
    assert np.allclose(back_density, density) and np.allclose(back_malignant, malignant)


# ----------------------------------------------------------------------------------- the predictions table
def test_predictions_frame_from_manifest_and_from_the_seed_joint():
    manifest = make_manifest([
        {"image_path": "/a.png", "patient_id": "P1", "density": "c", "pathology": "MALIGNANT", "view": "CC"},
        {"image_path": "/b.png", "patient_id": "P2", "density": None, "pathology": None, "view": "MLO"},
    ])
    joint = np.array([[0.0, 0.1, 0.1, 0.1, 0.1, 0.4, 0.1, 0.1], np.full(8, 1 / 8)])
    frame = ev.predictions_frame(manifest, joint_probs=joint)
    assert frame["density"].tolist()[0] == 3 and frame["density"].isna().tolist() == [False, True]
    assert frame["malignant"].tolist()[0] == 1 and frame["pathology"].isna().tolist() == [False, True]
    assert np.allclose(frame[list(ev.DENSITY_PROB_COLUMNS)].iloc[0], [0.1, 0.2, 0.5, 0.2])
    assert frame[ev.MALIGNANCY_PROB_COLUMN].tolist() == pytest.approx([0.7, 0.5])
    assert list(frame[list(ev.JOINT_PROB_COLUMNS)].iloc[0]) == pytest.approx(joint[0].tolist())
    assert frame["image_path"].tolist() == ["/a.png", "/b.png"]
    with pytest.raises(ValueError, match="shape"):
        ev.predictions_frame(manifest, np.full((3, 4), 0.25), np.zeros(3))
    with pytest.raises(ValueError, match="joint_probs"):
        ev.predictions_frame(manifest, np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.predictions_frame(manifest, np.full((2, 4), 0.25), np.array([0.5, 1.5]))


def test_label_checks():
    with pytest.raises(ValueError, match="BI-RADS 1-4"):
        ev.density_metrics([0, 1, 2], np.full((3, 4), 0.25))  # class indices, not BI-RADS
    with pytest.raises(ValueError, match="0 .benign. or 1"):
        ev.malignancy_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="must be numbers"):
        ev.density_metrics(["c", 1], np.full((2, 4), 0.25))  # a letter is not silently dropped
    assert np.isnan(ev.label_array(pd.Series([1, None, float("nan")], dtype=object))[1:]).all()


def test_undefined_metrics_are_nan_and_do_not_crash():
    benign_only = ev.malignancy_metrics([0, 0, 0], [0.1, 0.6, 0.3])
    assert math.isnan(benign_only["roc_auc"]) and math.isnan(benign_only["pr_auc"])
    assert math.isnan(benign_only["sensitivity"]) and benign_only["specificity"] == pytest.approx(2 / 3)
    one_class = ev.density_metrics([2, 2], [[0.1, 0.7, 0.1, 0.1], [0.2, 0.6, 0.1, 0.1]])
    assert one_class["accuracy"] == 1.0 and math.isnan(one_class["kappa_quadratic"])
    empty = ev.density_metrics([None, None], np.full((2, 4), 0.25))
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])


# --------------------------------------------------------------------------------------------- tables
def test_subgroup_table():
    frame = _synthetic_predictions(n_patients=12)
    frame.loc[frame["view"] == "MLO", "pathology"] = pd.NA
    frame.loc[frame["view"] == "MLO", "malignant"] = pd.NA
    table = ev.subgroup_table(frame, threshold=0.5)
    assert list(table.columns) == list(ev.SUBGROUP_COLUMNS)
    assert table[["group", "level"]].values.tolist() == [
        ["view", "CC"], ["view", "MLO"], ["laterality", "L"], ["laterality", "R"], ["source", "synthetic"]
    ]
    assert table["n_images"].tolist() == [24, 24, 24, 24, 48]
    mlo = table.iloc[1]
    assert mlo["n_malignancy"] == 0 and math.isnan(mlo["roc_auc"])
    assert table.iloc[4]["n_patients"] == 12


def test_most_confident_mistakes():
    frame = ev.predictions_frame(
        make_manifest([{"image_path": f"/{i}.png", "patient_id": f"P{i}", "density": d, "pathology": p}
                       for i, (d, p) in enumerate([(1, "benign"), (2, "malignant"), (3, "benign"), (4, "benign")])]),
        np.array([[0.9, 0.05, 0.03, 0.02], [0.6, 0.3, 0.05, 0.05], [0.1, 0.1, 0.8, 0.0], [0.1, 0.1, 0.1, 0.7]]),
        np.array([0.2, 0.1, 0.95, 0.6]),
    )
    mistakes = ev.most_confident_mistakes(frame, k=10, threshold=0.5)
    density = mistakes[mistakes["task"] == "density"]
    assert density["image_path"].tolist() == ["/1.png"] and density["predicted"].tolist() == [1]
    malignancy = mistakes[mistakes["task"] == "malignancy"]
    # wrong: /2 (benign, p 0.95), /1 (malignant, p 0.1 -> 0.9 sure it is benign), /3 (benign, p 0.6)
    assert malignancy["image_path"].tolist() == ["/2.png", "/1.png", "/3.png"]
    assert malignancy["confidence"].tolist() == pytest.approx([0.95, 0.9, 0.6])
    assert {"p_malignant", "p_density_1", "true", "predicted"} <= set(mistakes.columns)
    assert len(ev.most_confident_mistakes(frame, k=1, task="malignancy")) == 1
    with pytest.raises(ValueError, match="task"):
        ev.most_confident_mistakes(frame, task="joint")


# ------------------------------------------------------------------------------------------ the full report
def test_report_is_strict_json_with_every_key(report):
    metrics, _, _ = report
    text = json.dumps(metrics, allow_nan=False)
    assert json.loads(text) == metrics
    assert set(metrics) == {"data", "density", "malignancy", "joint_accuracy", "calibration", "subgroups",
                            "most_confident_mistakes", "bootstrap"}
    assert metrics["data"] | {"validation": None} == {
        "split": "test", "n_images": 300, "n_patients": 75, "n_density_labelled": 300, "n_malignancy_labelled": 300,
        "source": "synthetic", "synthetic": True, "validation": None, "patients_shared_with_validation": 0}
    assert {"confusion_matrix", "n", "labels", "majority_class_rate"} <= set(metrics["density"])
    assert np.array(metrics["density"]["confusion_matrix"]).sum() == 300
    assert {"threshold", "confusion_matrix", "confusion_matrix_at_0.5", "prevalence", "brier"} <= set(
        metrics["malignancy"])
    assert metrics["malignancy"]["threshold"]["chosen_on"] == "val"
    assert metrics["malignancy"]["threshold"]["rule"] == "youden"
    assert metrics["joint_accuracy"]["joint_probs"].startswith("product of")
    for task in ("malignancy", "density"):
        section = metrics["calibration"][task]
        assert {"temperature", "ece_before", "ece_after", "val_ece_before", "val_ece_after"} <= set(section)
        assert section["temperature"] > 0 and 0 <= section["ece_after"] <= 1
    assert metrics["bootstrap"] == {"n_boot": 1000, "seed": 0, "level": 0.95, "method": "percentile",
                                    "unit": "patient"}
    assert {row["group"] for row in metrics["subgroups"]} == {"view", "laterality", "source"}
    assert 0 < len(metrics["most_confident_mistakes"]) <= 20


def test_every_headline_metric_has_a_ci_that_brackets_it(report):
    metrics, test, _ = report
    for name in ev.HEADLINE_METRICS:
        entry = ev.metric_entry(metrics, name)
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
        assert entry["ci_high"] - entry["ci_low"] > 0, name
        assert entry["n_boot_used"] == 1000, name
    # the point estimates are the scikit-learn values on the full test split
    density = ev.density_metrics(test["density"], test[list(ev.DENSITY_PROB_COLUMNS)])
    assert metrics["density"]["kappa_quadratic"]["value"] == pytest.approx(density["kappa_quadratic"])
    threshold = metrics["malignancy"]["threshold"]["value"]
    malignancy = ev.malignancy_metrics(test["malignant"], test["p_malignant"], threshold)
    assert metrics["malignancy"]["roc_auc"]["value"] == pytest.approx(malignancy["roc_auc"])
    assert metrics["malignancy"]["sensitivity"]["value"] == pytest.approx(malignancy["sensitivity"])
    table = ev.metrics_table(metrics)
    assert table["metric"].tolist() == list(ev.HEADLINE_METRICS) and (table["split"] == "test").all()


def test_bootstrap_replicates_match_scikit_learn_point_estimates(report):
    # the fast weighted metrics used for the replicates, with all weights 1, reproduce the reported values
    metrics, test, _ = report
    metric_fn = ev._headline_replicates(test, metrics["malignancy"]["threshold"]["value"])
    unit = metric_fn(test, np.ones((1, len(test))))
    for name in ev.HEADLINE_METRICS:
        assert unit[name][0] == pytest.approx(ev.metric_entry(metrics, name)["value"]), name


def test_report_is_deterministic_and_csv_round_trips(report, tmp_path):
    metrics, test, val = report
    test.to_csv(tmp_path / "test.csv", index=False)
    val.to_csv(tmp_path / "val.csv", index=False)
    again = ev.evaluate_predictions(pd.read_csv(tmp_path / "test.csv"), pd.read_csv(tmp_path / "val.csv"),
                                    n_boot=1000, seed=0)
    assert again == metrics
    other_seed = ev.evaluate_predictions(test, val, n_boot=200, seed=1)
    def bounds(m):
        return [(ev.metric_entry(m, n)["ci_low"], ev.metric_entry(m, n)["ci_high"]) for n in ev.HEADLINE_METRICS]

    assert bounds(other_seed) != bounds(metrics)
    assert [ev.metric_entry(other_seed, n)["value"] for n in ev.HEADLINE_METRICS] == [
        ev.metric_entry(metrics, n)["value"] for n in ev.HEADLINE_METRICS]


def test_report_with_undefined_metrics_and_a_seed_joint():
    test = _synthetic_predictions(n_patients=10, seed=2)
    test["malignant"] = 0  # benign-only test split: no AUC, no sensitivity
    val = _synthetic_predictions(n_patients=10, split="val", seed=3)
    val["malignant"] = 0  # ... and no threshold can be chosen on validation
    joint = ev.joint_from_heads(test[list(ev.DENSITY_PROB_COLUMNS)], test["p_malignant"])
    test[list(ev.JOINT_PROB_COLUMNS)] = joint
    metrics = ev.evaluate_predictions(test, val, n_boot=100, seed=0)
    json.dumps(metrics, allow_nan=False)
    assert metrics["malignancy"]["roc_auc"] == {"value": None, "ci_low": None, "ci_high": None, "n_boot_used": 0,
                                                "ci_widened": False}
    assert metrics["malignancy"]["sensitivity"]["value"] is None
    assert metrics["malignancy"]["specificity"]["value"] is not None
    assert metrics["malignancy"]["threshold"]["value"] == 0.5
    assert metrics["malignancy"]["threshold"]["rule"].startswith("fixed 0.5")
    assert metrics["joint_accuracy"]["joint_probs"] == "model's 8-way softmax"
    entry = metrics["density"]["accuracy"]
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]


def test_report_threshold_rules():
    test, val = _synthetic_predictions(n_patients=10, seed=4), _synthetic_predictions(n_patients=10, split="val")
    metrics = ev.evaluate_predictions(test, val, n_boot=20, threshold_rule="sensitivity>=0.9")
    threshold = metrics["malignancy"]["threshold"]
    assert threshold["rule"] == "sensitivity>=0.9"
    assert threshold["value"] == ev.choose_threshold(val["malignant"], val["p_malignant"], "sensitivity>=0.9")
    with pytest.raises(ValueError, match="threshold rule"):
        ev.evaluate_predictions(test, val, n_boot=20, threshold_rule="best")


def test_shared_patients_are_reported():
    test = _synthetic_predictions(n_patients=5)
    with pytest.warns(UserWarning, match="both the test and validation"):
        metrics = ev.evaluate_predictions(test, test, n_boot=20)
    assert metrics["data"]["patients_shared_with_validation"] == 5


def test_write_metrics_json(tmp_path):
    path = ev.write_metrics_json({"a": np.float64("nan"), "b": np.arange(3), "c": {"d": np.int64(4)}},
                                 tmp_path / "run" / "metrics.json")
    text = path.read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}")) == {
        "a": None, "b": [0, 1, 2], "c": {"d": 4}}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary file left behind
    with pytest.raises(TypeError, match="object"):
        ev.write_metrics_json({"x": object()}, path)
    assert json.loads(path.read_text())["c"] == {"d": 4}  # a failed write leaves the old file intact


def test_evaluation_modules_do_not_import_tensorflow():
    code = ("import sys, mammo_utils.evaluate, mammo_utils.calibration, mammo_utils.bootstrap; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
