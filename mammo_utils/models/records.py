"""What a model version records besides its run: the headline metrics and the hash of its training data.

* :func:`headline_metrics` reduces an ``evaluate_predictions`` dict to the gate's metrics (:data:`GATE_METRICS`)
  with their CIs, strict-JSON ready.
* :func:`data_hash`: SHA-256 over the sorted lines ``image-hash<TAB>density<TAB>pathology`` of the rows used for
  training, where the image hash is a ``sha256`` column if the manifest has one, else the SHA-256 of the file's
  bytes (or, with ``content=False``, the absolute path). Sorting makes it independent of row order.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mammo_utils import labels

__all__ = ["GATE_METRICS", "data_hash", "headline_metrics", "run_data_hash"]

GATE_METRICS: tuple[str, ...] = ("density.kappa_quadratic", "malignancy.roc_auc")


def headline_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The gate's headline metrics (:data:`GATE_METRICS`) with their CIs, from an ``evaluate_predictions`` dict.

    A flat mapping ``{name: {"value", "ci_low", "ci_high"}}`` or ``{name: float}`` is accepted too (numbers are
    wrapped as ``{"value": x}``). NaN and missing values become None. Returns None for None.
    """
    if metrics is None:
        return None
    out: dict[str, Any] = {}
    for name in GATE_METRICS:
        section, _, key = name.partition(".")
        if name in metrics:
            entry = metrics[name]
        elif isinstance(metrics.get(section), Mapping) and key in metrics[section]:
            entry = metrics[section][key]
        else:
            continue
        entry = entry if isinstance(entry, Mapping) else {"value": entry}
        out[name] = {k: _number(entry.get(k)) for k in ("value", "ci_low", "ci_high")}
    return out


def _number(value: Any) -> float | None:
    """A finite float, or None for a missing / NaN / infinite value (the registry is strict JSON)."""
    if value is None or labels.is_missing(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def data_hash(manifest: pd.DataFrame, *, content: bool = True) -> str:
    """SHA-256 of the images and labels of ``manifest``, independent of row order (see the module notes).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Needs ``image_path``, ``density`` and ``pathology``; a ``sha256`` column, if present, is used as the
        image hash instead of reading the file.
    content : bool
        Hash the files' bytes (default); False hashes their absolute paths instead (fast, but tied to the
        machine's folder layout).

    Raises
    ------
    FileNotFoundError
        If ``content`` is True and an image file is missing.
    """
    missing = [c for c in ("image_path", "density", "pathology") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; a data hash needs images and labels")
    lines = []
    for row in manifest.itertuples(index=False):
        given = getattr(row, "sha256", None)
        if given is not None and not labels.is_missing(given):
            key = str(given).lower()
        elif content:
            key = _file_sha256(Path(str(row.image_path)))
        else:
            key = os.path.abspath(str(row.image_path))
        density = labels.density_from_any(row.density)
        pathology = labels.pathology_from_any(row.pathology)
        lines.append(f"{key}\t{density if density is not None else ''}\t{pathology or ''}")
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"cannot hash {path}: no such file (pass content=False to hash paths instead)")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_data_hash(run_dir: str | os.PathLike[str], *, content: bool = True) -> str:
    """:func:`data_hash` of the training rows (``split == "train"``) of a run's ``split.csv``."""
    split = pd.read_csv(Path(run_dir) / "split.csv")
    return data_hash(split[split["split"] == "train"], content=content)
