"""Tests for mammo_utils.app.notebook: the fast switch (argument or MAMMO_FAST), seeding, the figure defaults, and
the quiet output (no progress bars, no TensorFlow warnings)."""

from __future__ import annotations

import dataclasses
import io
import random
from collections.abc import Iterator

import matplotlib as mpl
import numpy as np
import pytest
import tqdm.auto
import tqdm.notebook
import tqdm.std

from mammo_utils.app import notebook
from mammo_utils.app.notebook import (
    FAST_ENV,
    FIGURE_DPI,
    INLINE_DPI,
    NotebookSetup,
    progress_bars,
    setup,
)


@pytest.fixture(autouse=True)
def restore_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """setup() changes matplotlib's settings, tqdm's constructor and TensorFlow's logger: put them back."""
    monkeypatch.setattr(tqdm.std.tqdm, "__init__", vars(tqdm.std.tqdm)["__init__"])
    with mpl.rc_context():
        yield


def _drawn(**kwargs: object) -> str:
    """What a text bar over three items writes."""
    out = io.StringIO()
    for _ in tqdm.auto.tqdm(range(3), file=out, mininterval=0, **kwargs):  # type: ignore[call-overload]
        pass
    return out.getvalue()


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


def test_switches_progress_bars_off_even_when_a_caller_asks_for_one(no_fast_env: None) -> None:
    assert "3/3" in _drawn(disable=False)
    setup()
    assert _drawn() == ""
    assert _drawn(disable=False) == ""  # e.g. build_cache(progress=True) inside train()
    widget_bar = tqdm.notebook.tqdm(range(3), disable=False)  # what tqdm.auto gives in a Jupyter kernel
    assert widget_bar.disable and not hasattr(widget_bar, "container")  # no widget was displayed
    assert list(widget_bar) == [0, 1, 2]  # the iteration itself is untouched
    with tqdm.auto.tqdm(total=5, disable=False) as bar:
        bar.update(5)  # code that drives a bar by hand still runs


def test_progress_true_keeps_the_bars(no_fast_env: None) -> None:
    original = vars(tqdm.std.tqdm)["__init__"]
    setup(progress=True)
    assert "3/3" in _drawn(disable=False)
    setup()
    setup()  # twice off, then on: tqdm's own constructor is back, not a wrapper of a wrapper
    progress_bars(True)
    assert vars(tqdm.std.tqdm)["__init__"] is original
    assert "3/3" in _drawn()
    assert _drawn(disable=True) == ""
