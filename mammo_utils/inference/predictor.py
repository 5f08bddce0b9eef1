"""Single-image inference: load a trained model once, then read → standardize → model + Grad-CAM per image.

:class:`Predictor` wraps one saved model (normally a run directory from :func:`mammo_utils.training.train.train`). Each
:meth:`Predictor.predict` call reads the file or bytes (:func:`~mammo_utils.imaging.io.read_mammogram`), standardizes it
(:func:`~mammo_utils.imaging.standardize.standardize`) and runs :class:`~mammo_utils.inference.gradcam.GradCAM`, whose
single forward pass gives both the predictions and the maps, so the model runs once per image. The answer is a
:class:`~mammo_utils.inference.prediction.Prediction`; :meth:`Predictor.predict_many` returns a
:class:`~mammo_utils.inference.prediction.BatchResult`.

Calibration and decision
    When the run directory holds ``metrics.json`` (written by :func:`mammo_utils.evaluation.run.evaluate_run`),
    the malignancy probability is temperature-scaled with the temperature fitted on the validation split,
    and the benign/malignant call uses the threshold chosen there; otherwise the raw probability and 0.5.
    That threshold was chosen on *uncalibrated* validation probabilities, so the call compares the raw
    probability with it; :attr:`Prediction.threshold` is the same cut on the scale of the reported
    probability (``sigmoid(logit(t) / T)``), so ``malignancy_prob >= threshold`` always agrees with the call.
    The density probabilities are reported as the model gives them (temperature scaling would not change
    the density class).
Seed model
    The seed's joint 8-way softmax is turned into its density and malignancy marginals by ``GradCAM``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit, logit
from tqdm.auto import tqdm

from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.mammogram import MammogramReadError
from mammo_utils.imaging.standardize import standardize
from mammo_utils.inference.batch import collect_inputs
from mammo_utils.inference.prediction import BatchResult, Prediction
from mammo_utils.labels import DENSITY_LETTERS, DENSITY_NAMES

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from mammo_utils.imaging.mammogram import Mammogram
    from mammo_utils.imaging.standardize import Standardized
    from mammo_utils.inference.gradcam import GradCAMResult

__all__ = ["Predictor"]

DEFAULT_THRESHOLD = 0.5
THUMBNAIL_SIDE = 384  # long side of the kept preview of the original image


def _finite_positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _logit(p: float) -> float:
    return float(logit(min(max(float(p), 1e-7), 1.0 - 1e-7)))


def _thumbnail(pixels: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Strided preview (cheap: no filtering) with the long side at most ``side``."""
    step = max(1, math.ceil(max(pixels.shape) / side))
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


def _read_metrics(run_dir: Path) -> tuple[float | None, float | None]:
    """``(malignancy temperature, malignancy threshold)`` from the run's ``metrics.json``, None when absent."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None, None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    temperature = _finite_positive(metrics.get("calibration", {}).get("malignancy", {}).get("temperature"))
    threshold = metrics.get("malignancy", {}).get("threshold", {})
    value = threshold.get("value") if isinstance(threshold, dict) else threshold
    value = float(value) if isinstance(value, (int, float)) and 0.0 < float(value) < 1.0 else None
    return temperature, value


class Predictor:
    """Load a model once; predict density and malignancy, with Grad-CAM maps, for files or bytes.

    Parameters
    ----------
    model : path or keras.Model
        A ``.keras`` file (or an already loaded model) from :mod:`mammo_utils.models.networks`: two heads
        (``default``, ``transfer``) or the seed's joint softmax.
    temperature : float, optional
        Malignancy temperature; None reports the raw probability.
    threshold : float, optional
        Decision threshold on the raw malignancy probability; default 0.5.
    version : str, optional
        Model version shown with every prediction; default the file name (or the model's name).
    warmup : bool
        Trace the Grad-CAM graph now, so the first prediction is fast.

    Examples
    --------
    >>> predictor = Predictor.from_run()                       # doctest: +SKIP
    >>> p = predictor.predict("1-280.dcm")                     # doctest: +SKIP
    >>> p.density_letter, round(p.malignancy_prob, 2), p.call  # doctest: +SKIP
    ('c', 0.71, 'malignant')
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | keras.Model,
        *,
        temperature: float | None = None,
        threshold: float | None = None,
        version: str | None = None,
        warmup: bool = True,
    ) -> None:
        from mammo_utils.inference.gradcam import GradCAM
        from mammo_utils.models.networks import load_model

        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if path.is_dir():
                raise ValueError(f"{path} is a folder; use Predictor.from_run({str(path)!r}) for a run directory")
            version = version or path.name
            model = load_model(path, compile=False)
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if temperature is not None and _finite_positive(temperature) is None:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.model = model
        self.gradcam = GradCAM(model)
        self.image_size: tuple[int, int] = self.gradcam.input_shape[:2]
        self.temperature = None if temperature is None else float(temperature)
        self.threshold_raw = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.threshold_from_run = threshold is not None
        self.version = version or model.name
        self.run_dir: Path | None = None
        if warmup:
            self.gradcam.warmup()

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str] | None = None, warmup: bool = True) -> Predictor:
        """Load ``model.keras`` of a run directory (default: the registry's current version, else the latest run)
        with its calibration and threshold.

        Raises
        ------
        FileNotFoundError
            No run recorded yet, or the folder has no ``model.keras``.
        """
        from mammo_utils.models.registry import current_run_dir

        folder = Path(run_dir) if run_dir else current_run_dir()
        model_file = folder / "model.keras"
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{folder} holds no model.keras; give a run directory from mammo_utils.training.train"
            )
        params_file = folder / "params.json"
        params = json.loads(params_file.read_text(encoding="utf-8")) if params_file.is_file() else {}
        temperature, threshold = _read_metrics(folder)
        predictor = cls(
            model_file,
            temperature=temperature,
            threshold=threshold,
            version=f"{folder.name}/{params.get('model', 'model')}",
            warmup=warmup,
        )
        predictor.run_dir = folder
        return predictor

    @classmethod
    def from_path(cls, path: str | os.PathLike[str] | None = None, warmup: bool = True) -> Predictor:
        """A run directory, a run's ``model.keras`` (its run is used) or any ``.keras`` file; None: latest run."""
        if path is None:
            return cls.from_run(None, warmup=warmup)
        path = Path(path)
        if path.is_dir():
            return cls.from_run(path, warmup=warmup)
        if not path.is_file():
            raise FileNotFoundError(f"no model or run directory at {path}")
        if path.name == "model.keras" and (path.parent / "params.json").is_file():
            return cls.from_run(path.parent, warmup=warmup)
        return cls(path, warmup=warmup)

    @property
    def calibrated(self) -> bool:
        """True when malignancy probabilities are temperature-scaled."""
        return self.temperature is not None

    @property
    def threshold(self) -> float:
        """The decision threshold on the scale of the reported malignancy probability."""
        if self.temperature is None:
            return self.threshold_raw
        return float(expit(_logit(self.threshold_raw) / self.temperature))

    def describe(self) -> str:
        """One line: model version, input size, calibration and threshold."""
        calibration = (
            f"calibrated (temperature {self.temperature:.3g})"
            if self.calibrated
            else "uncalibrated (no metrics.json with a temperature)"
        )
        origin = "the run's validation threshold" if self.threshold_from_run else "the default threshold"
        return (
            f"model {self.version}, input {self.image_size[0]}×{self.image_size[1]}, malignancy {calibration}, "
            f"call at {self.threshold:.3f} ({origin})"
        )

    def predict(
        self, source: str | os.PathLike[str] | bytes | bytearray | memoryview, filename: str | None = None
    ) -> Prediction:
        """Predict one mammogram given as a path or as the file's bytes.

        Parameters
        ----------
        source : path or bytes-like
            DICOM, PNG, JPEG, TIFF, PGM ... (detected from the content).
        filename : str, optional
            Name for messages and laterality/view hints (bytes have none).

        Raises
        ------
        MammogramReadError
            The input cannot be read as a mammogram; the message says why.
        """
        clock = [time.perf_counter()]
        mammogram = read_mammogram(source, filename=filename)
        clock.append(time.perf_counter())
        std = standardize(mammogram, size=self.image_size)
        clock.append(time.perf_counter())
        result = self.gradcam(std.image)
        clock.append(time.perf_counter())
        name = mammogram.filename or (str(source) if isinstance(source, (str, os.PathLike)) else "<bytes>")
        return self._prediction(name, mammogram, std, result, clock)

    def _malignancy(self, result: GradCAMResult) -> tuple[float, float]:
        """``(raw, reported)`` malignancy probability of image 0: reported is temperature-scaled when calibrated."""
        raw = float(result.malignancy_prob[0])
        logit_ = float(result.malignancy_logit[0]) if result.malignancy_logit is not None else _logit(raw)
        return raw, raw if self.temperature is None else float(expit(logit_ / self.temperature))

    def _prediction(
        self, name: str, mammogram: Mammogram, std: Standardized, result: GradCAMResult, clock: list[float]
    ) -> Prediction:
        """Assemble the :class:`Prediction` of image 0 of ``result``; ``clock`` holds the start and stage ends."""
        from mammo_utils.inference.overlays import mask_to_content

        probs = tuple(float(p) for p in result.density_probs[0])
        density = int(np.argmax(probs)) + 1
        raw, prob = self._malignancy(result)
        return Prediction(
            source=name,
            density=density,
            density_letter=DENSITY_LETTERS[density],
            density_name=DENSITY_NAMES[density],
            density_probs=probs,  # type: ignore[arg-type]
            malignancy_prob=prob,
            malignancy_prob_raw=raw,
            malignant=raw >= self.threshold_raw,
            threshold=self.threshold,
            calibrated=self.calibrated,
            temperature=self.temperature,
            image=std.image,
            cams={head: mask_to_content(cam[0], std.content_shape) for head, cam in result.cams.items()},
            thumbnail=_thumbnail(mammogram.pixels),
            crop_box=tuple(int(v) for v in std.crop_box),  # type: ignore
            flipped=bool(std.flipped),
            found_breast=bool(std.found_breast),
            content_shape=tuple(int(v) for v in std.content_shape),  # type: ignore[arg-type]
            original_shape=tuple(int(v) for v in mammogram.original_shape),  # type: ignore[arg-type]
            source_format=mammogram.source_format,
            laterality=mammogram.laterality,
            view=mammogram.view,
            warnings=_warnings(mammogram, std),
            model_version=self.version,
            timings=_timings(clock + [time.perf_counter()]),
            joint_probs=None if result.joint_probs is None else tuple(float(p) for p in result.joint_probs[0]),
            **_lesion_fields(result, std, mammogram),
        )

    def predict_many(
        self, sources: Iterable[str | os.PathLike[str]], progress: bool = True, keep_arrays: bool = True
    ) -> BatchResult:
        """Predict files and folders, never raising for one file.

        Folders are searched recursively for :data:`~mammo_utils.inference.batch.SUPPORTED_SUFFIXES`.

        Parameters
        ----------
        sources : iterable of paths
        progress : bool
            Show a tqdm progress bar (on stderr outside notebooks).
        keep_arrays : bool
            Keep images, maps and thumbnails in the predictions (False saves memory on long batches).

        Returns
        -------
        BatchResult
            Predictions in input order and ``(source, message)`` for every file that failed.
        """
        files, batch = collect_inputs(sources)
        for path in tqdm(files, desc="Predicting", unit="img", disable=not progress or len(files) < 2):
            try:
                prediction = self.predict(path)
            except MammogramReadError as exc:
                batch.errors.append((str(path), str(exc)))
                continue
            except Exception as exc:
                batch.errors.append((str(path), f"{path}: could not be predicted ({type(exc).__name__}: {exc})"))
                continue
            prediction = replace(prediction, source=str(path))
            batch.predictions.append(prediction if keep_arrays else prediction.without_arrays())
        return batch


def _lesion_fields(result: GradCAMResult, std: Standardized, mammogram: Mammogram) -> dict[str, Any]:
    """``lesion_map`` (on the model grid, zero outside the content) and ``regions`` of a lesion model's result."""
    from mammo_utils.inference.overlays import mask_to_content
    from mammo_utils.inference.regions import top_regions, upsample_grid

    if result.lesion_grids is None:
        return {}
    grid = result.lesion_grids[0]
    shape = tuple(int(v) for v in std.image.shape[:2])
    original = tuple(int(v) for v in mammogram.original_shape)
    return {
        "lesion_map": mask_to_content(upsample_grid(grid, shape), std.content_shape, renormalize=False),  # type: ignore[arg-type]
        "regions": tuple(top_regions(grid, std, original)),  # type: ignore[arg-type]
    }


def _warnings(mammogram: Mammogram, std: Standardized) -> tuple[str, ...]:
    """The reader's warnings, plus one when standardization found no breast."""
    if std.found_breast:
        return tuple(mammogram.warnings)
    return (*mammogram.warnings, "no breast found: the whole image was used; check that this is a mammogram")


def _timings(clock: Sequence[float]) -> dict[str, float]:
    """Seconds per stage from ``(start, decoded, standardized, modelled, finished)`` clock readings."""
    start, decoded, standardized, modelled, finished = clock
    return {
        "decode": decoded - start,
        "standardize": standardized - decoded,
        "model_gradcam": modelled - standardized,
        "total": finished - start,
    }
