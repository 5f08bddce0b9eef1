"""Figures for the evaluation notebook: confusion matrices, ROC and PR curves, reliability diagrams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from mammo_utils import labels


def confusion_matrices(metrics: Mapping[str, Any], title: str) -> Figure:
    """Density 4×4 and malignancy 2×2 (at the validation-chosen threshold) confusion matrices as heat maps."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3), gridspec_kw={"width_ratios": [1.3, 1]})
    names = [f"{d} ({labels.density_letter(d)})" for d in labels.DENSITY_CLASSES]
    density = pd.DataFrame(metrics["density"]["confusion_matrix"], index=names, columns=names)
    sns.heatmap(density, annot=True, fmt="d", cmap="Blues", ax=left, cbar_kws={"label": "images (count)"})
    left.set(
        xlabel="predicted BI-RADS density",
        ylabel="true BI-RADS density",
        title=f"Density (accuracy {metrics['density']['accuracy']['value']:.2f})",
    )
    threshold = metrics["malignancy"]["threshold"]["value"]
    malignancy = pd.DataFrame(
        metrics["malignancy"]["confusion_matrix"], index=["benign", "malignant"], columns=["benign", "malignant"]
    )
    sns.heatmap(malignancy, annot=True, fmt="d", cmap="Reds", ax=right, cbar_kws={"label": "images (count)"})
    right.set(
        xlabel=f"predicted (threshold {threshold:.2f}, chosen on validation)",
        ylabel="true pathology",
        title="Malignancy",
    )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_pr_curves(predictions: pd.DataFrame, metrics: Mapping[str, Any], title: str) -> Figure:
    """ROC and precision–recall curves of the malignancy head, with AUCs and their 95 % CIs in the legend."""
    rows = predictions.dropna(subset=["malignant"])
    y, p = rows["malignant"].to_numpy(int), rows["p_malignant"].to_numpy(float)
    if y.sum() in (0, len(y)):
        raise ValueError(
            f"roc_pr_curves: ROC and PR curves need labelled benign and malignant cases; the predictions "
            f"have {len(y) - y.sum()} benign and {y.sum()} malignant"
        )
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    auc, ap = metrics["malignancy"]["roc_auc"], metrics["malignancy"]["pr_auc"]
    fpr, tpr, _ = roc_curve(y, p)
    roc_ax.plot(fpr, tpr, label=f"AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]")
    roc_ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    roc_ax.set(
        xlabel="false-positive rate (1 − specificity)", ylabel="true-positive rate (sensitivity)", title="ROC curve"
    )
    precision, recall, _ = precision_recall_curve(y, p)
    pr_ax.plot(recall, precision, label=f"AP {ap['value']:.3f} [{ap['ci_low']:.3f}, {ap['ci_high']:.3f}]")
    pr_ax.axhline(y.mean(), ls="--", c="grey", lw=1, label=f"prevalence {y.mean():.2f}")
    pr_ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision–recall curve")
    for ax in (roc_ax, pr_ax):
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_diagram(metrics: Mapping[str, Any], title: str) -> Figure:
    """Observed malignant frequency vs mean predicted probability per bin, before and after temperature scaling."""
    calibration = metrics["calibration"]["malignancy"]
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    for key, label, marker in (
        ("before", "before", "o"),
        ("after", f"after (T = {calibration['temperature']:.2f})", "s"),
    ):
        bins = pd.DataFrame(calibration[f"reliability_{key}"])
        bins = bins[bins["count"] > 0]
        ece = calibration[f"ece_{key}"]
        ax.plot(bins["mean_predicted"], bins["observed_frequency"], marker=marker, label=f"{label}, ECE {ece:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted probability of malignancy",
        ylabel="observed fraction malignant",
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def pick_gallery_cases(predictions: pd.DataFrame, threshold: float, n: int = 4, seed: int = 0) -> pd.DataFrame:
    """``n`` correct and ``n`` wrong malignancy calls (most confident first), labelled in a ``case`` column."""
    rows = predictions.dropna(subset=["malignant"]).copy()
    rows["called"] = (rows["p_malignant"] >= threshold).astype(int)
    rows["confidence"] = np.where(rows["called"] == 1, rows["p_malignant"], 1 - rows["p_malignant"])
    correct = rows[rows["called"] == rows["malignant"]].nlargest(n, "confidence").assign(case="correct")
    wrong = rows[rows["called"] != rows["malignant"]].nlargest(n, "confidence").assign(case="wrong")
    return pd.concat([correct, wrong], ignore_index=True)
