"""Tests for mammo_utils.update.figures: the label-balance table and figure, and the gate figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest

from mammo_utils.update.figures import gate_figure, label_balance, label_balance_figure
from mammo_utils.update.gate import decide


def _frame(density: list, pathology: list) -> pd.DataFrame:
    return pd.DataFrame({"density": pd.array(density, dtype="Int64"), "pathology": pathology})


def test_label_balance_fractions_and_missing_labels():
    table = label_balance(
        {
            "train": _frame([1, 1, 2, 4], ["benign", "benign", "malignant", None]),
            "subs": _frame([3, None], [None, "malignant"]),
        }
    )
    assert table.loc["n images"].tolist() == [4.0, 2.0]
    assert table.loc["density a", "train"] == pytest.approx(0.5) and table.loc["density d", "train"] == 0.25
    assert table.loc["pathology missing", "train"] == 0.25 and table.loc["density missing", "subs"] == 0.5
    shares = table.drop(index="n images")
    for name in ("train", "subs"):  # each label family sums to one
        assert shares.loc[[f"density {k}" for k in "abcd"] + ["density missing"], name].sum() == pytest.approx(1)
        assert shares.loc[["benign", "malignant", "pathology missing"], name].sum() == pytest.approx(1)


def test_figures_have_titles_labels_and_the_verdict():
    table = label_balance({"train": _frame([1, 2], ["benign", "malignant"])})
    ax = label_balance_figure(table, "balance (synthetic)").axes[0]
    assert ax.get_title() == "balance (synthetic)" and "fraction" in ax.get_ylabel() and ax.get_xlabel()
    assert "n = 2" in ax.get_legend().get_texts()[0].get_text()

    worse = decide(
        {"density.kappa_quadratic": 0.8, "malignancy.roc_auc": 0.7},
        {"density.kappa_quadratic": 0.6, "malignancy.roc_auc": 0.7},
        tolerance=0.02,
    )
    fig = gate_figure(worse, "gate (synthetic)")
    assert "not promoted" in fig._suptitle.get_text() and len(fig.axes) == 2
    assert all(ax.get_ylabel() and ax.get_xlabel() and ax.get_title() for ax in fig.axes)
