"""Where the project keeps its data, figures and models.

The project root is the folder holding ``pyproject.toml`` (the package is installed editable). Set
``MAMMO_HOME`` to put data, figures and models somewhere else, e.g. a scratch disk.
"""

from __future__ import annotations

import os
from pathlib import Path


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


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if missing and return it as a ``Path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
