"""TensorFlow's start-up notices off stderr while it is imported, everything else kept.

Some TensorFlow 2.21 builds print two lines at import that ``TF_CPP_MIN_LOG_LEVEL`` does not reach on CPUs where
oneDNN switches itself on (AVX-512 machines): absl's "All log messages before absl::InitializeLog() ..." and
"oneDNN custom operations are on ...". They go to the process's file descriptor 2, so a Jupyter kernel shows them
as stderr in the notebook. :func:`install` puts a finder on ``sys.meta_path`` that wraps the first import of
``tensorflow``: fd 2 goes to a temporary file for that import only, and afterwards every captured line that is not
one of the known notices (:func:`is_startup_notice`) is written back to ``sys.stderr``. Numerics are untouched
(oneDNN stays on); ``TF_CPP_MIN_LOG_LEVEL=0`` in the environment leaves the import alone and shows the lines.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

__all__ = ["STARTUP_NOTICES", "install", "is_startup_notice"]

STARTUP_NOTICES: tuple[str, ...] = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def is_startup_notice(line: str) -> bool:
    """True for one of TensorFlow's known start-up notices (:data:`STARTUP_NOTICES`)."""
    return any(notice in line for notice in STARTUP_NOTICES)


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Send fd 2 to a temporary file; afterwards write back to ``sys.stderr`` the lines that are not notices."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2: nothing to filter
        saved = None
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line for line in capture.read().decode(errors="replace").splitlines(True) if not is_startup_notice(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once: the real finders locate TensorFlow
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiet the first ``import tensorflow`` of this process (nothing if it is imported or the user asked for logs)."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0":
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
