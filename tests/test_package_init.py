"""Tests for the package root: importing mammo_utils quiets TensorFlow's C++ start-up logs before TensorFlow loads.

Each test runs a fresh interpreter, because in this one TensorFlow is already imported (or not) by other tests.
"""

from __future__ import annotations

import nbformat
from _fresh_python import LOG_LEVEL, ROOT, run_python


def test_building_and_running_a_model_writes_nothing_to_stderr() -> None:
    done = run_python(
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
    assert run_python(code).stdout.strip() == "2"
    assert run_python(code, **{LOG_LEVEL: "0"}).stdout.strip() == "0"  # a user who wants the lines back gets them


def test_no_notebook_sets_the_log_level_itself() -> None:
    """The package root is the one place: a notebook's own ``os.environ`` line would come too late or twice."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        sources = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        assert LOG_LEVEL not in sources, f"{path.name} sets {LOG_LEVEL}; mammo_utils/__init__.py does it"
