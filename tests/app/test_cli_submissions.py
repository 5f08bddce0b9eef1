"""Tests for the version-2 commands: submit, submissions, review, update (refusals), models, rollback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _trained import trained_run_dir

from mammo_utils.app.cli import EXIT_OK, EXIT_USAGE, main
from mammo_utils.models.registry import Registry
from mammo_utils.submissions.store import Store

EXIT_REFUSED = 1


@pytest.fixture()
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_submit_review_and_list(sample_dicom_paths: list[Path], database: str, capsys: pytest.CaptureFixture[str]):
    dicom = str(sample_dicom_paths[4])
    code = main(
        [
            "submit",
            dicom,
            "--density",
            "c",
            "--pathology",
            "malignant",
            "--consent",
            "--submitter",
            "cli",
            "--no-predict",
            "--database",
            database,
        ]
    )
    out, _ = capsys.readouterr()
    assert code == EXIT_OK and "stored as submission 1 (status pending" in out
    assert main(["submit", dicom, "--consent", "--no-predict", "--database", database]) == EXIT_OK
    assert "already stored as submission 1" in capsys.readouterr().out

    assert main(["review", "1", "--accept", "--reviewer", "me", "--database", database]) == EXIT_OK
    assert "submission 1: accepted" in capsys.readouterr().out
    assert main(["review", "99", "--reject", "--database", database]) == EXIT_REFUSED
    assert "99" in capsys.readouterr().err

    assert main(["submissions", "--status", "accepted", "--database", database]) == EXIT_OK
    out = capsys.readouterr().out
    assert "accepted" in out and "1-280.dcm" in out
    with Store(url=database) as store:
        [row] = store.records()
        assert (row.density, row.pathology, row.status, row.reviewer) == (3, "malignant", "accepted", "me")


def test_submit_stores_the_current_models_prediction(
    sample_dicom_paths: list[Path], database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from mammo_utils.inference import predictor as predict

    run = trained_run_dir()
    original = predict.Predictor.from_path
    monkeypatch.setattr(
        predict.Predictor, "from_path", classmethod(lambda cls, path, warmup=True: original(run, warmup=warmup))
    )
    assert main(["submit", str(sample_dicom_paths[0]), "--consent", "--database", database]) == EXIT_OK
    with Store(url=database) as store:
        [row] = store.records()
    assert row.prediction is not None and row.prediction["density_letter"] in "abcd"
    assert row.model_version and row.model_version == row.prediction["model_version"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--density", "2"], EXIT_USAGE, "--consent is required"),
        (["--consent", "--density", "7"], EXIT_REFUSED, "density"),
    ],
)
def test_submit_refusals_store_nothing(
    sample_dicom_paths: list[Path], database: str, capsys: pytest.CaptureFixture[str], args, code, message
):
    try:
        result = main(["submit", str(sample_dicom_paths[0]), "--no-predict", "--database", database, *args])
    except SystemExit as exit_:  # argparse's parser.error
        result = exit_.code
    assert result == code and message in capsys.readouterr().err
    with Store(url=database) as store:
        assert store.count() == 0


def test_submit_refuses_a_file_that_is_not_a_mammogram(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
):
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"this is a text file")
    assert main(["submit", str(junk), "--consent", "--no-predict", "--database", database]) == EXIT_REFUSED
    assert "notes.png" in capsys.readouterr().err


def test_update_without_accepted_submissions_is_refused(database: str, capsys: pytest.CaptureFixture[str]):
    assert main(["update", "--fast", "--database", database]) == EXIT_REFUSED
    assert "no accepted submissions" in capsys.readouterr().err


def test_models_and_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    assert main(["models"]) == EXIT_OK and "no model versions" in capsys.readouterr().out
    registry = Registry()
    run = Path(shutil.copytree(trained_run_dir(), tmp_path / "home" / "models" / "runs" / "base"))
    first = registry.register(run, parent=None, metrics=None, data_hash="x", promote=True)
    second = registry.register(run, parent=first.version, metrics=None, data_hash="y", promote=True)
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    assert first.version in out and second.version in out
    assert main(["rollback", first.version]) == EXIT_OK
    assert f"current model: {first.version}" in capsys.readouterr().out
    assert Registry().current().version == first.version
    assert main(["rollback", "v99"]) == EXIT_REFUSED and "v99" in capsys.readouterr().err
