"""Tests for mammo_utils.models.records: the data hash and the headline metrics of a model version."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mammo_utils.models.records import data_hash, headline_metrics

METRICS = {
    "density": {"kappa_quadratic": {"value": 0.61, "ci_low": 0.5, "ci_high": 0.7, "n_boot_used": 10}},
    "malignancy": {"roc_auc": {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}},
}


def test_data_hash_is_order_free_and_label_sensitive(tmp_path: Path) -> None:
    files = []
    for i in range(4):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(bytes([i]) * 10)
        files.append(str(path))
    frame = pd.DataFrame(
        {"image_path": files, "density": [1, 2, 3, pd.NA], "pathology": ["benign", "malignant", pd.NA, "benign"]}
    )
    digest = data_hash(frame)
    assert len(digest) == 64
    assert data_hash(frame.iloc[::-1]) == digest == data_hash(frame.sample(frac=1, random_state=1))
    relabelled = frame.assign(density=[1, 2, 4, pd.NA])
    assert data_hash(relabelled) != digest
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in files:
        os.replace(path, moved / Path(path).name)
    copy = frame.assign(image_path=[str(moved / Path(p).name) for p in files])
    assert data_hash(copy) == digest  # content, not location
    assert data_hash(copy, content=False) != data_hash(frame, content=False)
    with pytest.raises(FileNotFoundError, match="content=False"):
        data_hash(frame)
    given = frame.assign(sha256=["A", "b", "c", "d"])
    assert data_hash(given) == data_hash(given.assign(sha256=["a", "b", "c", "d"]))  # files not read
    with pytest.raises(ValueError, match="lacks column"):
        data_hash(frame.drop(columns="pathology"))


def test_headline_metrics_forms() -> None:
    assert headline_metrics(METRICS) == {
        "density.kappa_quadratic": {"value": 0.61, "ci_low": 0.5, "ci_high": 0.7},
        "malignancy.roc_auc": {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9},
    }
    flat = headline_metrics({"density.kappa_quadratic": float("nan"), "malignancy.roc_auc": {"value": 0.7}})
    assert flat == {
        "density.kappa_quadratic": {"value": None, "ci_low": None, "ci_high": None},
        "malignancy.roc_auc": {"value": 0.7, "ci_low": None, "ci_high": None},
    }
    assert headline_metrics(None) is None
