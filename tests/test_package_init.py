"""Tests for the package root: importing mammo_utils quiets TensorFlow's C++ start-up logs before TensorFlow loads.

Each test runs a fresh interpreter, because in this one TensorFlow is already imported (or not) by other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter without TF_CPP_MIN_LOG_LEVEL unless given in ``env``."""
    environment = {key: value for key, value in os.environ.items() if key != LOG_LEVEL} | env
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT, timeout=300
    )


def test_building_and_running_a_model_writes_nothing_to_stderr() -> None:
    done = _python(
        "import numpy as np\n"
        "import mammo_utils.models.builders as builders\n"
        "model = builders.build_model('lesion')\n"
        "model.predict(np.zeros((2, 384, 384, 1), 'float32'), verbose=0)\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert done.stderr == ""  # no absl "All log messages before absl::InitializeLog()", no cpu_feature_guard


def test_sets_the_log_level_only_when_unset() -> None:
    code = "import os, mammo_utils; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    assert _python(code).stdout.strip() == "2"
    assert _python(code, **{LOG_LEVEL: "0"}).stdout.strip() == "0"  # a user who wants the lines back gets them


def test_no_notebook_sets_the_log_level_itself() -> None:
    """The package root is the one place: a notebook's own ``os.environ`` line would come too late or twice."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        sources = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        assert LOG_LEVEL not in sources, f"{path.name} sets {LOG_LEVEL}; mammo_utils/__init__.py does it"
