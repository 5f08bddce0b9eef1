"""A run directory as a record: :class:`RunResult` and :func:`load_run`.

Run directories are made by :func:`mammo_utils.training.train.train`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from mammo_utils.models.builders import compile_model
from mammo_utils.models.networks import load_model
from mammo_utils.paths import latest_run_dir


@dataclass
class RunResult:
    """A finished (or reloaded) training run.

    Attributes
    ----------
    run_dir : Path
    model : keras.Model
        With the best weights (lowest validation loss).
    history : pandas.DataFrame
        One row per epoch: ``epoch``, losses and metrics, ``val_*``.
    params : dict
        The contents of ``params.json``.
    """

    run_dir: Path
    model: keras.Model
    history: pd.DataFrame
    params: dict[str, Any]


def load_run(run_dir: str | os.PathLike[str] | None = None, compile: bool = True) -> RunResult:
    """Load a run directory (default: the latest run): its model, history and parameters.

    ``model.keras`` holds no optimizer state (see :class:`BestModelCheckpoint`); with ``compile=True`` the
    model is compiled afresh with the run's learning rate.
    """
    folder = Path(run_dir) if run_dir is not None else latest_run_dir()
    params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
    history = pd.read_csv(folder / "history.csv")
    model = load_model(folder / "model.keras", compile=False)
    if compile:
        compile_model(model, learning_rate=float(params.get("learning_rate", 1e-3)))
    return RunResult(folder, model, history, params)
