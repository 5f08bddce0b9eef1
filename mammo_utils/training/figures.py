"""Figures for the training notebook: the architecture diagram and the learning curves."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mammo_utils import paths

if TYPE_CHECKING:
    import keras

# (history key without "val_", panel title, y label) per model kind
CURVES: dict[str, list[tuple[str, str, str]]] = {
    "multitask": [
        ("loss", "total loss (density + malignancy)", "loss (cross-entropy, nats)"),
        ("density_loss", "density head loss", "loss (cross-entropy, nats)"),
        ("malignancy_loss", "malignancy head loss", "loss (cross-entropy, nats)"),
        ("density_accuracy", "density accuracy (4 classes)", "accuracy (fraction correct)"),
        ("malignancy_auc", "malignancy ROC AUC", "AUC"),
        ("malignancy_accuracy", "malignancy accuracy (threshold 0.5)", "accuracy (fraction correct)"),
    ],
    "lesion": [
        ("attention_loss", "where: attention vs the finding's cells", "loss (cross-entropy, nats)"),
        ("cell_malignancy_loss", "what: malignancy of the finding's cells", "loss (cross-entropy, nats)"),
        ("malignancy_loss", "image malignancy loss", "loss (cross-entropy, nats)"),
        ("malignancy_auc", "malignancy ROC AUC (whole images)", "AUC"),
        ("density_loss", "density branch loss", "loss (cross-entropy, nats)"),
        ("density_accuracy", "density accuracy (4 classes)", "accuracy (fraction correct)"),
    ],
    "joint": [
        ("loss", "loss (8-way joint cross-entropy)", "loss (cross-entropy, nats)"),
        ("accuracy", "8-way joint accuracy", "accuracy (fraction correct)"),
    ],
}


class DiagramError(RuntimeError):
    """The architecture diagram cannot be drawn (Graphviz missing)."""


def architecture_diagram(model: keras.Model, name: str, directory: str | Path | None = None, dpi: int = 60) -> Path:
    """Draw ``model`` with ``keras.utils.plot_model`` (shapes, layer names) to ``<directory>/<name>.png``.

    Needs Graphviz's ``dot`` on the PATH (``make`` installs the Debian package ``graphviz``) and ``pydot``.
    """
    import keras

    if shutil.which("dot") is None:
        raise DiagramError(
            "Graphviz 'dot' is not installed; install it (apt-get install graphviz, or "
            "conda install graphviz) to draw the architecture diagram"
        )
    out = paths.ensure_dir(directory or paths.figures_dir()) / f"{name}.png"
    keras.utils.plot_model(
        model,
        to_file=str(out),
        show_shapes=True,
        show_layer_names=True,
        dpi=dpi,
        expand_nested=False,
        show_layer_activations=True,
    )
    return out


def training_curves(history: pd.DataFrame, title: str) -> Figure:
    """Training vs validation curves across epochs, one panel per loss or metric in ``history``.

    ``history`` is the ``history.csv`` of a run (``epoch`` column + Keras metric names). Two-head models get
    six panels (total and per-head losses, density accuracy, malignancy AUC and accuracy); the seed model two;
    the lesion model six (where, what, image malignancy, its AUC, density loss and accuracy).
    """
    columns = set(history.columns)
    kind = "lesion" if "attention_loss" in columns else "multitask" if "density_loss" in columns else "joint"
    panels = [p for p in CURVES[kind] if p[0] in columns or f"val_{p[0]}" in columns]
    if not panels:
        raise ValueError(
            f"training_curves: the history has none of the curves {[p[0] for p in CURVES[kind]]} "
            f"(its columns: {list(history.columns)}); pass a run's history.csv"
        )
    cols = 3 if len(panels) > 2 else len(panels)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.2 * rows), squeeze=False)
    epochs = history["epoch"] + 1 if "epoch" in history else pd.Series(range(1, len(history) + 1))
    for ax, (key, panel_title, ylabel) in zip(axes.ravel()[: len(panels)], panels, strict=True):
        if key in history:
            ax.plot(epochs, history[key], marker="o", ms=3, label="training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", ms=3, label="validation")
        ax.set(title=panel_title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers: no 2.5 ticks
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def best_epochs(history: pd.DataFrame) -> pd.DataFrame:
    """The best epoch's validation metrics: one column (rows: the ``val_`` metrics of that epoch).

    The best epoch is the highest ``val_malignancy_auc`` for a lesion model (what its training stops on), the lowest
    ``val_loss`` for the others.
    """
    stages: dict[str, tuple[str, str, list[str]]] = {}
    val = [c for c in history.columns if c.startswith("val_")]
    if "val_malignancy_auc" in history and "attention_loss" in history:
        stages["lesion model"] = ("val_malignancy_auc", "max", val)
    elif "val_loss" in history:
        stages["all heads"] = ("val_loss", "min", val)
    else:
        raise ValueError(f"best_epochs: the history has no validation score (its columns: {list(history.columns)})")
    columns = {}
    for name, (key, mode, keys) in stages.items():
        scores = history[key]
        if scores.notna().any():
            row = history.iloc[int(np.nanargmax(scores) if mode == "max" else np.nanargmin(scores))]
            columns[f"{name}, best epoch {int(row['epoch']) + 1}"] = row.reindex(keys)
    return pd.DataFrame(columns)
