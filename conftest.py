"""Session-wide test settings (root conftest, so it also covers `--nbval-lax` over notebooks/).

- ``MAMMO_HOME`` points at a fresh temporary folder, so tests and notebook runs write their data, figures and
  models there and never over the committed figures or the user's ``data/``.
- ``MAMMO_FAST=1`` makes the committed notebooks, re-run by nbval, take their fast path.
- Each notebook whose cells all passed under nbval is recorded (``NBVAL_PASSED``), so that
  ``tests/test_notebooks.py`` checks the artefacts that run left in ``MAMMO_HOME`` instead of executing the
  notebook a second time (``testpaths`` lists ``notebooks`` before ``tests``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# notebook path -> True while every nbval cell of it has passed, False once one failed (this session)
NBVAL_PASSED: dict[str, bool] = {}


def pytest_configure(config):
    if "MAMMO_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="mammo-test-home-")
        os.environ["MAMMO_HOME"] = home
        config._mammo_home = home
    os.environ.setdefault("MAMMO_FAST", "1")
    config.mammo_nbval_passed = NBVAL_PASSED
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_unconfigure(config):
    home = getattr(config, "_mammo_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


def pytest_runtest_logreport(report):
    path, _, cell = report.nodeid.partition("::")
    if not path.endswith(".ipynb") or not cell or report.when != "call" and not report.failed:
        return
    key = Path(path).as_posix()  # relative to the rootdir, e.g. notebooks/02_train.ipynb
    NBVAL_PASSED[key] = NBVAL_PASSED.get(key, True) and not report.failed
