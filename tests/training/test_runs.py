"""Tests for mammo_utils.training.runs: RunResult and load_run on the session's shared fast-trained run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _trained import trained_run_dir, whole_image_run_dir

from mammo_utils.training.runs import RunResult, load_run


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return trained_run_dir()


def test_load_run_reads_the_model_history_and_params(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert isinstance(run, RunResult) and run.run_dir == run_dir
    assert run.params == json.loads((run_dir / "params.json").read_text())
    pd.testing.assert_frame_equal(run.history, pd.read_csv(run_dir / "history.csv"))
    assert run.params["model"] == "lesion" and not run.model.compiled  # trains in stages on its own sub-models
    whole = load_run(whole_image_run_dir())
    assert whole.model.optimizer is not None  # compiled afresh: ready to fine-tune or evaluate
    assert float(whole.model.optimizer.learning_rate) == pytest.approx(whole.params["learning_rate"])
    bare = load_run(run_dir, compile=False)
    assert getattr(bare.model, "optimizer", None) is None  # not compiled
    for mine, theirs in zip(bare.model.get_weights(), run.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_load_run_defaults_to_the_latest_run(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    (tmp_path / "models" / "runs").mkdir(parents=True)
    (tmp_path / "models" / "runs" / "LATEST").write_text(str(run_dir.resolve()) + "\n")
    assert load_run(compile=False).run_dir.resolve() == run_dir.resolve()


def test_load_run_without_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train one first"):
        load_run()
