"""DICOM decoding behind :func:`mammo_utils.imaging.io.read_mammogram` (not a public entry point).

Pipeline (DICOM PS3.3 C.11): checks from the header (pixel data present, modality, single
frame, size, decoder installed) → decode with pydicom, preferring the pylibjpeg plugins
(RLE, JPEG, JPEG-LS, JPEG 2000); pydicom masks the bits above Bits Stored → modality
transform (Rescale Slope/Intercept in float32, or the Modality LUT Sequence) → VOI
(the first VOI LUT Sequence item, else the first Window Center/Width with VOI LUT Function
LINEAR, LINEAR_EXACT or SIGMOID) → [0, 1] → inverted if MONOCHROME1.

Normalization without a VOI: the full range of Bits Stored (``0 … 2**BitsStored - 1``, or
the signed range), mapped through the modality transform, becomes [0, 1]. This keeps
intensities absolute and reproducible (a 16-bit PNG export round-trips); it does not stretch
images that use only part of their range (standardization does that). Float pixel data are
min-max scaled. Colour DICOM (RGB, YBR, palette) becomes grey by ITU-R 601 luma.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from io import BytesIO
from typing import SupportsFloat, cast

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder, pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from mammo_utils.imaging.mammogram import (
    Mammogram,
    MammogramReadError,
    check_dimensions,
    laterality_view_from_text,
    minmax_scale,
    scale_to_unit,
)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_WARN_MODALITIES = {"CR": "computed radiography", "DX": "digital radiography", "OT": "other", "SC": "secondary capture"}
_REFUSED_NAMES = {
    "CT": "computed tomography",
    "MR": "magnetic resonance",
    "US": "ultrasound",
    "PT": "PET",
    "NM": "nuclear medicine",
    "XA": "X-ray angiography",
    "RF": "fluoroscopy",
    "RTIMAGE": "radiotherapy image",
    "RTDOSE": "radiotherapy dose",
    "SR": "structured report",
    "IO": "intra-oral X-ray",
    "PX": "panoramic X-ray",
    "OP": "ophthalmic photo",
    "XC": "external camera photo",
    "SM": "slide microscopy",
    "ECG": "electrocardiogram",
}
_VIEW_POSITIONS = {"CC": "CC", "XCC": "CC", "XCCL": "CC", "XCCM": "CC", "MLO": "MLO"}
_VIEW_CODES = {"R-10242": "CC", "399162004": "CC", "R-10226": "MLO", "399368009": "MLO"}
_TEXT_KEYWORDS = ("PatientName", "PatientID", "SeriesDescription", "ProtocolName", "StudyDescription")
_LARGEST = 1e30  # rescale/window parameters beyond this are treated as invalid


def decode_dicom(data: bytes, label: str, *, max_pixels: int, min_side: int) -> Mammogram:
    """Decode DICOM bytes into a :class:`~mammo_utils.imaging.mammogram.Mammogram` (without the file name)."""
    ds = pydicom.dcmread(BytesIO(data), force=True)
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        _refuse_without_pixels(ds, data, label)
    modality = _text(ds, "Modality").upper() or None
    notes = _check_modality(modality, label)
    _check_single_frame_size(ds, label, max_pixels, min_side)
    raw = _decoded_pixels(ds, label)
    photometric = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    bits_stored = _as_int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8 * raw.itemsize)
    bits_stored = min(max(bits_stored, 1), 8 * raw.itemsize)
    if photometric == "PALETTE COLOR" or raw.ndim == 3:
        rgb = apply_color_lut(raw, ds) if photometric == "PALETTE COLOR" else raw
        pixels = _luma(rgb)
    else:
        pixels = _grey(raw, ds, bits_stored, notes)
        if photometric == "MONOCHROME1":
            np.subtract(np.float32(1.0), pixels, out=pixels)
    laterality, view = dataset_laterality_view(ds)
    return Mammogram(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        source_format="dicom",
        bit_depth=bits_stored,
        photometric=photometric,
        original_shape=(int(pixels.shape[0]), int(pixels.shape[1])),
        laterality=laterality,
        view=view,
        modality=modality,
        warnings=tuple(notes),
    )


def _refuse_without_pixels(ds: Dataset, data: bytes, label: str) -> None:
    """Raise the :class:`MammogramReadError` that says why a DICOM without pixel data cannot be read."""
    if b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data:  # the (7FE0,0010) tag is there
        raise MammogramReadError(
            f"{label}: DICOM pixel data could not be read; the file is truncated or corrupt. "
            "Re-export or re-download it."
        )
    if not any(keyword in ds for keyword in ("SOPClassUID", "Modality", "Rows", "StudyInstanceUID")):
        raise MammogramReadError(
            f"{label}: looks like DICOM but no readable header was found; the file is corrupt or not DICOM. "
            "Check that this is the image file itself."
        )
    sop = ds.get("SOPClassUID")
    kind = f" (SOP class: {UID(str(sop)).name})" if sop else ""
    raise MammogramReadError(
        f"{label}: DICOM file has no pixel data{kind}; it is not an image (e.g. a report, a "
        "presentation state or a header-only file). Export the mammogram image itself."
    )


def _check_single_frame_size(ds: Dataset, label: str, max_pixels: int, min_side: int) -> None:
    """Refuse multi-frame images and missing or out-of-range Rows/Columns."""
    frames = _as_int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise MammogramReadError(
            f"{label}: multi-frame DICOM with {frames} frames (e.g. breast tomosynthesis); only single 2D "
            "images are supported. Export one 2D view (e.g. the synthesized 2D image) and read that."
        )
    rows, columns = _as_int(ds.get("Rows") or 0), _as_int(ds.get("Columns") or 0)
    if not rows or not columns:
        raise MammogramReadError(
            f"{label}: DICOM header lacks Rows/Columns (0028,0010/0011), so its pixel data cannot be "
            "interpreted. The file is incomplete; re-export it."
        )
    check_dimensions(label, rows, columns, max_pixels, min_side)


def _decoded_pixels(ds: Dataset, label: str) -> np.ndarray:
    """The stored pixel values, with the preferred decoder plugin, else any installed one."""
    plugin = _decoding_plugin(ds, label)
    try:
        return pixel_array(ds, decoding_plugin=plugin)
    except Exception:
        if not plugin:
            raise
        return pixel_array(ds)  # the preferred plugin failed: let pydicom try every installed one


def _check_modality(modality: str | None, label: str) -> list[str]:
    """Accept MG; accept CR/DX/OT/SC/missing with a note; refuse everything else."""
    if modality == "MG":
        return []
    if modality is None:
        return ["DICOM Modality (0008,0060) is missing; read as a mammogram. Check that it is one."]
    if modality in _WARN_MODALITIES:
        return [
            f"DICOM Modality is {modality} ({_WARN_MODALITIES[modality]}), not MG; read as a projection "
            "X-ray. Check that it is a mammogram."
        ]
    name = f" ({_REFUSED_NAMES[modality]})" if modality in _REFUSED_NAMES else ""
    raise MammogramReadError(
        f"{label}: DICOM Modality is {modality}{name}, not a mammogram. Only MG images (and, with a warning, "
        "CR/DX/OT/SC projection X-rays) are read; pass a mammography image."
    )


def _decoding_plugin(ds: Dataset, label: str) -> str:
    """Name the pixel decoder plugin to use; refuse transfer syntaxes without an installed decoder."""
    if "TransferSyntaxUID" not in ds.file_meta:  # preamble-less file without meta information
        implicit, little = ds.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = syntax
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    try:
        decoder = get_decoder(syntax)
    except (NotImplementedError, ValueError) as exc:
        raise MammogramReadError(
            f"{label}: DICOM transfer syntax '{syntax.name}' ({syntax}) cannot be decoded by pydicom. "
            "Convert the file to uncompressed DICOM (e.g. `gdcmconv --raw in.dcm out.dcm`) and read that."
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise MammogramReadError(
            f"{label}: no decoder is installed for DICOM transfer syntax '{syntax.name}' ({syntax}). "
            f"Install one with `pip install {_pip_hint(syntax)}`" + (f" (pydicom: {missing})." if missing else ".")
        )
    return "pylibjpeg" if "pylibjpeg" in decoder.available_plugins else ""


def _pip_hint(syntax: UID) -> str:
    """The pip packages that decode `syntax` through pydicom."""
    if syntax == RLELossless:
        return "pylibjpeg pylibjpeg-rle"
    if syntax in JPEGTransferSyntaxes or syntax in JPEGLSTransferSyntaxes:
        return "pylibjpeg pylibjpeg-libjpeg"
    if syntax in JPEG2000TransferSyntaxes:
        return "pylibjpeg pylibjpeg-openjpeg"
    return "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle"


def _grey(raw: np.ndarray, ds: Dataset, bits_stored: int, notes: list[str]) -> np.ndarray:
    """Modality transform then VOI, returning new float32 values in [0, 1]."""
    if raw.dtype.kind == "f":  # Float / Double Float Pixel Data
        window = _window_parameters(ds, notes)
        return _apply_window(raw.astype(np.float32), *window) if window else minmax_scale(raw)
    if ds.get("PixelRepresentation", 0) == 1:
        low, high = -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    else:
        low, high = 0, 2**bits_stored - 1
    values: np.ndarray = raw
    if ds.get("ModalityLUTSequence"):
        values = apply_modality_lut(raw, ds)
        low, high = _lut_range(ds.ModalityLUTSequence[0], lambda probe: apply_modality_lut(probe, ds))
    else:
        slope = _as_float(ds.get("RescaleSlope"), 1.0)
        intercept = _as_float(ds.get("RescaleIntercept"), 0.0)
        ends = sorted((low * slope + intercept, high * slope + intercept))
        if slope == 0.0 or max(abs(ends[0]), abs(ends[1])) > _LARGEST:
            notes.append(f"Ignored invalid Rescale Slope/Intercept ({slope}, {intercept}).")
        elif (slope, intercept) != (1.0, 0.0):
            values = raw.astype(np.float32)
            values *= np.float32(slope)
            values += np.float32(intercept)
            low, high = ends
    if ds.get("VOILUTSequence"):
        lut_input = np.rint(values).astype(np.int32) if values.dtype.kind == "f" else values
        low, high = _lut_range(ds.VOILUTSequence[0], lambda probe: apply_voi(probe, ds))
        return scale_to_unit(apply_voi(lut_input, ds), high, low) if high > low else np.zeros(raw.shape, np.float32)
    window = _window_parameters(ds, notes)
    if window:
        return _apply_window(values if values.dtype == np.float32 else values.astype(np.float32), *window)
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    if values.dtype == np.float32:  # already a private copy: scale in place
        values -= np.float32(low)
        values /= np.float32(high - low)
        return values
    return scale_to_unit(values, float(high), float(low))


def _lut_range(item: Dataset, apply: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """(min, max) of a LUT's output, found by applying it to every entry (at most 65536)."""
    first, entries = _as_int(item.LUTDescriptor[1]), _as_int(item.LUTDescriptor[0]) or 2**16
    lut = apply(np.arange(first, first + min(entries, 2**16), dtype=np.int64))
    return float(lut.min()), float(lut.max())


def _window_parameters(ds: Dataset, notes: list[str]) -> tuple[float, float, str] | None:
    """First valid (center, width, function) of the dataset, or None."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = _as_float(_first(ds.WindowCenter), math.nan), _as_float(_first(ds.WindowWidth), math.nan)
    function = _text(ds, "VOILUTFunction").upper() or "LINEAR"
    minimum_width = 1.0 if function == "LINEAR" else 0.0
    if not (abs(center) <= _LARGEST and minimum_width <= width <= _LARGEST and width > 0):
        notes.append(f"Ignored invalid Window Center/Width ({center}, {width}).")
        return None
    return center, width, function


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """Apply a VOI window in place to float32 `values`, giving [0, 1] (PS3.3 C.11.2.1.2)."""
    if function == "SIGMOID":
        values -= np.float32(center)
        values *= np.float32(-4.0 / width)
        with np.errstate(over="ignore"):
            np.exp(values, out=values)
        values += np.float32(1.0)
        np.reciprocal(values, out=values)
    elif function == "LINEAR_EXACT":
        values -= np.float32(center)
        values /= np.float32(width)
        values += np.float32(0.5)
    else:  # LINEAR
        values -= np.float32(center - 0.5)
        values /= np.float32(max(width - 1.0, 1e-3))
        values += np.float32(0.5)
    np.clip(values, 0.0, 1.0, out=values)
    return values


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB array, scaled by the integer type's maximum."""
    maximum = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else 1.0
    grey = rgb[..., 0].astype(np.float32) * np.float32(0.299)
    grey += rgb[..., 1].astype(np.float32) * np.float32(0.587)
    grey += rgb[..., 2].astype(np.float32) * np.float32(0.114)
    grey /= np.float32(maximum)
    return grey


def dataset_laterality_view(ds: Dataset) -> tuple[str | None, str | None]:
    """Laterality and view of a DICOM dataset: from tags, then from text fields such as PatientName.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The parsed DICOM header.

    Returns
    -------
    tuple
        ``(laterality, view)``: "L"/"R" and "CC"/"MLO", each None when nothing says it.
    """
    laterality = next(
        (
            value
            for value in (_text(ds, "ImageLaterality").upper(), _text(ds, "Laterality").upper())
            if value in ("L", "R")
        ),
        None,
    )
    view = _VIEW_POSITIONS.get(_text(ds, "ViewPosition").upper())
    if view is None:
        try:
            code = ds.ViewCodeSequence[0] if ds.get("ViewCodeSequence") else None
            meaning = str(code.get("CodeMeaning", "")).lower().replace("-", "").replace(" ", "") if code else ""
            view = _VIEW_CODES.get(str(code.get("CodeValue", ""))) if code else None
            view = view or {"craniocaudal": "CC", "mediolateraloblique": "MLO"}.get(meaning)
        except Exception:  # a damaged optional sequence must not reject the image
            view = None
    for keyword in _TEXT_KEYWORDS:
        if laterality and view:
            break
        text_laterality, text_view = laterality_view_from_text(_text(ds, keyword))
        if keyword in ("PatientName", "PatientID") and not (text_laterality and text_view):
            continue  # a lone "L"/"R" in a name is more likely an initial than a laterality
        laterality, view = laterality or text_laterality, view or text_view
    return laterality, view


def _text(ds: Dataset, keyword: str) -> str:
    """A tag's value as stripped text; '' when absent or unreadable."""
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged optional element must not reject the image
        return ""
    return "" if value is None else str(_first(value)).strip()


def _first(value: object) -> object:
    """First item of a multi-valued element, else the value."""
    if isinstance(value, (list, tuple, MultiValue)):
        return value[0] if len(value) else ""
    return value


def _as_float(value: object, default: float) -> float:
    """Parse a DS value; `default` when missing or not finite."""
    try:
        number = float(cast(SupportsFloat, _first(value))) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _as_int(value: object) -> int:
    """Parse an IS/US value (raises ValueError on garbage, reported as a corrupt file)."""
    return int(float(str(_first(value)).strip()))
