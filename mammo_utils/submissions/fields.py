"""A submission record and the validation of its fields (used by :mod:`mammo_utils.submissions.store`).

Every bad value raises :class:`SubmissionError` (a ``ValueError``) whose message says what to change.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import numpy as np

from mammo_utils.submissions.schema import STATUSES

__all__ = [
    "MAX_TEXT",
    "StoreError",
    "Submission",
    "SubmissionError",
    "SubmissionNotFound",
    "check_id",
    "check_status",
    "clean_text",
    "prediction_json",
    "sanitize_name",
    "utc",
]

MAX_TEXT = 255


class SubmissionError(ValueError):
    """A submission or review request is invalid; the message says what to change."""


class SubmissionNotFound(SubmissionError, LookupError):
    """No submission has the requested id."""


class StoreError(RuntimeError):
    """The database refused or lost a write that the input did not cause (e.g. disk full, server gone)."""


@dataclass(frozen=True)
class Submission:
    """One stored submission (a row of the ``submissions`` table plus its absolute file path).

    ``duplicate`` is True when the call that returned it found the image already stored.
    """

    id: int
    sha256: str
    image_path: Path
    original_name: str | None
    media_type: str
    laterality: str | None
    view: str | None
    density: int | None
    pathology: str | None
    submitter: str | None
    consent: bool
    submitted_at: datetime
    prediction: dict[str, Any] | None
    model_version: str | None
    status: str
    reviewed_at: datetime | None
    reviewer: str | None
    phi_flags: tuple[str, ...]
    duplicate: bool = False


def sanitize_name(name: Any) -> str | None:
    """A safe display name for an uploaded file: its basename, without control characters, at most 255 characters.

    Returns None for a missing or empty name. The result is only ever stored as text, never used as a path.
    """
    if name is None:
        return None
    text = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    if text in ("", ".", ".."):
        return None
    return text[:MAX_TEXT]


def clean_text(value: Any, what: str) -> str | None:
    """Free text without control characters, at most 255 characters; None for None or blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubmissionError(f"{what} must be text, not {type(value).__name__}")
    text = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C").strip()
    if len(text) > MAX_TEXT:
        raise SubmissionError(f"{what} is too long ({len(text)} characters); use at most {MAX_TEXT}")
    return text or None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime, Path)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def prediction_json(prediction: Any) -> str | None:
    """A prediction (dict, or an object with ``to_record()``) as sorted JSON text; NaN/inf become null."""
    if prediction is None:
        return None
    if hasattr(prediction, "to_record") and callable(prediction.to_record):
        prediction = dict(prediction.to_record())
        prediction.pop("source", None)  # the caller's path or file name: not kept
    if not isinstance(prediction, dict):
        raise SubmissionError(
            f"prediction must be a dict (e.g. Prediction.to_record()), not {type(prediction).__name__}"
        )

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    try:
        return json.dumps(finite(json.loads(json.dumps(prediction, default=_json_default))), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise SubmissionError(
            f"prediction cannot be stored as JSON ({exc}); pass numbers, text, lists and dicts"
        ) from None


@overload
def utc(value: datetime) -> datetime: ...


@overload
def utc(value: None) -> None: ...


def utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime (a naive value, as SQLite returns it, is taken to be UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_status(status: Any) -> str:
    """A review status, lower-cased; raises :class:`SubmissionError` for anything else."""
    if not isinstance(status, str) or status.strip().lower() not in STATUSES:
        raise SubmissionError(f"unknown review status {status!r}; use one of {', '.join(STATUSES)}")
    return status.strip().lower()


def check_id(submission_id: Any) -> int:
    """A submission id as int; raises :class:`SubmissionError` for anything but an integer."""
    if isinstance(submission_id, bool) or not isinstance(submission_id, numbers.Integral):
        raise SubmissionError(f"a submission id is an integer, not {submission_id!r}")
    return int(submission_id)
