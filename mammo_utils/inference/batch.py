"""Which files to predict when given files and folders (:func:`collect_inputs`).

Used by the CLI (``mammo predict``) and :meth:`mammo_utils.inference.predictor.Predictor.predict_many`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mammo_utils.inference.prediction import BatchResult

__all__ = ["SUPPORTED_SUFFIXES", "collect_inputs"]

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
