"""De-identify a submitted image before it is stored (DICOM PS3.15 Annex E; PNG/JPEG/TIFF metadata stripped).

:func:`deidentify` takes the raw bytes of an image that :func:`mammo_utils.imaging.io.read_mammogram` accepted and
returns new bytes that carry the pixels and nothing else that could identify a person.

DICOM (PS3.15 Annex E, Basic Application Level Confidentiality Profile, implemented as a retain list)
    Only the attributes in :data:`DICOM_RETAINED` (image pixel module, modality/VOI LUTs and windows, photometric
    interpretation, bits, Modality, Laterality, ViewPosition, burned-in-annotation flags ...) are copied into a
    fresh dataset. Everything else is dropped, which covers every attribute of Annex E Table E.1-1 with action X
    (names, addresses, birth date, institution, physicians, operators, device serial numbers, descriptions ...),
    all private tags, curves (50xx) and overlays (60xx). Type 2 attributes the profile blanks (action Z) are
    present and empty: PatientName, PatientID, PatientBirthDate, PatientSex, StudyDate, StudyTime,
    ReferringPhysicianName, StudyID, AccessionNumber. Study, series, SOP instance and frame-of-reference UIDs are
    replaced (action U) by ``pydicom.uid.generate_uid(entropy_srcs=[salt, original UID])``, so the same source
    file always yields the same bytes (the store dedupes on their SHA-256) and views of one study stay grouped,
    while the original UID cannot be read back. PatientIdentityRemoved = YES, DeidentificationMethod and
    DeidentificationMethodCodeSequence (DCM 113100, basic profile) are set. The 128-byte preamble and the file
    meta group are rebuilt (a preamble may hold another file, e.g. a TIFF). Laterality and view are read first,
    also from PatientName/PatientID where CBIS-DDSM keeps them (``Mass-Test_P_00173_LEFT_CC``), and written to
    Laterality and ViewPosition before those names are blanked. BurnedInAnnotation = YES is flagged as
    ``"burned-in-annotation"``; a missing or unreadable value as ``"burned-in-annotation-unknown"`` (pixels are not
    inspected: a person must review flagged images before they are accepted).
PNG, JPEG, TIFF and the other raster formats
    The image is decoded with Pillow, its EXIF orientation applied to the pixels, and only the pixels are
    re-encoded into a fresh image: no EXIF, XMP, IPTC, ICC profile, PNG tEXt/zTXt/iTXt chunks or TIFF
    description/artist tags survive. TIFF input is stored as a metadata-free TIFF (deflate, lossless);
    everything else (PNG, JPEG, BMP, PGM, GIF, WebP ...) as PNG of the decoded pixels. For JPEG this avoids a
    second lossy encoding: the PNG holds exactly the pixels the model would have read from the JPEG, at the price
    of a larger file. Burned-in text cannot be ruled out for these formats, so they are flagged
    ``"burned-in-annotation-unknown"``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

import pydicom
from PIL import Image, ImageOps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

from mammo_utils.imaging.dicom import dataset_laterality_view
from mammo_utils.imaging.mammogram import MammogramReadError

__all__ = [
    "DEIDENTIFICATION_METHOD",
    "DICOM_BLANKED",
    "DICOM_REPLACED_UIDS",
    "DICOM_RETAINED",
    "DeidentifiedImage",
    "deidentify",
    "deidentify_dicom",
    "deidentify_raster",
    "is_dicom",
]

DEIDENTIFICATION_METHOD = "mammo_utils: DICOM PS3.15 Annex E basic profile, retain list v1"
_UID_SALT = "mammo_utils.submissions.deidentify v1"
DICOM_RETAINED: tuple[str, ...] = (
    # what the reader and the model need: pixels, their interpretation, LUTs/windows, laterality and view
    "SpecificCharacterSet",
    "ImageType",
    "SOPClassUID",
    "Modality",
    "ConversionType",
    "PatientOrientation",
    "Laterality",
    "ImageLaterality",
    "ViewPosition",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "PixelAspectRatio",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "PixelIntensityRelationship",
    "PixelIntensityRelationshipSign",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "PresentationLUTShape",
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "SeriesNumber",
    "InstanceNumber",
    "PixelData",
)
DICOM_BLANKED: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
DICOM_REPLACED_UIDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
)
_LUT_ITEM_KEYS = ("LUTDescriptor", "LUTData", "ModalityLUTType")  # LUTExplanation (free text) is dropped
_PNG_MODES = {"1", "L", "LA", "I;16", "RGB", "RGBA"}


@dataclass(frozen=True)
class DeidentifiedImage:
    """The bytes to store and what was learned while de-identifying them.

    Attributes
    ----------
    data : bytes
        The de-identified file (DICOM, PNG or TIFF).
    media_type : str
        ``"application/dicom"``, ``"image/png"`` or ``"image/tiff"``.
    extension : str
        File extension without the dot: ``"dcm"``, ``"png"`` or ``"tiff"``.
    phi_flags : tuple[str, ...]
        Reasons a person should look at the image, e.g. ``"burned-in-annotation"``.
    laterality, view : str or None
        "L"/"R" and "CC"/"MLO" found in the DICOM header before it was cleaned (None for raster images).
    """

    data: bytes
    media_type: str
    extension: str
    phi_flags: tuple[str, ...] = ()
    laterality: str | None = None
    view: str | None = None


def is_dicom(data: bytes) -> bool:
    """True when `data` looks like DICOM (the same test as :func:`mammo_utils.imaging.io.read_mammogram`)."""
    if data[128:132] == b"DICM":
        return True
    return len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def deidentify(data: bytes, label: str = "input") -> DeidentifiedImage:
    """De-identify image bytes, choosing DICOM or raster handling from the content.

    Parameters
    ----------
    data : bytes
        The image as uploaded; it should already have been accepted by ``read_mammogram``.
    label : str
        Name used in error messages (never written anywhere).

    Returns
    -------
    DeidentifiedImage

    Raises
    ------
    MammogramReadError
        The bytes cannot be parsed or re-encoded.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"deidentify expects bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise MammogramReadError(f"{label}: the file is empty (0 bytes). Re-export or re-download it.")
    return deidentify_dicom(data, label) if is_dicom(data) else deidentify_raster(data, label)


def _replacement_uid(original: str) -> str:
    return generate_uid(entropy_srcs=[_UID_SALT, original])


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged optional element must not stop de-identification
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else ""
    return str(value).strip()


def _copy_lut_sequence(sequence) -> list[Dataset]:
    items = []
    for item in sequence:
        clean = Dataset()
        for keyword in _LUT_ITEM_KEYS:
            if keyword in item:
                clean[keyword] = item[keyword]
        items.append(clean)
    return items


def deidentify_dicom(data: bytes, label: str = "input") -> DeidentifiedImage:
    """Apply the retain-list form of the PS3.15 Annex E basic profile to DICOM bytes (see the module notes).

    Raises
    ------
    MammogramReadError
        The DICOM cannot be parsed or has no pixel data.
    """
    try:
        source = pydicom.dcmread(BytesIO(data), force=True)
        transfer_syntax = source.file_meta.get("TransferSyntaxUID") if hasattr(source, "file_meta") else None
        if transfer_syntax is None:
            transfer_syntax = pydicom.uid.ImplicitVRLittleEndian
        laterality, view = dataset_laterality_view(source)  # the reader's logic, incl. PatientName/PatientID
        out = _retained_copy(source, label)
        uids = _replacement_uids(source, data)
        flags = _phi_flags(source)
    except MammogramReadError:
        raise
    except Exception as exc:
        raise MammogramReadError(
            f"{label}: the DICOM header could not be parsed for de-identification ({type(exc).__name__}: {exc}). "
            "The file is probably corrupt; re-export it."
        ) from exc
    _mark_deidentified(out, uids, laterality, view)
    return DeidentifiedImage(
        _write_dicom(out, transfer_syntax, label), "application/dicom", "dcm", flags, laterality, view
    )


def _retained_copy(source: Dataset, label: str) -> Dataset:
    """A new dataset holding only the :data:`DICOM_RETAINED` elements of ``source`` (LUT sequences cleaned)."""
    out = Dataset()
    for keyword in DICOM_RETAINED:
        if keyword not in source:
            continue
        if keyword in ("ModalityLUTSequence", "VOILUTSequence"):
            setattr(out, keyword, _copy_lut_sequence(source[keyword].value))
        else:
            out[keyword] = source[keyword]
    if "PixelData" not in out:
        raise MammogramReadError(f"{label}: DICOM file has no pixel data; export the mammogram image itself.")
    return out


def _replacement_uids(source: Dataset, data: bytes) -> dict[str, str]:
    """New values of the :data:`DICOM_REPLACED_UIDS` (FrameOfReferenceUID only if present)."""
    digest = hashlib.sha256(data).hexdigest()  # stands in for a missing UID, so the output stays deterministic
    return {
        keyword: _replacement_uid(_text(source, keyword) or f"{keyword}:missing:{digest}")
        for keyword in DICOM_REPLACED_UIDS
        if keyword != "FrameOfReferenceUID" or keyword in source
    }


def _phi_flags(source: Dataset) -> tuple[str, ...]:
    """What a reviewer must check: burned-in annotation (yes or unknown), recognizable visual features."""
    burned_in = _text(source, "BurnedInAnnotation").upper()
    flags = (
        ["burned-in-annotation"]
        if burned_in == "YES"
        else []
        if burned_in == "NO"
        else ["burned-in-annotation-unknown"]
    )
    if _text(source, "RecognizableVisualFeatures").upper() == "YES":
        flags.append("recognizable-visual-features")
    return tuple(flags)


def _mark_deidentified(out: Dataset, uids: dict[str, str], laterality: str | None, view: str | None) -> None:
    """Blank and replace the identifying elements of ``out`` and record the de-identification, in place."""
    for keyword in DICOM_BLANKED:
        setattr(out, keyword, "")
    for keyword, uid in uids.items():
        setattr(out, keyword, uid)
    if laterality:
        out.Laterality = laterality
    if view:
        out.ViewPosition = view
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    out.DeidentificationMethodCodeSequence = [code]
    if "SOPClassUID" not in out:
        out.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage


def _write_dicom(out: Dataset, transfer_syntax: Any, label: str) -> bytes:
    """``out`` as DICOM file bytes (file meta, preamble) in ``transfer_syntax``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = out.SOPClassUID
    meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.file_meta = meta
    out.preamble = b"\x00" * 128
    buffer = BytesIO()
    try:
        out.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise MammogramReadError(
            f"{label}: the de-identified DICOM could not be written ({type(exc).__name__}: {exc}). "
            "The header is probably inconsistent; re-export the image."
        ) from exc
    return buffer.getvalue()


def _pixels_only(image: Image.Image) -> Image.Image:
    """A new image holding only the pixels (and palette, as pixels) of `image`: no info, EXIF or ICC."""
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    return clean


def deidentify_raster(data: bytes, label: str = "input") -> DeidentifiedImage:
    """Re-encode the pixels of a PNG, JPEG, TIFF, ... image without any metadata (see the module notes).

    Raises
    ------
    MammogramReadError
        Pillow cannot decode the image.
    """
    try:
        with Image.open(BytesIO(data)) as opened:
            fmt = opened.format or ""
            opened.seek(0)
            image = ImageOps.exif_transpose(opened) or opened.copy()
            image.load()
        clean = _pixels_only(image)
        buffer = BytesIO()
        if fmt == "TIFF":
            clean.save(buffer, format="TIFF", compression="tiff_adobe_deflate")
            media_type, extension = "image/tiff", "tiff"
        else:
            if clean.mode not in _PNG_MODES:
                clean = _to_png_mode(clean)
            clean.save(buffer, format="PNG", optimize=False)
            media_type, extension = "image/png", "png"
    except MammogramReadError:
        raise
    except Exception as exc:
        raise MammogramReadError(
            f"{label}: the image could not be re-encoded without its metadata ({type(exc).__name__}: {exc}). "
            "Re-export it as PNG or DICOM."
        ) from exc
    return DeidentifiedImage(buffer.getvalue(), media_type, extension, ("burned-in-annotation-unknown",))


def _to_png_mode(image: Image.Image) -> Image.Image:
    """Convert a mode PNG cannot hold into one it can, keeping the values the reader would see."""
    if image.mode in ("I", "I;16B", "I;16L", "I;16N"):
        return image.convert("I;16") if image.mode != "I" else _int32_to_16(image)
    if image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    if image.mode == "F":
        raise MammogramReadError("floating-point images can only be stored from TIFF input; export a TIFF or DICOM")
    return image.convert("RGBA" if "A" in image.mode else "RGB")


def _int32_to_16(image: Image.Image) -> Image.Image:
    """32-bit integer pixels as 16-bit when they fit (16-bit PNG/PGM decode to mode I), else refuse."""
    low, high = cast(tuple[float, float], image.getextrema())  # one band: (min, max)
    if low < 0 or high > 65535:
        raise MammogramReadError("32-bit integer pixels do not fit a 16-bit PNG; export a TIFF or DICOM instead")
    return image.convert("I;16")
