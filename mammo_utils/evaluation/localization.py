"""Does a Grad-CAM map point at the finding? Hit rate of the map's peak on the synthetic phantoms' known findings.

The synthetic manifest records each image's finding (``finding_y``, ``finding_x``, ``finding_radius``, in ORIGINAL
image pixels). :func:`finding_in_model` maps it onto the model-input grid with
:meth:`mammo_utils.imaging.standardize.Standardized.to_model_coordinates` (crop, left-right flip, resize, and the
vertical padding of the left-aligned, vertically centred content);
:meth:`~mammo_utils.imaging.standardize.Standardized.from_record` rebuilds that geometry from a standardization
record of the image cache (``crop_top``, ..., ``flipped``, ``scale``, ``content_height``, ``content_width``).

:func:`score_map` then says whether the map's peak lies within the finding's radius plus ``margin`` model pixels
(a *hit*), and which share of the map's mass falls in that disc (``mass_share``), next to the share of the breast
content the disc covers (``area_share``, what a map spread evenly over the breast would give). A Grad-CAM map of a
7 × 7 feature grid upsampled to 224 × 224 is coarse: its peak can only sit to within about half a cell (16 pixels)
of anything, hence the default margin, :func:`default_margin`: 1/14 of the input's side (16 pixels at 224).

:func:`gradcam_localization` does this for a batch and returns a :class:`Localization`: the per-image table and a
summary with the hit rate and its Wilson 95 % interval (:func:`wilson_interval`). No TensorFlow here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from mammo_utils.datasets.findings import circle_to_model
from mammo_utils.imaging.standardize import Standardized

__all__ = [
    "DEFAULT_MARGIN",
    "FINDING_COLUMNS",
    "FindingLocation",
    "Localization",
    "attach_findings",
    "default_margin",
    "finding_circles",
    "finding_in_model",
    "gradcam_localization",
    "localization_summary",
    "pointing_game",
    "score_map",
    "wilson_interval",
]

DEFAULT_MARGIN = 16.0  # model pixels: half a cell of a 7 x 7 Grad-CAM grid on a 224 x 224 input
_MARGIN_FRACTION = DEFAULT_MARGIN / 224
_FLAT = 0.01  # a map varying by less than 1 % of its maximum over the content has no peak (is "flat")
FINDING_COLUMNS: tuple[str, ...] = ("finding_y", "finding_x", "finding_radius")
_KEEP_COLUMNS = (
    "image_path",
    "patient_id",
    "laterality",
    "view",
    "case",
    "malignant",
    "p_malignant",
    "finding",
    "subtlety",
)
_FINDING_DETAILS = ("finding", "subtlety")  # the synthetic finding's kind and how visible it is (1-5)


@dataclass(frozen=True)
class FindingLocation:
    """A finding's centre and radius on the model-input grid (row ``y``, column ``x``, both in model pixels)."""

    y: float
    x: float
    radius: float


@dataclass(frozen=True)
class Localization:
    """The result of :func:`gradcam_localization`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per image with a finding: the kept identifying columns, the finding on the model grid
        (``finding_model_y``, ``finding_model_x``, ``finding_model_radius``), the map's peak (``peak_y``,
        ``peak_x``), ``peak_distance``, ``hit``, ``flat``, ``mass_share`` and ``area_share``.
    summary : dict
        See :func:`localization_summary`.
    """

    table: pd.DataFrame
    summary: dict[str, Any]

    def describe(self) -> str:
        """One line: hits out of images, the hit rate with its CI, and the median mass share vs the area share."""
        s = self.summary
        if not s["n"]:
            return f"no image with a finding to score ({s['n_skipped']} skipped)"
        flat = f"; {s['n_flat']} flat map(s) without a peak count as misses" if s["n_flat"] else ""
        return (
            f"map peak within the finding (radius + {s['margin']:.3g} px): {s['hits']} of {s['n']} images, "
            f"hit rate {s['hit_rate']:.2f} ({100 * s['level']:.0f} % Wilson CI {s['ci_low']:.2f}-{s['ci_high']:.2f}); "
            f"median share of the map's mass in that disc {s['median_mass_share']:.2f} vs "
            f"{s['median_area_share']:.2f} for a map spread evenly over the breast{flat}"
        )


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion ``successes / n`` at level ``1 - alpha``.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or ``n`` successes.
    Returns ``(nan, nan)`` when ``n == 0``.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(1.0 - alpha / 2.0))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def finding_in_model(standardized: Standardized, y: float, x: float, radius: float) -> FindingLocation:
    """Map a finding (centre ``y``, ``x`` and ``radius`` in ORIGINAL pixels) onto the model-input grid.

    Uses :func:`mammo_utils.datasets.findings.circle_to_model`: the radius is scaled by the mean of the vertical and
    horizontal resize factors (the resize keeps the aspect, so the two agree to within a pixel's rounding).
    """
    row, col, radius_model = circle_to_model(standardized, y, x, radius)
    return FindingLocation(float(row), float(col), float(radius_model))


def default_margin(image_shape: tuple[int, ...]) -> float:
    """The default hit margin for maps of ``image_shape``: 1/14 of the longer side (:data:`DEFAULT_MARGIN` at 224)."""
    return float(max(image_shape[:2])) * _MARGIN_FRACTION


def attach_findings(rows: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (e.g. a predictions table) with the findings of ``manifest`` joined on ``image_path``.

    Adds :data:`FINDING_COLUMNS` and, when ``manifest`` has them, the finding's kind and ``subtlety``.

    Rows whose image has no finding, or a ``manifest`` without the finding columns (a real data set), give NaN
    findings, which :func:`gradcam_localization` skips. Row order and index of ``rows`` are kept.
    """
    present = [c for c in (*FINDING_COLUMNS, *_FINDING_DETAILS) if c in manifest.columns]
    findings = manifest[["image_path", *present]].drop_duplicates("image_path")
    joined = rows.drop(columns=[c for c in present if c in rows.columns]).merge(
        findings, on="image_path", how="left", validate="many_to_one"
    )
    for column in FINDING_COLUMNS:
        joined[column] = pd.to_numeric(joined[column], errors="coerce") if column in joined else math.nan
    joined.index = rows.index
    return joined


def finding_circles(records: pd.DataFrame, image_shape: tuple[int, int]) -> list[tuple[float, float, float] | None]:
    """One ``(row, column, radius)`` on the model grid per record (None without a finding), for drawing.

    ``records`` as for :func:`gradcam_localization`; the result goes to the ``circles`` argument of
    :func:`mammo_utils.inference.overlays.gradcam_gallery`.
    """
    circles: list[tuple[float, float, float] | None] = []
    for raw in records.to_dict("records"):
        record = {str(k): v for k, v in raw.items()}
        if not _has_finding(record):
            circles.append(None)
            continue
        spot = finding_in_model(
            Standardized.from_record(record, image_shape),
            float(record["finding_y"]),
            float(record["finding_x"]),
            float(record["finding_radius"]),
        )
        circles.append((spot.y, spot.x, spot.radius))
    return circles


def _content_mask(shape: tuple[int, int], content_shape: tuple[int, int] | None) -> np.ndarray:
    """True on the breast content (left-aligned, vertically centred); everywhere when ``content_shape`` is None."""
    mask = np.zeros(shape, dtype=bool)
    if content_shape is None:
        mask[:] = True
        return mask
    height, width = min(int(content_shape[0]), shape[0]), min(int(content_shape[1]), shape[1])
    top = (shape[0] - height) // 2
    mask[top : top + height, :width] = True
    return mask


def score_map(
    cam: np.ndarray,
    finding: FindingLocation,
    margin: float = DEFAULT_MARGIN,
    content_shape: tuple[int, int] | None = None,
) -> dict[str, float | bool]:
    """Score one map against one finding on the same (model-input) grid.

    Parameters
    ----------
    cam : np.ndarray
        ``(H, W)`` non-negative map (e.g. a Grad-CAM map in [0, 1]).
    finding : FindingLocation
        The finding on the same grid (see :func:`finding_in_model`).
    margin : float
        Model pixels added to the finding's radius.
    content_shape : tuple of int, optional
        ``(height, width)`` of the breast content, for ``area_share``; None: the whole grid.

    Returns
    -------
    dict
        ``peak_y``, ``peak_x``, ``peak_distance`` (model pixels), ``hit`` (peak within radius + margin),
        ``flat`` (the map is all zero or varies by less than 1 % of its maximum over the content: it has no
        peak, so the peak columns are NaN and ``hit`` is False), ``mass_share`` (share of the map's mass inside
        the disc; NaN for an all-zero map) and ``area_share`` (share of the content inside the disc).
    """
    values = np.nan_to_num(np.asarray(cam, dtype=np.float64))
    if values.ndim != 2:
        raise ValueError(f"cam must be a 2-D (H, W) map, got shape {np.shape(cam)}")
    values = np.clip(values, 0.0, None)
    rows, cols = np.indices(values.shape)
    inside = np.hypot(rows - finding.y, cols - finding.x) <= finding.radius + margin
    content = _content_mask(values.shape, content_shape)
    area_share = float((inside & content).sum() / max(int(content.sum()), 1))
    total = float(values.sum())
    mass_share = float(values[inside].sum() / total) if total > 0.0 else math.nan
    flat = total <= 0.0 or float(np.ptp(values[content])) <= _FLAT * float(values.max())
    if flat:
        nan = math.nan
        return {"peak_y": nan, "peak_x": nan, "peak_distance": nan, "hit": False, "flat": True} | {
            "mass_share": mass_share,
            "area_share": area_share,
        }
    peak_y, peak_x = np.unravel_index(int(np.argmax(values)), values.shape)
    distance = float(np.hypot(peak_y - finding.y, peak_x - finding.x))
    return {
        "peak_y": float(peak_y),
        "peak_x": float(peak_x),
        "peak_distance": distance,
        "hit": bool(distance <= finding.radius + margin),
        "flat": False,
        "mass_share": mass_share,
        "area_share": area_share,
    }


def _has_finding(record: Mapping[str, Any]) -> bool:
    """True when the record's finding centre and radius are all given and the radius is positive."""
    values = [record.get(c) for c in FINDING_COLUMNS]
    if any(v is None or pd.isna(v) for v in values):
        return False
    return float(record["finding_radius"]) > 0


def _score_record(
    cam: np.ndarray, record: Mapping[str, Any], image_shape: tuple[int, int], margin: float
) -> dict[str, Any]:
    """One table row: the record's kept columns, its finding on the model grid and the map's score."""
    standardized = Standardized.from_record(record, image_shape)
    finding = finding_in_model(
        standardized, float(record["finding_y"]), float(record["finding_x"]), float(record["finding_radius"])
    )
    row = {c: record[c] for c in _KEEP_COLUMNS if c in record}
    row |= {"finding_model_y": finding.y, "finding_model_x": finding.x, "finding_model_radius": finding.radius}
    return row | score_map(cam, finding, margin, standardized.content_shape)


def localization_summary(
    table: pd.DataFrame, alpha: float = 0.05, margin: float = DEFAULT_MARGIN, n_skipped: int = 0
) -> dict[str, Any]:
    """Hit rate of a :func:`gradcam_localization` table with its Wilson ``1 - alpha`` interval.

    Returns
    -------
    dict
        ``n`` (images scored), ``hits``, ``hit_rate``, ``ci_low``, ``ci_high``, ``level``, ``method``
        (``"wilson"``), ``margin``, ``median_mass_share``, ``median_area_share``, ``n_flat`` (maps without a
        peak, counted as misses) and ``n_skipped`` (images without a finding); NaN rates when ``n == 0``.
    """
    n = len(table)
    hits = int(table["hit"].astype(bool).sum()) if n else 0
    low, high = wilson_interval(hits, n, alpha)
    return {
        "n": n,
        "hits": hits,
        "hit_rate": hits / n if n else math.nan,
        "ci_low": low,
        "ci_high": high,
        "level": 1 - alpha,
        "method": "wilson",
        "margin": float(margin),
        "median_mass_share": float(table["mass_share"].median()) if n else math.nan,
        "median_area_share": float(table["area_share"].median()) if n else math.nan,
        "n_flat": int(table["flat"].astype(bool).sum()) if n else 0,
        "n_skipped": int(n_skipped),
    }


def gradcam_localization(
    cams: Sequence[np.ndarray] | np.ndarray,
    records: pd.DataFrame,
    margin: float | None = None,
    alpha: float = 0.05,
) -> Localization:
    """Score Grad-CAM maps against the findings of their images: per-image table and hit-rate summary.

    Parameters
    ----------
    cams : sequence of np.ndarray
        One ``(H, W)`` map per row of ``records``, on the model-input grid (e.g. ``GradCAM(...).cams[head]``).
    records : pandas.DataFrame
        One row per map, in the same order: the finding (:data:`FINDING_COLUMNS`, original pixels) and the
        standardization record (``crop_*``, ``flipped``, ``content_height``, ``content_width``), e.g. the image
        cache's ``standardization(rows)`` of manifest rows that carry the synthetic findings. Rows without a
        finding (missing values or radius 0) are skipped and counted.
    margin : float, optional
        Model pixels added to each finding's radius; default :func:`default_margin` of the maps' shape.
    alpha : float
        1 - the level of the hit rate's Wilson interval.

    Returns
    -------
    Localization
    """
    if len(cams) != len(records):
        raise ValueError(f"need one map per record; got {len(cams)} maps and {len(records)} records")
    missing = [c for c in FINDING_COLUMNS if c not in records.columns]
    if missing:
        raise KeyError(f"records lack {missing}: use manifest rows with the synthetic findings (datasets.synthetic)")
    if margin is None:
        margin = default_margin(np.shape(cams[0])) if len(cams) else DEFAULT_MARGIN
    rows, skipped = [], 0
    for cam, raw in zip(cams, records.to_dict("records"), strict=True):
        record = {str(k): v for k, v in raw.items()}
        if not _has_finding(record):
            skipped += 1
            continue
        values = np.asarray(cam)
        rows.append(_score_record(values, record, (values.shape[0], values.shape[1]), margin))
    table = pd.DataFrame(rows)
    return Localization(table, localization_summary(table, alpha, margin, skipped))


def pointing_game(maps: Sequence[np.ndarray] | np.ndarray, records: pd.DataFrame, alpha: float = 0.05) -> Localization:
    """The pointing game: a map scores when its peak lies within the finding's radius (no margin).

    Same arguments as :func:`gradcam_localization` (which allows a margin); used to compare lesion maps and
    Grad-CAM maps on equal terms.
    """
    return gradcam_localization(maps, records, margin=0.0, alpha=alpha)
