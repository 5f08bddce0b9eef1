"""Helpers for predicting many files: which files (:func:`collect_inputs`) and which run (:func:`ensure_run`).

Used by the CLI (``python -m mammo_utils predict``), :meth:`mammo_utils.predict.Predictor.predict_many` and the
prediction notebook, which needs a trained run even on a fresh clone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mammo_utils.prediction import BatchResult

__all__ = ["SUPPORTED_SUFFIXES", "collect_inputs", "ensure_run"]

SUPPORTED_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm")
"""File name endings picked up when a folder is given (single files are read whatever their name)."""


def collect_inputs(sources: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], BatchResult]:
    """Expand folders (recursively, :data:`SUPPORTED_SUFFIXES`, sorted); missing paths become errors.

    Returns the files to predict and a :class:`BatchResult` already holding the errors for missing paths.
    """
    files: list[Path] = []
    batch = BatchResult()
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            batch.errors.append((str(path), f"{path}: no such file or folder"))
    return files, batch


def ensure_run(run_dir: str | os.PathLike[str] | None = None, *, train_if_missing: bool = True, seed: int = 42,
               verbose: int = 0) -> tuple[Path, bool]:
    """The run directory to predict with, training a fast default model when none exists yet.

    Parameters
    ----------
    run_dir : path, optional
        A run directory; None or "" means the registry's current version, else the latest run
        (``models/runs/LATEST``).
    train_if_missing : bool
        With no recorded run, train the default model in fast mode on the small synthetic set
        (about a minute on 2 CPU cores) instead of raising.
    seed, verbose : int
        For that training run.

    Returns
    -------
    (Path, bool)
        The run directory, and True if it was just trained.
    """
    from mammo_utils.registry import current_run_dir

    if run_dir:
        folder = Path(run_dir)
        if not (folder / "model.keras").is_file():
            raise FileNotFoundError(f"{folder} holds no model.keras; give a run directory from mammo_utils.train")
        return folder, False
    try:
        folder = current_run_dir()  # the registry's current version, else models/runs/LATEST
        if (folder / "model.keras").is_file():
            return folder, False
    except FileNotFoundError:
        pass
    if not train_if_missing:
        raise FileNotFoundError("no trained model yet: run notebooks/02_train.ipynb (or `make run`) first")
    from mammo_utils import datasets
    from mammo_utils.splits import split_by_patient
    from mammo_utils.train import train

    manifest = split_by_patient(datasets.load("synthetic", fast=True, seed=seed), seed=seed)
    return train(manifest, model="default", fast=True, seed=seed, verbose=verbose).run_dir, True

