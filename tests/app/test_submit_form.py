"""Tests for mammo_utils.app.submit_form: the "submit this image" form, with a real store and a real upload."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import ipywidgets as widgets
import pytest
from _trained import trained_predictor

from mammo_utils.app import panel as widget
from mammo_utils.app.submit_form import PendingUpload, submit_upload
from mammo_utils.inference.predictor import Predictor
from mammo_utils.submissions.store import Store


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return trained_predictor()


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    db = Store(url=f"sqlite:///{tmp_path / 'submissions.db'}", root=tmp_path / "files")
    yield db
    db.close()


@pytest.fixture(scope="module")
def dicom(sample_dicom_paths: list[Path]) -> tuple[str, bytes]:
    return "1-130.dcm", sample_dicom_paths[0].read_bytes()


def test_submit_stores_labels_prediction_and_dedupes(store: Store, predictor: Predictor, dicom: tuple[str, bytes]):
    name, content = dicom
    upload = PendingUpload(name, content, predictor.predict(content, filename=name))
    first = submit_upload(store, upload, density="c", pathology="malignant", consent=True, submitter="dr test")
    assert first.ok and not first.duplicate and f"#{first.submission_id}" in first.message
    row = store.get(first.submission_id)
    assert (row.density, row.pathology, row.status, row.submitter) == (3, "malignant", "pending", "dr test")
    assert row.prediction["density_letter"] == upload.prediction.density_letter
    assert row.model_version == upload.prediction.model_version
    again = submit_upload(store, upload, density=None, pathology=None, consent=True)
    assert again.ok and again.duplicate and again.submission_id == first.submission_id
    assert "already" in again.message and len(store.submissions()) == 1


@pytest.mark.parametrize(
    ("upload", "kwargs", "expected"),
    [
        (None, {"consent": True}, "Upload an image first"),
        (PendingUpload("x.dcm", b"0"), {"consent": False}, "consent"),
        (PendingUpload("junk.dcm", b"not an image at all"), {"consent": True}, "not submitted"),
        (PendingUpload("1-130.dcm", b""), {"consent": True}, "not submitted"),
    ],
)
def test_refusals_store_nothing(store: Store, upload, kwargs, expected):
    outcome = submit_upload(store, upload, density=None, pathology=None, **kwargs)
    assert not outcome.ok and expected in outcome.message and outcome.submission_id is None
    assert len(store.submissions()) == 0 and store.orphans() == []


def test_bad_labels_and_a_failing_database_give_messages(store: Store, dicom: tuple[str, bytes]):
    upload = PendingUpload(*dicom)
    bad = submit_upload(store, upload, density=7, pathology=None, consent=True)
    assert not bad.ok and "density" in bad.message.lower()

    def broken() -> Store:
        raise OSError("disk full")

    down = submit_upload(broken, upload, density=None, pathology=None, consent=True)
    assert not down.ok and "OSError" in down.message and "Nothing was saved" in down.message
    assert len(store.submissions()) == 0


def _walk(w: widgets.Widget):
    yield w
    for child in getattr(w, "children", ()):
        yield from _walk(child)


def test_panel_submits_the_last_predicted_upload(store: Store, predictor: Predictor, dicom: tuple[str, bytes]):
    name, content = dicom
    panel = widget.build_panel(predictor, store=store)
    parts = list(_walk(panel))
    upload = next(w for w in parts if isinstance(w, widgets.FileUpload))
    form = next(w for w in parts if "mammo-submit" in getattr(w, "_dom_classes", ()))
    submit = next(w for w in _walk(form) if isinstance(w, widgets.Button))
    consent = next(w for w in _walk(form) if isinstance(w, widgets.Checkbox))
    density, pathology = [w for w in _walk(form) if isinstance(w, widgets.Dropdown)]
    result = [w for w in _walk(form) if isinstance(w, widgets.HTML)][-1]

    assert (density.label, pathology.label) == ("not given", "not given"), "the empty choice is shown, not a blank"
    submit.click()
    assert "mammo-submit-error" in result.value and "Upload an image first" in result.value

    upload.value = (
        {
            "name": name,
            "type": "application/dicom",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime(2026, 11, 26, tzinfo=UTC),
        },
    )
    submit.click()
    assert "mammo-submit-error" in result.value and "consent" in result.value
    assert len(store.submissions()) == 0

    density.value, pathology.value, consent.value = 2, "benign", True
    submit.click()
    assert "mammo-submitted" in result.value, result.value
    [row] = store.submissions().itertuples()
    assert (row.density, row.pathology, row.status) == (2, "benign", "pending")
    assert consent.value is False, "consent is asked again for the next image"


def test_panel_without_the_form(predictor: Predictor):
    parts = list(_walk(widget.build_panel(predictor, submit=False)))
    assert not any("mammo-submit" in getattr(w, "_dom_classes", ()) for w in parts)
