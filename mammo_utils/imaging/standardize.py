"""Standardize a mammogram: breast mask, label removal, crop, canonical flip, resize and pad.

The breast is found by :func:`mammo_utils.imaging.segmentation.segment` on a downsampled copy (long side about
``working_size`` pixels), so that a 4.7k x 2.6k film scan is standardized in a few tens of milliseconds. Then:

1. everything outside the slightly dilated breast mask is set to 0, which blanks burned-in labels,
   markers and frames; bright components outside the breast are counted as ``labels_removed``;
2. the chest wall side (where the mask touches the edge, else its centre of mass) is put on the LEFT;
3. the full-resolution image is cropped to the mask's bounding box, decimated by an integer block
   mean, resized with anti-aliasing (aspect preserved) and padded with 0: content left-aligned (chest
   wall at the left edge) and vertically centred;
4. with ``normalize=True`` (default) intensities are divided by the 99.9th percentile of the breast
   pixels and clipped to [0, 1] (a linear, deterministic gain; the background stays 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from skimage.transform import resize

from mammo_utils.imaging.segmentation import Segmentation, as_float01, block_mean, segment

if TYPE_CHECKING:  # pragma: no cover
    from mammo_utils.imaging.mammogram import Mammogram

__all__ = ["Standardized", "standardize"]


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


def _box(seg: Segmentation, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Bounding box of the kept region in original pixel coordinates."""
    H, W = shape
    if not seg.found:
        return 0, 0, H, W
    h, w = seg.keep.shape
    rows, cols = np.flatnonzero(seg.keep.any(axis=1)), np.flatnonzero(seg.keep.any(axis=0))
    f = seg.factor
    top, left = int(rows[0]) * f, int(cols[0]) * f
    bottom = H if rows[-1] == h - 1 else min(H, (int(rows[-1]) + 1) * f)
    right = W if cols[-1] == w - 1 else min(W, (int(cols[-1]) + 1) * f)
    return top, left, bottom, right


def _resize_crop(crop: np.ndarray, out_shape: tuple[int, int], trim_left: bool) -> np.ndarray:
    """Integer block-mean decimation to about twice ``out_shape``, then anti-aliased resize."""
    bh, bw = crop.shape
    ch, cw = out_shape
    k = max(1, int(min(bh / (2 * ch), bw / (2 * cw))))
    if k > 1:
        rw = bw - (bw // k) * k
        crop = crop[: (bh // k) * k, rw:] if trim_left else crop[: (bh // k) * k, : bw - rw]
        crop = block_mean(crop, k, k)
    if crop.shape == (ch, cw):
        return np.asarray(crop, dtype=np.float32)
    down = crop.shape[0] > ch or crop.shape[1] > cw
    out = resize(crop, (ch, cw), order=1, mode="edge", anti_aliasing=down, preserve_range=True)
    return out.astype(np.float32, copy=False)


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

    Parameters
    ----------
    image : np.ndarray or Mammogram
        2-D grey image (uint: scaled by dtype range; float: [0, 1] or min-max scaled; RGB(A) averaged)
        or a ``Mammogram`` (its ``pixels``; its ``laterality`` is used as a tie-breaker hint only).
    size : tuple of int
        Output ``(height, width)``.
    working_size : int
        Long side of the downsampled copy used for segmentation.
    margin : float
        Margin kept around the breast mask, as a fraction of the long side.
    normalize : bool
        Divide by the 99.9th percentile of the breast pixels, then clip to [0, 1] (only if a breast
        was found). With False the input intensities are kept.
    laterality : str, optional
        "L"/"R" hint, used only when the image itself does not show the chest-wall side.
    threshold : float, optional
        Fixed segmentation threshold in [0, 1] instead of the automatic one.

    Returns
    -------
    Standardized
        The image and what was done to it.
    """
    th, tw = int(size[0]), int(size[1])
    if th < 1 or tw < 1:
        raise ValueError(f"size must be positive, got {size}")
    if laterality is None:
        laterality = getattr(image, "laterality", None)
    img = as_float01(image)
    seg = segment(img, working_size, threshold, margin, laterality)
    flipped = not seg.breast_left
    top, left, bottom, right = _box(seg, img.shape)
    bh, bw = bottom - top, right - left
    scale = min(th / bh, tw / bw)
    ch, cw = min(th, max(1, round(bh * scale))), min(tw, max(1, round(bw * scale)))
    content = _resize_crop(img[top:bottom, left:right], (ch, cw), trim_left=flipped)
    h, w = seg.keep.shape
    rows = np.minimum((top + (np.arange(ch) + 0.5) * bh / ch).astype(int) // seg.factor, h - 1)
    cols = np.minimum((left + (np.arange(cw) + 0.5) * bw / cw).astype(int) // seg.factor, w - 1)
    keep = seg.keep[np.ix_(rows, cols)]
    content = np.where(keep, content, np.float32(0))
    if flipped:
        content, keep = content[:, ::-1], keep[:, ::-1]
    if normalize and seg.found and keep.any():
        ref = float(np.percentile(content[keep], 99.9))
        if ref > 1e-6:
            content = content / np.float32(ref)
    out = np.zeros((th, tw), dtype=np.float32)
    y0 = (th - ch) // 2
    out[y0 : y0 + ch, :cw] = np.clip(content, 0.0, 1.0)
    mask = seg.mask[:, ::-1] if flipped else seg.mask
    return Standardized(
        image=out,
        crop_box=(top, left, bottom, right),
        flipped=flipped,
        scale=float(scale),
        labels_removed=seg.labels,
        mask=np.ascontiguousarray(mask),
        found_breast=seg.found,
        content_shape=(ch, cw),
    )
