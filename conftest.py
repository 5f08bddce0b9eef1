"""Session-wide test settings (root conftest, so it also covers `--nbval-lax` over notebooks/).

- ``MAMMO_HOME`` points at a fresh temporary folder, so tests and notebook runs write their data, figures and
  models there and never over the committed figures or the user's ``data/``.
- ``MAMMO_FAST=1`` makes the committed notebooks, re-run by nbval, take their fast path.
"""

from __future__ import annotations

import os
import shutil
import tempfile


def pytest_configure(config):
    if "MAMMO_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="mammo-test-home-")
        os.environ["MAMMO_HOME"] = home
        config._mammo_home = home
    os.environ.setdefault("MAMMO_FAST", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_unconfigure(config):
    home = getattr(config, "_mammo_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)
