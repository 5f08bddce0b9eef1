"""Tests for mammo_utils.io: real CBIS-DDSM DICOMs, synthetic DICOM/Pillow fixtures, bad input, properties.

All images built here are synthetic (random or ramp pixels); only ``sample_dicom_paths`` are real.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    MPEG2MPML,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from mammo_utils import io_dicom
from mammo_utils.io import (
    MAX_PIXELS,
    MIN_SIDE,
    Mammogram,
    MammogramReadError,
    laterality_view_from_text,
    read_mammogram,
)

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
RNG = np.random.default_rng(20261125)


# ----------------------------------------------------------------------------------------------- helpers
def make_dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    modality: str | None = "MG",
    syntax: str = ExplicitVRLittleEndian,
    fragments: list[bytes] | None = None,
    frames: int = 1,
    compress: str | None = None,
    **tags: object,
) -> bytes:
    """A synthetic DICOM Part 10 file (bytes) holding `pixels` (None: header only)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID, ds.SOPInstanceUID = MG_FOR_PRESENTATION, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Synthetic^Phantom", "SYNTHETIC-1"
    if modality is not None:
        ds.Modality = modality
    if pixels is not None:
        rows, columns = pixels.shape[1:3] if frames > 1 else pixels.shape[:2]
        ds.Rows, ds.Columns = int(rows), int(columns)
        ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = pixels.dtype.itemsize * 8
        ds.BitsStored = bits_stored or ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = int(pixels.dtype.kind == "i")
        if frames > 1:
            ds.NumberOfFrames = frames
        if fragments is not None:
            ds.PixelData = encapsulate(fragments)
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = pixels.tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if compress:
        ds.compress(compress, encoding_plugin="pydicom" if compress == RLELossless else "")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encode_jpeg_lossless(image: np.ndarray, precision: int) -> bytes:
    """Encode a 2D unsigned array as a grey JPEG lossless codestream (process 14, selection value 1)."""
    values = image.astype(np.int64)
    prediction = np.empty_like(values)
    prediction[0, 0] = 1 << (precision - 1)
    prediction[0, 1:] = values[0, :-1]
    prediction[1:, 0] = values[:-1, 0]
    prediction[1:, 1:] = values[1:, :-1]
    difference = (values - prediction) % 65536
    difference = np.where(difference >= 32768, difference - 65536, difference).ravel()
    bits = []
    for d in difference.tolist():  # every category gets a 5-bit Huffman code
        size = 16 if abs(d) == 32768 else abs(d).bit_length()
        bits.append(format(size, "05b"))
        if 0 < size < 16:
            bits.append(format(d if d > 0 else (d - 1) & ((1 << size) - 1), f"0{size}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    entropy = int(stream, 2).to_bytes(len(stream) // 8, "big").replace(b"\xff", b"\xff\x00")
    rows, columns = image.shape
    sof = b"\xff\xc3" + struct.pack(">HBHHB", 11, precision, rows, columns, 1) + b"\x01\x11\x00"
    dht = b"\xff\xc4" + struct.pack(">HB", 36, 0) + bytes([0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00" + b"\x01\x00\x00"
    return b"\xff\xd8" + sof + dht + sos + entropy + b"\xff\xd9"


def pil_bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode a Pillow image."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height but whose pixel data is a few bytes (a bomb header)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) \
        + chunk(b"IEND", b"")


def ramp(rows: int = 80, columns: int = 96, maximum: int = 4095, dtype: type = np.uint16) -> np.ndarray:
    """A synthetic ramp covering 0..maximum."""
    values = np.linspace(0, maximum, rows * columns).round().astype(dtype)
    return values.reshape(rows, columns)


def assert_valid(mammogram: Mammogram) -> None:
    """The invariants every successful read must satisfy."""
    pixels = mammogram.pixels
    assert pixels.dtype == np.float32 and pixels.ndim == 2 and pixels.flags.c_contiguous
    assert np.isfinite(pixels).all()
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert mammogram.original_shape == pixels.shape


def read_bytes_or_error(data: bytes) -> Mammogram | None:
    """Read `data`; return None for MammogramReadError and let any other exception fail the test."""
    try:
        mammogram = read_mammogram(data)
    except MammogramReadError as exc:
        assert str(exc)
        return None
    assert_valid(mammogram)
    return mammogram


# ----------------------------------------------------------------------------------------------- real data
def _expected_from_name(name: str) -> tuple[str, str]:
    parts = name.split("_")
    return {"LEFT": "L", "RIGHT": "R"}[parts[-2]], parts[-1]


def test_reads_all_real_dicoms(sample_dicom_paths: list[Path]) -> None:
    for path in sample_dicom_paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        mammogram = read_mammogram(path)
        assert_valid(mammogram)
        assert mammogram.pixels.shape == (header.Rows, header.Columns)
        assert (mammogram.source_format, mammogram.bit_depth, mammogram.modality) == ("dicom", 16, "MG")
        assert mammogram.photometric == "MONOCHROME2" and mammogram.warnings == ()
        assert (mammogram.laterality, mammogram.view) == _expected_from_name(str(header.PatientName))
        assert mammogram.filename == path.name
        assert 0.02 < float(mammogram.pixels.mean()) < 0.5  # a mammogram, not a blank


def test_real_dicom_values_and_sources_agree(sample_dicom_paths: list[Path]) -> None:
    path = sample_dicom_paths[0]
    from_path = read_mammogram(path)
    raw = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(from_path.pixels, raw.astype(np.float32) / np.float32(65535))
    data = path.read_bytes()
    with path.open("rb") as handle:
        from_file = read_mammogram(handle)
    for other in (read_mammogram(data), read_mammogram(memoryview(data)), read_mammogram(bytearray(data)), from_file):
        np.testing.assert_array_equal(other.pixels, from_path.pixels)
    assert read_mammogram(data).filename is None and from_file.filename == path.name
    renamed = read_mammogram(data, filename="scan.dcm")
    assert renamed.filename == "scan.dcm" and renamed.laterality == from_path.laterality


def test_real_dicom_decodes_fast(sample_dicom_paths: list[Path]) -> None:
    read_mammogram(sample_dicom_paths[1])
    best = min(_timed(read_mammogram, sample_dicom_paths[1]) for _ in range(3))
    assert best < 1.5, f"decoding a real 4.5k×2.8k RLE DICOM took {best:.2f} s"


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def test_dicom_png16_and_jpeg_exports_agree(sample_dicom_paths: list[Path], tmp_path: Path) -> None:
    dicom = read_mammogram(sample_dicom_paths[4])
    as_uint16 = np.round(dicom.pixels * 65535).astype(np.uint16)
    png_path, jpeg_path = tmp_path / "export_LEFT_CC.png", tmp_path / "export.jpg"
    Image.fromarray(as_uint16).save(png_path, compress_level=1)
    grey8 = np.round(dicom.pixels * 255).astype(np.uint8)
    Image.fromarray(np.dstack([grey8] * 3)).save(jpeg_path, quality=95)
    png, jpeg = read_mammogram(png_path), read_mammogram(jpeg_path)
    assert (png.source_format, png.bit_depth, png.photometric) == ("png", 16, "I;16")
    assert (jpeg.source_format, jpeg.bit_depth, jpeg.photometric) == ("jpeg", 8, "RGB")
    assert (png.laterality, png.view) == ("L", "CC")
    reference = dicom.pixels[::4, ::4]
    assert np.abs(png.pixels[::4, ::4] - reference).mean() < 0.002
    assert np.abs(jpeg.pixels[::4, ::4] - reference).mean() < 0.02


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
    mammogram = read_mammogram(make_dicom(pixels, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1000,
                                          WindowCenter=2000, WindowWidth=3000))
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
    mammogram = read_mammogram(make_dicom(pixels, bits_stored=12, WindowCenter=[1500, 900],
                                          WindowWidth=[1000, 200], VOILUTFunction=function))
    x = pixels.astype(np.float64)
    expected = np.clip((x - 1500) / 1000 + 0.5, 0, 1) if function == "LINEAR_EXACT" \
        else 1 / (1 + np.exp(-4 * (x - 1500) / 1000))
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
    mammogram = read_mammogram(make_dicom(pixels, bits_stored=12, VOILUTSequence=[item],
                                          WindowCenter=10, WindowWidth=5))
    expected = (lut[pixels].astype(np.float64) - 50) / 4000
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


def test_constant_and_float_images_are_finite() -> None:
    constant = np.full((70, 70), 777, np.uint16)
    windowed = read_mammogram(make_dicom(constant, bits_stored=12, WindowCenter=777, WindowWidth=1))
    plain = read_mammogram(make_dicom(constant, bits_stored=12))
    for mammogram in (windowed, plain):
        assert_valid(mammogram)
    np.testing.assert_allclose(plain.pixels, 777 / 4095, atol=1e-6)
    flat = Image.frombytes("F", (70, 70), np.full((70, 70), 5.0, np.float32).tobytes())
    assert read_mammogram(pil_bytes(flat, "TIFF")).pixels.max() == 0.0


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_dicom_matches_uncompressed(syntax: str) -> None:
    pixels = RNG.integers(0, 4096, (96, 80)).astype(np.uint16)
    native = read_mammogram(make_dicom(pixels, bits_stored=12))
    compressed = read_mammogram(make_dicom(pixels, bits_stored=12, compress=syntax))
    np.testing.assert_array_equal(compressed.pixels, native.pixels)


@pytest.mark.parametrize("precision", [12, 16])
def test_jpeg_lossless_dicom_decodes_through_pylibjpeg(precision: int) -> None:
    pixels = RNG.integers(0, 2**precision, (72, 88)).astype(np.uint16)
    data = make_dicom(pixels, bits_stored=precision, syntax=JPEGLosslessSV1,
                      fragments=[encode_jpeg_lossless(pixels, precision)])
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


def test_preamble_less_dicom() -> None:
    ds = Dataset()
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "MG", 64, 64, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 16, 16
    ds.HighBit, ds.PixelRepresentation, ds.ImageLaterality, ds.ViewPosition = 15, 0, "R", "CC"
    ds.PixelData = ramp(64, 64, 65535).tobytes()
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
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
    named = read_mammogram(make_dicom(pixels), filename="P_00001_LEFT_MLO.dcm")
    assert (named.laterality, named.view, named.filename) == ("L", "MLO", "P_00001_LEFT_MLO.dcm")
    unknown = read_mammogram(make_dicom(pixels))
    assert (unknown.laterality, unknown.view) == (None, None)


@pytest.mark.parametrize("modality", ["DX", "CR", "OT", "SC", None])
def test_projection_modalities_are_read_with_a_warning(modality: str | None) -> None:
    mammogram = read_mammogram(make_dicom(ramp(), modality=modality))
    assert len(mammogram.warnings) == 1 and "Modality" in mammogram.warnings[0]
    assert mammogram.modality == modality


@pytest.mark.parametrize("modality, words", [("CT", "computed tomography"), ("MR", "magnetic resonance"),
                                             ("US", "ultrasound"), ("RTIMAGE", "radiotherapy"), ("ZZ", "ZZ")])
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


def test_dicom_syntax_without_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MammogramReadError, match="MPEG2 .*cannot be decoded"):
        read_mammogram(make_dicom(ramp(), syntax=MPEG2MPML, fragments=[b"\x00" * 64]))
    decoder = pydicom.pixels.get_decoder(RLELossless)
    monkeypatch.setattr(type(decoder), "is_available", property(lambda self: False))
    with pytest.raises(MammogramReadError, match="RLE Lossless.*pip install pylibjpeg pylibjpeg-rle"):
        read_mammogram(make_dicom(ramp(), compress=RLELossless))


@pytest.mark.parametrize("compress", [None, RLELossless])
def test_truncated_dicom_pixel_data_is_refused(compress: str | None) -> None:
    data = make_dicom(RNG.integers(0, 4096, (96, 80)).astype(np.uint16), bits_stored=12, compress=compress)
    for cut in (len(data) - 200, len(data) - 3000):
        with pytest.raises(MammogramReadError):
            read_mammogram(data[:cut])


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


# ----------------------------------------------------------------------------------------------- Pillow fixtures
def test_png_8_and_16_bit_are_exact(tmp_path: Path) -> None:
    grey8 = ramp(maximum=255, dtype=np.uint8)
    grey16 = RNG.integers(0, 65536, (90, 70)).astype(np.uint16)
    m8 = read_mammogram(pil_bytes(Image.fromarray(grey8), "PNG"))
    m16 = read_mammogram(pil_bytes(Image.fromarray(grey16), "PNG"))
    np.testing.assert_array_equal(m8.pixels, grey8 / np.float32(255))
    np.testing.assert_array_equal(m16.pixels, grey16 / np.float32(65535))
    assert (m8.bit_depth, m8.photometric, m16.bit_depth, m16.photometric) == (8, "L", 16, "I;16")
    tiff16 = read_mammogram(pil_bytes(Image.fromarray(grey16), "TIFF"))
    assert (tiff16.source_format, tiff16.bit_depth) == ("tiff", 16)
    np.testing.assert_array_equal(tiff16.pixels, m16.pixels)


def test_pgm_8_and_16_bit() -> None:
    grey = ramp(maximum=4095)
    m16 = read_mammogram(b"P5\n96 80\n65535\n" + grey.astype(">u2").tobytes(), filename="mdb002.pgm")
    np.testing.assert_allclose(m16.pixels, grey / 65535, atol=1e-6)
    assert (m16.source_format, m16.bit_depth, m16.laterality, m16.view) == ("pgm", 16, "L", "MLO")
    grey8 = ramp(maximum=255, dtype=np.uint8)
    m8 = read_mammogram(b"P5\n96 80\n255\n" + grey8.tobytes(), filename="mdb001.pgm")
    np.testing.assert_array_equal(m8.pixels, grey8 / np.float32(255))
    assert (m8.source_format, m8.bit_depth, m8.laterality) == ("pgm", 8, "R")


def test_colour_modes_become_luma() -> None:
    rgb = RNG.integers(0, 256, (80, 96, 3)).astype(np.uint8)
    luma = (rgb @ np.array([0.299, 0.587, 0.114])) / 255
    for fmt, tolerance in (("PNG", 1 / 255), ("BMP", 1 / 255), ("TIFF", 1 / 255)):
        mammogram = read_mammogram(pil_bytes(Image.fromarray(rgb), fmt))
        np.testing.assert_allclose(mammogram.pixels, luma, atol=tolerance)
        assert mammogram.photometric == "RGB" and mammogram.source_format == fmt.lower()
    smooth = np.dstack([ramp(maximum=255, dtype=np.uint8)] * 3)
    jpeg = read_mammogram(pil_bytes(Image.fromarray(smooth), "JPEG", quality=95))
    np.testing.assert_allclose(jpeg.pixels, smooth[..., 0] / 255, atol=4 / 255)
    for fmt in ("JPEG", "TIFF"):
        cmyk = Image.fromarray(smooth).convert("CMYK")
        mammogram = read_mammogram(pil_bytes(cmyk, fmt, quality=95) if fmt == "JPEG" else pil_bytes(cmyk, fmt))
        assert mammogram.photometric == "CMYK"
        np.testing.assert_allclose(mammogram.pixels, smooth[..., 0] / 255, atol=4 / 255)


def test_alpha_is_composited_over_black() -> None:
    rgba = np.full((80, 80, 4), 200, np.uint8)
    rgba[:, :40, 3] = 0
    rgba[:, 40:, 3] = 255
    mammogram = read_mammogram(pil_bytes(Image.fromarray(rgba), "PNG"))
    assert mammogram.photometric == "RGBA"
    assert mammogram.pixels[:, :40].max() == 0.0
    np.testing.assert_allclose(mammogram.pixels[:, 40:], 200 / 255, atol=1e-6)
    la = Image.fromarray(rgba).convert("LA")
    assert read_mammogram(pil_bytes(la, "PNG")).pixels[:, :40].max() == 0.0


def test_palette_and_bilevel_images() -> None:
    indices = (ramp(maximum=255, dtype=np.uint8) // 16).astype(np.uint8)
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette([v for i in range(256) for v in (i * 16 % 256,) * 3])
    mammogram = read_mammogram(pil_bytes(image, "PNG"))
    assert mammogram.photometric == "P"
    np.testing.assert_allclose(mammogram.pixels, (indices.astype(int) * 16 % 256) / 255, atol=1e-6)
    image.info["transparency"] = 0
    transparent = read_mammogram(pil_bytes(image, "PNG", transparency=0))
    assert transparent.pixels[indices == 0].max() == 0.0
    bilevel = read_mammogram(pil_bytes(Image.fromarray(indices > 7), "PNG"))
    assert bilevel.bit_depth == 1
    np.testing.assert_array_equal(bilevel.pixels, (indices > 7).astype(np.float32))


def test_float_and_int32_tiff_are_min_max_scaled() -> None:
    values = ramp().astype(np.float32) * 3 - 100
    values[0, :3] = [np.nan, np.inf, -np.inf]
    mammogram = read_mammogram(pil_bytes(Image.frombytes("F", (96, 80), values.tobytes()), "TIFF"))
    assert_valid(mammogram)
    assert mammogram.bit_depth == 32 and mammogram.pixels.max() == 1.0
    int32 = (ramp().astype(np.int32) - 2000) * 1000
    scaled = read_mammogram(pil_bytes(Image.frombytes("I", (96, 80), int32.tobytes()), "TIFF"))
    np.testing.assert_allclose(scaled.pixels, (int32 - int32.min()) / np.ptp(int32), atol=1e-6)


def test_exif_orientation_is_applied() -> None:
    grey = ramp(maximum=255, dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    mammogram = read_mammogram(pil_bytes(Image.fromarray(np.dstack([grey] * 3)), "PNG", exif=exif.tobytes()))
    np.testing.assert_allclose(mammogram.pixels, np.rot90(grey, k=-1) / 255, atol=1 / 255)
    assert mammogram.original_shape == (96, 80)


@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "PNG"])
def test_multi_frame_images_are_refused(fmt: str) -> None:
    first = Image.fromarray(ramp(maximum=255, dtype=np.uint8))
    data = pil_bytes(first, fmt, save_all=True, append_images=[first.rotate(180)])
    with pytest.raises(MammogramReadError, match="with 2 frames; multi-frame"):
        read_mammogram(data)


def test_small_images_are_refused() -> None:
    small = pil_bytes(Image.fromarray(ramp(63, 500, 255, np.uint8)), "PNG")
    with pytest.raises(MammogramReadError, match="only 500×63 px"):
        read_mammogram(small)
    assert read_mammogram(small, min_side=32).pixels.shape == (63, 500)


def test_decompression_bombs_are_refused_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(MammogramReadError, match="9000×9000 = 81.0 Mpx.*decompression-bomb"):
        read_mammogram(png_header_only(9000, 9000))
    with pytest.raises(MammogramReadError, match="60 Mpx.*decompression-bomb"):
        read_mammogram(png_header_only(20000, 20000))  # beyond Pillow's own hard limit
    assert time.perf_counter() - start < 1.0
    assert MAX_PIXELS == 60_000_000
    with pytest.raises(MammogramReadError, match="above the limit of 0.005 Mpx"):
        read_mammogram(pil_bytes(Image.fromarray(ramp(80, 96, 255, np.uint8)), "PNG"), max_pixels=5000)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_are_refused(fmt: str) -> None:
    data = pil_bytes(Image.fromarray(RNG.integers(0, 256, (120, 100, 3)).astype(np.uint8)), fmt)
    for cut in (len(data) // 2, 60):
        with pytest.raises(MammogramReadError, match="truncated|not a recognised"):
            read_mammogram(data[:cut])


def test_bad_sources(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = [(b"", "empty"), (empty, "empty.png: the file is empty"), (tmp_path, "is a directory"),
             (tmp_path / "missing.dcm", "file not found"), (str(tmp_path / "missing.dcm"), "file not found"),
             (b"this is not an image, just some text\n" * 3, "not a recognised image format")]
    for source, message in cases:
        with pytest.raises(MammogramReadError, match=message):
            read_mammogram(source)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with text_file.open("r") as handle, pytest.raises(MammogramReadError, match="text mode"):
        read_mammogram(handle)
    with pytest.raises(TypeError):
        read_mammogram(12345)  # type: ignore[arg-type]
    assert issubclass(MammogramReadError, ValueError)


def test_decoder_exceptions_are_wrapped() -> None:
    data = bytearray(pil_bytes(Image.fromarray(ramp(maximum=255, dtype=np.uint8)), "PNG"))
    data[40:48] = b"\xff" * 8  # corrupt the zlib stream inside IDAT
    with pytest.raises(MammogramReadError) as info:
        read_mammogram(bytes(data))
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("text, expected", [
    ("Mass-Test_P_00820_LEFT_CC", ("L", "CC")), ("P_00001_LEFT_MLO.png", ("L", "MLO")),
    ("Calc-Training_P_00005_RIGHT_MLO", ("R", "MLO")), ("L_CC", ("L", "CC")), ("RMLO.dcm", ("R", "MLO")),
    ("22678622_MG_R_CC_ANON.dcm", ("R", "CC")), ("mdb001.pgm", ("R", "MLO")), ("mdb322", ("L", "MLO")),
    ("xccl-left", ("L", "CC")), ("scan.png", (None, None)), ("LEFT_RIGHT_CC", (None, "CC")),
    ("CC and MLO", (None, None)), ("Calcium_left", ("L", None)), ("", (None, None)),
])
def test_laterality_view_from_text(text: str, expected: tuple[str | None, str | None]) -> None:
    assert laterality_view_from_text(text) == expected


# ----------------------------------------------------------------------------------------------- properties
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"P5\n", b"BM",
         b"GIF89a", b"\x00" * 128 + b"DICM", b"\x08\x00\x05\x00", b"\x02\x00\x00\x00"]
FUZZ = settings(max_examples=120, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=4096))
def test_random_bytes_give_a_mammogram_or_read_error(prefix: bytes, body: bytes) -> None:
    read_bytes_or_error(prefix + body)


MODE_FORMATS = [("L", f) for f in ("PNG", "JPEG", "TIFF", "BMP")] + [("I;16", "PNG"), ("I;16", "TIFF")] \
    + [("RGB", f) for f in ("PNG", "JPEG", "TIFF", "BMP")] + [("RGBA", "PNG"), ("RGBA", "TIFF"), ("RGBA", "BMP")] \
    + [("P", "PNG"), ("P", "TIFF"), ("P", "BMP"), ("CMYK", "JPEG"), ("CMYK", "TIFF")]
CHANNELS = {"L": 1, "I;16": 1, "P": 1, "RGB": 3, "RGBA": 4, "CMYK": 4}


@st.composite
def random_images(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    """A synthetic random image of random mode, size and format, encoded."""
    mode, fmt = draw(st.sampled_from(MODE_FORMATS))
    rows, columns = draw(st.integers(1, 200)), draw(st.integers(1, 200))
    shape = (rows, columns) if CHANNELS[mode] == 1 else (rows, columns, CHANNELS[mode])
    pixels = draw(arrays(np.uint16 if mode == "I;16" else np.uint8, shape))
    image = Image.frombytes(mode, (columns, rows), pixels.tobytes())
    if mode == "P":
        image.putpalette(draw(st.binary(min_size=768, max_size=768)))
    return pil_bytes(image, fmt), (rows, columns)


@FUZZ
@given(random_images())
def test_random_small_images(case: tuple[bytes, tuple[int, int]]) -> None:
    data, shape = case
    if min(shape) < MIN_SIDE:
        with pytest.raises(MammogramReadError, match="px per side"):
            read_mammogram(data)
    else:
        mammogram = read_mammogram(data)
        assert_valid(mammogram)
        assert mammogram.pixels.shape == shape


VALID_FILES = {
    "dicom": make_dicom(RNG.integers(0, 4096, (64, 72)).astype(np.uint16), bits_stored=12, WindowCenter=2000,
                        WindowWidth=1500),
    "dicom-rle": make_dicom(RNG.integers(0, 4096, (64, 72)).astype(np.uint16), bits_stored=12,
                            compress=RLELossless),
    "png16": pil_bytes(Image.fromarray(RNG.integers(0, 65536, (70, 64)).astype(np.uint16)), "PNG"),
    "jpeg": pil_bytes(Image.fromarray(RNG.integers(0, 256, (70, 64, 3)).astype(np.uint8)), "JPEG"),
    "tiff": pil_bytes(Image.fromarray(RNG.integers(0, 256, (70, 64)).astype(np.uint8)), "TIFF"),
}


@FUZZ
@given(name=st.sampled_from(sorted(VALID_FILES)), data=st.data())
def test_corrupted_files_never_raise_anything_else(name: str, data: st.DataObject) -> None:
    original = bytearray(VALID_FILES[name])
    if data.draw(st.booleans(), label="truncate"):
        corrupted = bytes(original[: data.draw(st.integers(0, len(original) - 1), label="length")])
    else:
        flips = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)),
                                   min_size=1, max_size=8), label="flips")
        for position, mask in flips:
            original[position] ^= mask
        corrupted = bytes(original)
    read_bytes_or_error(corrupted)
