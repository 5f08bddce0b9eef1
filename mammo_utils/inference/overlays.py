"""Grad-CAM maps on the standardized image: keep them to the breast content, blend and draw them.

:func:`mask_to_content` zeroes a map outside the breast content that
:func:`~mammo_utils.imaging.standardize.standardize` placed in the padded image; :func:`overlay` blends a grey image
with a colour-mapped map; :func:`plot_overlay` and :func:`gradcam_gallery` draw them with Matplotlib. The maps come from
:class:`mammo_utils.inference.gradcam.GradCAM`; nothing here needs TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps, patches
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

__all__ = ["CircleSpec", "gradcam_gallery", "mask_to_content", "overlay", "plot_overlay"]

CircleSpec = tuple[float, float, float]  # (row, column, radius) in image pixels


def _content_box(shape: tuple[int, int], content_shape: Any) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the content in the padded image, as placed by ``standardize``."""
    ch, cw = (int(v) for v in getattr(content_shape, "content_shape", content_shape))
    h, w = shape
    if not (1 <= ch <= h and 1 <= cw <= w):
        raise ValueError(f"content_shape {(ch, cw)} does not fit in a {h}×{w} map")
    top = (h - ch) // 2  # standardize: content left-aligned, vertically centred
    return top, 0, top + ch, cw


def mask_to_content(cam: np.ndarray, content_shape: Any, renormalize: bool = True) -> np.ndarray:
    """Zero a Grad-CAM map outside the breast content of the standardized image (the zero padding).

    ``standardize`` places the resized content left-aligned (chest wall at the left edge) and vertically
    centred: rows ``[(H - h) // 2, (H - h) // 2 + h)``, columns ``[0, w)``.

    Parameters
    ----------
    cam : np.ndarray
        ``(H, W)`` map or ``(N, H, W)`` maps of images with the same content shape.
    content_shape : tuple of int or Standardized
        ``(h, w)`` of the content (``Standardized.content_shape``), or the ``Standardized`` itself.
    renormalize : bool
        Divide by the new maximum per map so it is again 1 (an all-zero map stays zero).

    Returns
    -------
    np.ndarray
        float32 copy, same shape as ``cam``.
    """
    out = np.array(cam, dtype=np.float32, copy=True)
    if out.ndim not in (2, 3):
        raise ValueError(f"cam must be (H, W) or (N, H, W), got shape {out.shape}")
    top, left, bottom, right = _content_box(out.shape[-2:], content_shape)
    keep = np.zeros(out.shape[-2:], dtype=bool)
    keep[top:bottom, left:right] = True
    out[..., ~keep] = 0.0
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    if renormalize:
        peak = out.max(axis=(-2, -1), keepdims=True)
        out = np.divide(out, peak, out=np.zeros_like(out), where=peak > 0)
    return out


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a grey image with a colour-mapped heat map: ``(1 - alpha) · grey + alpha · cmap(cam)``.

    ``image`` is ``(H, W)`` or ``(H, W, 1)`` grey in [0, 1], ``cam`` is ``(H, W)`` in [0, 1] (both clipped),
    ``alpha`` in [0, 1], ``cmap`` a Matplotlib colour map name. Returns float32 ``(H, W, 3)`` RGB in [0, 1].
    """
    grey = np.asarray(image, dtype=np.float32)
    grey = grey[..., 0] if grey.ndim == 3 and grey.shape[-1] == 1 else grey
    heat = np.asarray(cam, dtype=np.float32)
    if grey.ndim != 2 or heat.shape != grey.shape:
        raise ValueError(f"image {np.shape(image)} and cam {np.shape(cam)} must be the same (H, W) grid")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    grey = np.clip(np.nan_to_num(grey), 0.0, 1.0)
    colours = colormaps[cmap](np.clip(np.nan_to_num(heat), 0.0, 1.0))[..., :3].astype(np.float32)
    blended = (1.0 - alpha) * grey[..., None] + alpha * colours
    return np.clip(blended, 0.0, 1.0).astype(np.float32)


def outline_boxes(
    rgb: np.ndarray, boxes: Sequence[tuple[float, float, float, float]], colour: tuple[float, float, float] = (1, 1, 1)
) -> np.ndarray:
    """A copy of an ``(H, W, 3)`` image with each ``(top, left, bottom, right)`` box outlined (1 px, clipped)."""
    out = np.array(rgb, dtype=np.float32, copy=True)
    if out.ndim != 3 or out.shape[-1] != 3:
        raise ValueError(f"rgb must be (H, W, 3), got {out.shape}")
    height, width = out.shape[:2]
    for box in boxes:
        top, left = (int(np.clip(round(v), 0, n - 1)) for v, n in zip(box[:2], (height, width), strict=True))
        bottom, right = (int(np.clip(round(v) - 1, 0, n - 1)) for v, n in zip(box[2:], (height, width), strict=True))
        out[top : bottom + 1, [left, right]] = colour
        out[[top, bottom], left : right + 1] = colour
    return out


def plot_overlay(
    ax: Axes,
    image: np.ndarray,
    cam: np.ndarray,
    title: str | None = None,
    alpha: float = 0.4,
    cmap: str = "jet",
    colorbar: bool = False,
    circle: CircleSpec | None = None,
) -> Axes:
    """Draw :func:`overlay` on ``ax`` (axes off), with an optional title and colour bar of the map scale.

    ``circle`` ``(row, column, radius)`` in image pixels (e.g. a known finding) is outlined in white.
    """
    ax.imshow(overlay(image, cam, alpha=alpha, cmap=cmap), interpolation="bilinear")
    ax.set_axis_off()
    if circle is not None:
        y, x, radius = (float(v) for v in circle)
        ax.add_patch(patches.Circle((x, y), radius, fill=False, edgecolor="white", linewidth=1.2, linestyle="--"))
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
        ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04, label="Grad-CAM (relative)")
    return ax


def gradcam_gallery(
    images: Sequence[np.ndarray],
    cams: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    alpha: float = 0.4,
    cmap: str = "jet",
    suptitle: str | None = None,
    circles: Sequence[CircleSpec | None] | None = None,
    label: str = "Grad-CAM (relative to each image's maximum)",
) -> Figure:
    """A grid of Grad-CAM overlays, one per image with its title, and one shared colour bar.

    ``images`` and ``cams`` are equally long, each pair on one (H, W) grid; ``titles`` one per image (e.g.
    "true c / pred d, p(malig)=0.81"); ``alpha`` and ``cmap`` go to :func:`overlay`; ``suptitle`` titles the figure.
    ``circles``: one ``(row, column, radius)`` or None per image, outlined on it (see :func:`plot_overlay`).
    ``label`` names the colour bar's scale (e.g. "lesion map: malignant probability" for a lesion model's maps).
    """
    n = len(images)
    titles = list(titles) if titles is not None else [""] * n
    if n == 0 or len(cams) != n or len(titles) != n:
        raise ValueError(f"need equally many (>0) images, cams and titles; got {n}, {len(cams)}, {len(titles)}")
    circles = list(circles) if circles is not None else [None] * n
    if len(circles) != n:
        raise ValueError(f"need one circle (or None) per image; got {len(circles)} for {n} images")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols + 0.6, 2.8 * nrows), squeeze=False)
    for ax, image, cam, title, circle in zip(axes.flat[:n], images, cams, titles, circles, strict=True):
        plot_overlay(ax, image, cam, title=title, alpha=alpha, cmap=cmap, circle=circle)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap),
        ax=axes.ravel().tolist(),
        fraction=0.02,
        pad=0.02,
        label=label,
    )
    if suptitle:
        fig.suptitle(suptitle)
    return fig
