"""De-identification: synthetic DICOM/PNG/JPEG/TIFF fixtures full of made-up PHI must come out without any of it,
with the same pixels as far as read_mammogram is concerned."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from _phi import PHI_STRINGS, SOP_UID, STUDY_UID, phi_dicom
from PIL import Image, PngImagePlugin, TiffImagePlugin

from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.mammogram import MammogramReadError
from mammo_utils.submissions.deidentify import (
    DEIDENTIFICATION_METHOD,
    DICOM_BLANKED,
    deidentify,
    deidentify_dicom,
    is_dicom,
)


def test_fixture_really_holds_the_phi():
    data = phi_dicom()
    assert all(phi.encode() in data for phi in PHI_STRINGS)


def test_no_phi_survives_dicom_deidentification():
    result = deidentify(phi_dicom())
    assert result.media_type == "application/dicom" and result.extension == "dcm"
    for phi in (*PHI_STRINGS, "JANEDOE_PACS", "Jane Doe"):
        assert phi.encode() not in result.data, phi
    ds = pydicom.dcmread(io.BytesIO(result.data))
    assert ds.preamble == b"\0" * 128
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod == DEIDENTIFICATION_METHOD
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert all(keyword in ds and ds[keyword].value in ("", None) for keyword in DICOM_BLANKED)
    assert not any(element.tag.is_private for element in ds.iterall())
    assert not any(element.tag.group & 0xFF00 in (0x6000, 0x5000) for element in ds)
    for keyword in (
        "InstitutionName",
        "OperatorsName",
        "DeviceSerialNumber",
        "OtherPatientIDs",
        "RequestAttributesSequence",
        "AcquisitionDateTime",
        "StudyDescription",
        "PatientComments",
    ):
        assert keyword not in ds, keyword
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != SOP_UID
    assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_deidentified_dicom_keeps_what_the_model_needs():
    original = read_mammogram(phi_dicom())
    result = deidentify(phi_dicom())
    stored = read_mammogram(result.data)
    assert np.array_equal(stored.pixels, original.pixels)
    assert (stored.laterality, stored.view, stored.modality, stored.bit_depth) == ("L", "CC", "MG", 12)
    ds = pydicom.dcmread(io.BytesIO(result.data))
    assert (ds.WindowCenter, ds.WindowWidth, ds.PhotometricInterpretation) == (2000, 4000, "MONOCHROME2")


def test_uids_are_replaced_deterministically():
    first, again = deidentify(phi_dicom()), deidentify(phi_dicom(name="ROE^RICHARD", birth_date="19700101"))
    assert first.data == again.data  # same image, other PHI -> same bytes, so the store dedupes it
    other = pydicom.dcmread(io.BytesIO(deidentify(phi_dicom(sop_uid="1.2.826.0.1.3680043.8.498.5")).data))
    ds = pydicom.dcmread(io.BytesIO(first.data))
    assert ds.StudyInstanceUID == other.StudyInstanceUID != STUDY_UID  # one study stays one study
    assert ds.SOPInstanceUID != other.SOPInstanceUID
    assert all(uid.is_valid for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))


def test_view_kept_when_it_only_lives_in_the_patient_id():
    data = phi_dicom(
        name="Mass-Test_P_00999_RIGHT_MLO", patient_id="Mass-Test_P_00999_RIGHT_MLO", laterality=None, view=None
    )
    result = deidentify(data)
    assert b"P_00999" not in result.data and (result.laterality, result.view) == ("R", "MLO")
    ds = pydicom.dcmread(io.BytesIO(result.data))
    assert (ds.Laterality, ds.ViewPosition, ds.PatientID) == ("R", "MLO", "")
    assert (read_mammogram(result.data).laterality, read_mammogram(result.data).view) == ("R", "MLO")


@pytest.mark.parametrize(
    ("value", "flags"), [("YES", ("burned-in-annotation",)), ("NO", ()), (None, ("burned-in-annotation-unknown",))]
)
def test_burned_in_annotation_is_flagged(value, flags):
    assert deidentify_dicom(phi_dicom(burned_in=value)).phi_flags == flags


def test_real_sample_dicom_is_deidentified_and_still_reads(sample_dicom_paths):
    data = sample_dicom_paths[0].read_bytes()
    result = deidentify(data)
    assert b"Mass-Test_P_" not in result.data and b"CBIS-DDSM" not in result.data
    before, after = read_mammogram(data), read_mammogram(result.data)
    assert np.array_equal(before.pixels, after.pixels)
    assert (after.laterality, after.view) == (before.laterality, before.view) == ("L", "CC")


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        chunks.append(kind)
        offset += 12 + length
    return chunks


def synthetic_pixels(dtype=np.uint8) -> np.ndarray:
    scale = 255 if dtype == np.uint8 else 65535
    return (np.random.default_rng(3).random((90, 70)) * scale).astype(dtype)


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"  # Artist
    exif[0x010E] = "MRN-4242-XYZ screening"  # ImageDescription
    exif[0x0132] = "2024:01:17 09:30:00"  # DateTime
    return exif


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_text_chunks_exif_and_icc_are_stripped(dtype):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_text("Comment", "MRN-4242-XYZ", zip=True)
    info.add_itxt("Description", "Jane Doe 19650412", lang="en", tkey="Beschreibung")
    buffer = io.BytesIO()
    Image.fromarray(synthetic_pixels(dtype)).save(
        buffer, format="PNG", pnginfo=info, exif=_exif(), icc_profile=b"Jane Doe icc " * 20
    )
    data = buffer.getvalue()
    assert b"Jane Doe" in data and {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"} <= set(_png_chunks(data))
    result = deidentify(data)
    assert result.media_type == "image/png" and result.phi_flags == ("burned-in-annotation-unknown",)
    assert set(_png_chunks(result.data)) <= {b"IHDR", b"IDAT", b"IEND"}
    for phi in ("Jane Doe", "MRN-4242", "19650412"):
        assert phi.encode() not in result.data
    assert np.array_equal(read_mammogram(result.data).pixels, read_mammogram(data).pixels)


def test_jpeg_is_stored_as_metadata_free_png_of_the_same_pixels():
    exif = _exif()
    exif[0x0112] = 6  # rotate 90°: must be applied to the pixels before EXIF is dropped
    buffer = io.BytesIO()
    Image.fromarray(synthetic_pixels()).convert("RGB").save(
        buffer, format="JPEG", exif=exif, comment=b"Jane Doe", icc_profile=b"Jane Doe" * 10
    )
    data = buffer.getvalue()
    result = deidentify(data)
    assert (result.media_type, result.extension) == ("image/png", "png")
    assert b"Jane" not in result.data and b"MRN-4242" not in result.data and b"2024:01:17" not in result.data
    assert set(_png_chunks(result.data)) <= {b"IHDR", b"IDAT", b"IEND"}
    before, after = read_mammogram(data), read_mammogram(result.data)
    assert before.pixels.shape == (70, 90) and np.array_equal(after.pixels, before.pixels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_tags_are_stripped(dtype):
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[315], tags[270], tags[305] = "Jane Doe", "MRN-4242-XYZ", "St Elsewhere PACS"
    buffer = io.BytesIO()
    Image.fromarray(synthetic_pixels(dtype)).save(buffer, format="TIFF", tiffinfo=tags)
    data = buffer.getvalue()
    assert b"Jane Doe" in data
    result = deidentify(data)
    assert result.media_type == "image/tiff"
    for phi in ("Jane Doe", "MRN-4242", "St Elsewhere"):
        assert phi.encode() not in result.data
    with Image.open(io.BytesIO(result.data)) as stored:
        assert not {270, 305, 315, 0x8769, 34675} & set(stored.tag_v2)  # no text, EXIF or ICC tags
    assert np.array_equal(read_mammogram(result.data).pixels, read_mammogram(data).pixels)


def test_raster_output_is_deterministic_and_detection_matches_the_reader():
    buffer = io.BytesIO()
    Image.fromarray(synthetic_pixels()).save(buffer, format="PNG")
    assert deidentify(buffer.getvalue()).data == deidentify(buffer.getvalue()).data
    assert is_dicom(phi_dicom()) and not is_dicom(buffer.getvalue())


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"\x89PNG\r\n\x1a\n broken", "re-encoded"), (b"\0" * 128 + b"DICM" + b"\xff" * 10, "DICOM")],
)
def test_unusable_bytes_raise_a_read_error(data, message):
    with pytest.raises(MammogramReadError, match=message):
        deidentify(data)
    with pytest.raises(TypeError, match="expects bytes"):
        deidentify("not bytes")
