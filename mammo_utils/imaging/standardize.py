"""Standardize a mammogram in four named steps: find the breast, blank what is outside it, crop, resize and pad.

1. :func:`find_breast` segments a downsampled copy (long side about ``working_size`` pixels, see
   :func:`mammo_utils.imaging.segmentation.segment`), so that a 4.7k x 2.6k film scan is standardized in a few tens
   of milliseconds; it also decides the chest-wall side (where the mask touches the edge, else its centre of mass,
   else the laterality hint);
2. :func:`blank_outside_breast` sets everything outside the slightly dilated breast mask to 0, which blanks burned-in
   labels, markers and frames; bright components outside the breast are counted as ``labels_removed``;
3. :func:`crop_to_breast` crops the full-resolution image to the mask's bounding box and flips it so that the chest
   wall is on the LEFT;
4. :func:`resize_and_pad` decimates the crop by an integer block mean, resizes it with anti-aliasing (aspect
   preserved) and pads it with 0: content left-aligned (chest wall at the left edge) and vertically centred.
   With ``normalize=True`` (default) intensities are divided by the 99.9th percentile of the breast pixels and
   clipped to [0, 1] (a linear, deterministic gain; the background stays 0).

Blanking and flipping are exact pixel-wise operations, so :func:`resize_and_pad` applies both at model resolution,
after resampling the crop in its original orientation: the resampling sees the image as read (never a blanked edge),
and the output does not depend on the summation order of a mirrored block mean. :func:`standardize` runs the steps
in order; :func:`~mammo_utils.datasets.figures.standardization_steps` shows each of them. A :class:`Standardized`
maps points between the original image and the model input both ways (``to_model_coordinates``,
``to_original_coordinates``), also when rebuilt from an image-cache record (``Standardized.from_record``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from skimage.transform import resize

from mammo_utils.imaging.segmentation import Segmentation, as_float01, block_mean, segment

if TYPE_CHECKING:  # pragma: no cover
    from mammo_utils.imaging.mammogram import Mammogram

__all__ = [
    "STANDARDIZATION_COLUMNS",
    "BreastCrop",
    "Standardized",
    "blank_outside_breast",
    "crop_to_breast",
    "find_breast",
    "resize_and_pad",
    "standardize",
]

Box = tuple[int, int, int, int]
_CROP_COLUMNS = ("crop_top", "crop_left", "crop_bottom", "crop_right")  # what Standardized.from_record needs:
STANDARDIZATION_COLUMNS: tuple[str, ...] = (*_CROP_COLUMNS, "flipped", "content_height", "content_width")


@dataclass(frozen=True)
class Standardized:
    """Result of :func:`standardize`.

    Attributes
    ----------
    image : np.ndarray
        float32 ``size`` array in [0, 1], breast on the LEFT (chest wall at the left edge), padded with 0.
    crop_box : tuple of int
        ``(top, left, bottom, right)`` in ORIGINAL (unflipped) pixel coordinates, bottom/right exclusive.
    flipped : bool
        True if the image was mirrored left-right to put the breast on the left.
    scale : float
        Resize factor applied to the crop (output pixels per original pixel).
    labels_removed : int
        Number of bright components (labels, letters, markers) outside the breast that were blanked;
        thin frame remnants along the edges are blanked but not counted.
    mask : np.ndarray
        bool breast mask at the working (downsampled) resolution, after the flip.
    found_breast : bool
        False if no breast was found (blank, constant or unreadable content): then the whole image is
        used, nothing is blanked and ``mask`` is all False.
    content_shape : tuple of int
        ``(height, width)`` of the resized crop inside ``image`` (the rest is padding).
    """

    image: np.ndarray
    crop_box: tuple[int, int, int, int]
    flipped: bool
    scale: float
    labels_removed: int
    mask: np.ndarray
    found_breast: bool
    content_shape: tuple[int, int]

    @classmethod
    def from_record(cls, record: Mapping[str, Any], image_shape: tuple[int, ...]) -> Standardized:
        """The geometry of one image's standardization, rebuilt from its image-cache record.

        Parameters
        ----------
        record : mapping
            A row of :meth:`mammo_utils.training.cache.CachedImages.standardization`: :data:`STANDARDIZATION_COLUMNS`
            (crop box in original pixels, ``flipped``, content size), optionally ``scale``, ``labels_removed``,
            ``found_breast``. A missing required column raises KeyError.
        image_shape : tuple of int
            ``(height, width)`` of the model input (further axes are ignored).

        Returns
        -------
        Standardized
            With a blank read-only ``image`` and an empty ``mask``: enough for the coordinate maps, not for display.
        """
        missing = [c for c in STANDARDIZATION_COLUMNS if c not in record]
        if missing:
            raise KeyError(f"the standardization record lacks {missing}; join the image cache's standardization()")
        top, left, bottom, right = (int(record[c]) for c in _CROP_COLUMNS)
        return cls(
            image=np.broadcast_to(np.float32(0), (int(image_shape[0]), int(image_shape[1]))),
            crop_box=(top, left, bottom, right),
            flipped=bool(record["flipped"]),
            scale=float(record.get("scale", math.nan)),
            labels_removed=int(record.get("labels_removed", 0)),
            mask=np.zeros((0, 0), dtype=bool),
            found_breast=bool(record.get("found_breast", True)),
            content_shape=(int(record["content_height"]), int(record["content_width"])),
        )

    def to_model_coordinates(
        self, y: float | np.ndarray, x: float | np.ndarray
    ) -> tuple[float | np.ndarray, float | np.ndarray]:
        """Map a point in ORIGINAL image pixels to model-input (``image``) pixels.

        Follows the crop, the flip, the resize (including the rows/columns dropped by the integer decimation)
        and the vertical padding offset. Pixel indices are pixel centres: original pixel ``(y, x)`` covers
        ``[y, y + 1) x [x, x + 1)``. :meth:`to_original_coordinates` is the inverse.

        Parameters
        ----------
        y, x : float or np.ndarray
            Row and column in the original image (scalars or arrays of the same shape).

        Returns
        -------
        tuple
            ``(row, column)`` in ``image``, as floats (fractional: the scale is rarely an integer). Points outside
            the crop box map outside the content area.
        """
        row_scale, row_offset, col_scale, col_offset = self._affine()
        rows, cols = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
        return rows * row_scale + row_offset, cols * col_scale + col_offset

    def to_original_coordinates(
        self, row: float | np.ndarray, col: float | np.ndarray
    ) -> tuple[float | np.ndarray, float | np.ndarray]:
        """Model-input (``image``) pixels back to ORIGINAL pixels: the exact inverse of :meth:`to_model_coordinates`.

        ``row`` and ``col`` are scalars or arrays of the same shape, in the same pixel-centre convention; returns
        ``(y, x)`` in the original image as floats (equal to the forward map's input up to floating-point rounding).
        Points in the padding map outside the crop box.
        """
        row_scale, row_offset, col_scale, col_offset = self._affine()
        rows, cols = np.asarray(row, dtype=np.float64), np.asarray(col, dtype=np.float64)
        return (rows - row_offset) / row_scale, (cols - col_offset) / col_scale

    def _affine(self) -> tuple[float, float, float, float]:
        """``(row_scale, row_offset, col_scale, col_offset)``: model = original * scale + offset, per axis."""
        top, left, bottom, right = _resampled_region(self.crop_box, self.content_shape, self.flipped)
        content_h, content_w = self.content_shape
        row_scale, col_scale = content_h / (bottom - top), content_w / (right - left)
        row_offset = (0.5 - top) * row_scale - 0.5 + (self.image.shape[0] - content_h) // 2  # + the padding rows
        col_offset = (0.5 - left) * col_scale - 0.5
        if self.flipped:  # column c of the unflipped content is column content_w - 1 - c
            return row_scale, row_offset, -col_scale, content_w - 1 - col_offset
        return row_scale, row_offset, col_scale, col_offset


@dataclass(frozen=True)
class BreastCrop:
    """Result of :func:`crop_to_breast`.

    Attributes
    ----------
    box : tuple of int
        ``(top, left, bottom, right)`` of the crop in ORIGINAL pixel coordinates, bottom/right exclusive.
    flipped : bool
        True if the crop is mirrored left-right to put the chest wall on the left.
    original : np.ndarray
        The cropped pixels in the original orientation (a view of the full-resolution image).
    """

    box: tuple[int, int, int, int]
    flipped: bool
    original: np.ndarray

    @property
    def pixels(self) -> np.ndarray:
        """The crop with the breast on the LEFT (a mirrored view of :attr:`original` when ``flipped``)."""
        return self.original[:, ::-1] if self.flipped else self.original


def find_breast(
    pixels: np.ndarray,
    *,
    working_size: int = 512,
    margin: float = 0.01,
    laterality: str | None = None,
    threshold: float | None = None,
) -> Segmentation:
    """Step 1: segment the breast on a working-size copy and decide which side the chest wall is on.

    Parameters
    ----------
    pixels : np.ndarray
        2-D float image in [0, 1] (see :func:`~mammo_utils.imaging.segmentation.as_float01`).
    working_size : int
        Long side of the downsampled copy used for segmentation.
    margin : float
        Margin kept around the breast mask, as a fraction of the long side.
    laterality : str, optional
        "L"/"R" hint, used only when the image itself does not show the chest-wall side.
    threshold : float, optional
        Fixed segmentation threshold in [0, 1] instead of the automatic one.

    Returns
    -------
    Segmentation
        Mask, kept region, label count and chest-wall side on the working grid.
    """
    return segment(pixels, working_size, threshold, margin, laterality)


def blank_outside_breast(
    pixels: np.ndarray, segmentation: Segmentation, box: Box | None = None, *, flipped: bool = False
) -> np.ndarray:
    """Step 2: set every pixel outside the kept breast region to 0 (burned-in labels, markers, frames).

    Works at any resolution: ``pixels`` shows the region ``box`` of the original image, resampled to its own
    shape and mirrored if ``flipped``; each pixel is kept if its centre falls in the segmentation's kept region.

    Parameters
    ----------
    pixels : np.ndarray
        2-D float image.
    segmentation : Segmentation
        Result of :func:`find_breast` on the original image.
    box : tuple of int, optional
        ``(top, left, bottom, right)`` of the original image that ``pixels`` shows; default: ``pixels`` is the
        whole original image at full resolution.
    flipped : bool
        True if ``pixels`` is mirrored left-right relative to the original image.

    Returns
    -------
    np.ndarray
        A copy of ``pixels`` with 0 outside the breast region (nothing is blanked if no breast was found).
    """
    region = (0, 0, pixels.shape[0], pixels.shape[1]) if box is None else box
    keep = _kept_region(segmentation, region, pixels.shape, flipped)
    return np.where(keep, pixels, np.zeros((), dtype=pixels.dtype))


def crop_to_breast(pixels: np.ndarray, segmentation: Segmentation) -> BreastCrop:
    """Step 3: crop to the bounding box of the kept breast region and flip the breast to the left.

    Parameters
    ----------
    pixels : np.ndarray
        The full-resolution 2-D image :func:`find_breast` segmented.
    segmentation : Segmentation
        Result of :func:`find_breast` on ``pixels``.

    Returns
    -------
    BreastCrop
        The crop box in original coordinates, whether it is flipped, and the cropped pixels (views, no copy).
        Without a breast the box is the whole image.
    """
    top, left, bottom, right = _bounding_box(segmentation, pixels.shape)
    return BreastCrop(
        box=(top, left, bottom, right), flipped=not segmentation.breast_left, original=pixels[top:bottom, left:right]
    )


def resize_and_pad(
    crop: BreastCrop, segmentation: Segmentation, size: tuple[int, int] = (224, 224), *, normalize: bool = True
) -> Standardized:
    """Step 4: decimate, resize (aspect kept), blank and flip at model resolution, normalize, pad to ``size``.

    Parameters
    ----------
    crop : BreastCrop
        Result of :func:`crop_to_breast`.
    segmentation : Segmentation
        Result of :func:`find_breast` (its kept region is blanked, its mask and label count are reported).
    size : tuple of int
        Output ``(height, width)``.
    normalize : bool
        Divide by the 99.9th percentile of the breast pixels, then clip to [0, 1] (only if a breast was
        found). With False the input intensities are kept.

    Returns
    -------
    Standardized
        The model input and what was done to get it.
    """
    out_h, out_w = _target_size(size)
    box_h, box_w = crop.box[2] - crop.box[0], crop.box[3] - crop.box[1]
    scale = min(out_h / box_h, out_w / box_w)
    content_shape = (min(out_h, max(1, round(box_h * scale))), min(out_w, max(1, round(box_w * scale))))
    content = _resample(crop.original, content_shape, trim_left=crop.flipped)
    if crop.flipped:
        content = content[:, ::-1]
    content = blank_outside_breast(content, segmentation, crop.box, flipped=crop.flipped)
    if normalize and segmentation.found:
        content = _normalize(content, _kept_region(segmentation, crop.box, content_shape, crop.flipped))
    image = np.zeros((out_h, out_w), dtype=np.float32)
    pad_top = (out_h - content_shape[0]) // 2
    image[pad_top : pad_top + content_shape[0], : content_shape[1]] = np.clip(content, 0.0, 1.0)
    mask = segmentation.mask[:, ::-1] if crop.flipped else segmentation.mask
    return Standardized(
        image=image,
        crop_box=crop.box,
        flipped=crop.flipped,
        scale=float(scale),
        labels_removed=segmentation.labels,
        mask=np.ascontiguousarray(mask),
        found_breast=segmentation.found,
        content_shape=content_shape,
    )


def standardize(
    image: np.ndarray | Mammogram,
    size: tuple[int, int] = (224, 224),
    *,
    working_size: int = 512,
    margin: float = 0.01,
    normalize: bool = True,
    laterality: str | None = None,
    threshold: float | None = None,
) -> Standardized:
    """Crop to the breast, blank labels, flip the breast to the left, resize and pad to ``size``.

    Runs :func:`find_breast`, :func:`crop_to_breast` and :func:`resize_and_pad` (which blanks with
    :func:`blank_outside_breast` at model resolution), see the module docstring.

    Parameters
    ----------
    image : np.ndarray or Mammogram
        2-D grey image (uint: scaled by dtype range; float: [0, 1] or min-max scaled; RGB(A) averaged)
        or a ``Mammogram`` (its ``pixels``; its ``laterality`` is used as a tie-breaker hint only).
    size : tuple of int
        Output ``(height, width)``.
    working_size, margin, laterality, threshold
        As for :func:`find_breast`.
    normalize : bool
        As for :func:`resize_and_pad`.

    Returns
    -------
    Standardized
        The image and what was done to it.
    """
    _target_size(size)
    if laterality is None:
        laterality = getattr(image, "laterality", None)
    pixels = as_float01(image)
    segmentation = find_breast(
        pixels, working_size=working_size, margin=margin, laterality=laterality, threshold=threshold
    )
    crop = crop_to_breast(pixels, segmentation)
    return resize_and_pad(crop, segmentation, size, normalize=normalize)


def _target_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as two positive ints, or a ValueError."""
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return height, width


def _bounding_box(segmentation: Segmentation, shape: tuple[int, ...]) -> Box:
    """Bounding box of the kept region in original pixel coordinates (working pixels scaled by the factor)."""
    height, width = shape[0], shape[1]
    if not segmentation.found:
        return 0, 0, height, width
    grid_h, grid_w = segmentation.keep.shape
    rows = np.flatnonzero(segmentation.keep.any(axis=1))
    cols = np.flatnonzero(segmentation.keep.any(axis=0))
    factor = segmentation.factor
    top, left = int(rows[0]) * factor, int(cols[0]) * factor
    bottom = height if rows[-1] == grid_h - 1 else min(height, (int(rows[-1]) + 1) * factor)
    right = width if cols[-1] == grid_w - 1 else min(width, (int(cols[-1]) + 1) * factor)
    return top, left, bottom, right


def _kept_region(segmentation: Segmentation, box: Box, shape: tuple[int, ...], flipped: bool) -> np.ndarray:
    """The kept region sampled at the pixel centres of a ``shape`` grid over ``box`` (mirrored if ``flipped``)."""
    top, left, bottom, right = box
    grid_h, grid_w = segmentation.keep.shape
    out_h, out_w = shape[0], shape[1]
    factor = segmentation.factor
    rows = np.minimum((top + (np.arange(out_h) + 0.5) * (bottom - top) / out_h).astype(int) // factor, grid_h - 1)
    cols = np.minimum((left + (np.arange(out_w) + 0.5) * (right - left) / out_w).astype(int) // factor, grid_w - 1)
    keep = segmentation.keep[np.ix_(rows, cols)]
    return keep[:, ::-1] if flipped else keep


def _decimation(box_h: int, box_w: int, content_shape: tuple[int, int]) -> int:
    """Integer block-mean factor that brings a ``box_h`` x ``box_w`` crop to about twice ``content_shape``."""
    return max(1, int(min(box_h / (2 * content_shape[0]), box_w / (2 * content_shape[1]))))


def _resampled_region(box: Box, content_shape: tuple[int, int], flipped: bool) -> Box:
    """The part of ``box`` the resize maps onto the content: whole blocks only (see :func:`_resample`)."""
    top, left, bottom, right = box
    factor = _decimation(bottom - top, right - left, content_shape)
    if factor == 1:
        return box
    rows, cols = ((bottom - top) // factor) * factor, ((right - left) // factor) * factor
    return (top, right - cols, top + rows, right) if flipped else (top, left, top + rows, left + cols)


def _resample(crop: np.ndarray, content_shape: tuple[int, int], trim_left: bool) -> np.ndarray:
    """Integer block-mean decimation to about twice ``content_shape``, then anti-aliased resize.

    Columns that do not fill a block are dropped on the side away from the chest wall (the left when
    ``trim_left``), rows at the bottom.
    """
    crop_h, crop_w = crop.shape
    factor = _decimation(crop_h, crop_w, content_shape)
    if factor > 1:
        spare = crop_w - (crop_w // factor) * factor
        rows = (crop_h // factor) * factor
        crop = crop[:rows, spare:] if trim_left else crop[:rows, : crop_w - spare]
        crop = block_mean(crop, factor, factor)
    if crop.shape == content_shape:
        return np.asarray(crop, dtype=np.float32)
    down = crop.shape[0] > content_shape[0] or crop.shape[1] > content_shape[1]
    out = resize(crop, content_shape, order=1, mode="edge", anti_aliasing=down, preserve_range=True)
    return out.astype(np.float32, copy=False)


def _normalize(content: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Divide by the 99.9th percentile of the kept pixels (unchanged if none are kept or it is ~0)."""
    if not keep.any():
        return content
    reference = float(np.percentile(content[keep], 99.9))
    return content / np.float32(reference) if reference > 1e-6 else content
