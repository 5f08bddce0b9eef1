"""What every notebook does first: honour CI's fast switch, seed the generators, set figure defaults, keep the
output clean (no progress bars).

TensorFlow's C++ start-up lines are silenced earlier, by the package root (:mod:`mammo_utils`), because that must
happen before TensorFlow is imported.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import tqdm.std

FAST_ENV = "MAMMO_FAST"
FIGURE_DPI = 100  # figures saved to figures/
INLINE_DPI = 72  # figures shown inline, so committed notebooks stay small


def _disabled(init: Callable[..., None]) -> Callable[..., None]:
    """tqdm's constructor with ``disable=True`` forced."""

    @functools.wraps(init)
    def quiet_init(self: tqdm.std.tqdm, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    return quiet_init


_TQDM_INIT: Any = vars(tqdm.std.tqdm)["__init__"]  # tqdm's own constructor, as defined; progress_bars(True)
_TQDM_QUIET_INIT = _disabled(tqdm.std.tqdm.__init__)  # the same with disable=True forced; progress_bars(False)


@dataclass(frozen=True)
class NotebookSetup:
    """The effective settings of a notebook run."""

    fast: bool
    seed: int


def setup(fast: bool = False, seed: int = 42, progress: bool = False) -> NotebookSetup:
    """Seed Python and numpy, set matplotlib defaults, quiet progress bars and resolve fast mode.

    ``fast`` is also switched on by the environment variable ``MAMMO_FAST=1``; the test suite sets it so
    that ``pytest --nbval-lax`` can re-run the committed (full-run) notebooks in about a minute each.

    Parameters
    ----------
    fast : bool
        Small data and few epochs (CI).
    seed : int
        Seed of Python's and numpy's global generators, between 0 and 2**32 - 1.
    progress : bool
        Keep tqdm's progress bars. Off by default: a notebook executed by papermill saves each bar as it was
        first drawn ("0/2000") and a text bar writes to stderr, so the notebooks print a one-line summary
        after each long step instead (see :func:`progress_bars`).

    Returns
    -------
    NotebookSetup
        The effective fast switch and seed.
    """
    fast = bool(fast) or os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes"}
    random.seed(seed)
    np.random.seed(seed)
    mpl.rcParams.update({"figure.dpi": INLINE_DPI, "savefig.dpi": FIGURE_DPI, "savefig.bbox": "tight"})
    progress_bars(progress)
    return NotebookSetup(fast=fast, seed=seed)


def progress_bars(enabled: bool) -> None:
    """Switch every tqdm progress bar of this process on or off (notebook widget and text bars alike).

    Off overrides ``disable=False`` given by the caller (e.g. ``progress=True`` deep inside a library call),
    which tqdm's ``TQDM_DISABLE`` variable cannot do once tqdm is imported.

    Parameters
    ----------
    enabled : bool
        True restores tqdm's own behaviour.
    """
    tqdm.std.tqdm.__init__ = _TQDM_INIT if enabled else _TQDM_QUIET_INIT  # type: ignore[method-assign]
