"""What a prediction is: :class:`Prediction` for one mammogram, :class:`BatchResult` for many files.

Made by :class:`mammo_utils.inference.predictor.Predictor`; plain data (numpy arrays and Python values), no TensorFlow.
:meth:`Prediction.to_record` and :meth:`BatchResult.to_frame` give the flat rows written by the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils.inference.regions import LesionRegion
from mammo_utils.labels import DENSITY_LETTERS

__all__ = ["STAGES", "BatchResult", "Prediction"]

STAGES: tuple[str, ...] = ("decode", "standardize", "model_gradcam", "total")


@dataclass(frozen=True)
class Prediction:
    """What the model says about one mammogram, and how the image got there.

    Attributes
    ----------
    source : str
        File name (or path) of the input; ``"<bytes>"`` for unnamed bytes.
    density, density_letter, density_name, density_probs : int, str, str, tuple of float
        Predicted BI-RADS density 1–4, its letter a–d, its name, and the probabilities of densities 1–4
        (for the seed model: the marginals of its joint softmax).
    malignancy_prob, malignancy_prob_raw : float
        Probability of malignancy (temperature-scaled when ``calibrated``) and the model's own probability.
    malignant, threshold : bool, float
        The call (the raw probability reaches the run's threshold) and that threshold on the scale of
        ``malignancy_prob``.
    calibrated, temperature : bool, float or None
        Whether ``malignancy_prob`` was temperature-scaled, and with which temperature.
    image, cams, thumbnail : np.ndarray or None, dict of str to np.ndarray, np.ndarray or None
        float32 standardized model input (H, W), breast on the left; Grad-CAM maps ``"density"`` and
        ``"malignancy"`` on its grid in [0, 1], zero outside the breast content; a preview of the original
        (long side at most 384 px, not flipped).
    crop_box, flipped, found_breast, content_shape : tuple of int, bool, bool, tuple of int
        What standardization did: ``(top, left, bottom, right)`` crop in original pixels (exclusive
        bottom/right), mirrored or not, whether a breast was found, and the content's size inside ``image``.
    original_shape, source_format, laterality, view, warnings
        Size of the decoded original, its format, "L"/"R" and "CC"/"MLO" when known, non-fatal remarks.
    timings : dict of str to float
        Seconds per stage: ``decode``, ``standardize``, ``model_gradcam``, ``total``.
    model_version : str
        ``<run directory name>/<model name>`` (or the model file's name).
    joint_probs : tuple of float or None
        The seed model's 8 joint probabilities; None for two-head models.
    lesion_map : np.ndarray or None
        A lesion model's own map on the grid of ``image``: the malignant probability, zero outside the breast
        content; None for models without one (then ``cams`` is what shows where the model looked).
    regions : tuple of LesionRegion
        The lesion map's top regions, highest first, with boxes in model and original pixels (empty without a
        lesion map, or when no cell reaches :data:`~mammo_utils.inference.regions.DEFAULT_MIN_PROBABILITY`).
    """

    source: str
    density: int
    density_letter: str
    density_name: str
    density_probs: tuple[float, float, float, float]
    malignancy_prob: float
    malignancy_prob_raw: float
    malignant: bool
    threshold: float
    calibrated: bool
    temperature: float | None
    image: np.ndarray | None
    cams: dict[str, np.ndarray]
    thumbnail: np.ndarray | None
    crop_box: tuple[int, int, int, int]
    flipped: bool
    found_breast: bool
    content_shape: tuple[int, int]
    original_shape: tuple[int, int]
    source_format: str
    laterality: str | None
    view: str | None
    warnings: tuple[str, ...]
    timings: dict[str, float]
    model_version: str
    joint_probs: tuple[float, ...] | None = None
    lesion_map: np.ndarray | None = None
    regions: tuple[LesionRegion, ...] = ()

    @property
    def call(self) -> str:
        """``"malignant"`` or ``"benign"``."""
        return "malignant" if self.malignant else "benign"

    def without_arrays(self) -> Prediction:
        """A copy without the image, maps and thumbnail (for long batches)."""
        return replace(self, image=None, cams={}, thumbnail=None, lesion_map=None)

    def to_record(self) -> dict[str, Any]:
        """A flat, JSON-ready dict of everything but the arrays (one CSV row)."""
        record: dict[str, Any] = {
            "source": self.source,
            "density": self.density,
            "density_letter": self.density_letter,
            "density_name": self.density_name,
        }
        record |= {
            f"p_density_{k}": round(p, 6) for k, p in zip(DENSITY_LETTERS.values(), self.density_probs, strict=True)
        }
        record |= {
            "malignancy_prob": round(self.malignancy_prob, 6),
            "malignancy_prob_raw": round(self.malignancy_prob_raw, 6),
            "call": self.call,
            "threshold": round(self.threshold, 6),
            "calibrated": self.calibrated,
            "temperature": self.temperature,
            "crop_box": list(self.crop_box),
            "flipped": self.flipped,
            "found_breast": self.found_breast,
            "original_shape": list(self.original_shape),
            "source_format": self.source_format,
            "laterality": self.laterality,
            "view": self.view,
            "model_version": self.model_version,
            "warnings": list(self.warnings),
            "regions": [region.to_record() for region in self.regions],
        }
        record |= {f"seconds_{stage}": round(self.timings.get(stage, float("nan")), 4) for stage in STAGES}
        return record


@dataclass
class BatchResult:
    """Predictions for many files, and one error message per file that could not be predicted."""

    predictions: list[Prediction] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every file was predicted."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """One row per prediction (:meth:`Prediction.to_record`), then one per error (``error`` column).

        ``regions`` is held as JSON text, so that a CSV cell keeps it whole.
        """
        rows = [p.to_record() | {"error": None} for p in self.predictions]
        for row in rows:
            row["regions"] = json.dumps(row["regions"])
        rows += [{"source": source, "error": message} for source, message in self.errors]
        return pd.DataFrame(rows)
