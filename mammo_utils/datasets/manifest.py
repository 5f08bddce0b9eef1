"""Load any CSV of mammograms (a user's own data) into the manifest schema.

The CSV needs an ``image_path`` column and at least one label column (``density`` and/or ``pathology``).
Every other schema column is optional; extra columns are kept after the schema's. The helper
:func:`drop_or_raise_missing` is shared by the other loaders of this package.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mammo_utils import labels
from mammo_utils.datasets import schema
from mammo_utils.datasets.schema import ManifestError

MissingPolicy = Literal["raise", "skip"]
LABEL_COLUMNS: tuple[str, ...] = ("density", "pathology")
LATERALITY_WORDS: dict[str, str] = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}
_SHOWN = 5


def drop_or_raise_missing(
    frame: pd.DataFrame, missing: MissingPolicy = "raise", what: str = "the manifest"
) -> pd.DataFrame:
    """Check that every ``image_path`` of a manifest is an existing file.

    Parameters
    ----------
    frame
        A manifest (needs the ``image_path`` column).
    missing
        ``"raise"`` (default) raises; ``"skip"`` drops the rows whose file is missing, with a warning.
    what
        Where the paths came from, for the message (e.g. the CSV's name).

    Returns
    -------
    pandas.DataFrame
        ``frame`` itself when nothing is missing, else the rows whose file exists (index reset).

    Raises
    ------
    ManifestError
        With ``missing="raise"``: how many files are missing and the first few paths.
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', got {missing!r}")
    exists = frame["image_path"].map(lambda path: Path(path).is_file()).astype(bool)
    if bool(exists.all()):
        return frame
    absent = frame.loc[~exists, "image_path"].tolist()
    message = f"{len(absent)} of {len(frame)} image files listed in {what} are missing, e.g. {absent[:_SHOWN]}"
    if missing == "raise":
        raise ManifestError(f"{message}; check the folder layout, or pass missing='skip' to drop them")
    warnings.warn(f"{message}; dropped them (missing='skip')", stacklevel=3)
    return frame.loc[exists].reset_index(drop=True)


def _canonical_columns(raw: pd.DataFrame) -> pd.DataFrame:
    """Strip column names and map schema names case-insensitively (``Image_Path`` → ``image_path``)."""
    renamed: dict[Any, str] = {}
    for column in raw.columns:
        name = str(column).strip()
        lowered = name.lower()
        renamed[column] = lowered if lowered in schema.MANIFEST_COLUMNS else name
    frame = raw.rename(columns=renamed)
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise ManifestError(f"columns {sorted(set(duplicated))} appear more than once (names are case-insensitive)")
    return frame


def _parse_column(
    frame: pd.DataFrame, column: str, parse: Callable[[Any], Any], expected: str, errors: list[str]
) -> list[Any]:
    """Parse one column value by value; collect one message naming the CSV lines of bad values."""
    values: list[Any] = []
    bad_lines: list[int] = []
    bad_values: list[Any] = []
    for index, value in enumerate(frame[column]):
        try:
            values.append(parse(value))
        except ValueError:
            values.append(None)
            bad_lines.append(index + 2)  # line 1 is the header
            bad_values.append(value)
    if bad_lines:
        errors.append(
            f"column {column!r} has {len(bad_lines)} unknown value(s) at CSV line(s) {bad_lines[:_SHOWN]}: "
            f"{bad_values[:_SHOWN]} (expected {expected})"
        )
    return values


def _choice(mapping: dict[str, str]) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if labels.is_missing(value):
            return None
        text = str(value).strip().upper()
        if text not in mapping:
            raise ValueError(value)
        return mapping[text]

    return parse


def _resolve_path(value: Any, base: Path) -> str | None:
    if labels.is_missing(value):
        return None
    path = os.path.expanduser(str(value).strip())
    return os.path.normpath(os.path.join(base, path))  # an absolute `path` wins in join


def manifest(
    csv_path: str | os.PathLike[str], *, source: str = "manifest", missing: MissingPolicy = "raise"
) -> pd.DataFrame:
    """Read a CSV that lists mammograms and their labels as a manifest.

    Parameters
    ----------
    csv_path
        CSV with an ``image_path`` column and at least one label column: ``density`` (1–4 or a–d) and/or
        ``pathology`` (benign / malignant, CBIS-DDSM words such as BENIGN_WITHOUT_CALLBACK, B / M, 0 / 1).
        Optional: ``patient_id``, ``laterality`` (L / R / LEFT / RIGHT), ``view`` (CC / MLO), ``source``,
        ``split`` (train / val / test). Column names are matched case-insensitively; other columns are kept
        as extra columns. Empty cells become NA.
    source
        Value of ``source`` for rows that do not give one.
    missing
        ``"raise"`` (default) or ``"skip"``: what to do with rows whose image file does not exist.

    Returns
    -------
    pandas.DataFrame
        The manifest (``schema.MANIFEST_COLUMNS`` + the CSV's extra columns). Relative image paths are
        resolved against the CSV's folder. When ``patient_id`` is missing (no column, or an empty cell), it
        is derived from the image file name without extension (``scans/P12_L_CC.png`` → ``P12_L_CC``), so
        each image then counts as its own patient in splits: add a ``patient_id`` column to keep the views
        of one woman together.

    Raises
    ------
    FileNotFoundError
        If ``csv_path`` does not exist.
    ManifestError
        If the file is not a readable CSV, lacks ``image_path`` or every label column, has unknown label,
        laterality, view or split values (the message gives the CSV line numbers), has empty image paths,
        or lists image files that do not exist (with ``missing="raise"``).
    """
    csv_path = Path(csv_path).expanduser()
    frame = _read_manifest_csv(csv_path)
    errors: list[str] = []
    base = csv_path.resolve().parent
    paths = [_resolve_path(value, base) for value in frame["image_path"]]
    empty = [index + 2 for index, path in enumerate(paths) if path is None]
    if empty:
        errors.append(f"column 'image_path' is empty at CSV line(s) {empty[:_SHOWN]}")
    records: dict[str, list[Any]] = {"image_path": paths, **_parsed_label_columns(frame, errors)}
    if errors:
        raise ManifestError(f"{csv_path.name}: " + "; ".join(errors))
    records.update(_identity_columns(frame, [str(path) for path in paths], source))
    extra = [column for column in frame.columns if column not in schema.MANIFEST_COLUMNS]
    for column in extra:
        records[column] = frame[column].tolist()
    result = schema.validate_manifest(schema.make_manifest(pd.DataFrame(records), extra=extra))
    return drop_or_raise_missing(result, missing, what=str(csv_path))


def _read_manifest_csv(csv_path: Path) -> pd.DataFrame:
    """The CSV as strings with canonical column names; it must have ``image_path`` and a label column."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest CSV not found: {csv_path}")
    try:
        raw = pd.read_csv(csv_path, dtype=str, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(f"cannot read {csv_path} as a CSV file: {error}") from error
    frame = _canonical_columns(raw)
    if "image_path" not in frame.columns:
        raise ManifestError(f"{csv_path.name} has no 'image_path' column; its columns are {list(frame.columns)}")
    if not any(column in frame.columns for column in LABEL_COLUMNS):
        raise ManifestError(
            f"{csv_path.name} has no label column: add 'density' (1-4 or a-d) and/or 'pathology' "
            f"(benign/malignant); its columns are {list(frame.columns)}"
        )
    return frame


def _parsed_label_columns(frame: pd.DataFrame, errors: list[str]) -> dict[str, list[Any]]:
    """The label, laterality, view and split columns the CSV has, parsed; bad values are added to ``errors``."""
    parsers: dict[str, tuple[Callable[[Any], Any], str]] = {
        "density": (labels.density_from_any, "1-4 or a-d"),
        "pathology": (labels.pathology_from_any, "benign/malignant, B/M or 0/1"),
        "laterality": (_choice(LATERALITY_WORDS), "L/R"),
        "view": (_choice({view: view for view in schema.VIEWS}), "CC/MLO"),
        "split": (_choice({split.upper(): split for split in schema.SPLITS}), "train/val/test"),
    }
    return {
        column: _parse_column(frame, column, parse, expected, errors)
        for column, (parse, expected) in parsers.items()
        if column in frame.columns
    }


def _identity_columns(frame: pd.DataFrame, paths: list[str], source: str) -> dict[str, list[Any]]:
    """``patient_id`` (from the image file name where missing) and ``source`` (``source`` where missing)."""
    given_ids = frame["patient_id"] if "patient_id" in frame.columns else pd.Series([None] * len(frame))
    given_sources = frame["source"] if "source" in frame.columns else pd.Series([None] * len(frame))
    return {
        "patient_id": [
            Path(path).stem if labels.is_missing(given) else str(given).strip()
            for given, path in zip(given_ids, paths, strict=True)
        ],
        "source": [source if labels.is_missing(value) else str(value).strip() for value in given_sources],
    }
