"""The data sets by name: ``load(name, ...)`` returns one manifest DataFrame (see :mod:`mammo_utils.datasets.schema`),
``load_findings(name, manifest)`` its findings table (see :mod:`mammo_utils.datasets.findings`).

It is what the notebooks call with their ``dataset`` / ``data_dir`` parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mammo_utils.datasets.cbis_ddsm import cbis_ddsm
from mammo_utils.datasets.findings import empty_findings, findings_from_synthetic, validate_findings
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
    key = _key(name)
    if key == "synthetic":
        return generate_synthetic(out_dir=Path(data_dir) if data_dir else None, fast=fast, seed=seed)
    if key == "sample":
        return sample()
    if not data_dir:
        raise ValueError(f"dataset {name!r} needs data_dir: the folder (or CSV file) where it lives")
    loaders: dict[str, Callable[[Path], pd.DataFrame]] = {"cbis-ddsm": cbis_ddsm, "mias": mias, "manifest": manifest}
    return loaders[key](Path(data_dir))


def load_findings(name: str, manifest: pd.DataFrame, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The findings table of data set ``name`` for the images of ``manifest`` (the output of :func:`load`).

    Parameters
    ----------
    name
        A name of :data:`DATASETS`, as for :func:`load`.
    manifest
        The data set's manifest (or rows of it): the findings of its images are returned.
    data_dir
        Where the data lives, as for :func:`load`; not used yet (the CBIS-DDSM ROI masks and the mini-MIAS circles
        will be read from there).

    Returns
    -------
    pandas.DataFrame
        A findings table validated against ``manifest``. ``synthetic``: the generator's ground truth
        (:func:`~mammo_utils.datasets.findings.findings_from_synthetic`); every other data set: no findings yet
        (:func:`~mammo_utils.datasets.findings.empty_findings`). CBIS-DDSM and mini-MIAS record their findings,
        and a later issue reads them.
    """
    key = _key(name)
    findings = findings_from_synthetic(manifest) if key == "synthetic" else empty_findings()
    return validate_findings(findings, manifest)


def _key(name: str) -> str:
    """The catalog key of ``name`` (case, spaces and ``_`` vs ``-`` ignored), or a ValueError listing the names."""
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key
