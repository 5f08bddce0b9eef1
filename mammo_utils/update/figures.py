"""Figures for the model-update notebook: label balance of submissions vs training data, and the gate's metrics."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mammo_utils.labels import DENSITY_LETTERS
from mammo_utils.update.gate import GateDecision

__all__ = ["gate_figure", "label_balance", "label_balance_figure"]

_METRIC_TITLES = {"density.kappa_quadratic": "density κ (quadratic)", "malignancy.roc_auc": "malignancy ROC AUC"}


def label_balance(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Share of each label per data set: BI-RADS a-d, benign/malignant and missing labels.

    Parameters
    ----------
    frames : mapping of name -> manifest
        E.g. ``{"training (synthetic)": ..., "accepted submissions (synthetic)": ...}``.

    Returns
    -------
    pandas.DataFrame
        Rows: the labels; columns: one per data set, as fractions of its images; a last row ``n images``.
    """
    table = {}
    for name, frame in frames.items():
        n = max(len(frame), 1)
        density = pd.to_numeric(frame["density"], errors="coerce")
        column = {f"density {DENSITY_LETTERS[k]}": float((density == k).sum()) / n for k in (1, 2, 3, 4)}
        column["density missing"] = float(density.isna().sum()) / n
        for value in ("benign", "malignant"):
            column[value] = float((frame["pathology"] == value).sum()) / n
        column["pathology missing"] = float(frame["pathology"].isna().sum()) / n
        column["n images"] = float(len(frame))
        table[name] = column
    return pd.DataFrame(table)


def label_balance_figure(balance: pd.DataFrame, title: str) -> Figure:
    """Grouped bars of :func:`label_balance` (fractions), one colour per data set."""
    shares = balance.drop(index="n images")
    counts = {str(name): int(n) for name, n in zip(balance.columns, balance.loc["n images"].to_numpy(), strict=True)}
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(len(shares.columns), 1)
    x = np.arange(len(shares.index))
    for i, name in enumerate(shares.columns):
        ax.bar(
            x + (i - (len(shares.columns) - 1) / 2) * width,
            shares[name],
            width,
            label=f"{name} (n = {counts[str(name)]})",
        )
    ax.set_xticks(x, shares.index, rotation=30, ha="right")
    ax.set_ylabel("share of images (fraction)")
    ax.set_xlabel("label")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gate_figure(decision: GateDecision, title: str) -> Figure:
    """Current vs candidate model on each held-out part, with 95 % CIs, one panel per gate metric."""
    table = decision.table()
    metrics = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = table[table["metric"] == metric].reset_index(drop=True)
        x = np.arange(len(rows))
        for offset, who, colour in ((-0.12, "current", "#607d8b"), (0.12, "candidate", "#1565c0")):
            value = pd.to_numeric(rows[who], errors="coerce").to_numpy(float)
            low = pd.to_numeric(rows[f"{who}_ci_low"], errors="coerce").to_numpy(float)
            high = pd.to_numeric(rows[f"{who}_ci_high"], errors="coerce").to_numpy(float)
            err = np.vstack([np.nan_to_num(value - low), np.nan_to_num(high - value)])
            ax.errorbar(x + offset, value, yerr=err, fmt="o", color=colour, capsize=3, label=who)
        ax.set_xticks(
            x,
            [
                f"{p}\n(n = {int(n)})" if pd.notna(n) else str(p)
                for p, n in zip(rows["part"], rows["n_images"], strict=True)
            ],
        )
        ax.set_title(_METRIC_TITLES.get(metric, metric))
        ax.set_ylabel(f"{_METRIC_TITLES.get(metric, metric)} (95 % CI)")
        ax.set_xlabel("held-out part")
        ax.legend(fontsize=8)
    verdict = "promoted" if decision.promote else "not promoted"
    fig.suptitle(f"{title}: candidate {verdict} (tolerance {decision.tolerance:g})")
    fig.tight_layout()
    return fig
