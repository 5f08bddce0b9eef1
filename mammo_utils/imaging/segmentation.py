"""Breast segmentation: where the breast is, what is burned-in around it, and which side the chest wall is on.

The breast is segmented on a downsampled copy (long side about ``working_size`` pixels) so that a
4.7k x 2.6k film scan is segmented in a few tens of milliseconds:

1. block-mean downsample, Gaussian smoothing, Li threshold (robust to a large black background);
2. strip scanner frames: a thin band along every edge, deepened to the innermost nearly-full bright
   line within ``_FRAME_MAX_FRAC`` of that edge (the bright film-holder borders of CBIS-DDSM scans);
3. the breast is the largest component that reaches the left or right edge (the chest wall), after a
   small opening; thin edge strips and small nearly-rectangular stickers are rejected; it is grown
   through faint pixels (hysteresis at a low threshold, limited to ``_GROW_FRAC`` of the long side) to
   keep the skin line and nipple; holes are filled and the mask is extended back through the stripped
   bands where it reached them (top/bottom only up to a frame line);
4. the kept region is the slightly dilated breast mask (everything outside it is blanked by
   :func:`~mammo_utils.imaging.standardize.standardize`: burned-in labels, markers and frames); bright components
   outside it are counted as removed labels;
5. the chest wall side is where the mask touches the edge, else its centre of mass, else the laterality hint.

:func:`segment` returns all of this on the working grid (:class:`Segmentation`); :func:`breast_mask` gives the
mask at the image's own resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_li

if TYPE_CHECKING:  # pragma: no cover
    from mammo_utils.imaging.mammogram import Mammogram

__all__ = ["Segmentation", "as_float01", "block_mean", "breast_mask", "segment"]

_FRAME_BASE_FRAC = 0.01  # band always stripped along each edge (fraction of that dimension)
_FRAME_MAX_FRAC = 0.08  # deepest frame searched for (fraction of that dimension)
_FRAME_LINE_FRAC = 0.6  # a row/column at least this bright-filled is a frame line
_MIN_BREAST_FRAC = 0.005  # smallest breast component (fraction of the image)
_MIN_LABEL_FRAC = 2e-4  # smallest bright blob counted as a removed label
_LOW_FRAC = 0.1  # hysteresis: low threshold = background + this fraction of (threshold - background)
_GROW_FRAC = 0.06  # hysteresis growth limit (fraction of the long side)


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`segment`, on the working (block-mean downsampled) grid.

    Attributes
    ----------
    factor : int
        Block size of the working grid (original pixels per working pixel along each axis).
    working : np.ndarray
        float32 block-mean image.
    mask : np.ndarray
        bool breast mask.
    keep : np.ndarray
        bool dilated mask: the pixels kept in the standardized output.
    found : bool
        False if no breast was found (then ``mask`` is all False and ``keep`` all True).
    labels : int
        Bright components outside the breast (labels, letters, markers), as counted for ``labels_removed``.
    breast_left : bool
        True if the chest wall is on the left edge of the input.
    """

    factor: int
    working: np.ndarray
    mask: np.ndarray
    keep: np.ndarray
    found: bool
    labels: int
    breast_left: bool


def as_float01(image: np.ndarray | Mammogram) -> np.ndarray:
    """2-D float32 view/copy of ``image`` in [0, 1] (integers by dtype range, other floats min-max)."""
    arr = np.asarray(getattr(image, "pixels", image))
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float32).mean(axis=-1) / (
            np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.unsignedinteger) else 1.0
        )
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected a non-empty 2-D grey image, got an array of shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    arr = arr.astype(np.float32, copy=False)
    lo, hi = arr.min(), arr.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = arr.min(), arr.max()
    if lo >= 0 and hi <= 1:
        return arr
    span = float(hi) - float(lo)
    if not span > 0:
        return np.zeros_like(arr)
    return ((arr.astype(np.float64) - float(lo)) / span).astype(np.float32)


def block_mean(arr: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Mean over ``fy`` x ``fx`` blocks; trailing rows/columns that do not fill a block are dropped."""
    h, w = arr.shape[0] // fy, arr.shape[1] // fx
    if fy == 1 and fx == 1:
        return np.array(arr, dtype=np.float32)
    out = arr[: h * fy, : w * fx].reshape(h, fy, w * fx).sum(axis=1, dtype=np.float32)
    return out.reshape(h, w, fx).sum(axis=2) / np.float32(fy * fx)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the image border (faster than iterative filling)."""
    lab, n = ndi.label(~mask)
    if n == 0:
        return mask
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return mask | ~np.isin(lab, edge)


def _strip_depth(fractions: np.ndarray, n: int) -> int:
    """Lines to strip from one edge: a base band, or down to the deepest nearly-full line near it."""
    base = max(1, int(round(_FRAME_BASE_FRAC * n)))
    cap = min(len(fractions) // 3, max(base, int(round(_FRAME_MAX_FRAC * n))))
    full = np.flatnonzero(fractions[:cap] >= _FRAME_LINE_FRAC)
    return max(base if n >= 32 else 0, int(full[-1]) + 1 if full.size else 0)


def _threshold(smooth: np.ndarray) -> float | None:
    """Li threshold, or None if the image has no dark background to separate from."""
    lo, hi = float(smooth.min()), float(smooth.max())
    if hi - lo < 1e-3:
        return None
    try:
        t = float(threshold_li(smooth))
    except (ValueError, RuntimeError):  # pragma: no cover - degenerate histograms
        t = lo + 0.5 * (hi - lo)
    t = min(max(t, lo + 0.02 * (hi - lo)), lo + 0.9 * (hi - lo))
    return t


def _select(fg: np.ndarray, bands: tuple[int, int, int, int]) -> np.ndarray | None:
    """The breast component of ``fg`` (stripped grid), or None."""
    h, w = fg.shape
    left, right = bands[2], bands[3]
    lab, n = ndi.label(fg)
    if n == 0:
        return None
    areas = np.bincount(lab.ravel())
    best, best_key = 0, (-1, -1)
    min_area = max(4, _MIN_BREAST_FRAC * h * w)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        area = int(areas[i])
        if area < min_area:
            continue
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if min(bh, bw) < max(2, 0.03 * min(h, w)):
            continue  # thin strip (frame remnant, ruler)
        if area / (bh * bw) > 0.95 and bh * bw < 0.25 * h * w:
            continue  # small solid rectangle: sticker or marker
        touches = sl[1].start <= left or sl[1].stop >= w - right
        key = (int(touches), area)
        if key > best_key:
            best, best_key = i, key
    return lab == best if best else None


def _runs(contact: np.ndarray) -> np.ndarray:
    """Smooth a 1-D contact profile: close gaps and drop spikes shorter than ~1 % of its length."""
    k = max(3, int(round(0.01 * contact.size)))
    padded = np.pad(contact, k, mode="edge")
    padded = ndi.binary_opening(ndi.binary_closing(padded, np.ones(k)), np.ones(k))
    return padded[k:-k]


def _extend(mask: np.ndarray, bands: tuple[int, int, int, int], row_frac: np.ndarray) -> np.ndarray:
    """Extend the mask back through stripped edge bands, along rows/columns where it reached them.

    Left/right (chest wall) bands are filled up to the edge; top/bottom bands only up to the first
    frame line (a nearly-full bright row), so that film-holder borders stay out of the breast.
    """
    h, w = mask.shape
    top, bottom, left, right = bands
    out = mask.copy()
    if left and left < w:
        out[_runs(mask[:, left]), :left] = True
    if right and w - right - 1 >= 0:
        out[_runs(mask[:, w - right - 1]), w - right :] = True
    frame = row_frac >= _FRAME_LINE_FRAC
    if top and top < h:
        stop = max((r + 1 for r in range(top) if frame[r]), default=0)
        out[stop:top, _runs(out[top, :])] = True
    if bottom and h - bottom - 1 >= 0:
        stop = min((r for r in range(h - bottom, h) if frame[r]), default=h)
        out[h - bottom : stop, _runs(out[h - bottom - 1, :])] = True
    return out


def segment(
    img: np.ndarray, working_size: int, threshold: float | None, margin: float, laterality: str | None
) -> Segmentation:
    """Breast mask, kept region, label count and chest-wall side on the working grid.

    Parameters
    ----------
    img : np.ndarray
        2-D float image in [0, 1] (see :func:`as_float01`).
    working_size : int
        Long side of the downsampled copy the mask is computed on.
    threshold : float, optional
        Fixed threshold in [0, 1] instead of the automatic (Li) one.
    margin : float
        Margin of the kept region around the mask, as a fraction of the long side.
    laterality : str, optional
        "L"/"R" hint, used only when the image itself does not show the chest-wall side.

    Returns
    -------
    Segmentation
    """
    factor, work, smooth = _working_grid(img, working_size)
    full = np.ones(work.shape, dtype=bool)
    no_breast = Segmentation(factor, work, ~full, full, False, 0, _side_hint(work, full, laterality))
    t = _threshold(smooth) if threshold is None else float(threshold)
    if t is None:
        return no_breast
    raw = smooth > t
    if raw.all() or not raw.any():
        return no_breast
    dark, bright = float(np.median(smooth[~raw])), float(np.median(smooth[raw]))
    if raw.mean() > 0.98 or (threshold is None and dark > 0.5 * bright):
        # no dark background: the breast fills the frame
        return Segmentation(factor, work, full, full, True, 0, no_breast.breast_left)
    bands = _frame_bands(raw)
    fg = _foreground(raw, bands)
    comp = _select(fg, bands)
    if comp is None:
        return no_breast
    comp = _grow(comp, smooth, raw, dark, t, bands)
    mask = _fill_holes(_extend(_fill_holes(comp), bands, raw.mean(axis=1)))
    keep = _kept_region(mask, bands, margin)
    return Segmentation(
        factor, work, mask, keep, True, _count_labels(fg & ~keep), _chest_wall_left(work, mask, laterality)
    )


def _working_grid(img: np.ndarray, working_size: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Block factor, block-mean working image (long side about ``working_size``) and its smoothed copy."""
    big, small = max(img.shape), min(img.shape)
    factor = max(1, min(int(np.ceil(big / max(8, working_size))), small))
    work = block_mean(img, factor, factor)
    smooth = ndi.gaussian_filter(work, 1.0) if min(work.shape) >= 8 else work
    return factor, work, smooth


def _frame_bands(raw: np.ndarray) -> tuple[int, int, int, int]:
    """Depth of the frame band stripped along the top, bottom, left and right edges."""
    h, w = raw.shape
    rows, cols = raw.mean(axis=1), raw.mean(axis=0)
    return _strip_depth(rows, h), _strip_depth(rows[::-1], h), _strip_depth(cols, w), _strip_depth(cols[::-1], w)


def _clear_bands(image: np.ndarray, bands: tuple[int, int, int, int]) -> None:
    """Set the stripped edge bands of a boolean image to False, in place."""
    h, w = image.shape
    image[: bands[0]], image[h - bands[1] :], image[:, : bands[2]], image[:, w - bands[3] :] = (
        False,
        False,
        False,
        False,
    )


def _foreground(raw: np.ndarray, bands: tuple[int, int, int, int]) -> np.ndarray:
    """Thresholded image with thin bridges broken and the frame bands stripped."""
    fg = raw
    if min(raw.shape) >= 32:  # break thin bridges (before stripping, so that band edges do not erode corners)
        fg = ndi.binary_opening(fg, structure=ndi.generate_binary_structure(2, 1), iterations=2)
    fg = fg.copy()
    _clear_bands(fg, bands)
    return fg


def _grow(
    comp: np.ndarray, smooth: np.ndarray, raw: np.ndarray, dark: float, t: float, bands: tuple[int, int, int, int]
) -> np.ndarray:
    """Hysteresis: grow the breast into its faint periphery (skin line, nipple) at a lower threshold."""
    h, w = comp.shape
    bg = smooth[~raw]
    noise = 1.4826 * float(np.median(np.abs(bg - dark)))
    low = smooth > max(dark + _LOW_FRAC * (t - dark), dark + 5.0 * noise)
    _clear_bands(low, bands)
    near = ndi.distance_transform_cdt(~comp, metric="chessboard") <= _GROW_FRAC * max(h, w)
    grown, _ = ndi.label((low & ~raw & near) | comp)  # only through faint pixels: labels stay out
    return np.isin(grown, np.unique(grown[comp]))


def _kept_region(mask: np.ndarray, bands: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """The mask dilated by ``margin`` (fraction of the long side), not reaching into stripped frame bands."""
    h, w = mask.shape
    r = max(1, int(round(margin * max(h, w))))
    keep = ndi.distance_transform_cdt(~mask, metric="taxicab") <= r
    inner = np.zeros_like(mask)
    inner[bands[0] : h - bands[1], bands[2] : w - bands[3]] = True
    return keep & (mask | inner)


def _count_labels(outside: np.ndarray) -> int:
    """Bright blobs off the breast; thin frame remnants along the edges are not counted."""
    h, w = outside.shape
    lab, _ = ndi.label(outside)
    areas = np.bincount(lab.ravel())
    return sum(
        1
        for i, sl in enumerate(ndi.find_objects(lab), start=1)
        if areas[i] >= max(4, _MIN_LABEL_FRAC * h * w)
        and min(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) >= max(2, 0.015 * min(h, w))
    )


def _chest_wall_left(work: np.ndarray, mask: np.ndarray, laterality: str | None) -> bool:
    """True if the chest wall is on the left: the edge the mask touches clearly more, else :func:`_side_hint`."""
    contact_l = int(np.count_nonzero(mask[:, 0]))
    contact_r = int(np.count_nonzero(mask[:, -1]))
    if max(contact_l, contact_r) > 0 and abs(contact_l - contact_r) > 0.1 * max(contact_l, contact_r):
        return contact_l > contact_r
    return _side_hint(work, mask, laterality)


def _side_hint(work: np.ndarray, region: np.ndarray, laterality: str | None) -> bool:
    """True if the chest wall is on the left: intensity-weighted centre of ``region``, then laterality."""
    weights = (work * region).sum(axis=0, dtype=np.float64)
    total = weights.sum()
    w = work.shape[1]
    if total > 0 and w > 1:
        cx = float((weights * np.arange(w)).sum() / total) / (w - 1)
        if abs(cx - 0.5) > 0.01:
            return cx < 0.5
    return not (laterality or "").upper().startswith("R")


def breast_mask(
    image: np.ndarray | Mammogram, *, working_size: int = 512, threshold: float | None = None
) -> np.ndarray:
    """Boolean breast mask at the image's own resolution.

    Parameters
    ----------
    image : np.ndarray or Mammogram
        2-D grey image (uint: scaled by dtype range; float: [0, 1] or min-max scaled) or a ``Mammogram``.
    working_size : int
        Long side of the downsampled copy the mask is computed on.
    threshold : float, optional
        Fixed threshold in [0, 1] instead of the automatic (Li) one.

    Returns
    -------
    np.ndarray
        bool array of the input's shape; all False if no breast was found.
    """
    img = as_float01(image)
    seg = segment(img, working_size, threshold, 0.0, None)
    rows = np.minimum(np.arange(img.shape[0]) // seg.factor, seg.mask.shape[0] - 1)
    cols = np.minimum(np.arange(img.shape[1]) // seg.factor, seg.mask.shape[1] - 1)
    return seg.mask[np.ix_(rows, cols)]
