"""CBIS-DDSM (Curated Breast Imaging Subset of DDSM) as a manifest: one row per full mammogram.

Labels come from the four official case-description CSVs (mass/calc × train/test). Each row of those
CSVs is one abnormality; this loader groups them per mammogram, i.e. per ``(patient_id, laterality,
view)``. CBIS-DDSM stores a mammogram with both a mass and a calcification twice (a ``Mass-…`` and a
``Calc-…`` DICOM of the same DDSM scan); the group keeps the first file found (mass before calc,
Training before Test) and records ``abnormality_types = "mass+calc"``.

- pathology: malignant if any abnormality on the image is MALIGNANT, else benign
  (BENIGN and BENIGN_WITHOUT_CALLBACK are benign);
- density: the CSV's BI-RADS density (``breast_density`` in the mass files, ``breast density`` in the
  calc files). The rows of one image agree in CBIS-DDSM; if they do not, the highest (densest) value is
  kept and a warning names the images, because under-calling density is the costlier error.

Two layouts on disk are understood (``layout="auto"`` picks by the presence of ``csv/dicom_info.csv``):

``"tcia"``
    The TCIA / NBIA download: ``root/CBIS-DDSM/<image file path>``. The NBIA Data Retriever may name the
    folders below the subject folder differently (``<subject>/<date-study>/<n-full mammogram
    images-nnn>/1-1.dcm``), so when the exact path is absent the single DICOM in the subject folder
    (e.g. ``Mass-Training_P_00001_LEFT_CC``) is used; with several, the one whose folder name or header
    says "full mammogram images" (or has the CSV's SeriesInstanceUID). The CSVs may sit in ``root``,
    ``root/csv`` or next to the ``CBIS-DDSM`` folder.
``"kaggle"``
    The Kaggle JPEG conversion: ``root/csv/*.csv`` (incl. ``dicom_info.csv``) and
    ``root/jpeg/<SeriesInstanceUID>/*.jpg``; a mammogram is found through the SeriesInstanceUID (third
    component of "image file path") in ``dicom_info.csv``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pandas as pd
import pydicom

from mammo_utils import labels
from mammo_utils.datasets import schema
from mammo_utils.datasets.manifest import MissingPolicy, drop_or_raise_missing
from mammo_utils.datasets.schema import ManifestError, make_manifest

CASE_CSVS: dict[tuple[str, str], str] = {
    ("mass", "Training"): "mass_case_description_train_set.csv",
    ("mass", "Test"): "mass_case_description_test_set.csv",
    ("calc", "Training"): "calc_case_description_train_set.csv",
    ("calc", "Test"): "calc_case_description_test_set.csv",
}
FULL_MAMMOGRAM = "full mammogram images"
EXTRA_COLUMNS: tuple[str, ...] = ("abnormality_types", "cbis_split", "n_abnormalities")
_REQUIRED = ("patient id", "breast density", "left or right breast", "image view", "pathology", "image file path")
_SIDES = {"LEFT": "L", "RIGHT": "R"}
_SHOWN = 5
_NAME = re.compile(
    r"(?P<kind>Mass|Calc)-(?P<split>Training|Test)_(?P<patient>P_\d+)_(?P<side>LEFT|RIGHT)_(?P<view>CC|MLO)"
    r"(?:_(?P<abnormality>\d+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CBISName:
    """The parts of a CBIS-DDSM subject name such as ``Mass-Test_P_00820_LEFT_CC`` (or ``…_CC_1``)."""

    kind: str  # "mass" | "calc"
    split: str  # "Training" | "Test"
    patient_id: str  # "P_00820"
    laterality: str  # "L" | "R"
    view: str  # "CC" | "MLO"
    abnormality: int | None = None  # the ROI/crop subjects end in _<abnormality id>


def parse_cbis_name(text: str) -> CBISName | None:
    """Parse a CBIS-DDSM subject name (DICOM PatientID / first folder of a path); ``None`` if it is not one."""
    match = _NAME.fullmatch(str(text).strip())
    if match is None:
        return None
    abnormality = match["abnormality"]
    return CBISName(
        kind=match["kind"].lower(),
        split=match["split"].capitalize(),
        patient_id=match["patient"].upper(),
        laterality=_SIDES[match["side"].upper()],
        view=match["view"].upper(),
        abnormality=int(abnormality) if abnormality else None,
    )


def _path_parts(text: str) -> list[str]:
    """Components of a CSV image path; strips the stray newlines/spaces the official CSVs carry."""
    return [part for part in str(text).strip().replace("\\", "/").split("/") if part.strip()]


def _find_csvs(root: Path, layout: str) -> dict[tuple[str, str], Path]:
    folders = [root / "csv", root] if layout == "kaggle" else [root, root / "csv", root / "CBIS-DDSM"]
    found: dict[tuple[str, str], Path] = {}
    for key, name in CASE_CSVS.items():
        for folder in folders:
            if (folder / name).is_file():
                found[key] = folder / name
                break
    if not found:
        raise FileNotFoundError(
            f"no CBIS-DDSM case-description CSV under {root} (looked in {[str(f) for f in folders]} for "
            f"{list(CASE_CSVS.values())}); download them from the TCIA CBIS-DDSM page"
        )
    absent = [name for key, name in CASE_CSVS.items() if key not in found]
    if absent:
        warnings.warn(f"CBIS-DDSM: {absent} not found under {root}; loading the other CSVs only", stacklevel=3)
    return found


def _show(value: Any) -> str:
    return "(missing)" if labels.is_missing(value) else repr(value)


def _read_case_csv(path: Path, kind: str, split: str, invalid: str) -> list[dict[str, Any]]:
    """One record per valid abnormality row; bad rows raise (or are dropped with ``invalid="skip"``).

    Rows are named by their 1-based data row (header excluded; a quoted multi-line cell counts once).
    """
    frame = pd.read_csv(path, dtype=str)
    frame.columns = [" ".join(str(c).strip().lower().replace("_", " ").split()) for c in frame.columns]
    absent = [column for column in _REQUIRED if column not in frame.columns]
    if absent:
        raise ManifestError(f"{path.name} lacks column(s) {absent}; its columns are {list(frame.columns)}")
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, row in enumerate(frame.to_dict("records")):
        where = f"{path.name} data row {index + 1} (patient {row['patient id']!r})"
        pathology = labels.CBIS_PATHOLOGY.get(str(row["pathology"]).strip().upper())
        side = _SIDES.get(str(row["left or right breast"]).strip().upper())
        view = str(row["image view"]).strip().upper()
        try:
            density = labels.density_from_any(row["breast density"])
        except ValueError:
            density = None
        parts = [] if labels.is_missing(row["image file path"]) else _path_parts(row["image file path"])
        checks = {
            f"pathology {_show(row['pathology'])} (expected {sorted(labels.CBIS_PATHOLOGY)})": pathology is None,
            f"breast density {_show(row['breast density'])} (expected 1-4)": density is None,
            f"left or right breast {_show(row['left or right breast'])}": side is None,
            f"image view {_show(row['image view'])}": view not in schema.VIEWS,
            "patient_id (missing)": labels.is_missing(row["patient id"]),
            "image file path (missing)": not parts,
        }
        bad = [what for what, failed in checks.items() if failed]
        if bad:
            problems.append(f"{where}: bad {', '.join(bad)}")
            continue
        records.append(
            {
                "patient_id": str(row["patient id"]).strip(),
                "laterality": side,
                "view": view,
                "density": density,
                "pathology": pathology,
                "kind": kind,
                "split": split,
                "parts": parts,
            }
        )
    if problems:
        message = f"{len(problems)} unusable row(s): " + "; ".join(problems[:_SHOWN])
        if invalid == "raise":
            raise ManifestError(f"{message}; fix the CSV or pass invalid='skip' to drop these rows")
        warnings.warn(f"{message}; dropped them (invalid='skip')", stacklevel=4)
    return records


def _image_root(root: Path) -> Path:
    """The folder holding the subject folders (``Mass-Training_P_00001_LEFT_CC`` …)."""
    candidates = [root / "CBIS-DDSM", *sorted(root.glob("*/CBIS-DDSM")), root]
    for folder in candidates:
        if folder.is_dir() and any(parse_cbis_name(p.name) for p in folder.iterdir() if p.is_dir()):
            return folder
    return root / "CBIS-DDSM" if (root / "CBIS-DDSM").is_dir() else root


def _pick_full_mammogram(dicoms: list[Path], series_uid: str | None, subject: Path) -> Path:
    """Among several DICOMs of one subject folder, the single full mammogram (else a clear error)."""

    def by_name(path: Path) -> bool:
        folders = " ".join(path.relative_to(subject).parts[:-1]).lower()
        return FULL_MAMMOGRAM in folders or (series_uid is not None and series_uid.lower() in folders)

    chosen = [path for path in dicoms if by_name(path)]
    if len(chosen) != 1:
        chosen = []
        for path in dicoms:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            description = str(header.get("SeriesDescription", "")).strip().lower()
            if description == FULL_MAMMOGRAM or (series_uid and header.get("SeriesInstanceUID") == series_uid):
                chosen.append(path)
    if len(chosen) != 1:
        raise ManifestError(
            f"{subject} holds {len(dicoms)} DICOM files and {len(chosen)} of them look like the full "
            f"mammogram (SeriesDescription {FULL_MAMMOGRAM!r}); keep only the full-mammogram series there"
        )
    return chosen[0]


def _tcia_resolver(root: Path) -> Callable[[list[str]], Path]:
    image_root = _image_root(root)

    def resolve(parts: list[str]) -> Path:
        exact = image_root.joinpath(*parts)
        subject = image_root / parts[0]
        if exact.is_file() or not subject.is_dir():
            return exact  # a missing file is reported (with this expected path) by the caller
        dicoms = sorted(path for path in subject.rglob("*.dcm") if path.is_file())
        if len(dicoms) <= 1:
            return dicoms[0] if dicoms else exact
        return _pick_full_mammogram(dicoms, parts[2] if len(parts) > 2 else None, subject)

    return resolve


def _kaggle_resolver(root: Path) -> Callable[[list[str]], Path]:
    info_path = root / "csv" / "dicom_info.csv"
    info = pd.read_csv(info_path, dtype=str)
    absent = [column for column in ("image_path", "SeriesInstanceUID") if column not in info.columns]
    if absent:
        raise ManifestError(f"{info_path} lacks column(s) {absent}")
    descriptions = info.get("SeriesDescription", pd.Series([""] * len(info), index=info.index))
    info = info.assign(_full=descriptions.fillna("").str.strip().str.lower() == FULL_MAMMOGRAM)
    by_uid: dict[str, list[tuple[str, bool]]] = {}
    by_subject: dict[str, list[str]] = {}
    for uid, image, full, subject in zip(
        info["SeriesInstanceUID"],
        info["image_path"],
        info["_full"],
        info.get("PatientID", [None] * len(info)),
        strict=True,
    ):
        if labels.is_missing(image):
            continue
        if not labels.is_missing(uid):
            by_uid.setdefault(str(uid).strip(), []).append((str(image), bool(full)))
        if full and not labels.is_missing(subject):
            by_subject.setdefault(str(subject).strip(), []).append(str(image))

    def local(image_path: str) -> Path:
        parts = PurePosixPath(image_path.strip().replace("\\", "/")).parts
        start = len(parts) - 1 - parts[::-1].index("jpeg") if "jpeg" in parts else 0
        return root.joinpath(*parts[start:])

    def resolve(parts: list[str]) -> Path:
        uid = parts[2] if len(parts) > 2 else ""
        entries = by_uid.get(uid, [])
        if len(entries) > 1:
            entries = [entry for entry in entries if entry[1]]
        candidates = [local(entries[0][0])] if len(entries) == 1 else []
        if len(by_subject.get(parts[0], [])) == 1:
            candidates.append(local(by_subject[parts[0]][0]))
        folder = root / "jpeg" / uid
        if uid and folder.is_dir():
            jpegs = sorted(folder.glob("*.jp*g"))
            candidates += jpegs if len(jpegs) == 1 else []
        for path in candidates:
            if path.is_file():
                return path
        return candidates[0] if candidates else folder / "<no dicom_info.csv entry>.jpg"

    return resolve


def _merge_group(records: list[dict[str, Any]], resolve: Callable[[list[str]], Path]) -> dict[str, Any]:
    image = None
    for record in records:  # the first copy found wins; later ones are not even looked up
        path = resolve(record["parts"])
        image = image or path
        if path.is_file():
            image = path
            break
    kinds = [kind for kind in ("mass", "calc") if any(r["kind"] == kind for r in records)]
    splits = [split for split in ("Training", "Test") if any(r["split"] == split for r in records)]
    malignant = any(record["pathology"] == "malignant" for record in records)
    first = records[0]
    return {
        "image_path": str(image),
        "patient_id": first["patient_id"],
        "laterality": first["laterality"],
        "view": first["view"],
        "density": max(record["density"] for record in records),
        "pathology": "malignant" if malignant else "benign",
        "source": "cbis-ddsm",
        "abnormality_types": "+".join(kinds),
        "cbis_split": "+".join(splits),
        "n_abnormalities": len(records),
    }


def cbis_ddsm(
    root: str | os.PathLike[str],
    layout: Literal["auto", "tcia", "kaggle"] = "auto",
    *,
    missing: MissingPolicy = "raise",
    invalid: MissingPolicy = "raise",
) -> pd.DataFrame:
    """Load CBIS-DDSM as a manifest with one row per full mammogram (see the module docstring).

    Parameters
    ----------
    root
        The dataset folder (TCIA: holds ``CBIS-DDSM/`` and the CSVs; Kaggle: holds ``csv/`` and ``jpeg/``).
    layout
        ``"auto"`` (Kaggle if ``root/csv/dicom_info.csv`` exists, else TCIA), ``"tcia"`` or ``"kaggle"``.
    missing
        ``"raise"`` (default) or ``"skip"`` (drop, with a warning) for mammograms whose file is not found.
    invalid
        ``"raise"`` (default) or ``"skip"`` for CSV rows with a missing or unknown pathology, density,
        side, view, patient or path.

    Returns
    -------
    pandas.DataFrame
        The manifest, ``source="cbis-ddsm"``, patient ids like ``"P_00001"`` (shared by the mass and calc
        files, so splits keep a woman's images together), plus ``abnormality_types`` ("mass", "calc" or
        "mass+calc"), ``cbis_split`` (the official "Training"/"Test", or "Training+Test" when the mass and
        calc files disagree) and ``n_abnormalities`` (CSV rows merged into the image).

    Raises
    ------
    FileNotFoundError
        If ``root`` or all four case CSVs are missing.
    ManifestError
        For unusable CSV rows (naming the CSV and data row), files that are missing (count and first few
        expected paths), or a subject folder with several candidate full-mammogram DICOMs.
    """
    root = Path(root).expanduser()
    layout = _check_layout(root, layout, invalid)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for (kind, split), path in _find_csvs(root, layout).items():
        for record in _read_case_csv(path, kind, split, invalid):
            groups.setdefault((record["patient_id"], record["laterality"], record["view"]), []).append(record)
    resolve = _kaggle_resolver(root) if layout == "kaggle" else _tcia_resolver(root)
    rows = [_merge_group(records, resolve) for records in groups.values()]
    _warn_density_conflicts(groups)
    frame = make_manifest(rows, extra=EXTRA_COLUMNS)
    if len(frame):
        frame = frame.sort_values(["patient_id", "laterality", "view"], ignore_index=True)
    frame = schema.validate_manifest(frame)
    return drop_or_raise_missing(frame, missing, what=f"the CBIS-DDSM CSVs ({layout} layout, {root})")


def _check_layout(root: Path, layout: str, invalid: str) -> Literal["tcia", "kaggle"]:
    """The layout to read (``"auto"`` resolved), after checking the folder and the options."""
    if not root.is_dir():
        raise FileNotFoundError(f"CBIS-DDSM folder not found: {root}")
    if layout == "auto":
        layout = "kaggle" if (root / "csv" / "dicom_info.csv").is_file() else "tcia"
    if layout not in ("tcia", "kaggle"):
        raise ValueError(f"layout must be 'auto', 'tcia' or 'kaggle', got {layout!r}")
    if invalid not in ("raise", "skip"):
        raise ValueError(f"invalid must be 'raise' or 'skip', got {invalid!r}")
    if layout == "kaggle" and not (root / "csv" / "dicom_info.csv").is_file():
        raise FileNotFoundError(f"Kaggle layout needs {root / 'csv' / 'dicom_info.csv'}")
    return "kaggle" if layout == "kaggle" else "tcia"


def _warn_density_conflicts(groups: dict[tuple[str, str, str], list[dict[str, Any]]]) -> None:
    """Warn about mammograms whose CSV rows give different densities (the highest is kept)."""
    conflicts = [key for key, records in groups.items() if len({r["density"] for r in records}) > 1]
    if conflicts:
        warnings.warn(
            f"CBIS-DDSM: {len(conflicts)} mammogram(s) have rows with different breast densities, kept the "
            f"highest: {['_'.join(key) for key in conflicts[:_SHOWN]]}",
            stacklevel=3,
        )
