"""Tests for mammo_utils.update.synthetic_submissions: shifted synthetic images through the real store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mammo_utils.submissions.store import Store
from mammo_utils.update.synthetic_submissions import SHIFTED_DENSITY_MIX, accept_labelled, submit_synthetic


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    with Store(url=f"sqlite:///{tmp_path / 'db.sqlite'}", root=tmp_path / "files") as db:
        yield db


def test_submit_withhold_review_and_resubmit(store: Store, tmp_path: Path):
    sent = submit_synthetic(store, 24, seed=3, unlabelled_fraction=0.25, out_dir=tmp_path / "syn", progress=False)
    assert len(sent) == 24 and not sent["duplicate"].any() and store.count() == 24
    unlabelled = sent["density"].isna() & sent["pathology"].isna()
    assert 0 < unlabelled.sum() < 24
    counts = accept_labelled(store)
    assert counts.get("accepted", 0) == (~unlabelled).sum() and counts.get("rejected", 0) == unlabelled.sum()
    accepted = store.manifest(status="accepted")
    assert len(accepted) == (~unlabelled).sum() and set(accepted["source"]) == {"submission"}
    assert accepted["density"].notna().all()

    again = submit_synthetic(store, 24, seed=3, unlabelled_fraction=0.25, out_dir=tmp_path / "syn", progress=False)
    assert again["duplicate"].all() and store.count() == 24, "resubmitting the same images stores nothing new"


def test_the_mix_is_shifted_towards_dense_breasts(store: Store, tmp_path: Path):
    sent = submit_synthetic(store, 40, seed=5, unlabelled_fraction=0.0, out_dir=tmp_path / "syn", progress=False)
    dense = pd.to_numeric(sent["density"]).isin([3, 4]).mean()
    assert sum(SHIFTED_DENSITY_MIX[2:]) == pytest.approx(0.8) and dense > 0.5


def test_bad_fraction_is_refused(store: Store):
    with pytest.raises(ValueError, match="unlabelled_fraction"):
        submit_synthetic(store, 2, unlabelled_fraction=1.5)
