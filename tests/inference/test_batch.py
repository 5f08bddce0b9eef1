"""Tests for mammo_utils.inference.batch: which files to predict, and which run to predict with."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_utils.inference.batch import SUPPORTED_SUFFIXES, collect_inputs
from mammo_utils.training.train import ensure_run


def test_collect_inputs_expands_folders_and_reports_missing_paths(tmp_path: Path):
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    for name in ("sub/b.DCM", "a.png", "c.tiff", "notes.txt", "sub/scan.jpeg"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "any_name.bin"  # a file given by name is taken whatever its suffix
    single.write_bytes(b"x")
    files, batch = collect_inputs([folder, tmp_path / "missing.png", single])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "batch/a.png",
        "batch/c.tiff",
        "batch/sub/b.DCM",
        "batch/sub/scan.jpeg",
        "any_name.bin",
    ]
    assert batch.predictions == [] and [s for s, _ in batch.errors] == [str(tmp_path / "missing.png")]
    assert "no such file or folder" in batch.errors[0][1]
    assert {".dcm", ".png", ".jpg", ".tif"} <= set(SUPPORTED_SUFFIXES)


def _fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"not opened by ensure_run")
    return folder


def test_ensure_run_uses_the_given_or_the_latest_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    given = _fake_run(tmp_path / "given")
    assert ensure_run(given) == (given, False)
    with pytest.raises(FileNotFoundError, match="model.keras"):
        ensure_run(tmp_path)
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="02_train"):
        ensure_run(None, train_if_missing=False)
    from mammo_utils.paths import LATEST_FILE, runs_dir

    latest = _fake_run(runs_dir() / "20990101-000000_default_synthetic")
    (runs_dir() / LATEST_FILE).write_text(latest.name, encoding="utf-8")
    assert ensure_run("") == (latest, False)
    (latest / "model.keras").unlink()  # the latest run lost its model: nothing to predict with
    with pytest.raises(FileNotFoundError, match="no trained model yet"):
        ensure_run(None, train_if_missing=False)
