"""What every notebook does first: honour CI's fast switch, seed the generators, set figure defaults."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np

FAST_ENV = "MAMMO_FAST"
FIGURE_DPI = 100  # figures saved to figures/
INLINE_DPI = 72  # figures shown inline, so committed notebooks stay small


@dataclass(frozen=True)
class NotebookSetup:
    """The effective settings of a notebook run."""

    fast: bool
    seed: int


def setup(fast: bool = False, seed: int = 42) -> NotebookSetup:
    """Seed Python and numpy, set matplotlib defaults, and resolve fast mode.

    ``fast`` is also switched on by the environment variable ``MAMMO_FAST=1``; the test suite sets it so
    that ``pytest --nbval-lax`` can re-run the committed (full-run) notebooks in about a minute each.
    """
    fast = bool(fast) or os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes"}
    random.seed(seed)
    np.random.seed(seed)
    mpl.rcParams.update({"figure.dpi": INLINE_DPI, "savefig.dpi": FIGURE_DPI, "savefig.bbox": "tight"})
    return NotebookSetup(fast=fast, seed=seed)
