"""Tests for mammo_utils.imaging.dicom, through the public read_mammogram: the DICOM pixel pipeline.

Every DICOM built here is synthetic (ramps or random pixels) except pydicom's own small test files.
The builders (make_dicom, encode_jpeg_lossless, ...) are also used by tests/test_io.py.
"""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _dicoms import RNG, assert_valid, encode_jpeg_lossless, make_dicom, pil_bytes, ramp
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    MPEG2MPML,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from mammo_utils.imaging import dicom as io_dicom
from mammo_utils.imaging.io import MIN_SIDE, read_mammogram
from mammo_utils.imaging.mammogram import MammogramReadError

QUIET_PYDICOM = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")  # corrupt input makes pydicom chatty


# ----------------------------------------------------------------------------------------------- builders


# ----------------------------------------------------------------------------------------------- DICOM fixtures
def test_monochrome1_is_inverted() -> None:
    pixels = ramp()
    m2 = read_mammogram(make_dicom(pixels, bits_stored=12))
    m1 = read_mammogram(make_dicom(pixels, bits_stored=12, photometric="MONOCHROME1"))
    np.testing.assert_allclose(m2.pixels, pixels / 4095, atol=1e-6)
    np.testing.assert_allclose(m1.pixels, 1 - m2.pixels, atol=1e-6)
    assert m1.photometric == "MONOCHROME1" and m1.pixels[0, 0] == 1.0


def test_rescale_with_window_linear() -> None:
    pixels = ramp()
    mammogram = read_mammogram(
        make_dicom(pixels, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=2000, WindowWidth=3000)
    )
    hu = pixels.astype(np.float64) * 2 - 1000
    expected = np.clip((hu - 1999.5) / 2999 + 0.5, 0, 1)
    np.testing.assert_allclose(mammogram.pixels, expected, atol=1e-5)
    assert mammogram.pixels.min() == 0.0 and mammogram.pixels.max() == 1.0


def test_rescale_without_window_uses_stored_range() -> None:
    pixels = ramp(maximum=1000)
    plain = read_mammogram(make_dicom(pixels, bits_stored=12, RescaleSlope=0.5, RescaleIntercept=-20))
    np.testing.assert_allclose(plain.pixels, pixels / 4095, atol=1e-6)
    negative = read_mammogram(make_dicom(pixels, bits_stored=12, RescaleSlope=-1, RescaleIntercept=0))
    np.testing.assert_allclose(negative.pixels, 1 - pixels / 4095, atol=1e-6)


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_window_functions(function: str) -> None:
    pixels = ramp()
    mammogram = read_mammogram(
        make_dicom(pixels, bits_stored=12, WindowCenter=[1500, 900], WindowWidth=[1000, 200], VOILUTFunction=function)
    )
    x = pixels.astype(np.float64)
    expected = (
        np.clip((x - 1500) / 1000 + 0.5, 0, 1)
        if function == "LINEAR_EXACT"
        else 1 / (1 + np.exp(-4 * (x - 1500) / 1000))
    )
    np.testing.assert_allclose(mammogram.pixels, expected, atol=1e-5)


def test_invalid_window_is_ignored_with_a_warning() -> None:
    pixels = ramp()
    mammogram = read_mammogram(make_dicom(pixels, bits_stored=12, WindowCenter=100, WindowWidth=0))
    np.testing.assert_allclose(mammogram.pixels, pixels / 4095, atol=1e-6)
    assert any("Window" in note for note in mammogram.warnings)


def test_voi_lut_sequence() -> None:
    pixels = ramp()
    lut = np.round(np.sqrt(np.arange(4096) / 4095) * 4000 + 50).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new(0x00283006, "US", lut.tolist())
    mammogram = read_mammogram(
        make_dicom(pixels, bits_stored=12, VOILUTSequence=[item], WindowCenter=10, WindowWidth=5)
    )
    expected = (lut[pixels].astype(np.float64) - 50) / 4000
    np.testing.assert_allclose(mammogram.pixels, expected, atol=1e-6)


def test_modality_lut_sequence() -> None:
    pixels = ramp()
    lut = (60000 - 12 * np.arange(4096)).astype(np.uint16)  # an inverting modality LUT
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.ModalityLUTType = "US"
    item.add_new(0x00283006, "US", lut.tolist())
    mammogram = read_mammogram(make_dicom(pixels, bits_stored=12, ModalityLUTSequence=[item]))
    expected = (lut[pixels].astype(np.float64) - lut.min()) / np.ptp(lut)
    np.testing.assert_allclose(mammogram.pixels, expected, atol=1e-6)


def test_bits_stored_masks_garbage_high_bits() -> None:
    pixels = ramp()
    dirty = pixels | (RNG.integers(0, 16, pixels.shape, dtype=np.uint16) << 12)
    mammogram = read_mammogram(make_dicom(dirty, bits_stored=12))
    np.testing.assert_allclose(mammogram.pixels, pixels / 4095, atol=1e-6)
    assert mammogram.bit_depth == 12


def test_signed_pixels_use_signed_range() -> None:
    pixels = (ramp(maximum=60000).astype(np.int32) - 30000).astype(np.int16)
    mammogram = read_mammogram(make_dicom(pixels))
    np.testing.assert_allclose(mammogram.pixels, (pixels.astype(np.float64) + 32768) / 65535, atol=1e-6)


def test_constant_images_are_finite() -> None:
    constant = np.full((70, 70), 777, np.uint16)
    windowed = read_mammogram(make_dicom(constant, bits_stored=12, WindowCenter=777, WindowWidth=1))
    plain = read_mammogram(make_dicom(constant, bits_stored=12))
    for mammogram in (windowed, plain):
        assert_valid(mammogram)
    assert windowed.pixels.min() == 1.0  # 777 > center - 0.5: above a width-1 window is white
    np.testing.assert_allclose(plain.pixels, 777 / 4095, atol=1e-6)


def test_float_pixel_data_is_min_max_scaled() -> None:
    values = ramp().astype(np.float32) * 0.5 - 300
    ds = pydicom.dcmread(io.BytesIO(make_dicom(ramp())))
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    mammogram = read_mammogram(buffer.getvalue())
    np.testing.assert_allclose(mammogram.pixels, (values - values.min()) / np.ptp(values), atol=1e-6)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_dicom_matches_uncompressed(syntax: str) -> None:
    pixels = RNG.integers(0, 4096, (96, 80)).astype(np.uint16)
    native = read_mammogram(make_dicom(pixels, bits_stored=12))
    compressed = read_mammogram(make_dicom(pixels, bits_stored=12, compress=syntax))
    np.testing.assert_array_equal(compressed.pixels, native.pixels)


@pytest.mark.parametrize("precision", [12, 16])
def test_jpeg_lossless_dicom_decodes_through_pylibjpeg(precision: int) -> None:
    pixels = RNG.integers(0, 2**precision, (72, 88)).astype(np.uint16)
    data = make_dicom(
        pixels, bits_stored=precision, syntax=JPEGLosslessSV1, fragments=[encode_jpeg_lossless(pixels, precision)]
    )
    mammogram = read_mammogram(data)
    np.testing.assert_array_equal(mammogram.pixels, pixels.astype(np.float32) / np.float32(2**precision - 1))
    ds = pydicom.dcmread(io.BytesIO(data))
    assert io_dicom._decoding_plugin(ds, "test") == "pylibjpeg"


def test_jpeg_baseline_dicom_decodes_through_pylibjpeg() -> None:
    pixels = ramp(maximum=255, dtype=np.uint8)
    jpeg = pil_bytes(Image.fromarray(pixels), "JPEG", quality=90)
    data = make_dicom(pixels, syntax=JPEGBaseline8Bit, fragments=[jpeg])
    assert io_dicom._decoding_plugin(pydicom.dcmread(io.BytesIO(data)), "test") == "pylibjpeg"
    expected = np.asarray(Image.open(io.BytesIO(jpeg)), np.float32) / 255
    np.testing.assert_allclose(read_mammogram(data).pixels, expected, atol=2 / 255)


def test_jpeg_ls_dicom_decodes(tmp_path: Path) -> None:
    pairs = []
    for name in ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.Modality = "MG"
        ds.save_as(tmp_path / name)
        pairs.append(read_mammogram(tmp_path / name))
    np.testing.assert_array_equal(pairs[0].pixels, pairs[1].pixels)
    assert pairs[1].pixels.std() > 0.01


def test_rgb_dicom_becomes_grey() -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    mammogram = read_mammogram(make_dicom(rgb, photometric="RGB", modality="SC"))
    np.testing.assert_allclose(mammogram.pixels, (0.299 * 255 + 0.587 * 128) / 255, atol=1e-5)
    assert mammogram.photometric == "RGB" and mammogram.warnings
    named = read_mammogram(bytearray(make_dicom(ramp())), filename="scan_R_CC.dcm")
    assert (named.filename, named.laterality, named.view) == ("scan_R_CC.dcm", "R", "CC")


def test_palette_colour_dicom_becomes_grey(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    ds.Modality = "OT"
    ds.save_as(tmp_path / "palette.dcm")
    rgb = pydicom.pixels.apply_color_lut(ds.pixel_array, ds).astype(np.float64) / 65535
    mammogram = read_mammogram(tmp_path / "palette.dcm")
    np.testing.assert_allclose(mammogram.pixels, rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-5)
    assert mammogram.photometric == "PALETTE COLOR"


@pytest.mark.parametrize("little_endian", [True, False])
def test_preamble_less_dicom(little_endian: bool) -> None:
    ds = Dataset()
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "MG", 64, 64, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 16, 16
    ds.HighBit, ds.PixelRepresentation, ds.ImageLaterality, ds.ViewPosition = 15, 0, "R", "CC"
    ds.PixelData = ramp(64, 64, 65535).astype("<u2" if little_endian else ">u2").tobytes()
    ds["PixelData"].VR = "OW"
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = little_endian, little_endian  # implicit LE / explicit BE
    write_dataset(buffer, ds)
    mammogram = read_mammogram(buffer.getvalue())
    np.testing.assert_allclose(mammogram.pixels, ramp(64, 64, 65535) / 65535, atol=1e-6)
    assert (mammogram.source_format, mammogram.laterality, mammogram.view) == ("dicom", "R", "CC")


def test_dicom_laterality_and_view_sources() -> None:
    pixels = ramp()
    tagged = read_mammogram(make_dicom(pixels, ImageLaterality="L", Laterality="R", ViewPosition="MLO"))
    assert (tagged.laterality, tagged.view) == ("L", "MLO")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "399162004", "SCT", "cranio-caudal"
    coded = read_mammogram(make_dicom(pixels, Laterality="R", ViewCodeSequence=[code]))
    assert (coded.laterality, coded.view) == ("R", "CC")
    described = read_mammogram(make_dicom(pixels, SeriesDescription="R MLO"))
    assert (described.laterality, described.view) == ("R", "MLO")
    initial = read_mammogram(make_dicom(pixels, PatientName="Doe^Jane^L", PatientID="Mass-Test_P_00820_RIGHT_CC"))
    assert (initial.laterality, initial.view) == ("R", "CC")
    named = read_mammogram(make_dicom(pixels), filename="P_00001_LEFT_MLO.dcm")
    assert (named.laterality, named.view, named.filename) == ("L", "MLO", "P_00001_LEFT_MLO.dcm")
    unknown = read_mammogram(make_dicom(pixels))
    assert (unknown.laterality, unknown.view) == (None, None)


@pytest.mark.parametrize("modality", ["DX", "CR", "OT", "SC", None])
def test_projection_modalities_are_read_with_a_warning(modality: str | None) -> None:
    mammogram = read_mammogram(make_dicom(ramp(), modality=modality))
    assert len(mammogram.warnings) == 1 and "Modality" in mammogram.warnings[0]
    assert mammogram.modality == modality


@pytest.mark.parametrize(
    "modality, words",
    [
        ("CT", "computed tomography"),
        ("MR", "magnetic resonance"),
        ("US", "ultrasound"),
        ("RTIMAGE", "radiotherapy"),
        ("ZZ", "ZZ"),
    ],
)
def test_non_mammography_modalities_are_refused(modality: str, words: str) -> None:
    with pytest.raises(MammogramReadError, match=f"Modality is {modality}.*{words}|{words}.*not a mammogram"):
        read_mammogram(make_dicom(ramp(), modality=modality))


def test_multiframe_dicom_is_refused() -> None:
    frames = np.stack([ramp(), ramp()])
    with pytest.raises(MammogramReadError, match="multi-frame DICOM with 2 frames.*tomosynthesis"):
        read_mammogram(make_dicom(frames, frames=2))


@pytest.mark.parametrize("modality", ["MG", "SR"])
def test_dicom_without_pixel_data_is_refused(modality: str) -> None:
    with pytest.raises(MammogramReadError, match="no pixel data"):
        read_mammogram(make_dicom(None, modality=modality))


@QUIET_PYDICOM
@pytest.mark.parametrize("data", [b"\x00" * 128 + b"DICM", b"\x08\x00 plain text, not a DICOM header"])
def test_dicom_lookalike_without_header_is_refused(data: bytes) -> None:
    with pytest.raises(MammogramReadError, match="no readable header"):
        read_mammogram(data)


def test_dicom_without_rows_is_refused() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(ramp())))
    del ds.Rows
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(MammogramReadError, match="lacks Rows/Columns"):
        read_mammogram(buffer.getvalue())


def test_dicom_syntax_without_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MammogramReadError, match="MPEG2 .*cannot be decoded"):
        read_mammogram(make_dicom(ramp(), syntax=MPEG2MPML, fragments=[b"\x00" * 64]))
    decoder = pydicom.pixels.get_decoder(RLELossless)
    monkeypatch.setattr(type(decoder), "is_available", property(lambda self: False))
    with pytest.raises(MammogramReadError, match="RLE Lossless.*pip install pylibjpeg pylibjpeg-rle"):
        read_mammogram(make_dicom(ramp(), compress=RLELossless))


@QUIET_PYDICOM
@pytest.mark.parametrize("compress", [None, RLELossless])
def test_truncated_dicom_pixel_data_is_refused(compress: str | None) -> None:
    data = make_dicom(RNG.integers(0, 4096, (96, 80)).astype(np.uint16), bits_stored=12, compress=compress)
    for cut in (len(data) - 200, len(data) - 3000):
        with pytest.raises(MammogramReadError, match="truncated or corrupt"):
            read_mammogram(data[:cut])


def test_rle_decoder_panic_is_wrapped() -> None:
    """pylibjpeg-rle (Rust) raises PanicException, a BaseException, on runs that overflow a segment."""
    high, low = b"\x81\x00" * 32, b"\x81\x07" * 31 + b"\xc1\x07" + b"\x81\x07"
    frame = struct.pack("<16I", 2, 64, 64 + len(high), *([0] * 13)) + high + low
    data = make_dicom(np.zeros((64, 64), np.uint16), syntax=RLELossless, fragments=[frame])
    with pytest.raises(MammogramReadError, match="truncated or corrupt") as info:
        read_mammogram(data)
    assert type(info.value.__cause__).__name__ == "PanicException"


def test_dicom_size_limits_are_checked_before_decoding() -> None:
    header = make_dicom(ramp(), fragments=[b"\x00" * 32], syntax=RLELossless)
    ds = pydicom.dcmread(io.BytesIO(header))
    ds.Rows = ds.Columns = 20000
    buffer = io.BytesIO()
    ds.save_as(buffer)
    start = time.perf_counter()
    with pytest.raises(MammogramReadError, match="decompression-bomb"):
        read_mammogram(buffer.getvalue())
    assert time.perf_counter() - start < 1.0
    with pytest.raises(MammogramReadError, match=f"at least {MIN_SIDE} px"):
        read_mammogram(make_dicom(ramp(32, 200)))
