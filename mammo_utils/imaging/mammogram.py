"""The decoded-mammogram record and what both decoders share (:mod:`mammo_utils.imaging.io` for Pillow formats,
:mod:`mammo_utils.imaging.dicom` for DICOM): the error type, the size check, intensity scaling to [0, 1], and
laterality/view from free text.

Users read images with :func:`mammo_utils.imaging.io.read_mammogram`, which returns a :class:`Mammogram`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Mammogram",
    "MammogramReadError",
    "check_dimensions",
    "laterality_view_from_text",
    "minmax_scale",
    "scale_to_unit",
]

_LATERALITY_WORDS = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}
_VIEW_WORDS = {"CC": "CC", "XCC": "CC", "XCCL": "CC", "XCCM": "CC", "MLO": "MLO"}
_TOKEN = re.compile(r"(LEFT|RIGHT|L|R)?(CC|XCCL|XCCM|XCC|MLO)?")
_MIAS = re.compile(r"MDB(\d{3})")


class MammogramReadError(ValueError):
    """The input cannot be read as a 2D mammogram; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Mammogram:
    """A decoded mammogram and what is known about it.

    Attributes
    ----------
    pixels : np.ndarray
        float32, H×W, C-contiguous, values in [0, 1]; bright = dense tissue.
    source_format : str
        "dicom", "png", "jpeg", "tiff", "pgm", "bmp", "gif", "webp", "jpeg2000", "ppm" or "pbm".
    bit_depth : int
        Stored bits per sample of the decoded data (e.g. 8, 12, 16).
    photometric : str
        DICOM Photometric Interpretation or Pillow mode of the file ("MONOCHROME2", "I;16", "RGB" ...).
    original_shape : tuple[int, int]
        (rows, columns) of the decoded image (after EXIF orientation).
    laterality, view : str or None
        "L"/"R" and "CC"/"MLO" when known.
    modality : str or None
        DICOM Modality, None for other formats.
    filename : str or None
        The file name given or taken from the path.
    warnings : tuple[str, ...]
        Non-fatal remarks (e.g. a DICOM Modality other than MG).
    """

    pixels: np.ndarray
    source_format: str
    bit_depth: int
    photometric: str
    original_shape: tuple[int, int]
    laterality: str | None = None
    view: str | None = None
    modality: str | None = None
    filename: str | None = None
    warnings: tuple[str, ...] = ()


def laterality_view_from_text(text: str) -> tuple[str | None, str | None]:
    """Find laterality and view in free text such as a file name or a DICOM PatientID.

    Parameters
    ----------
    text : str
        E.g. ``"Mass-Test_P_00820_LEFT_CC"``, ``"P_00001_LEFT_MLO.png"``, ``"R_MLO"``, ``"LCC.dcm"``
        or a mini-MIAS name ``"mdb001"`` (odd numbers are right, even are left, all MLO).

    Returns
    -------
    tuple[str | None, str | None]
        ("L" | "R" | None, "CC" | "MLO" | None); None when absent or contradictory.
    """
    lateralities: set[str] = set()
    views: set[str] = set()
    for token in re.split(r"[^A-Z0-9]+", str(text).upper()):
        mias = _MIAS.fullmatch(token)
        if mias:
            lateralities.add("R" if int(mias.group(1)) % 2 else "L")
            views.add("MLO")
            continue
        match = _TOKEN.fullmatch(token)
        if token and match:
            if match.group(1):
                lateralities.add(_LATERALITY_WORDS[match.group(1)])
            if match.group(2):
                views.add(_VIEW_WORDS[match.group(2)])
    laterality = lateralities.pop() if len(lateralities) == 1 else None
    view = views.pop() if len(views) == 1 else None
    return laterality, view


def check_dimensions(label: str, rows: int, columns: int, max_pixels: int, min_side: int) -> None:
    """Raise :class:`MammogramReadError` if an image of this size must be refused.

    Parameters
    ----------
    label : str
        Name of the input, used in the message.
    rows, columns : int
        Image size in pixels.
    max_pixels : int
        Largest accepted ``rows * columns`` (decompression-bomb guard).
    min_side : int
        Smallest accepted side.

    Raises
    ------
    MammogramReadError
        If the image has more than `max_pixels` pixels or a side under `min_side`.
    """
    if rows * columns > max_pixels:
        raise MammogramReadError(
            f"{label}: image is {columns}×{rows} = {rows * columns / 1e6:.1f} Mpx, above the limit of "
            f"{max_pixels / 1e6:g} Mpx (decompression-bomb guard). Downsample it, or pass a larger "
            "max_pixels if you trust the file."
        )
    if min(rows, columns) < min_side:
        raise MammogramReadError(
            f"{label}: image is only {columns}×{rows} px; a mammogram needs at least {min_side} px per side. "
            "Use the full-resolution image, not a thumbnail."
        )


def scale_to_unit(values: np.ndarray, maximum: float, minimum: float = 0.0) -> np.ndarray:
    """Map [minimum, maximum] linearly to [0, 1] as a new float32 array (no float64 copy).

    Values outside the range map outside [0, 1]; callers clip.
    """
    if not minimum:
        return np.divide(values, np.float32(maximum), dtype=np.float32)
    out = np.subtract(values, np.float32(minimum), dtype=np.float32)
    out /= np.float32(maximum - minimum)
    return out


def minmax_scale(values: np.ndarray, keep_unit: bool = False) -> np.ndarray:
    """Min-max scale to float32 [0, 1]; non-finite values become the minimum, a constant image zeros.

    With `keep_unit`, data already inside [0, 1] are returned unchanged (as float32).
    """
    out = np.array(values, dtype=np.float64)
    finite = np.isfinite(out)
    if not finite.all():
        out[~finite] = out[finite].min() if finite.any() else 0.0
    low, high = float(out.min()), float(out.max())
    if keep_unit and low >= 0.0 and high <= 1.0:
        return out.astype(np.float32)
    if high <= low:
        return np.zeros(out.shape, dtype=np.float32)
    out -= low
    out /= high - low
    return out.astype(np.float32)
