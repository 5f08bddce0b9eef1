"""A synthetic DICOM full of made-up identifying data (PHI), shared by the de-identification and store tests."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

STUDY_UID = "1.2.826.0.1.3680043.8.498.4242001"

STUDY_UID = "1.2.826.0.1.3680043.8.498.4242001"


SERIES_UID = "1.2.826.0.1.3680043.8.498.4242002"


SOP_UID = "1.2.826.0.1.3680043.8.498.4242003"


PHI_STRINGS = (
    "DOE^JANE",
    "Jane Doe",
    "MRN-4242-XYZ",
    "OTHER-ID-777",
    "19650412",
    "20240117",
    "20240118",
    "St Elsewhere",
    "42 Synthetic Street",
    "HOUSE^GREGORY",
    "OPERATOR^OLGA",
    "ACC-99887766",
    "SN-31337-QQ",
    "STATION-X9",
    "+1 555 0100",
    "secret private note",
    "Synthetic Imaging Corp",
    "jane screening",
    STUDY_UID,
    SERIES_UID,
    SOP_UID,
)


def phi_dicom(
    *,
    name: str = "DOE^JANE",
    birth_date: str = "19650412",
    sop_uid: str = SOP_UID,
    burned_in: str | None = "YES",
    patient_id: str = "MRN-4242-XYZ",
    laterality: str | None = "L",
    view: str | None = "CC",
    preamble: bytes = b"Jane Doe MRN-4242-XYZ".ljust(128, b"\0"),
) -> bytes:
    """A small synthetic 16-bit mammography DICOM whose header is full of made-up PHI."""
    pixels = (np.random.default_rng(7).random((96, 80)) * 4000).astype(np.uint16)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, SERIES_UID
    ds.StudyDate, ds.ContentDate, ds.StudyTime = "20240117", "20240118", "093000"
    ds.AcquisitionDateTime = "20240117093000"
    ds.AccessionNumber, ds.StudyID = "ACC-99887766", "S-ACC-99887766"
    ds.Modality, ds.Manufacturer = "MG", "Synthetic Imaging Corp"
    ds.InstitutionName, ds.InstitutionAddress = "St Elsewhere Hospital", "42 Synthetic Street, Springfield"
    ds.ReferringPhysicianName, ds.PerformingPhysicianName, ds.OperatorsName = (
        "HOUSE^GREGORY",
        "HOUSE^GREGORY",
        "OPERATOR^OLGA",
    )
    ds.StationName, ds.DeviceSerialNumber = "STATION-X9", "SN-31337-QQ"
    ds.StudyDescription, ds.SeriesDescription = "jane screening", "jane screening L CC"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = name, patient_id, birth_date, "F"
    ds.OtherPatientIDs, ds.PatientAddress = "OTHER-ID-777", "42 Synthetic Street"
    ds.PatientTelephoneNumbers, ds.PatientComments = "+1 555 0100", "Jane Doe prefers mornings"
    request = Dataset()
    request.RequestedProcedureID, request.ScheduledProcedureStepID = "ACC-99887766", "MRN-4242-XYZ"
    ds.RequestAttributesSequence = [request]
    ds.add_new(0x00090010, "LO", "SYNTHETIC PRIVATE")
    ds.add_new(0x00091001, "LO", "secret private note")
    ds.add_new(0x60000010, "US", 96)  # an overlay plane (group 6000)
    ds.add_new(0x60000011, "US", 80)
    ds.add_new(0x60000022, "LO", "Jane Doe overlay")
    ds.add_new(0x60003000, "OW", bytes(96 * 80 // 8))
    if laterality:
        ds.Laterality = laterality
    if view:
        ds.ViewPosition = view
    if burned_in:
        ds.BurnedInAnnotation = burned_in
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = pixels.tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "JANEDOE_PACS"
    ds.file_meta, ds.preamble = meta, preamble
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
