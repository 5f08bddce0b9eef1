"""The lesion map's top regions: where a lesion model's malignancy score comes from, in model and original pixels.

A lesion model (:mod:`mammo_utils.models.lesion`) gives one malignant probability per cell of a grid at 1/16
of its input. :func:`top_regions` picks the highest cells one after another, each time suppressing the cells
next to the one just picked (non-maximum suppression on the grid), and reports each region's probability and
box: on the model input (the cell) and in the ORIGINAL image's pixels, through
:meth:`mammo_utils.imaging.standardize.Standardized.to_original_coordinates`. :func:`upsample_grid` turns the grid
into a map on the model-input grid for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from skimage.transform import resize

if TYPE_CHECKING:  # pragma: no cover
    from mammo_utils.imaging.standardize import Standardized

__all__ = ["DEFAULT_MIN_PROBABILITY", "LesionRegion", "top_regions", "upsample_grid"]

DEFAULT_MIN_PROBABILITY = 0.1  # cells below this are not worth outlining


@dataclass(frozen=True)
class LesionRegion:
    """One region of a lesion map.

    Attributes
    ----------
    probability : float
        The cell's malignant probability (uncalibrated, as the model gives it).
    box_model : tuple of float
        ``(top, left, bottom, right)`` on the model input (breast on the left), exclusive bottom/right.
    box_original : tuple of float
        The same box in the original image's pixels (as read, not flipped), clipped to the image.
    """

    probability: float
    box_model: tuple[float, float, float, float]
    box_original: tuple[float, float, float, float]

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (boxes rounded to 0.1 pixel)."""
        return {
            "probability": round(float(self.probability), 6),
            "box_model": [round(float(v), 1) for v in self.box_model],
            "box_original": [round(float(v), 1) for v in self.box_original],
        }


def upsample_grid(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A lesion grid ``(h, w)`` resized bilinearly to ``shape`` (the model input), values kept in [0, 1]."""
    out = resize(np.asarray(grid, dtype=np.float32), shape, order=1, mode="edge", anti_aliasing=False)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _content_cells(grid_shape: tuple[int, int], std: Standardized) -> np.ndarray:
    """True for the cells whose centre lies on the breast content (not the padding)."""
    height, width = std.image.shape[:2]
    cell_h, cell_w = height / grid_shape[0], width / grid_shape[1]
    top = (height - std.content_shape[0]) // 2
    rows = (np.arange(grid_shape[0]) + 0.5) * cell_h
    cols = (np.arange(grid_shape[1]) + 0.5) * cell_w
    inside_rows = (rows >= top) & (rows < top + std.content_shape[0])
    inside_cols = cols < std.content_shape[1]
    return inside_rows[:, None] & inside_cols[None, :]


def _original_box(std: Standardized, box: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple:
    top, left, bottom, right = box
    rows, cols = std.to_original_coordinates(np.array([top, bottom]) - 0.5, np.array([left, right]) - 0.5)
    rows, cols = np.sort(np.asarray(rows) + 0.5), np.sort(np.asarray(cols) + 0.5)
    return (
        float(np.clip(rows[0], 0, shape[0])),
        float(np.clip(cols[0], 0, shape[1])),
        float(np.clip(rows[1], 0, shape[0])),
        float(np.clip(cols[1], 0, shape[1])),
    )


def top_regions(
    grid: np.ndarray,
    std: Standardized,
    original_shape: tuple[int, int],
    k: int = 3,
    min_probability: float = DEFAULT_MIN_PROBABILITY,
) -> list[LesionRegion]:
    """Up to ``k`` regions of highest malignant probability, at least ``min_probability``, highest first.

    Parameters
    ----------
    grid : np.ndarray
        ``(h, w)`` malignant probabilities of one image (``GradCAMResult.lesion_grids[i]``).
    std : Standardized
        The image's standardization (for the content area and the mapping back to the original).
    original_shape : tuple of int
        ``(height, width)`` of the original image, to clip the boxes.
    k : int
        Most regions to return.
    min_probability : float
        Cells below it are never reported (an all-low map gives no region).

    Returns
    -------
    list of LesionRegion
        Each picked cell suppresses its 8 neighbours, so regions do not repeat one finding.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values = np.where(_content_cells(grid.shape, std), np.asarray(grid, dtype=np.float64), -np.inf)
    cell_h, cell_w = std.image.shape[0] / grid.shape[0], std.image.shape[1] / grid.shape[1]
    regions: list[LesionRegion] = []
    while len(regions) < k:
        row, col = np.unravel_index(int(np.argmax(values)), values.shape)
        probability = values[row, col]
        if not np.isfinite(probability) or probability < min_probability:
            break
        box = (row * cell_h, col * cell_w, (row + 1) * cell_h, (col + 1) * cell_w)
        regions.append(LesionRegion(float(probability), box, _original_box(std, box, original_shape)))
        values[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2] = -np.inf
    return regions
