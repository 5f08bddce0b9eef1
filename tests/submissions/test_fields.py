"""Validation of the fields of a submission (mammo_utils.submissions.fields)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from mammo_utils.submissions.fields import (
    SubmissionError,
    check_id,
    check_status,
    clean_text,
    prediction_json,
    sanitize_name,
    utc,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\jane\\scan LCC.png", "scan LCC.png"),
        ("evil\x00name\x1b[0m.dcm\n", "evilname[0m.dcm"),
        ("..", None),
        ("dir/", None),
        ("   ", None),
        (None, None),
        (b"/tmp/upload.png", "upload.png"),
        (Path("/x/y/z.tiff"), "z.tiff"),
        ("a" * 300 + ".png", "a" * 255),
    ],
)
def test_sanitize_name_keeps_only_a_harmless_basename(name, expected):
    assert sanitize_name(name) == expected


def test_clean_text():
    assert clean_text("  dr.\tsynthetic\x07 ", "submitter") == "dr.synthetic"
    assert clean_text("   ", "submitter") is None and clean_text(None, "submitter") is None
    with pytest.raises(SubmissionError, match="submitter must be text, not int"):
        clean_text(5, "submitter")
    with pytest.raises(SubmissionError, match="reviewer is too long \\(256 characters\\); use at most 255"):
        clean_text("x" * 256, "reviewer")


@dataclass
class _Prediction:
    probs: np.ndarray = field(default_factory=lambda: np.array([0.1, 0.9], dtype=np.float32))

    def to_record(self) -> dict:
        return {"source": "/home/jane/DOE_JANE.png", "p": self.probs, "n": np.int64(3)}


def test_prediction_json_handles_numpy_nan_and_prediction_objects():
    stored = json.loads(prediction_json({"b": np.float32(0.5), "a": [float("nan"), float("inf")], "c": (1, 2)}))
    assert stored == {"a": [None, None], "b": 0.5, "c": [1, 2]}
    assert list(json.loads(prediction_json({"z": 1, "a": 2}))) == ["a", "z"]
    record = json.loads(prediction_json(_Prediction()))
    assert record == {"n": 3, "p": [pytest.approx(0.1), pytest.approx(0.9)]}  # the caller's file path is dropped
    assert prediction_json(None) is None


def test_prediction_json_refuses_what_json_cannot_hold():
    with pytest.raises(SubmissionError, match="prediction must be a dict"):
        prediction_json([0.5])
    with pytest.raises(SubmissionError, match="prediction cannot be stored as JSON"):
        prediction_json({"model": object()})


def test_check_status_and_id():
    assert check_status(" Accepted ") == "accepted" and check_status("pending") == "pending"
    for bad in ("approved", "", None, 1):
        with pytest.raises(SubmissionError, match="unknown review status .*use one of pending, accepted, rejected"):
            check_status(bad)
    assert check_id(np.int64(3)) == 3 and check_id(7) == 7
    for bad in (True, "3", 2.0, None):
        with pytest.raises(SubmissionError, match="a submission id is an integer"):
            check_id(bad)


def test_utc_makes_every_timestamp_aware_utc():
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert utc(naive) == naive.replace(tzinfo=UTC) and utc(naive).tzinfo is UTC
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus_two) == naive.replace(tzinfo=UTC) and utc(plus_two).tzinfo is UTC
    assert utc(None) is None
