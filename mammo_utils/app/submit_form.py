"""The "submit this image" form of the upload panel (version 2): labels optional, consent required.

The panel remembers the last image it predicted (:class:`PendingUpload`); the form sends it, with the labels the
user gives, to the submission database (:class:`mammo_utils.submissions.store.Store`). As in
:mod:`mammo_utils.app.panel`, the logic is a pure function, :func:`submit_upload`, that returns a message and never
raises; :func:`build_submit_form` only wires widgets to it.

Stable markers for browser tests: the form is a ``div.mammo-submit``; a stored submission gives a
``div.mammo-submitted``, a refusal a ``div.mammo-submit-error``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mammo_utils.labels import DENSITY_LETTERS, DENSITY_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets

    from mammo_utils.inference.prediction import Prediction
    from mammo_utils.submissions.fields import Submission
    from mammo_utils.submissions.store import Store

__all__ = ["CONSENT_TEXT", "PendingUpload", "SubmitOutcome", "build_submit_form", "outcome_html", "submit_upload"]

CONSENT_TEXT = (
    "I have the right to share this image, and I consent to it being stored (de-identified) and used "
    "to update the model."
)
UNKNOWN = "not given"
# "not given" is 0 / "" rather than None: a Dropdown whose value is None shows no selection at all
_DENSITY_OPTIONS = [(UNKNOWN, 0)] + [(f"{DENSITY_LETTERS[k]} - {DENSITY_NAMES[k]}", k) for k in (1, 2, 3, 4)]
_PATHOLOGY_OPTIONS = [(UNKNOWN, ""), ("benign", "benign"), ("malignant", "malignant")]


@dataclass(frozen=True)
class PendingUpload:
    """The image the panel predicted last: what "submit" sends.

    Attributes
    ----------
    name : str
        The uploaded file name (shown to the user; never used as a path).
    content : bytes
        The file's bytes as uploaded.
    prediction : Prediction or None
        The model's prediction at upload time, stored with the submission.
    """

    name: str
    content: bytes
    prediction: Prediction | None = None


@dataclass(frozen=True)
class SubmitOutcome:
    """The result of one submit: stored (with its id) or refused (with the reason)."""

    ok: bool
    message: str
    submission_id: int | None = None
    duplicate: bool = False


def _resolve(store: Store | Callable[[], Store]) -> Store:
    """The store itself, or the one a factory returns (a Store has ``submit``; a factory does not)."""
    if hasattr(store, "submit"):
        return cast("Store", store)
    return store()


def _prediction_record(prediction: Prediction | None) -> tuple[dict[str, Any] | None, str | None]:
    if prediction is None:
        return None, None
    record = prediction.to_record()
    return record, record.get("model_version")


def submit_upload(
    store: Store | Callable[[], Store],
    upload: PendingUpload | None,
    *,
    density: int | str | None,
    pathology: str | None,
    consent: bool,
    submitter: str | None = None,
) -> SubmitOutcome:
    """Store the last predicted image with optional labels; any failure becomes a message, nothing half-written.

    Parameters
    ----------
    store : Store or callable returning a Store
        The submission database (a callable is only called when there is something to store).
    upload : PendingUpload or None
        The image to submit; None when nothing was uploaded yet.
    density, pathology : optional
        The submitter's labels: density 1-4 or a-d, pathology "benign" / "malignant"; None = not given.
    consent : bool
        Must be True; without it nothing is stored.
    submitter : str, optional
        A name or handle, stored as given.

    Returns
    -------
    SubmitOutcome
    """
    if upload is None:
        return SubmitOutcome(False, "Upload an image first: the form submits the image you predicted last.")
    if not consent:
        return SubmitOutcome(False, "Tick the consent box to submit: without consent nothing is stored.")
    labels = {"density": density, "pathology": pathology, "submitter": submitter or None}
    return _store_upload(store, upload, labels)


def _store_upload(store: Store | Callable[[], Store], upload: PendingUpload, labels: dict[str, Any]) -> SubmitOutcome:
    """Submit ``upload`` with consent and ``labels`` (density, pathology, submitter); failures become messages."""
    from mammo_utils.submissions.fields import StoreError, SubmissionError

    record, version = _prediction_record(upload.prediction)
    try:
        stored = _resolve(store).submit(
            upload.content, filename=upload.name, consent=True, prediction=record, model_version=version, **labels
        )
    except SubmissionError as exc:
        return SubmitOutcome(False, f"{upload.name}: not submitted. {exc}")
    except StoreError as exc:
        return SubmitOutcome(
            False, f"{upload.name}: not submitted; the database failed ({exc}). Nothing was saved; try again later."
        )
    except Exception as exc:
        return SubmitOutcome(
            False,
            f"{upload.name}: not submitted; the database could not store it "
            f"({type(exc).__name__}: {exc}). Nothing was saved; try again later.",
        )
    return SubmitOutcome(True, _stored_message(upload.name, stored), int(stored.id), bool(stored.duplicate))


def _stored_message(name: str, stored: Submission) -> str:
    """What the user reads after a stored (or already stored) submission."""
    if stored.duplicate:
        return (
            f"{name} was already in the database as submission #{stored.id} "
            f"(status: {stored.status}); nothing new was stored."
        )
    return (
        f"{name} stored as submission #{stored.id}, status {stored.status}: a reviewer accepts "
        "it before the model is updated on it."
    )


def outcome_html(outcome: SubmitOutcome) -> str:
    """HTML for one outcome: ``div.mammo-submitted`` (green) or ``div.mammo-submit-error`` (red)."""
    if outcome.ok:
        return (
            f'<div class="mammo-submitted" style="border:1px solid #2e7d32;background:#edf7ed;padding:6px 10px;'
            f'border-radius:4px;margin:6px 0">{html.escape(outcome.message)}</div>'
        )
    return (
        f'<div class="mammo-submit-error" style="border:1px solid #c62828;background:#fdecea;color:#8e0000;'
        f'padding:6px 10px;border-radius:4px;margin:6px 0">{html.escape(outcome.message)}</div>'
    )


def build_submit_form(
    get_upload: Callable[[], PendingUpload | None], store: Store | Callable[[], Store]
) -> ipywidgets.Widget:
    """The form: density and pathology (optional), submitter, the consent checkbox and a "Submit" button.

    Parameters
    ----------
    get_upload : callable
        Returns the image to submit (the panel's last prediction) or None.
    store : Store or callable returning a Store
        Opened on the first submit (so a panel that never submits never creates a database).
    """
    import ipywidgets as widgets

    density = widgets.Dropdown(options=_DENSITY_OPTIONS, value=0, description="Density")
    pathology = widgets.Dropdown(options=_PATHOLOGY_OPTIONS, value="", description="Pathology")
    submitter = widgets.Text(description="Your name", tooltip="optional")
    consent = widgets.Checkbox(value=False, description=CONSENT_TEXT, indent=False, layout=widgets.Layout(width="auto"))
    consent.add_class("mammo-consent")
    button = widgets.Button(description="Submit this image", icon="upload", button_style="primary")
    button.add_class("mammo-submit-button")
    result = widgets.HTML()
    opened: dict[str, Any] = {}

    def the_store() -> Store:
        if "store" not in opened:
            opened["store"] = _resolve(store)
        return opened["store"]

    def on_submit(_: Any) -> None:
        button.disabled = True
        try:  # submit_upload never raises; opening the store happens inside it
            outcome = submit_upload(
                the_store,
                get_upload(),
                density=density.value or None,
                pathology=pathology.value or None,
                consent=consent.value,
                submitter=submitter.value.strip(),
            )
        finally:
            button.disabled = False
        result.value = outcome_html(outcome)
        if outcome.ok:
            consent.value = False  # consent is given per image

    button.on_click(on_submit)
    title = widgets.HTML(
        "<b>Submit this image</b> to the database (labels optional; a reviewer accepts it "
        "before the model is updated on it)"
    )
    form = widgets.VBox([title, widgets.HBox([density, pathology, submitter]), consent, button, result])
    form.add_class("mammo-submit")
    return form
