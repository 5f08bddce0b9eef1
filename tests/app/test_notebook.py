"""Tests for mammo_utils.app.notebook: the fast switch (argument or MAMMO_FAST), seeding, and the figure defaults."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import matplotlib as mpl
import numpy as np
import pytest

from mammo_utils.app import notebook
from mammo_utils.app.notebook import FAST_ENV, FIGURE_DPI, INLINE_DPI, NotebookSetup, setup


@pytest.fixture(autouse=True)
def restore_rcparams() -> Iterator[None]:
    """setup() changes matplotlib's global settings: put them back after each test."""
    with mpl.rc_context():
        yield


@pytest.fixture
def no_fast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test session sets MAMMO_FAST=1; remove it."""
    monkeypatch.delenv(FAST_ENV, raising=False)


def test_returns_the_effective_settings(no_fast_env: None) -> None:
    result = setup(fast=False, seed=7)
    assert result == NotebookSetup(fast=False, seed=7)
    assert setup(fast=True, seed=3) == NotebookSetup(fast=True, seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.fast = True  # type: ignore[misc]


@pytest.mark.parametrize(
    "value, fast",
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("Yes", True),
        ("0", False),
        ("", False),
        ("false", False),
        ("no", False),
        ("fast", False),
    ],
)
def test_the_environment_switches_fast_mode_on(monkeypatch: pytest.MonkeyPatch, value: str, fast: bool) -> None:
    monkeypatch.setenv(FAST_ENV, value)
    assert setup(fast=False).fast is fast
    assert setup(fast=True).fast is True  # the environment can switch fast on, never off


def test_without_the_environment_the_argument_decides(no_fast_env: None) -> None:
    assert setup().fast is False
    assert setup(fast=True).fast is True
    assert setup(fast=1).fast is True  # type: ignore[arg-type]  # papermill may inject an int


def test_seeds_python_and_numpy(no_fast_env: None) -> None:
    setup(seed=11)
    first = (random.random(), np.random.rand(3).tolist())
    random.random(), np.random.rand(5)  # move both generators on
    setup(seed=11)
    assert (random.random(), np.random.rand(3).tolist()) == first
    setup(seed=12)
    assert (random.random(), np.random.rand(3).tolist()) != first


def test_a_seed_numpy_cannot_use_is_refused(no_fast_env: None) -> None:
    with pytest.raises(ValueError, match=r"between 0 and 2\*\*32 - 1"):
        setup(seed=-1)


def test_sets_modest_figure_resolutions(no_fast_env: None) -> None:
    mpl.rcParams.update({"figure.dpi": 200, "savefig.dpi": 300, "savefig.bbox": None})
    setup()
    assert mpl.rcParams["figure.dpi"] == INLINE_DPI
    assert mpl.rcParams["savefig.dpi"] == FIGURE_DPI
    assert mpl.rcParams["savefig.bbox"] == "tight"
    assert 50 <= INLINE_DPI <= FIGURE_DPI <= 150  # committed notebooks and figures stay small
    assert notebook.FAST_ENV == "MAMMO_FAST"
