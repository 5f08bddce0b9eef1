"""Read a mammogram (DICOM, PNG, JPEG, TIFF, PGM, BMP ...) into a normalized float32 array.

:func:`read_mammogram` is the single public entry point. It accepts a path, raw bytes or a
binary file object and detects the format from the content, never from the extension:
DICOM (``DICM`` at offset 128, or a preamble-less dataset) goes through pydicom and the
pylibjpeg plugins (see :mod:`mammo_utils.imaging.dicom`); everything else through Pillow
(PNG, JPEG, TIFF, PGM/PPM/PBM, BMP, GIF, WebP, JPEG 2000).

The output is float32, H×W, C-contiguous, finite and in [0, 1], with bright = dense tissue.

Decisions
---------
Normalization
    Integer images are divided by their container maximum (255 for 8-bit, 65535 for 16-bit,
    including 16-bit PGM, which Pillow rescales to 16 bits), so intensities stay comparable
    between files and a 16-bit PNG round-trips exactly. 32-bit integer and floating-point
    images are min-max scaled (floats already inside [0, 1] are kept); a constant image of
    that kind becomes zeros. DICOM: VOI LUT or window when present, otherwise the range of
    Bits Stored mapped through the modality rescale (see :mod:`mammo_utils.imaging.dicom`).
Colour and alpha
    RGB, CMYK, YCbCr and palette images become grey by ITU-R 601 luma (Pillow ``convert("L")``).
    Alpha is composited over black, because transparent pixels are background.
Orientation
    The EXIF orientation tag is applied (``ImageOps.exif_transpose``).
Modality (DICOM)
    MG is read silently. CR, DX, OT, SC and a missing Modality are read with a note in
    ``Mammogram.warnings``. Everything else (CT, MR, US, PT, NM, XA, RF, RTIMAGE, SR ...) is refused.
Multi-frame
    Refused: DICOM with NumberOfFrames > 1 (e.g. breast tomosynthesis), multi-page TIFF and
    animated GIF/PNG/WebP. Export one 2D view. An MPO JPEG (camera) uses its primary image.
Limits
    Images with a side under ``min_side`` (64) px or with more than ``max_pixels`` (60 Mpx, the
    decompression-bomb guard) are refused from the header, before pixel data is decoded.
Laterality and view
    From DICOM tags, then DICOM text fields (PatientName, PatientID, SeriesDescription ...),
    then the file name (not its folders), see :func:`laterality_view_from_text`.
Errors
    Every problem with the input raises :class:`MammogramReadError` (a ``ValueError``) whose
    message names the input, says what is wrong and what to do; exceptions from Pillow, pydicom
    or numpy are wrapped (chained with ``from``). Only a wrong argument type raises ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import os
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mammo_utils.imaging.mammogram import (
    Mammogram,
    MammogramReadError,
    check_dimensions,
    laterality_view_from_text,
    minmax_scale,
    scale_to_unit,
)

__all__ = ["MAX_PIXELS", "MIN_SIDE", "read_mammogram"]

MAX_PIXELS: int = 60_000_000
"""Largest accepted image (pixels); larger files are refused as possible decompression bombs."""
MIN_SIDE: int = 64
"""Smallest accepted side length (pixels)."""

_PIL_FORMATS = ("PNG", "JPEG", "MPO", "TIFF", "PPM", "BMP", "GIF", "WEBP", "JPEG2000")
_SUPPORTED = "DICOM, PNG, JPEG, TIFF, PGM, BMP"
_EXIF_ORIENTATION = 0x0112
_MAGIC = (
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"P2", "PGM"),
    (b"P5", "PGM"),
    (b"RIFF", "WebP"),
    (b"\x00\x00\x00\x0cjP", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)


def read_mammogram(
    source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    filename: str | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> Mammogram:
    """Read a mammogram from a path, bytes or binary file object.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, memoryview or binary file object
        The image. The format is detected from the content.
    filename : str, optional
        Name used in messages and for laterality/view hints; defaults to the path's name.
    max_pixels : int
        Refuse images with more pixels than this (decompression-bomb guard).
    min_side : int
        Refuse images whose shorter side is below this.

    Returns
    -------
    Mammogram
        float32 pixels in [0, 1] plus metadata.

    Raises
    ------
    MammogramReadError
        Empty, missing, unreadable, unsupported, corrupt, too small, too large or multi-frame input,
        DICOM without pixel data or of a non-mammography modality.
    TypeError
        `source` is not a path, bytes-like or binary file object.
    """
    data, name = _load_bytes(source, filename)
    label = name or "input"
    try:
        if _is_dicom(data):
            from mammo_utils.imaging import dicom as io_dicom  # deferred: pydicom is only needed for DICOM

            result = io_dicom.decode_dicom(data, label, max_pixels=max_pixels, min_side=min_side)
        else:
            result = _decode_pillow(data, label, max_pixels=max_pixels, min_side=min_side)
        pixels = result.pixels
        np.clip(pixels, 0.0, 1.0, out=pixels)
        if np.isnan(pixels.max()):
            np.nan_to_num(pixels, copy=False, nan=0.0)
    except MammogramReadError:
        raise
    except BaseException as exc:  # any decoder failure means the file is damaged or unsupported
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit ... (a Rust decoder's PanicException is a BaseException)
        raise MammogramReadError(
            f"{label}: could not decode the image ({type(exc).__name__}: {exc}). The file is probably "
            "truncated or corrupt; re-export or re-download it."
        ) from exc
    laterality, view = result.laterality, result.view
    if name and (laterality is None or view is None):
        hint_laterality, hint_view = laterality_view_from_text(name)
        laterality, view = laterality or hint_laterality, view or hint_view
    return dataclasses.replace(result, laterality=laterality, view=view, filename=name)


def _load_bytes(source: object, filename: str | None) -> tuple[bytes, str | None]:
    """Return the raw bytes of `source` and the name to report."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), filename
    elif isinstance(source, (str, os.PathLike)):
        path = Path(os.fsdecode(source))
        name = filename or path.name
        if not path.exists():
            raise MammogramReadError(f"{path}: file not found. Check the path (relative to {Path.cwd()}).")
        if path.is_dir():
            raise MammogramReadError(f"{path}: is a directory, not an image. Pass the path of one image file.")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MammogramReadError(f"{path}: cannot read the file ({exc}). Check its permissions.") from exc
    elif callable(read := getattr(source, "read", None)):
        source_name = getattr(source, "name", None)
        name = filename or (Path(source_name).name if isinstance(source_name, str) else None)
        try:
            data = read()
        except Exception as exc:
            raise MammogramReadError(f"{name or 'input'}: cannot read from the file object ({exc}).") from exc
        if isinstance(data, str):
            raise MammogramReadError(f"{name or 'input'}: file object is in text mode; open it with mode 'rb'.")
        data = bytes(data or b"")
    else:
        raise TypeError(f"read_mammogram expects a path, bytes or a binary file object, not {type(source).__name__}")
    if not data:
        raise MammogramReadError(f"{name or 'input'}: the file is empty (0 bytes). Re-export or re-download it.")
    return data, name


def _is_dicom(data: bytes) -> bool:
    """DICOM Part 10 preamble, or a preamble-less dataset starting with a group 0002/0008 tag."""
    if data[128:132] == b"DICM":
        return True
    return len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _decode_pillow(data: bytes, label: str, *, max_pixels: int, min_side: int) -> Mammogram:
    """Decode a non-DICOM image with Pillow, checking size and frames before decoding pixels."""
    Image.init()
    formats = [fmt for fmt in _PIL_FORMATS if fmt in Image.OPEN]
    try:
        image: Image.Image = Image.open(BytesIO(data), formats=formats)
    except UnidentifiedImageError as exc:
        kind = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
        if kind:
            raise MammogramReadError(
                f"{label}: starts like a {kind} file but its header cannot be parsed; the file is corrupt or "
                "truncated. Re-export or re-download it."
            ) from exc
        raise MammogramReadError(
            f"{label}: not a recognised image format (supported: {_SUPPORTED}); it starts with "
            f"{data[:12]!r}. Check that this is the image file itself, not e.g. a web page or an archive."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise MammogramReadError(
            f"{label}: image is far above the limit of {max_pixels / 1e6:g} Mpx (decompression-bomb guard; "
            f"Pillow: {exc}). Downsample it first."
        ) from exc
    with image:
        fmt = image.format or ""
        width, height = image.size
        check_dimensions(label, height, width, max_pixels, min_side)
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and fmt != "MPO":
            kind = "multi-page TIFF" if fmt == "TIFF" else f"animated {fmt}"
            raise MammogramReadError(
                f"{label}: {kind} with {frames} frames; multi-frame images (e.g. tomosynthesis) are not "
                "supported. Export a single 2D view and read that."
            )
        image.load()
        photometric = image.mode
        if image.getexif().get(_EXIF_ORIENTATION, 1) in range(2, 9):
            image = ImageOps.exif_transpose(image)
        pixels, bit_depth = _pil_to_grey(image, fmt, label)
    source_format = {"JPEG2000": "jpeg2000", "MPO": "jpeg"}.get(fmt, fmt.lower())
    if fmt == "PPM":
        source_format = {"1": "pbm", "RGB": "ppm"}.get(photometric, "pgm")
    return Mammogram(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        source_format=source_format,
        bit_depth=bit_depth,
        photometric=photometric,
        original_shape=(int(pixels.shape[0]), int(pixels.shape[1])),
    )


def _pil_to_grey(image: Image.Image, fmt: str, label: str) -> tuple[np.ndarray, int]:
    """Convert a loaded Pillow image to float32 grey in [0, 1] and its bits per sample."""
    mode = image.mode
    if mode.startswith("I;16"):
        return scale_to_unit(np.asarray(image), 65535.0), 16
    if mode == "I":  # Pillow keeps 16-bit PNG/PGM samples in mode I; other 32-bit data is min-max scaled
        if fmt in ("PNG", "PPM"):
            return scale_to_unit(np.asarray(image), 65535.0), 16
        return minmax_scale(np.asarray(image)), 32
    if mode == "F":
        return minmax_scale(np.asarray(image), keep_unit=True), 32
    if mode == "1":
        return np.asarray(image, dtype=np.float32), 1
    try:
        if "A" in mode or "a" in mode or "transparency" in image.info:
            grey_alpha = np.asarray(image.convert("RGBA").convert("LA"), dtype=np.float32)
            return grey_alpha[..., 0] * grey_alpha[..., 1] * (1.0 / 65025.0), 8
        if mode not in ("L", "P", "RGB"):
            image = image.convert("RGB")
        grey = image.convert("L") if image.mode != "L" else image
    except ValueError as exc:
        raise MammogramReadError(
            f"{label}: unsupported pixel mode {mode!r}. Re-save the image as 8/16-bit grey or RGB."
        ) from exc
    return scale_to_unit(np.asarray(grey), 255.0), 8
