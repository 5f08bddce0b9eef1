"""The upload-and-predict panel of ``notebooks/04_predict_widget.ipynb`` (also served as a web page by Voilà).

The logic is pure and testable without a browser: :func:`handle_upload` turns an ipywidgets 8
``FileUpload.value`` (a tuple of dicts with ``name``, ``type``, ``size`` and ``content`` (a memoryview)) into one
:class:`ItemResult` per file — a :class:`~mammo_utils.inference.prediction.Prediction` or an error message, never
an exception; :func:`render_html` turns one result into self-contained HTML. :class:`PredictPanel` (built by
:func:`build_panel`) only wires widgets to them, one method per action.

Stable markers for browser tests: every result is a ``div.mammo-result`` containing the texts "BI-RADS density"
and "Malignancy probability"; an unreadable file gives a ``div.mammo-error``; results go into the Output widget
with class ``mammo-output``; the notice is ``div.mammo-notice``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from mammo_utils.imaging.mammogram import MammogramReadError
from mammo_utils.inference.prediction import Prediction
from mammo_utils.inference.predictor import THUMBNAIL_SIDE
from mammo_utils.labels import DENSITY_LETTERS, DENSITY_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets

    from mammo_utils.app.submit_form import PendingUpload
    from mammo_utils.inference.predictor import Predictor
    from mammo_utils.submissions.store import Store

__all__ = [
    "ACCEPT",
    "NOTICE",
    "ItemResult",
    "PredictPanel",
    "build_panel",
    "handle_upload",
    "render_html",
    "run_sample",
    "sample_files",
    "show",
]

ACCEPT = ".dcm,.png,.jpg,.jpeg,.tif,.tiff,.pgm"
NOTICE = (
    "Teaching and research tool, not a medical device. The default model was trained on synthetic data; "
    "its output must not be used for any decision about a patient."
)
MAX_RESULTS = 12  # results kept in the panel (older ones are dropped to bound the page's memory)
_SAMPLE_ORDER = (4, 5, 6, 7, 0, 1, 2, 3)  # start with the malignant left CC of patient P_00820


@dataclass(frozen=True)
class ItemResult:
    """The outcome for one file: a prediction, or an error message a person can act on.

    Attributes
    ----------
    name : str
        The file name.
    prediction : Prediction or None
    error : str or None
        Why the file could not be predicted (no traceback).
    note : str or None
        Extra context shown with the result (e.g. the recorded label of a sample image).
    """

    name: str
    prediction: Prediction | None = None
    error: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        """True if there is a prediction."""
        return self.prediction is not None


def _upload_items(upload_value: Any) -> list[Mapping[str, Any]]:
    """The list of file dicts in an ipywidgets 8 value (tuple of dicts); a version-7 dict of dicts also works."""
    if not upload_value:
        return []
    if isinstance(upload_value, Mapping):  # ipywidgets 7: {name: {"content": ..., "metadata": ...}}
        return [{"name": name, **dict(item)} for name, item in upload_value.items()]
    return [item if isinstance(item, Mapping) else {"name": repr(item)} for item in upload_value]


def predict_one(predictor: Predictor, content: Any, name: str, note: str | None = None) -> ItemResult:
    """Predict one file's bytes (or path); any failure becomes an error message."""
    try:
        return ItemResult(name, prediction=predictor.predict(content, filename=name), note=note)
    except MammogramReadError as exc:
        return ItemResult(name, error=str(exc), note=note)
    except Exception as exc:
        return ItemResult(name, error=f"{name}: could not be analysed ({type(exc).__name__}: {exc})", note=note)


def handle_upload(predictor: Predictor, upload_value: Any) -> list[ItemResult]:
    """Predict every file of a ``FileUpload.value``; unreadable files give an error message, never an exception.

    Parameters
    ----------
    predictor : Predictor
    upload_value : tuple of dict
        ipywidgets 8 ``FileUpload.value``: dicts with ``name``, ``type``, ``size``, ``content`` (memoryview).

    Returns
    -------
    list of ItemResult
        One per file, in upload order.
    """
    results = []
    for item in _upload_items(upload_value):
        name = str(item.get("name") or "upload")
        content = item.get("content")
        if content is None or len(content) == 0:
            results.append(ItemResult(name, error=f"{name}: the upload is empty; choose the file again."))
            continue
        results.append(predict_one(predictor, content, name))
    return results


# --------------------------------------------------------------------------------------------- samples
@lru_cache(maxsize=1)
def sample_files() -> tuple[tuple[Path, str], ...]:
    """The 8 real CBIS-DDSM DICOMs as ``(path, note)``, malignant left CC first; notes give the recorded labels."""
    from mammo_utils.datasets.sample import sample

    rows = sample()
    ordered = [rows.iloc[i] for i in _SAMPLE_ORDER if i < len(rows)] or [r for _, r in rows.iterrows()]
    files = []
    for row in ordered:
        density = int(row["density"])
        note = (
            f"Real CBIS-DDSM sample: patient {row['patient_id']}, {row['laterality']} {row['view']}; "
            f"recorded density {DENSITY_LETTERS[density]} ({DENSITY_NAMES[density]}), {row['pathology']}."
        )
        files.append((Path(row["image_path"]), note))
    return tuple(files)


def run_sample(predictor: Predictor, index: int = 0) -> ItemResult:
    """Predict sample image ``index`` (modulo 8) of :func:`sample_files`; never raises."""
    try:
        path, note = sample_files()[index % len(sample_files())]
    except Exception as exc:
        return ItemResult("sample", error=f"the sample images are not available ({type(exc).__name__}: {exc})")
    return predict_one(predictor, path, path.name, note=note)


# --------------------------------------------------------------------------------------------- rendering
def _data_uri(image: np.ndarray) -> str:
    """A PNG data URI of a float image in [0, 1], grey (H, W) or RGB (H, W, 3)."""
    array = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
    buffer = io.BytesIO()
    Image.fromarray((array * 255.0 + 0.5).astype(np.uint8)).save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thumbnail_with_box(prediction: Prediction) -> np.ndarray:
    """The original preview (RGB) with the standardization crop box drawn in red."""
    thumb = prediction.thumbnail if prediction.thumbnail is not None else np.zeros((8, 8), np.float32)
    rgb = Image.fromarray((np.clip(thumb, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    step = max(1, math.ceil(max(prediction.original_shape) / THUMBNAIL_SIDE))
    top, left, bottom, right = (v / step for v in prediction.crop_box)
    ImageDraw.Draw(rgb).rectangle(
        [left, top, max(left, right - 1), max(top, bottom - 1)],
        outline=(230, 40, 40),
        width=max(1, round(max(rgb.size) / 200)),
    )
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _figure(uri: str, caption: str, height: int = 224) -> str:
    return (
        f'<figure style="margin:0 8px 0 0;text-align:center"><img src="{uri}" alt="{html.escape(caption)}" '
        f'style="height:{height}px;width:auto;border:1px solid #ccc"/><figcaption style="font-size:12px">'
        f"{html.escape(caption)}</figcaption></figure>"
    )


def _density_bars(prediction: Prediction) -> str:
    """The 4 density probabilities as a horizontal bar chart (HTML), the predicted class highlighted."""
    rows = []
    for k, p in zip(DENSITY_LETTERS, prediction.density_probs, strict=True):
        chosen = k == prediction.density
        colour = "#1565c0" if chosen else "#90a4ae"
        rows.append(
            f'<div style="display:flex;align-items:center;margin:2px 0;font-weight:{"bold" if chosen else "normal"}">'
            f'<span style="width:1.5em">{DENSITY_LETTERS[k]}</span>'
            f'<span style="display:inline-block;width:160px;background:#eceff1;margin-right:6px">'
            f'<span class="mammo-bar" style="display:block;height:14px;width:{100 * p:.1f}%;background:{colour}">'
            f"</span></span><span>{100 * p:.1f}%</span></div>"
        )
    return "".join(rows)


def _error_html(item: ItemResult) -> str:
    return (
        '<div class="mammo-error" style="border:1px solid #c62828;background:#fdecea;color:#8e0000;'
        'padding:8px 12px;border-radius:4px;margin:6px 0">'
        f"<b>Could not read {html.escape(item.name)}</b><br>{html.escape(item.error or 'unknown error')}"
        '<br><span style="font-size:12px">Supported: DICOM, PNG, JPEG, TIFF, PGM mammograms (grey or colour).'
        "</span></div>"
    )


def render_html(item: ItemResult) -> str:
    """Self-contained HTML for one result: images, density bar chart, malignancy call, and what was done."""
    if not item.ok:
        return _error_html(item)
    p = item.prediction
    assert p is not None
    figures = [_figure(_data_uri(_thumbnail_with_box(p)), "original (red: crop)")]
    if p.image is not None:
        from mammo_utils.inference.overlays import outline_boxes, overlay

        figures.append(_figure(_data_uri(p.image), "standardized" + (" (flipped)" if p.flipped else "")))
        if "density" in p.cams:
            figures.append(
                _figure(_data_uri(overlay(p.image, p.cams["density"])), f"Grad-CAM density {p.density_letter}")
            )
        if p.lesion_map is not None:
            boxed = outline_boxes(overlay(p.image, p.lesion_map), [r.box_model for r in p.regions])
            figures.append(_figure(_data_uri(boxed), "lesion map (malignant probability; boxes: top regions)"))
        elif "malignancy" in p.cams:
            figures.append(_figure(_data_uri(overlay(p.image, p.cams["malignancy"])), "Grad-CAM malignancy"))
    colour = "#b71c1c" if p.malignant else "#2e7d32"
    calibration = f"calibrated, temperature {p.temperature:.3g}" if p.calibrated else "uncalibrated"
    timings = ", ".join(f"{stage} {1000 * seconds:.0f} ms" for stage, seconds in p.timings.items())
    top, left, bottom, right = p.crop_box
    details = (
        f"Standardization: crop rows {top}–{bottom}, columns {left}–{right} of "
        f"{p.original_shape[0]}×{p.original_shape[1]} ({p.source_format}), "
        f"{'flipped to put the breast on the left' if p.flipped else 'not flipped'}. "
        f"Timings: {timings}. Model: {p.model_version}."
    )
    warnings = "".join(f'<div style="color:#e65100">⚠ {html.escape(w)}</div>' for w in p.warnings)
    note = f'<div style="font-size:13px;color:#37474f">{html.escape(item.note)}</div>' if item.note else ""
    return (
        '<div class="mammo-result" style="border:1px solid #cfd8dc;border-radius:6px;padding:8px 12px;margin:8px 0">'
        f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(item.name)}</div>{note}'
        f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start;gap:4px">{"".join(figures)}'
        '<div style="min-width:260px;margin-left:8px">'
        f'<div class="mammo-density">BI-RADS density: <b>{p.density_letter}</b> ({html.escape(p.density_name)})</div>'
        f"{_density_bars(p)}"
        f'<div class="mammo-malignancy" style="margin-top:10px">Malignancy probability: '
        f"<b>{p.malignancy_prob:.3f}</b> → "
        f'<b style="color:{colour}">{p.call}</b></div>'
        f'<div style="font-size:12px">call at ≥ {p.threshold:.3f} ({calibration})</div></div></div>'
        f'<div style="font-size:12px;color:#546e7a;margin-top:6px">{html.escape(details)}</div>{warnings}</div>'
    )


def show(items: ItemResult | Iterable[ItemResult]) -> None:
    """Display results in the notebook (outside the panel), e.g. a static example."""
    from IPython.display import HTML, display

    for item in [items] if isinstance(items, ItemResult) else items:
        display(HTML(render_html(item)))


def _notice_html() -> str:
    return (
        '<div class="mammo-notice" style="background:#fff8e1;border:1px solid #ffb300;padding:6px 10px;'
        f'border-radius:4px;margin-bottom:6px"><b>⚠ {html.escape(NOTICE)}</b></div>'
    )


# --------------------------------------------------------------------------------------------- the panel
def _default_store() -> Store:
    from mammo_utils.submissions.store import Store

    return Store()


class PredictPanel:
    """The panel's widgets and state, with one method per action: upload, sample, clear and submit wiring.

    Build it with :func:`build_panel`; :attr:`widget` is the ``VBox`` to display. Every action turns a failure into
    an error result shown in the panel, never an exception.

    Parameters
    ----------
    predictor : Predictor
    store : Store or callable returning a Store, optional
        The submission database; default ``mammo_utils.submissions.store.Store`` (opened on the first submit).
    submit : bool
        Show the "submit this image" form.
    """

    def __init__(
        self, predictor: Predictor, store: Store | Callable[[], Store] | None = None, submit: bool = True
    ) -> None:
        import ipywidgets as widgets

        self.predictor = predictor
        self.store: Store | Callable[[], Store] = store if store is not None else _default_store
        self.submit = submit
        self.sample_index = 0
        self.pending: PendingUpload | None = None
        self.upload = self._upload_widget(widgets)
        self.sample_button = self._sample_button(widgets)
        self.status = widgets.HTML(
            '<span class="mammo-status">Upload DICOM, PNG, JPEG or TIFF mammograms, or try the sample.</span>'
        )
        self.output = widgets.Output(layout=widgets.Layout(width="100%"))
        self.output.add_class("mammo-output")
        self.upload.observe(self.on_upload, names="value")
        self.sample_button.on_click(self.on_sample)
        self.widget = self._layout(widgets)

    # ------------------------------------------------------------------ widgets
    @staticmethod
    def _upload_widget(widgets: Any) -> ipywidgets.FileUpload:
        upload = widgets.FileUpload(
            accept=ACCEPT, multiple=True, description="Upload mammograms", layout=widgets.Layout(width="auto")
        )
        upload.add_class("mammo-upload")
        return upload

    @staticmethod
    def _sample_button(widgets: Any) -> ipywidgets.Button:
        button = widgets.Button(
            description="Try the sample",
            icon="image",
            tooltip="Predict one of the 8 real CBIS-DDSM DICOMs of the 'mammograms' package",
        )
        button.add_class("mammo-sample")
        return button

    def _layout(self, widgets: Any) -> ipywidgets.VBox:
        """Notice, upload row, status, results and (with ``submit``) the submit form, in one ``VBox``."""
        upload_row = widgets.HBox([self.upload, self.sample_button])
        children = [widgets.HTML(_notice_html()), upload_row, self.status, self.output]
        if self.submit:
            children.append(self._submit_form())
        panel = widgets.VBox(children)
        panel.add_class("mammo-panel")
        return panel

    def _submit_form(self) -> ipywidgets.Widget:
        """The submit form, wired to send :attr:`pending` (the last predicted image) to :attr:`store`."""
        from mammo_utils.app.submit_form import build_submit_form

        return build_submit_form(lambda: self.pending, self.store)

    # ------------------------------------------------------------------ state and display
    def remember(self, contents: Iterable[tuple[bytes, ItemResult]]) -> None:
        """Keep the first predicted image of the latest action for the submit form."""
        from mammo_utils.app.submit_form import PendingUpload

        for content, result in contents:
            if result.ok:
                self.pending = PendingUpload(result.name, content, result.prediction)
                return

    def publish(self, results: list[ItemResult]) -> None:
        """Show ``results`` above the earlier ones (at most :data:`MAX_RESULTS`) and say how many succeeded."""
        new = [
            {"output_type": "display_data", "metadata": {}, "data": {"text/html": render_html(r), "text/plain": r.name}}
            for r in results
        ]
        self.output.outputs = tuple(new + list(self.output.outputs))[:MAX_RESULTS]
        good = sum(r.ok for r in results)
        self.set_status(f"{good} of {len(results)} file(s) predicted with {self.predictor.version}; newest first.")

    def set_status(self, text: str) -> None:
        """Set the status line to ``text`` (escaped)."""
        self.status.value = f'<span class="mammo-status">{html.escape(text)}</span>'

    def fail(self, name: str, exc: Exception) -> None:
        """Show an unexpected failure of an action as an error result."""
        self.publish([ItemResult(name, error=f"the panel failed ({type(exc).__name__}: {exc})")])

    # ------------------------------------------------------------------ actions
    def on_upload(self, change: Mapping[str, Any]) -> None:
        """Predict the uploaded files, show them, remember the first good one, then clear the upload."""
        value = change.get("new")
        if not value:
            return
        self.set_status(f"Analysing {len(value)} file(s)…")
        try:
            results = handle_upload(self.predictor, value)
            self.publish(results)
            items = _upload_items(value)
            if self.submit and len(items) == len(results):
                self.remember([(bytes(item.get("content") or b""), r) for item, r in zip(items, results, strict=True)])
        except Exception as exc:
            self.fail("upload", exc)
        finally:
            self.clear_upload()

    def clear_upload(self) -> None:
        """Empty the upload widget: frees the bytes and lets the same file be uploaded again."""
        self.upload.value = ()

    def on_sample(self, _: Any = None) -> None:
        """Predict the next sample DICOM (each press takes the next one) and show it."""
        self.sample_button.disabled = True
        self.set_status("Analysing a real CBIS-DDSM sample…")
        try:
            result = run_sample(self.predictor, self.sample_index)
            self.publish([result])
            if self.submit and result.ok:
                path = sample_files()[self.sample_index % len(sample_files())][0]
                self.remember([(path.read_bytes(), result)])
            self.sample_index += 1
        except Exception as exc:
            self.fail("sample", exc)
        finally:
            self.sample_button.disabled = False


def build_panel(
    predictor: Predictor, store: Store | Callable[[], Store] | None = None, submit: bool = True
) -> ipywidgets.Widget:
    """The panel: notice, file upload (several files), "Try the sample" button, status line and results.

    Results appear newest upload first (files of one upload in their order) in an ``Output`` with class
    ``mammo-output`` (at most :data:`MAX_RESULTS`). With ``submit=True`` a form below sends the last predicted
    image to the submission database (see :mod:`mammo_utils.app.submit_form`).

    Parameters
    ----------
    predictor : Predictor
    store : Store or callable returning a Store, optional
        The submission database; default ``mammo_utils.submissions.store.Store`` (opened on the first submit).
    submit : bool
        Show the "submit this image" form.

    Returns
    -------
    ipywidgets.Widget
        The panel's ``VBox`` (class ``mammo-panel``); its :class:`PredictPanel` is not needed to use it.
    """
    return PredictPanel(predictor, store, submit).widget
