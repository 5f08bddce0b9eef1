"""Tests for mammo_utils.paths: the project root and its MAMMO_HOME override, the standard folders, ensure_dir, and
the ``models/runs/LATEST`` pointer. Every folder here is a temporary one."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_utils import paths

PACKAGE_PARENT = Path(paths.__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MAMMO_HOME pointed at an empty temporary folder."""
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    return tmp_path


def test_root_is_the_project_folder_without_mammo_home(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (None, ""):  # unset and empty both mean "no override"
        if value is None:
            monkeypatch.delenv("MAMMO_HOME", raising=False)
        else:
            monkeypatch.setenv("MAMMO_HOME", value)
        root = paths.project_root()
        assert root == PACKAGE_PARENT and (root / "pyproject.toml").is_file() and (root / "mammo_utils").is_dir()


def test_mammo_home_overrides_the_root_and_every_folder(home: Path) -> None:
    assert paths.project_root() == home.resolve()
    assert paths.data_dir() == home / "data"
    assert paths.figures_dir() == home / "figures"
    assert paths.models_dir() == home / "models"
    assert paths.runs_dir() == home / "models" / "runs"
    assert not (home / "data").exists()  # asking for a folder does not create it


def test_mammo_home_is_expanded_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MAMMO_HOME", "~/scratch/mammo")
    assert paths.project_root() == tmp_path.resolve() / "scratch" / "mammo"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAMMO_HOME", "relative/home")
    root = paths.project_root()
    assert root.is_absolute() and root == tmp_path.resolve() / "relative" / "home"


def test_folders_follow_a_change_of_mammo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "one"))
    first = paths.figures_dir()
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "two"))
    assert first != paths.figures_dir() == tmp_path / "two" / "figures"  # read each call, never cached


def test_ensure_dir_creates_parents_is_idempotent_and_returns_a_path(tmp_path: Path) -> None:
    target = str(tmp_path / "a" / "b" / "c")
    made = paths.ensure_dir(target)
    assert isinstance(made, Path) and made.is_dir() and made == Path(target)
    (made / "keep.txt").write_text("x")
    assert paths.ensure_dir(made) == made and (made / "keep.txt").read_text() == "x"  # existing content untouched


def test_ensure_dir_refuses_a_file(tmp_path: Path) -> None:
    file = tmp_path / "not_a_folder"
    file.write_text("x")
    with pytest.raises(FileExistsError):
        paths.ensure_dir(file)


def test_latest_run_dir_without_a_recorded_run(home: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no training run recorded in .*LATEST; train one first"):
        paths.latest_run_dir()


def test_latest_run_dir_follows_a_name_or_an_absolute_path(
    home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = paths.ensure_dir(paths.runs_dir() / "20261126-120000_default_synthetic")
    (paths.runs_dir() / paths.LATEST_FILE).write_text(run.name + "\n", encoding="utf-8")
    assert paths.latest_run_dir() == run
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (paths.runs_dir() / paths.LATEST_FILE).write_text(f"  {elsewhere}\n", encoding="utf-8")
    assert paths.latest_run_dir() == elsewhere


def test_latest_run_dir_pointing_at_a_removed_run(home: Path) -> None:
    paths.ensure_dir(paths.runs_dir())
    (paths.runs_dir() / paths.LATEST_FILE).write_text("gone", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"latest run directory .*gone \(from .*LATEST\) no longer exists"):
        paths.latest_run_dir()
