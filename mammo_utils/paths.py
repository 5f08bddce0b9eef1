"""Where the project keeps its data, figures and models.

The project root is the folder holding ``pyproject.toml`` (the package is installed editable). Set
``MAMMO_HOME`` to put data, figures and models somewhere else, e.g. a scratch disk. Training runs go to
:func:`runs_dir`; the file ``LATEST`` there names the latest one (written by :func:`mammo_utils.training.train.train`).
"""

from __future__ import annotations

import os
from pathlib import Path

LATEST_FILE = "LATEST"
"""Name of the file in :func:`runs_dir` that names the latest training run."""


def project_root() -> Path:
    """The project root: ``$MAMMO_HOME`` if set, else the folder above the ``mammo_utils`` package."""
    home = os.environ.get("MAMMO_HOME")
    if home:
        return Path(home).expanduser().resolve()
    return Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """``<root>/data``: generated and user data (git-ignored)."""
    return project_root() / "data"


def figures_dir() -> Path:
    """``<root>/figures``: figures written by the notebooks."""
    return project_root() / "figures"


def models_dir() -> Path:
    """``<root>/models``: trained models and run directories (git-ignored)."""
    return project_root() / "models"


def runs_dir() -> Path:
    """``<root>/models/runs``: where training run directories go by default."""
    return models_dir() / "runs"


def latest_run_dir() -> Path:
    """The run directory named in ``<root>/models/runs/LATEST`` (a name inside ``runs_dir()`` or an absolute path).

    Raises
    ------
    FileNotFoundError
        If no run was recorded yet, or the recorded run directory is gone.
    """
    pointer = runs_dir() / LATEST_FILE
    if not pointer.is_file():
        raise FileNotFoundError(f"no training run recorded in {pointer}; train one first (notebooks/02_train.ipynb)")
    run_dir = runs_dir() / pointer.read_text(encoding="utf-8").strip()  # an absolute path stays absolute
    if not run_dir.is_dir():
        raise FileNotFoundError(f"the latest run directory {run_dir} (from {pointer}) no longer exists")
    return run_dir


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if missing and return it as a ``Path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
