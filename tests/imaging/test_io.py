"""Tests for mammo_utils.imaging.io: real CBIS-DDSM DICOMs, Pillow formats, bad input, property-based fuzzing.

All images built here are synthetic (random or ramp pixels); only ``sample_dicom_paths`` are real.
DICOM pixel-pipeline details are tested in tests/test_io_dicom.py, whose builders are reused here.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _dicoms import assert_valid, make_dicom, pil_bytes, ramp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from pydicom.uid import RLELossless

from mammo_utils.imaging.io import MAX_PIXELS, MIN_SIDE, read_mammogram
from mammo_utils.imaging.mammogram import Mammogram, MammogramReadError

RNG = np.random.default_rng(20261126)
QUIET_PYDICOM = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")  # corrupt input makes pydicom chatty
QUIET_PIL = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


# ----------------------------------------------------------------------------------------------- helpers
def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height but whose pixel data is a few bytes (a bomb header)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


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
    raw = pydicom.pixels.pixel_array(path, decoding_plugin="pylibjpeg")
    np.testing.assert_array_equal(from_path.pixels, raw.astype(np.float32) / np.float32(65535))
    data = path.read_bytes()
    with path.open("rb") as handle:
        from_file = read_mammogram(handle)
    from_bytes = read_mammogram(memoryview(data))
    for other in (from_bytes, from_file):
        np.testing.assert_array_equal(other.pixels, from_path.pixels)
    assert from_bytes.filename is None and from_file.filename == path.name
    assert from_bytes.laterality == from_path.laterality and from_bytes.view == from_path.view


def test_real_dicom_decodes_fast(sample_dicom_paths: list[Path]) -> None:
    read_mammogram(sample_dicom_paths[1])
    best = min(_timed(read_mammogram, sample_dicom_paths[1]) for _ in range(3))
    # ~0.08 s on this machine; the bound is loose because CI machines are shared and slow
    assert best < 1.5, f"decoding a real 4.5k×2.8k RLE DICOM took {best:.2f} s"


def _timed(function: Callable[..., object], *args: object) -> float:
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


# ----------------------------------------------------------------------------------------------- Pillow fixtures
def test_png_8_and_16_bit_are_exact() -> None:
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
    flat = Image.frombytes("F", (70, 70), np.full((70, 70), 5.0, np.float32).tobytes())
    assert read_mammogram(pil_bytes(flat, "TIFF")).pixels.max() == 0.0  # constant: zeros, no 0/0
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
    cases = [
        (b"", "empty"),
        (empty, "empty.png: the file is empty"),
        (tmp_path, "is a directory"),
        (tmp_path / "missing.dcm", "file not found"),
        (str(tmp_path / "missing.dcm"), "file not found"),
        (b"this is not an image, just some text\n" * 3, "not a recognised image format"),
    ]
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
    original = pil_bytes(Image.fromarray(RNG.integers(0, 256, (80, 96)).astype(np.uint8)), "PNG")
    data = bytearray(original)
    start = data.index(b"IDAT") + 6
    data[start : start + 8] = b"\xff" * 8  # corrupt the deflate stream inside IDAT
    with pytest.raises(MammogramReadError, match="could not decode the image.*corrupt") as info:
        read_mammogram(bytes(data))
    assert info.value.__cause__ is not None
    header = bytearray(original)
    header[12:16] = b"XXXX"  # the IHDR chunk type
    with pytest.raises(MammogramReadError, match="starts like a PNG file but its header cannot be parsed"):
        read_mammogram(bytes(header))


def test_laterality_and_view_come_from_the_file_name() -> None:
    png = pil_bytes(Image.fromarray(ramp(80, 96, 255, np.uint8)), "PNG")
    named = read_mammogram(png, filename="P_00001_RIGHT_MLO.png")
    assert (named.laterality, named.view, named.filename) == ("R", "MLO", "P_00001_RIGHT_MLO.png")
    assert (read_mammogram(png).laterality, read_mammogram(png).view) == (None, None)
    # the helper's own cases are in tests/test_mammogram.py


def test_pydicom_is_only_imported_for_dicom() -> None:
    code = (
        "import sys, io as stdio\nfrom PIL import Image\nfrom mammo_utils.imaging.io import read_mammogram\n"
        "buffer = stdio.BytesIO()\nImage.new('L', (80, 80)).save(buffer, 'PNG')\n"
        "read_mammogram(buffer.getvalue())\n"
        "print('pydicom' in sys.modules, 'mammo_utils.imaging.dicom' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]


# ----------------------------------------------------------------------------------------------- properties
MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"II*\x00",
    b"MM\x00*",
    b"P5\n",
    b"BM",
    b"GIF89a",
    b"\x00" * 128 + b"DICM",
    b"\x08\x00\x05\x00",
    b"\x02\x00\x00\x00",
]
FUZZ = settings(max_examples=250, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])


@QUIET_PYDICOM
@QUIET_PIL
@FUZZ
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=4096))
def test_random_bytes_give_a_mammogram_or_read_error(prefix: bytes, body: bytes) -> None:
    read_bytes_or_error(prefix + body)


MODE_FORMATS = (
    [("L", f) for f in ("PNG", "JPEG", "TIFF", "BMP")]
    + [("I;16", "PNG"), ("I;16", "TIFF")]
    + [("RGB", f) for f in ("PNG", "JPEG", "TIFF", "BMP")]
    + [("RGBA", "PNG"), ("RGBA", "TIFF"), ("RGBA", "BMP")]
    + [("P", "PNG"), ("P", "TIFF"), ("P", "BMP"), ("CMYK", "JPEG"), ("CMYK", "TIFF")]
)
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
    "dicom": make_dicom(
        RNG.integers(0, 4096, (64, 72)).astype(np.uint16), bits_stored=12, WindowCenter=2000, WindowWidth=1500
    ),
    "dicom-rle": make_dicom(RNG.integers(0, 4096, (64, 72)).astype(np.uint16), bits_stored=12, compress=RLELossless),
    "png16": pil_bytes(Image.fromarray(RNG.integers(0, 65536, (70, 64)).astype(np.uint16)), "PNG"),
    "jpeg": pil_bytes(Image.fromarray(RNG.integers(0, 256, (70, 64, 3)).astype(np.uint8)), "JPEG"),
    "tiff": pil_bytes(Image.fromarray(RNG.integers(0, 256, (70, 64)).astype(np.uint8)), "TIFF"),
}


@QUIET_PYDICOM
@QUIET_PIL
@FUZZ
@given(name=st.sampled_from(sorted(VALID_FILES)), data=st.data())
def test_corrupted_files_never_raise_anything_else(name: str, data: st.DataObject) -> None:
    original = bytearray(VALID_FILES[name])
    if data.draw(st.booleans(), label="truncate"):
        corrupted = bytes(original[: data.draw(st.integers(0, len(original) - 1), label="length")])
    else:
        flips = data.draw(
            st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)), min_size=1, max_size=8),
            label="flips",
        )
        for position, mask in flips:
            original[position] ^= mask
        corrupted = bytes(original)
    read_bytes_or_error(corrupted)
