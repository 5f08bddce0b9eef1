"""Tests for ``mammo predict``: output formats, exit codes, one error line per unreadable file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _trained import trained_run_dir

from mammo_utils.app.cli import EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]


def _module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mammo_utils.app", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("args", [[], ["predict"], ["predict", "/no/such/file.dcm"], ["frobnicate"]])
def test_usage_errors_exit_with_2(args: list[str]):
    done = _module(*args)
    assert done.returncode == EXIT_USAGE and "usage:" in done.stderr
    if args[1:]:
        assert "no such file" in done.stderr


def test_json_output_and_one_error_line_per_unreadable_file(
    sample_dicom_paths: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"DICM but not really" * 10)
    code = main(
        [
            "predict",
            str(sample_dicom_paths[4]),
            str(bad),
            str(tmp_path / "gone.png"),
            "--model",
            str(trained_run_dir()),
            "--json",
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == EXIT_UNREADABLE
    [record] = json.loads(out)
    assert record["source"] == str(sample_dicom_paths[4]) and record["density_letter"] in "abcd"
    assert isinstance(record["regions"], list)  # the lesion map's top regions, boxes in original pixels
    assert all(set(r) == {"probability", "box_model", "box_original"} for r in record["regions"])
    assert set(record) >= {
        "p_density_a",
        "p_density_d",
        "malignancy_prob",
        "call",
        "threshold",
        "calibrated",
        "crop_box",
        "flipped",
        "model_version",
        "seconds_total",
    }
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("bad.dcm" in e for e in errors) and any("gone.png" in e for e in errors)


def test_folder_to_csv_and_text_output(
    sample_dicom_paths: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sample_dicom_paths[:2]:
        shutil.copyfile(path, folder / path.name)
    out_csv = tmp_path / "out" / "predictions.csv"
    model_file = trained_run_dir() / "model.keras"  # a run's model file loads its run (calibration, threshold)
    assert main(["predict", str(folder), "--model", str(model_file), "--csv", str(out_csv)]) == EXIT_OK
    frame = pd.read_csv(out_csv)
    assert sorted(Path(s).name for s in frame["source"]) == ["1-130.dcm", "1-131.dcm"]
    assert frame["error"].isna().all() and frame["density"].between(1, 4).all()
    assert "Predicting" in capsys.readouterr().err  # the progress bar, on stderr
    assert main(["predict", str(folder / "1-130.dcm"), "--model", str(model_file)]) == EXIT_OK
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(str(folder / "1-130.dcm")) and "density " in line and "malignancy " in line


def test_missing_model_is_a_usage_error(
    sample_dicom_paths: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["predict", str(sample_dicom_paths[0]), "--model", str(tmp_path / "none.keras")]) == EXIT_USAGE
    assert "no model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(sample_dicom_paths[0]), "--json", "--csv", "x.csv"])
    assert exit_info.value.code == EXIT_USAGE
