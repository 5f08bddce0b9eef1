"""The manifest schema that every dataset loader returns.

Why these columns and values: ``ARCHITECTURE.md``, section "The manifest and findings tables".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from mammo_utils import labels

MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_path",
    "patient_id",
    "laterality",
    "view",
    "density",
    "pathology",
    "source",
    "split",
)
LATERALITIES = ("L", "R")
VIEWS = ("CC", "MLO")
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest does not follow the schema; the message says which column and rows."""


def _clean_choice(value: Any, choices: Iterable[str]) -> Any:
    if labels.is_missing(value):
        return pd.NA
    text = str(value).strip().upper()
    for choice in choices:
        if text == choice.upper():
            return choice
    return value  # left as is so validate_manifest can report it


def make_manifest(
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Any] | pd.DataFrame, extra: Iterable[str] = ()
) -> pd.DataFrame:
    """Build a manifest DataFrame with the schema's columns and dtypes.

    Parameters
    ----------
    rows
        Records (dicts), a dict of columns, or a DataFrame holding at least ``image_path``; missing schema
        columns become NA.
    extra
        Extra columns to keep after the schema's (e.g. ``background`` for mini-MIAS).

    Returns
    -------
    pandas.DataFrame
        Columns ``MANIFEST_COLUMNS + extra`` with dtypes: strings as ``object`` holding ``str`` or ``pd.NA``,
        ``density`` as nullable ``Int64``.
    """
    if isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    elif isinstance(rows, Mapping):
        frame = pd.DataFrame(dict(rows))  # a dict of columns
    else:
        frame = pd.DataFrame(list(rows))
    extra = [column for column in extra if column not in MANIFEST_COLUMNS]
    for column in (*MANIFEST_COLUMNS, *extra):
        if column not in frame.columns:
            frame[column] = pd.NA
    frame = frame[[*MANIFEST_COLUMNS, *extra]].reset_index(drop=True)
    frame["image_path"] = _object_column(frame["image_path"], str)
    frame["patient_id"] = _object_column(frame["patient_id"], _text)
    frame["laterality"] = _object_column(frame["laterality"], lambda v: _clean_choice(v, LATERALITIES))
    frame["view"] = _object_column(frame["view"], lambda v: _clean_choice(v, VIEWS))
    frame["density"] = pd.array([labels.density_from_any(v) for v in frame["density"]], dtype="Int64")
    frame["pathology"] = _object_column(frame["pathology"], lambda v: labels.pathology_from_any(v) or pd.NA)
    frame["source"] = _object_column(frame["source"], _text)
    frame["split"] = _object_column(frame["split"], lambda v: _clean_choice(v, SPLITS))
    return frame


def _object_column(values: pd.Series, clean: Callable[[Any], Any]) -> pd.Series:
    """``clean`` applied to every value, as an ``object`` column.

    Built from a list with ``dtype=object``: pandas >= 3 would otherwise infer a string dtype and turn pd.NA into NaN.
    """
    return pd.Series([clean(value) for value in values], index=values.index, dtype=object)


def _text(value: Any) -> Any:
    """``str(value)``, or pd.NA for a missing value."""
    return pd.NA if labels.is_missing(value) else str(value)


def validate_manifest(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a manifest against the schema and return it unchanged.

    Raises
    ------
    ManifestError
        Naming the first column that breaks the schema and up to five offending rows.
    """
    missing = [column for column in MANIFEST_COLUMNS if column not in frame.columns]
    if missing:
        raise ManifestError(f"manifest is missing column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    checks = {
        "image_path": lambda v: isinstance(v, str) and v != "",
        "laterality": lambda v: v is pd.NA or v in LATERALITIES,
        "view": lambda v: v is pd.NA or v in VIEWS,
        "pathology": lambda v: v is pd.NA or v in labels.PATHOLOGY_CLASSES,
        "split": lambda v: v is pd.NA or v in SPLITS,
    }
    for column, ok in checks.items():
        bad = frame.index[~frame[column].map(ok).astype(bool)]
        if len(bad):
            shown = frame.loc[bad[:5], column].tolist()
            raise ManifestError(f"column {column!r} has invalid values in rows {list(bad[:5])}: {shown}")
    density = pd.to_numeric(frame["density"], errors="coerce")
    bad = frame.index[density.notna() & ~density.isin(labels.DENSITY_CLASSES)]
    if len(bad):
        raise ManifestError(f"column 'density' must be 1-4 or NA; rows {list(bad[:5])} are not")
    return frame
