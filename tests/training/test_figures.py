"""Tests for mammo_utils.training.figures: the learning-curve panels of both model kinds and the architecture diagram.

Histories are tiny hand-made tables; the diagram test replaces Keras with a stand-in that records the call, so the
file runs without importing TensorFlow.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mammo_utils.app.notebook import FIGURE_DPI
from mammo_utils.training import figures as plots_train
from mammo_utils.training.figures import CURVES, DiagramError, architecture_diagram, training_curves

MULTITASK_KEYS = [key for key, _, _ in CURVES["multitask"]]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _history(keys: list[str], epochs: int = 3, validation: bool = True, epoch_column: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {"epoch": np.arange(epochs)} if epoch_column else {}
    for key in keys:
        columns[key] = rng.random(epochs)
        if validation:
            columns[f"val_{key}"] = rng.random(epochs)
    return pd.DataFrame(columns)


def test_multitask_history_gets_six_labelled_panels(tmp_path: Path) -> None:
    history = _history(MULTITASK_KEYS + ["learning_rate"])
    fig = training_curves(history, title="Synthetic data — default model: training vs validation")
    assert fig._suptitle.get_text() == "Synthetic data — default model: training vs validation"
    assert len(fig.axes) == 6
    for ax, (key, title, ylabel) in zip(fig.axes, CURVES["multitask"], strict=True):
        assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (title, "epoch", ylabel)
        training, validation = ax.get_lines()
        assert list(training.get_xdata()) == [1, 2, 3]  # epochs are counted from 1
        np.testing.assert_allclose(training.get_ydata(), history[key])
        np.testing.assert_allclose(validation.get_ydata(), history[f"val_{key}"])
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training", "validation"]
    out = tmp_path / "curves.png"
    fig.savefig(out, dpi=FIGURE_DPI, bbox_inches="tight")  # what plots.save_figure does (not imported: seaborn is slow)
    with Image.open(out) as png:
        assert out.stat().st_size > 1000 and png.info["dpi"] == pytest.approx((FIGURE_DPI, FIGURE_DPI), abs=0.5)
        assert png.width <= 3 * 4.3 * FIGURE_DPI and png.height <= 2 * 3.2 * FIGURE_DPI


def test_units_are_named_on_every_y_axis() -> None:
    for kind, panels in CURVES.items():
        for key, _, ylabel in panels:
            if "loss" in key:
                assert "nats" in ylabel, (kind, key)
            elif "accuracy" in key:
                assert "fraction" in ylabel, (kind, key)
            else:
                assert ylabel == "AUC", (kind, key)  # a dimensionless area


def test_seed_model_history_gets_two_panels() -> None:
    fig = training_curves(_history(["loss", "accuracy"], epochs=2), title="seed model (synthetic)")
    assert [ax.get_title() for ax in fig.axes] == ["loss (8-way joint cross-entropy)", "8-way joint accuracy"]
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() for ax in fig.axes)


def test_missing_curves_leave_blank_panels_and_training_only_lines() -> None:
    history = _history(MULTITASK_KEYS[:4], validation=False, epoch_column=False)
    fig = training_curves(history, title="partial (synthetic)")
    assert len(fig.axes) == 6
    drawn, blank = fig.axes[:4], fig.axes[4:]
    assert all(len(ax.get_lines()) == 1 and list(ax.get_lines()[0].get_xdata()) == [1, 2, 3] for ax in drawn)
    assert all(not ax.axison and not ax.get_lines() for ax in blank)


def test_a_history_without_curves_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"training_curves: the history has none of the curves \['loss', 'accuracy'\] "
        r"\(its columns: \['epoch', 'lr'\]\)",
    ):
        training_curves(pd.DataFrame({"epoch": [0, 1], "lr": [0.1, 0.1]}), title="x")


@pytest.fixture
def fake_keras(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace ``keras`` with a stand-in whose ``utils.plot_model`` writes a tiny PNG and records its arguments."""
    calls: list[dict[str, Any]] = []

    def plot_model(model: object, **kwargs: Any) -> None:
        calls.append({"model": model, **kwargs})
        Image.new("RGB", (8, 8), "white").save(kwargs["to_file"])

    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(utils=types.SimpleNamespace(plot_model=plot_model)))
    return calls


def test_architecture_diagram_draws_to_the_figures_folder(
    fake_keras: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots_train.shutil, "which", lambda name: "/usr/bin/dot" if name == "dot" else None)
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    model = object()
    out = architecture_diagram(model, "02_default_architecture")
    assert out == tmp_path / "figures" / "02_default_architecture.png" and out.stat().st_size > 0
    (call,) = fake_keras
    assert call["model"] is model and call["to_file"] == str(out)
    assert call["show_shapes"] and call["show_layer_names"] and call["dpi"] == 60  # modest resolution by default
    elsewhere = architecture_diagram(model, "seed", tmp_path / "other", dpi=40)
    assert elsewhere == tmp_path / "other" / "seed.png" and fake_keras[1]["dpi"] == 40


def test_architecture_diagram_without_graphviz(
    fake_keras: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots_train.shutil, "which", lambda name: None)
    with pytest.raises(DiagramError, match="Graphviz 'dot' is not installed; install it"):
        architecture_diagram(object(), "diagram", tmp_path)
    assert not fake_keras and not list(tmp_path.iterdir())
    assert issubclass(DiagramError, RuntimeError)


def test_epoch_ticks_are_whole_numbers() -> None:
    for epochs in (2, 5, 12):  # few epochs made Matplotlib pick 2.5, 7.5 ... ticks
        fig = training_curves(_history(MULTITASK_KEYS, epochs=epochs), title="ticks")
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), (epochs, ticks)
        plt.close(fig)
