"""Test DICOMs and images made in memory (pydicom, Pillow), shared by the imaging tests."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from mammo_utils.imaging.mammogram import Mammogram

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


RNG = np.random.default_rng(20261125)


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
