"""Tests for mammo_utils.app.panel: the upload handler with real file bytes, the HTML, the panel's wiring (headless)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pytest
from _trained import trained_predictor
from PIL import Image

from mammo_utils.app import panel as widget
from mammo_utils.imaging.io import read_mammogram
from mammo_utils.inference.predictor import Predictor


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return trained_predictor()


def _upload(name: str, data: bytes, kind: str = "application/dicom") -> dict:
    """One entry of an ipywidgets 8 ``FileUpload.value``."""
    return {
        "name": name,
        "type": kind,
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime(2026, 11, 25, tzinfo=UTC),
    }


@pytest.fixture(scope="module")
def files(sample_dicom_paths: list[Path]) -> dict[str, bytes]:
    dicom = sample_dicom_paths[0]
    grey = Image.fromarray(np.round(read_mammogram(dicom).pixels[::3, ::3] * 255).astype(np.uint8))
    png = io.BytesIO()
    grey.convert("RGB").save(png, format="PNG")
    return {"1-130.dcm": dicom.read_bytes(), "colour.png": png.getvalue(), "bad.dcm": b"\x89PNG\r\n\x1a\n garbage"}


def test_handle_upload_predicts_each_file_and_reports_bad_ones(predictor: Predictor, files: dict[str, bytes]):
    value = tuple(_upload(name, data) for name, data in files.items())
    results = widget.handle_upload(predictor, value)
    assert [r.name for r in results] == list(files)
    assert [r.ok for r in results] == [True, True, False]
    dicom, png, bad = results
    assert dicom.prediction.source_format == "dicom" and png.prediction.source_format == "png"
    assert dicom.prediction.laterality == "L"  # from the DICOM header, not the file name
    assert "bad.dcm" in bad.error and bad.prediction is None


def test_handle_upload_accepts_empty_values_and_the_version_7_layout(predictor: Predictor, files: dict[str, bytes]):
    assert widget.handle_upload(predictor, ()) == [] and widget.handle_upload(predictor, None) == []
    [empty] = widget.handle_upload(predictor, (_upload("empty.png", b""),))
    assert not empty.ok and "empty" in empty.error
    v7 = {"colour.png": {"metadata": {"name": "colour.png"}, "content": files["colour.png"]}}
    [item] = widget.handle_upload(predictor, v7)
    assert item.ok and item.name == "colour.png"


def test_handle_upload_never_raises(files: dict[str, bytes]):
    class Broken:
        version = "broken"

        def predict(self, content, filename=None):
            raise RuntimeError("model exploded")

    [item] = widget.handle_upload(Broken(), (_upload("1-130.dcm", files["1-130.dcm"]),))
    assert not item.ok and "RuntimeError" in item.error and "model exploded" in item.error


def test_render_html_of_a_result_and_of_an_error(predictor: Predictor, files: dict[str, bytes]):
    ok, bad = widget.handle_upload(
        predictor, (_upload("1-130.dcm", files["1-130.dcm"]), _upload("<b>evil</b>.dcm", b"junk"))
    )
    page = widget.render_html(ok)
    p = ok.prediction
    assert 'class="mammo-result"' in page and "BI-RADS density" in page and "Malignancy probability" in page
    assert f"BI-RADS density: <b>{p.density_letter}</b>" in page and f"<b>{p.malignancy_prob:.3f}</b>" in page
    assert page.count('class="mammo-bar"') == 4 and page.count("data:image/png;base64,") == 4
    assert p.call in page and p.model_version in page
    assert "lesion map (malignant probability; boxes: top regions)" in page and "Grad-CAM density" in page
    error = widget.render_html(bad)
    assert 'class="mammo-error"' in error and "mammo-result" not in error
    assert "<b>evil</b>" not in error and "&lt;b&gt;evil&lt;/b&gt;.dcm" in error and "Traceback" not in error


def test_sample_button_data(predictor: Predictor):
    files = widget.sample_files()
    assert len(files) == 8 and files[0][0].name == "1-280.dcm" and all(p.is_file() for p, _ in files)
    item = widget.run_sample(predictor, 0)
    assert item.ok and "CBIS-DDSM" in item.note and "P_00820" in item.note and "malignant" in item.note
    assert "CBIS-DDSM" in widget.render_html(item)


def _walk(w: widgets.Widget):
    yield w
    for child in getattr(w, "children", ()):
        yield from _walk(child)


def test_panel_wires_upload_sample_and_notice(predictor: Predictor, files: dict[str, bytes]):
    panel = widget.build_panel(predictor)
    parts = list(_walk(panel))
    upload = next(w for w in parts if isinstance(w, widgets.FileUpload))
    button = next(w for w in parts if isinstance(w, widgets.Button))
    output = next(w for w in parts if isinstance(w, widgets.Output))
    assert upload.accept == widget.ACCEPT and upload.multiple
    assert "Try the sample" in button.description and "mammo-output" in output._dom_classes
    assert any(
        "not a medical device" in getattr(w, "value", "") and "synthetic" in w.value
        for w in parts
        if isinstance(w, widgets.HTML)
    )

    upload.value = (_upload("1-130.dcm", files["1-130.dcm"]), _upload("bad.dcm", files["bad.dcm"]))
    shown = [o["data"]["text/html"] for o in output.outputs]
    assert len(shown) == 2 and "mammo-result" in shown[0] and "mammo-error" in shown[1]
    assert upload.value == (), "the upload is cleared, so the same file can be chosen again"

    button.click()
    shown = [o["data"]["text/html"] for o in output.outputs]
    assert len(shown) == 3 and "1-280.dcm" in shown[0] and "mammo-result" in shown[0], "newest first"
    button.click()
    assert "1-281.dcm" in output.outputs[0]["data"]["text/html"], "each press takes the next sample"
