"""Run code in a fresh interpreter, for tests of what happens when TensorFlow is first imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter in the project root, without TF_CPP_MIN_LOG_LEVEL unless given in ``env``."""
    environment = {key: value for key, value in os.environ.items() if key != LOG_LEVEL} | env
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT, timeout=300
    )
