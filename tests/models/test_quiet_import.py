"""The first ``import tensorflow`` keeps TensorFlow's known start-up notices off stderr, and nothing else.

Each test runs a fresh interpreter: in this one TensorFlow is already imported by other tests.
"""

from __future__ import annotations

from _fresh_python import LOG_LEVEL, run_python

from mammo_utils.models.quiet_import import is_startup_notice


def test_knows_the_notices_and_nothing_else() -> None:
    assert is_startup_notice("I0000 00:00:17 port.cc:153] oneDNN custom operations are on. You may see ...")
    assert not is_startup_notice("E0000 some_op.cc:12] Invalid argument: shape mismatch")


def test_the_import_filter_drops_only_the_known_notices() -> None:
    code = (
        "import os\n"
        "from mammo_utils.models import quiet_import\n"
        "with quiet_import._filtered_stderr():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() '\n"
        "             b'is called are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on. You may see ...\\n')\n"
        "    os.write(2, b'a real error stays\\n')\n"
        "os.write(2, b'after the import\\n')\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "a real error stays\nafter the import\n"


def test_log_level_zero_leaves_the_tensorflow_import_alone() -> None:
    code = "import sys, mammo_utils; print(any('Quiet' in type(f).__name__ for f in sys.meta_path))"
    assert run_python(code).stdout.strip() == "True"
    assert run_python(code, **{LOG_LEVEL: "0"}).stdout.strip() == "False"
