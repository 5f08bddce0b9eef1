"""One small synthetic set and its standardized-image cache, shared by test_cache and test_pipeline (once per session).

Both live under the session's ``MAMMO_HOME`` (set by the root conftest), which is removed at the end of the run.
Tests must not change these files; a test that edits images or the cache copies them first.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import pandas as pd

from mammo_utils import paths
from mammo_utils.datasets.schema import make_manifest
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.training.cache import CachedImages, build_cache

SIZE = (64, 64)
N_IMAGES = 24


@lru_cache(maxsize=1)
def synthetic_manifest() -> pd.DataFrame:
    """24 synthetic mammograms (the manifest is shared: copy it before changing it)."""
    folder = Path(tempfile.mkdtemp(prefix="synthetic-", dir=paths.ensure_dir(paths.data_dir())))
    return generate_synthetic(out_dir=folder, n=N_IMAGES, workers=1)


@lru_cache(maxsize=1)
def synthetic_cache() -> CachedImages:
    """:func:`synthetic_manifest` standardized to :data:`SIZE` in this process."""
    folder = Path(tempfile.mkdtemp(prefix="cache-", dir=paths.ensure_dir(paths.data_dir())))
    return build_cache(synthetic_manifest(), folder, size=SIZE, workers=1, progress=False)


def label_rows(paths: list[Path], density: list | None = None, pathology: list | None = None) -> pd.DataFrame:
    """A manifest of ``paths`` with one patient each and (default: cycling) density and pathology labels."""
    n = len(paths)
    return make_manifest(
        pd.DataFrame(
            {
                "image_path": [str(p) for p in paths],
                "patient_id": [f"P{i}" for i in range(n)],
                "density": density or [1 + i % 4 for i in range(n)],
                "pathology": pathology or ["benign", "malignant"] * (n // 2) + ["benign"] * (n % 2),
                "source": "synthetic",
            }
        )
    )
