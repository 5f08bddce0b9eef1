"""``python -m mammo_utils ...``: see :mod:`mammo_utils.cli`."""

from mammo_utils.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
