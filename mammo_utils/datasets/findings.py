"""The findings table: one row per finding (lesion), linked to its image by the manifest's ``image_path``.

An image has zero, one or several findings. The columns (:data:`FINDINGS_COLUMNS`) and why: ``ARCHITECTURE.md``,
section "The manifest and findings tables". The geometry is in ORIGINAL image pixels, as floats (NaN when unknown):

- the centre ``(centre_y, centre_x)`` uses the convention of
  :meth:`~mammo_utils.imaging.standardize.Standardized.to_model_coordinates`: ``(y, x)`` is the centre of pixel
  ``(y, x)``, as in the synthetic manifest's ``finding_y`` / ``finding_x``; ``radius`` is in pixels;
- the box ``(box_top, box_left, box_bottom, box_right)`` is bottom/right exclusive, the convention of a crop box: the
  integer box ``(t, l, b, r)`` holds exactly the pixels ``t .. b - 1`` x ``l .. r - 1`` (so the bounding box of an
  ROI mask is exact); in centre coordinates it spans ``[t - 0.5, b - 0.5)``.

:func:`make_findings` completes what can be derived. A finding given by centre and radius gets the box
``centre ± radius`` (the disc's extent: ``box_top = centre_y - radius + 0.5``, ``box_bottom = centre_y + radius +
0.5`` ...). A finding given by a box gets the box's centre and, as radius, the distance from the centre to the box's
farthest corner (half the diagonal for the box centre): the smallest circle about the centre that holds the box.
:func:`findings_in_model` maps the findings through each image's standardization (crop, flip, resize, padding) onto
the model-input grid, from the image cache's records (``training.cache.CachedImages.standardization()``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils import labels
from mammo_utils.imaging.standardize import STANDARDIZATION_COLUMNS, Standardized

__all__ = [
    "BOX_COLUMNS",
    "FINDINGS_COLUMNS",
    "KINDS",
    "MODEL_COLUMNS",
    "ORIGINS",
    "FindingsError",
    "box_to_model",
    "circle_to_model",
    "empty_findings",
    "findings_in_model",
    "make_findings",
    "read_findings",
    "findings_from_synthetic",
    "validate_findings",
    "write_findings",
]

BOX_COLUMNS: tuple[str, ...] = ("box_top", "box_left", "box_bottom", "box_right")
_GEOMETRY = ("centre_y", "centre_x", "radius", *BOX_COLUMNS)
FINDINGS_COLUMNS: tuple[str, ...] = ("image_path", "finding_id", "kind", "pathology", *_GEOMETRY, "origin", "detail")
KINDS: tuple[str, ...] = ("mass", "calcification", "other")
ORIGINS: tuple[str, ...] = ("generator", "roi_mask", "expert_box", "expert_circle")
# What findings_in_model adds: the finding on the model-input grid (model pixels, same conventions as above).
MODEL_COLUMNS: tuple[str, ...] = ("model_y", "model_x", "model_radius", *(f"model_{c}" for c in BOX_COLUMNS))
_TEXT = ("image_path", "kind", "pathology", "origin", "detail")
_SYNTHETIC = ("image_path", "pathology", "finding", "finding_y", "finding_x", "finding_radius")


class FindingsError(ValueError):
    """A findings table does not follow the schema; the message says which column and rows."""


def make_findings(
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Any] | pd.DataFrame, extra: Iterable[str] = ()
) -> pd.DataFrame:
    """Build a findings DataFrame with the schema's columns and dtypes, completing the derivable geometry.

    Parameters
    ----------
    rows
        Records (dicts), a dict of columns, or a DataFrame holding at least ``image_path``; missing schema columns
        become NA. A missing ``finding_id`` becomes the row's position among its image's rows.
    extra
        Extra columns to keep after the schema's.

    Returns
    -------
    pandas.DataFrame
        Columns ``FINDINGS_COLUMNS + extra``: text as ``object`` (``str`` or ``pd.NA``; ``kind``, ``origin`` lower
        case, ``pathology`` mapped with :func:`mammo_utils.labels.pathology_from_any`), ``finding_id`` as int64,
        geometry as float64 (NaN when unknown), completed as the module docstring says. Invalid values are kept for
        :func:`validate_findings` to report.

    Raises
    ------
    FindingsError
        If a geometry column or ``finding_id`` holds something that is not a number.
    """
    if isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    elif isinstance(rows, Mapping):
        frame = pd.DataFrame(dict(rows))
    else:
        frame = pd.DataFrame(list(rows))
    extra = [column for column in extra if column not in FINDINGS_COLUMNS]
    for column in (*FINDINGS_COLUMNS, *extra):
        if column not in frame.columns:
            frame[column] = pd.NA
    frame = frame[[*FINDINGS_COLUMNS, *extra]].reset_index(drop=True)
    cleaners = {"image_path": _text, "kind": _word, "pathology": _pathology, "origin": _word, "detail": _text}
    for column, clean in cleaners.items():
        frame[column] = pd.Series([clean(v) for v in frame[column]], index=frame.index, dtype=object)
    for column in _GEOMETRY:
        frame[column] = _numbers(frame[column], column)
    frame["finding_id"] = _finding_ids(frame)
    return _complete_geometry(frame)


def empty_findings() -> pd.DataFrame:
    """A findings table without rows (the schema's columns and dtypes): the findings of a set that records none."""
    return make_findings([])


def _text(value: Any) -> Any:
    """``str(value)``, or pd.NA for a missing value."""
    return pd.NA if labels.is_missing(value) else str(value)


def _word(value: Any) -> Any:
    """Lower-case, stripped text, or pd.NA."""
    return pd.NA if labels.is_missing(value) else str(value).strip().lower()


def _pathology(value: Any) -> Any:
    """``benign`` / ``malignant`` / pd.NA; an unknown value is kept as is for :func:`validate_findings` to report."""
    try:
        return labels.pathology_from_any(value) or pd.NA
    except ValueError:
        return value


def _numbers(values: pd.Series, column: str) -> pd.Series:
    """``values`` as float64 (NaN for missing), or a FindingsError naming the rows that are not numbers."""
    parsed = pd.to_numeric(values.map(lambda v: np.nan if labels.is_missing(v) else v), errors="coerce")
    bad = values.index[parsed.isna() & ~values.map(labels.is_missing).astype(bool)]
    if len(bad):
        shown = values.loc[bad[:5]].tolist()
        raise FindingsError(f"column {column!r} must hold numbers (pixels) or be empty; rows {list(bad[:5])}: {shown}")
    return parsed.astype(np.float64)


def _finding_ids(frame: pd.DataFrame) -> pd.Series:
    """The ``finding_id`` column as int64; missing ids become the row's position among its image's rows."""
    ids = _numbers(frame["finding_id"], "finding_id")
    position = frame.groupby("image_path", sort=False, dropna=False).cumcount().astype(np.float64)
    ids = ids.fillna(position)
    bad = frame.index[ids != np.round(ids)]
    if len(bad):
        raise FindingsError(f"column 'finding_id' must hold whole numbers; rows {list(bad[:5])} do not")
    return ids.astype(np.int64)


def _complete_geometry(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill the box from centre and radius, and centre and radius from the box (see the module docstring)."""
    box = frame[list(BOX_COLUMNS)]
    circle = frame[["centre_y", "centre_x", "radius"]].notna().all(axis=1)
    fill_box = circle & box.isna().all(axis=1)
    y, x, r = frame["centre_y"] + 0.5, frame["centre_x"] + 0.5, frame["radius"]
    for column, values in zip(BOX_COLUMNS, (y - r, x - r, y + r, x + r), strict=True):
        frame.loc[fill_box, column] = values[fill_box]
    has_box = frame[list(BOX_COLUMNS)].notna().all(axis=1)
    fill_centre = has_box & frame[["centre_y", "centre_x"]].isna().all(axis=1)
    frame.loc[fill_centre, "centre_y"] = ((frame["box_top"] + frame["box_bottom"]) / 2 - 0.5)[fill_centre]
    frame.loc[fill_centre, "centre_x"] = ((frame["box_left"] + frame["box_right"]) / 2 - 0.5)[fill_centre]
    fill_radius = has_box & frame["radius"].isna() & frame[["centre_y", "centre_x"]].notna().all(axis=1)
    y, x = frame["centre_y"] + 0.5, frame["centre_x"] + 0.5  # the centre as an edge coordinate, like the box
    reach_y = np.maximum((y - frame["box_top"]).abs(), (frame["box_bottom"] - y).abs())
    reach_x = np.maximum((x - frame["box_left"]).abs(), (frame["box_right"] - x).abs())
    frame.loc[fill_radius, "radius"] = np.hypot(reach_y, reach_x)[fill_radius]
    return frame


def validate_findings(frame: pd.DataFrame, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Check a findings table against the schema (and, given, its manifest) and return it unchanged.

    Parameters
    ----------
    frame : pandas.DataFrame
        A findings table (e.g. :func:`make_findings` output); extra columns are allowed.
    manifest : pandas.DataFrame, optional
        The manifest the findings belong to: every ``image_path`` must be one of its images.

    Returns
    -------
    pandas.DataFrame
        ``frame``.

    Raises
    ------
    FindingsError
        Naming the first column that breaks the schema and up to five offending rows.
    """
    missing = [column for column in FINDINGS_COLUMNS if column not in frame.columns]
    if missing:
        raise FindingsError(f"findings table is missing column(s) {missing}; expected {list(FINDINGS_COLUMNS)}")
    _check_values(frame)
    _check_ids(frame)
    _check_geometry(frame)
    if manifest is not None:
        known = set(manifest["image_path"])
        _fail_rows(frame, "image_path", ~frame["image_path"].isin(known), "names images that are not in the manifest")
    return frame


def _fail_rows(frame: pd.DataFrame, column: str, bad: pd.Series | np.ndarray, problem: str) -> None:
    """Raise a FindingsError naming ``column``, the first five rows where ``bad`` is True and their values."""
    rows = frame.index[np.asarray(bad, dtype=bool)]
    if len(rows):
        shown = frame.loc[rows[:5], column].tolist()
        raise FindingsError(f"column {column!r} {problem}: rows {list(rows[:5])}, values {shown}")


def _check_values(frame: pd.DataFrame) -> None:
    """The text columns hold allowed values."""
    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "image_path": (lambda v: isinstance(v, str) and v != "", "must be a non-empty path"),
        "kind": (lambda v: v in KINDS, f"must be one of {list(KINDS)}"),
        "pathology": (
            lambda v: labels.is_missing(v) or v in labels.PATHOLOGY_CLASSES,
            "must be benign, malignant or NA",
        ),
        "origin": (lambda v: v in ORIGINS, f"must be one of {list(ORIGINS)}"),
        "detail": (lambda v: labels.is_missing(v) or isinstance(v, str), "must be text or NA"),
    }
    for column, (ok, problem) in checks.items():
        _fail_rows(frame, column, ~frame[column].map(ok).astype(bool), problem)


def _check_ids(frame: pd.DataFrame) -> None:
    """``finding_id`` is a non-negative integer, unique within each image."""
    if not pd.api.types.is_integer_dtype(frame["finding_id"]):
        raise FindingsError(f"column 'finding_id' must be integers, got dtype {frame['finding_id'].dtype}")
    _fail_rows(frame, "finding_id", frame["finding_id"] < 0, "must be 0 or more")
    _fail_rows(frame, "finding_id", frame.duplicated(["image_path", "finding_id"]), "repeats an id of the same image")


def _check_geometry(frame: pd.DataFrame) -> None:
    """Numbers, finite or NaN; radius not negative; centre and box complete or absent; boxes not empty."""
    for column in _GEOMETRY:
        if not pd.api.types.is_float_dtype(frame[column]):
            raise FindingsError(f"column {column!r} must be float pixels, got dtype {frame[column].dtype}")
        _fail_rows(frame, column, np.isinf(frame[column]), "must be finite or NaN")
    _fail_rows(frame, "radius", frame["radius"] < 0, "must not be negative")
    centre = frame[["centre_y", "centre_x"]].notna().sum(axis=1)
    _fail_rows(frame, "centre_x", centre == 1, "needs centre_y and centre_x together (or neither)")
    box = frame[list(BOX_COLUMNS)].notna().sum(axis=1)
    _fail_rows(frame, "box_top", box.between(1, 3), "needs all four box columns (or none)")
    _fail_rows(frame, "box_bottom", frame["box_bottom"] <= frame["box_top"], "must be below box_top")
    _fail_rows(frame, "box_right", frame["box_right"] <= frame["box_left"], "must be right of box_left")


def findings_from_synthetic(manifest: pd.DataFrame) -> pd.DataFrame:
    """The findings table of the synthetic data set, from its manifest's ground-truth columns.

    Each row with a finding (``finding`` kind and ``finding_y``, ``finding_x``, ``finding_radius``, see
    :mod:`mammo_utils.datasets.synthetic`) gives one finding: kinds ending in ``_mass`` are masses, kinds ending in
    ``_calcifications`` calcifications; ``origin`` is ``generator``, ``detail`` the synthetic kind, ``pathology`` the
    manifest's recorded (noisy) label. Rows without a finding are skipped.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A synthetic manifest (:func:`~mammo_utils.datasets.synthetic.generate_synthetic`), or rows of one.

    Returns
    -------
    pandas.DataFrame
        A validated findings table, in the manifest's row order.

    Raises
    ------
    FindingsError
        If ``manifest`` lacks the synthetic finding columns.
    """
    missing = [column for column in _SYNTHETIC if column not in manifest.columns]
    if missing:
        raise FindingsError(f"not a synthetic manifest: it lacks {missing} (see mammo_utils.datasets.synthetic)")
    rows = manifest[list(_SYNTHETIC)]
    rows = rows[~rows["finding"].map(labels.is_missing).astype(bool) & rows[list(_SYNTHETIC[3:])].notna().all(axis=1)]
    detail = rows["finding"].astype(str).str.strip()
    kind = np.select(
        [detail.str.endswith("_mass"), detail.str.endswith("_calcifications")], ["mass", "calcification"], "other"
    )
    findings = make_findings(
        {
            "image_path": rows["image_path"].to_numpy(dtype=object),
            "kind": kind,
            "pathology": rows["pathology"].to_numpy(dtype=object),
            "centre_y": rows["finding_y"].to_numpy(dtype=np.float64),
            "centre_x": rows["finding_x"].to_numpy(dtype=np.float64),
            "radius": rows["finding_radius"].to_numpy(dtype=np.float64),
            "origin": "generator",
            "detail": detail.to_numpy(dtype=object),
        }
    )
    return validate_findings(findings, manifest)


def write_findings(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate ``frame`` and write it as CSV, atomically (a temporary file next to ``path``, then ``os.replace``).

    Floats are written at full precision, so :func:`read_findings` gives the same numbers back.

    Returns
    -------
    Path
        ``path``.
    """
    validate_findings(frame)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        frame.to_csv(tmp, index=False, lineterminator="\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_findings(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a findings CSV written by :func:`write_findings` (or by hand) back into a validated findings table.

    Only empty cells are missing values (a ``detail`` of "NA" stays text); extra columns are kept.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    FindingsError
        If the file does not follow the schema.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no findings table at {source}; write one with write_findings()")
    raw = pd.read_csv(source, dtype=dict.fromkeys(_TEXT, str), keep_default_na=False, na_values=[""])
    extra = [column for column in raw.columns if column not in FINDINGS_COLUMNS]
    return validate_findings(make_findings(raw, extra=extra))


def circle_to_model(
    standardized: Standardized, y: float | np.ndarray, x: float | np.ndarray, radius: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map circles (centre ``y``, ``x`` and ``radius`` in ORIGINAL pixels) onto the model-input grid.

    The centre goes through :meth:`~mammo_utils.imaging.standardize.Standardized.to_model_coordinates`; the radius is
    scaled by the mean of the vertical and horizontal resize factors (the resize keeps the aspect, so the two agree to
    within a pixel's rounding).

    Returns
    -------
    tuple of np.ndarray
        ``(row, column, radius)`` in model pixels (0-d arrays for scalar input; NaN stays NaN).
    """
    row, col = standardized.to_model_coordinates(y, x)
    rows, cols = standardized.to_model_coordinates(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    scale = (float(np.ptp(rows)) + float(np.ptp(cols))) / 2.0
    return np.asarray(row), np.asarray(col), np.asarray(radius, dtype=np.float64) * scale


def box_to_model(
    standardized: Standardized,
    top: float | np.ndarray,
    left: float | np.ndarray,
    bottom: float | np.ndarray,
    right: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Map boxes (ORIGINAL pixels, bottom/right exclusive) onto the model-input grid, in the same convention.

    The box's edges go through the standardization (an edge ``e`` is the centre coordinate ``e - 0.5``); a flip
    swaps left and right, so the result always has ``left < right``.

    Returns
    -------
    tuple of np.ndarray
        ``(top, left, bottom, right)`` in model pixels, bottom/right exclusive (NaN stays NaN).
    """
    top_m, left_m = standardized.to_model_coordinates(np.asarray(top) - 0.5, np.asarray(left) - 0.5)
    bottom_m, right_m = standardized.to_model_coordinates(np.asarray(bottom) - 0.5, np.asarray(right) - 0.5)
    left_m, right_m = np.asarray(left_m) + 0.5, np.asarray(right_m) + 0.5
    top_m, bottom_m = np.asarray(top_m) + 0.5, np.asarray(bottom_m) + 0.5
    return top_m, np.minimum(left_m, right_m), bottom_m, np.maximum(left_m, right_m)


def findings_in_model(findings: pd.DataFrame, records: pd.DataFrame, image_shape: tuple[int, ...]) -> pd.DataFrame:
    """The findings with their location on the model-input grid (:data:`MODEL_COLUMNS`, model pixels).

    Parameters
    ----------
    findings : pandas.DataFrame
        A findings table (original pixels).
    records : pandas.DataFrame
        Standardization records with ``image_path`` and
        :data:`~mammo_utils.imaging.standardize.STANDARDIZATION_COLUMNS`, e.g.
        ``mammo_utils.training.cache.CachedImages.standardization()``; rows with missing values (images that are not
        cached) count as absent.
    image_shape : tuple of int
        ``(height, width)`` of the model input (further axes are ignored).

    Returns
    -------
    pandas.DataFrame
        ``findings`` (all its columns) plus :data:`MODEL_COLUMNS`; findings whose image has no record are dropped,
        the index is reset. A finding without a centre or box has NaN there.

    Raises
    ------
    KeyError
        If ``records`` lacks ``image_path`` or a standardization column.
    """
    missing = [c for c in ("image_path", *STANDARDIZATION_COLUMNS) if c not in records.columns]
    if missing:
        raise KeyError(f"the standardization records lack {missing}; use the image cache's standardization()")
    usable = records[records["image_path"].isin(set(findings["image_path"]))]
    usable = usable.dropna(subset=list(STANDARDIZATION_COLUMNS)).drop_duplicates("image_path")
    geometry: dict[str, Standardized] = {}
    for raw in usable.to_dict("records"):
        record = {str(key): value for key, value in raw.items()}
        geometry[str(record["image_path"])] = Standardized.from_record(record, image_shape)
    kept = findings[findings["image_path"].isin(geometry.keys())].reset_index(drop=True)
    out = {column: np.full(len(kept), np.nan) for column in MODEL_COLUMNS}
    for path, index in kept.groupby("image_path", sort=False).indices.items():
        rows = kept.iloc[index]
        std = geometry[str(path)]
        circle = circle_to_model(
            std, rows["centre_y"].to_numpy(), rows["centre_x"].to_numpy(), rows["radius"].to_numpy()
        )
        box = box_to_model(std, *(rows[c].to_numpy() for c in BOX_COLUMNS))
        for column, values in zip(MODEL_COLUMNS, (*circle, *box), strict=True):
            out[column][index] = values
    return kept.assign(**out)
