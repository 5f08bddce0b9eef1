"""``python -m mammo_utils.app ...`` (the same as the ``mammo`` command): see :mod:`mammo_utils.app.cli`."""

from mammo_utils.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
