"""Tests for mammo_utils.evaluation.figures: confusion matrices, ROC/PR curves, the reliability diagram and the gallery
pick, on synthetic predictions tables (tests/_predictions.py) and hand-made ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from _predictions import synthetic_predictions
from matplotlib.axes import Axes
from PIL import Image
from sklearn.metrics import roc_curve

from mammo_utils.datasets.figures import save_figure
from mammo_utils.evaluation import figures as plots_eval
from mammo_utils.evaluation.predictions import predictions_frame
from mammo_utils.evaluation.report import evaluate_predictions

TITLE = "Synthetic test split (80 images, 20 patients)"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def evaluation() -> tuple[pd.DataFrame, dict[str, Any]]:
    """A synthetic test table and its metrics (threshold and temperature fitted on a synthetic validation table)."""
    test, val = synthetic_predictions(20, "test", seed=0), synthetic_predictions(20, "val", seed=1)
    return test, evaluate_predictions(test, val, n_boot=50, seed=0)


def assert_labelled(ax: Axes) -> None:
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())


def assert_saves_a_modest_png(fig: plt.Figure, folder: Path) -> None:
    out = save_figure(fig, "figure", folder)
    assert out.stat().st_size > 1000
    with Image.open(out) as png:
        assert png.format == "PNG" and png.info["dpi"] == pytest.approx((100, 100), abs=0.5)


def test_confusion_matrices_show_both_heads(evaluation: tuple[pd.DataFrame, dict[str, Any]], tmp_path: Path) -> None:
    _, metrics = evaluation
    fig = plots_eval.confusion_matrices(metrics, title=f"{TITLE} — confusion matrices")
    assert fig._suptitle.get_text() == f"{TITLE} — confusion matrices"
    density, malignancy = fig.axes[:2]
    for ax in (density, malignancy):
        assert_labelled(ax)
    assert density.get_title() == f"Density (accuracy {metrics['density']['accuracy']['value']:.2f})"
    assert (density.get_xlabel(), density.get_ylabel()) == ("predicted BI-RADS density", "true BI-RADS density")
    assert [t.get_text() for t in density.get_xticklabels()] == ["1 (a)", "2 (b)", "3 (c)", "4 (d)"]
    assert [int(t.get_text()) for t in density.texts] == np.ravel(metrics["density"]["confusion_matrix"]).tolist()
    assert [int(t.get_text()) for t in malignancy.texts] == np.ravel(metrics["malignancy"]["confusion_matrix"]).tolist()
    threshold = metrics["malignancy"]["threshold"]["value"]
    assert f"threshold {threshold:.2f}, chosen on validation" in malignancy.get_xlabel()
    assert [t.get_text() for t in malignancy.get_yticklabels()] == ["benign", "malignant"]
    assert all(ax.get_ylabel() == "images (count)" for ax in fig.axes[2:])  # the colour bars
    assert_saves_a_modest_png(fig, tmp_path)


def test_roc_pr_curves_draw_the_data_and_the_reference_lines(
    evaluation: tuple[pd.DataFrame, dict[str, Any]], tmp_path: Path
) -> None:
    test, metrics = evaluation
    unlabelled = test.iloc[:3].assign(malignant=pd.array([None] * 3, dtype="Int64"), p_malignant=0.99)
    fig = plots_eval.roc_pr_curves(pd.concat([test, unlabelled], ignore_index=True), metrics, f"{TITLE} — malignancy")
    assert fig._suptitle.get_text() == f"{TITLE} — malignancy"
    roc_ax, pr_ax = fig.axes
    for ax in (roc_ax, pr_ax):
        assert_labelled(ax)
        assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.02)
    assert "false-positive rate" in roc_ax.get_xlabel() and "sensitivity" in roc_ax.get_ylabel()
    assert "recall" in pr_ax.get_xlabel() and "precision" in pr_ax.get_ylabel()
    fpr, tpr, _ = roc_curve(test["malignant"].astype(int), test["p_malignant"])  # unlabelled rows are left out
    curve, chance = roc_ax.get_lines()
    np.testing.assert_allclose(curve.get_xdata(), fpr)
    np.testing.assert_allclose(curve.get_ydata(), tpr)
    assert list(chance.get_xdata()) == [0, 1] and list(chance.get_ydata()) == [0, 1]
    auc, ap = metrics["malignancy"]["roc_auc"], metrics["malignancy"]["pr_auc"]
    legend = [t.get_text() for t in roc_ax.get_legend().get_texts()]
    assert legend == [f"AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]", "chance"]
    prevalence = test["malignant"].astype(float).mean()
    assert [t.get_text() for t in pr_ax.get_legend().get_texts()] == [
        f"AP {ap['value']:.3f} [{ap['ci_low']:.3f}, {ap['ci_high']:.3f}]",
        f"prevalence {prevalence:.2f}",
    ]
    assert pr_ax.get_lines()[1].get_ydata()[0] == pytest.approx(prevalence)
    assert_saves_a_modest_png(fig, tmp_path)


def test_roc_pr_curves_refuse_a_single_class(evaluation: tuple[pd.DataFrame, dict[str, Any]]) -> None:
    test, metrics = evaluation
    benign = test[test["malignant"] == 0]
    expected = rf"need labelled benign and malignant cases.*{len(benign)} benign and 0 malignant"
    with pytest.raises(ValueError, match=expected):
        plots_eval.roc_pr_curves(benign, metrics, "benign only")
    with pytest.raises(ValueError, match="0 benign and 0 malignant"):
        plots_eval.roc_pr_curves(test.assign(malignant=pd.array([None] * len(test), dtype="Int64")), metrics, "none")


def test_reliability_diagram_before_and_after_scaling(
    evaluation: tuple[pd.DataFrame, dict[str, Any]], tmp_path: Path
) -> None:
    _, metrics = evaluation
    calibration = metrics["calibration"]["malignancy"]
    fig = plots_eval.reliability_diagram(metrics, title=f"{TITLE} — reliability (malignancy)")
    (ax,) = fig.axes
    assert_labelled(ax)
    assert ax.get_title() == f"{TITLE} — reliability (malignancy)"
    assert "probability" in ax.get_xlabel() and "fraction" in ax.get_ylabel()
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
    before, after, diagonal = ax.get_lines()
    for line, key in ((before, "before"), (after, "after")):
        bins = [b for b in calibration[f"reliability_{key}"] if b["count"] > 0]  # empty bins are not drawn
        np.testing.assert_allclose(line.get_xdata(), [b["mean_predicted"] for b in bins])
        np.testing.assert_allclose(line.get_ydata(), [b["observed_frequency"] for b in bins])
    assert list(diagonal.get_xdata()) == [0, 1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        f"before, ECE {calibration['ece_before']:.3f}",
        f"after (T = {calibration['temperature']:.2f}), ECE {calibration['ece_after']:.3f}",
        "perfectly calibrated",
    ]
    assert_saves_a_modest_png(fig, tmp_path)


def _gallery_table(p_malignant: list[float], malignant: list[int | None]) -> pd.DataFrame:
    rows = [
        {
            "image_path": f"/synthetic/{i}.png",
            "patient_id": f"P{i}",
            "density": 2,
            "pathology": {0: "benign", 1: "malignant", None: None}[m],
            "source": "synthetic",
        }
        for i, m in enumerate(malignant)
    ]
    return predictions_frame(rows, np.full((len(rows), 4), 0.25), np.array(p_malignant))


def test_pick_gallery_cases_most_confident_right_and_wrong_calls() -> None:
    table = _gallery_table([0.95, 0.7, 0.1, 0.45, 0.8, 0.05, 0.6, 0.99], [1, 1, 0, 0, 0, 1, 0, None])
    cases = plots_eval.pick_gallery_cases(table, threshold=0.5, n=2)
    assert cases["case"].tolist() == ["correct", "correct", "wrong", "wrong"]
    assert cases["image_path"].tolist() == [
        "/synthetic/0.png",
        "/synthetic/2.png",
        "/synthetic/5.png",
        "/synthetic/4.png",
    ]  # by confidence: 0.95, 0.9 | 0.95, 0.8
    np.testing.assert_allclose(cases["confidence"], [0.95, 0.9, 0.95, 0.8])
    assert (cases["called"] == (cases["p_malignant"] >= 0.5).astype(int)).all()
    assert "/synthetic/7.png" not in cases["image_path"].tolist()  # unlabelled rows are never picked
    everything = plots_eval.pick_gallery_cases(table, threshold=0.5, n=10)
    assert everything["case"].value_counts().to_dict() == {"correct": 4, "wrong": 3}
    lenient = plots_eval.pick_gallery_cases(table, threshold=0.0, n=10)  # everything is called malignant
    assert set(lenient.loc[lenient["case"] == "wrong", "malignant"]) == {0}


def test_pick_gallery_cases_when_nothing_is_wrong() -> None:
    cases = plots_eval.pick_gallery_cases(_gallery_table([0.9, 0.2], [1, 0]), threshold=0.5, n=4)
    assert cases["case"].tolist() == ["correct", "correct"]
