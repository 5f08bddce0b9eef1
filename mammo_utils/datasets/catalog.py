"""The data sets by name: ``load(name, ...)`` returns one manifest DataFrame (see :mod:`mammo_utils.datasets.schema`).

It is what the notebooks call with their ``dataset`` / ``data_dir`` parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mammo_utils.datasets.cbis_ddsm import cbis_ddsm
from mammo_utils.datasets.manifest import manifest
from mammo_utils.datasets.mias import mias
from mammo_utils.datasets.sample import sample
from mammo_utils.datasets.synthetic import generate_synthetic

DATASETS: tuple[str, ...] = ("synthetic", "sample", "cbis-ddsm", "mias", "manifest")


def load(name: str, data_dir: str | Path | None = None, fast: bool = False, seed: int = 42) -> pd.DataFrame:
    """Load a dataset by name, as the notebooks' ``dataset`` / ``data_dir`` parameters say.

    Parameters
    ----------
    name
        ``synthetic`` (generated on first use), ``sample`` (8 real CBIS-DDSM DICOMs), ``cbis-ddsm``, ``mias``
        or ``manifest``.
    data_dir
        Where the data lives: the CBIS-DDSM or mini-MIAS root folder, or the CSV file for ``manifest``.
        For ``synthetic``, where to write it (default ``data/synthetic`` or ``data/synthetic_fast``).
    fast
        ``synthetic`` only: generate the small set (~200 images) used by CI.
    seed
        ``synthetic`` only: generator seed.
    """
    key = name.strip().lower().replace("_", "-")
    if key == "synthetic":
        return generate_synthetic(out_dir=Path(data_dir) if data_dir else None, fast=fast, seed=seed)
    if key == "sample":
        return sample()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if not data_dir:
        raise ValueError(f"dataset {name!r} needs data_dir: the folder (or CSV file) where it lives")
    loaders: dict[str, Callable[[Path], pd.DataFrame]] = {"cbis-ddsm": cbis_ddsm, "mias": mias, "manifest": manifest}
    return loaders[key](Path(data_dir))
