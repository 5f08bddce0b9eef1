"""Evaluate a saved training run on its held-out test split and write ``metrics.json`` into the run directory.

The run's own ``split.csv`` says which patients are validation (threshold and temperature are fitted there) and
which are test (never used in training or model selection). Predictions of both splits are saved as CSV next to
the metrics, so every number can be recomputed without TensorFlow (see :mod:`mammo_utils.evaluation.report`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils.datasets.schema import make_manifest
from mammo_utils.evaluation.localization import attach_findings
from mammo_utils.evaluation.predictions import predictions_frame
from mammo_utils.evaluation.report import evaluate_predictions
from mammo_utils.evaluation.tables import write_metrics_json
from mammo_utils.models.registry import Registry
from mammo_utils.training.cache import CachedImages, build_cache
from mammo_utils.training.runs import RunResult, load_run

METRICS_FILE = "metrics.json"


@dataclass
class RunEvaluation:
    """The evaluation of one run: its metrics (as written to ``metrics.json``) and per-image predictions."""

    run: RunResult
    metrics: dict[str, Any]
    val: pd.DataFrame
    test: pd.DataFrame
    cached: CachedImages


@dataclass
class CachedMaps:
    """Grad-CAM maps of cached images (see :func:`gradcam_cached`).

    Attributes
    ----------
    images : np.ndarray
        float32 ``(N, H, W)`` standardized images.
    cams : np.ndarray
        float32 ``(N, H, W)`` maps in [0, 1], zero outside each image's breast content.
    records : pandas.DataFrame
        The rows with their standardization records and findings (NaN where none), as
        :func:`~mammo_utils.evaluation.localization.gradcam_localization` takes them.
    """

    images: np.ndarray
    cams: np.ndarray
    records: pd.DataFrame
    kind: str = "gradcam"


def gradcam_cached(
    model: Any, cached: CachedImages, rows: pd.DataFrame, head: str = "malignancy", batch_size: int = 16
) -> CachedMaps:
    """Grad-CAM maps of one head for cached images, kept to the breast content, with the images' records.

    Parameters
    ----------
    model : keras.Model
        A model of :mod:`mammo_utils.models.networks`.
    cached : CachedImages
        The image cache holding ``rows`` (e.g. :attr:`RunEvaluation.cached`); its manifest supplies the findings.
    rows : pandas.DataFrame
        Rows with ``image_path`` (e.g. of a predictions table).
    head : str
        ``"malignancy"`` or ``"density"``.
    batch_size : int
        Images per Grad-CAM pass.
    """
    from mammo_utils.inference.gradcam import GradCAM
    from mammo_utils.inference.overlays import mask_to_content

    if rows.empty:
        raise ValueError("no rows to map: give at least one cached image")
    images = cached.images(rows)[..., 0]
    records = cached.standardization(attach_findings(rows, cached.manifest))
    raw = GradCAM(model)(images, heads=(head,), batch_size=batch_size).cams[head]
    shapes = zip(records["content_height"], records["content_width"], strict=True)
    cams = np.stack([mask_to_content(c, (int(h), int(w))) for c, (h, w) in zip(raw, shapes, strict=True)])
    return CachedMaps(images, cams.astype(np.float32), records)


def lesion_maps_cached(model: Any, cached: CachedImages, rows: pd.DataFrame, batch_size: int = 16) -> CachedMaps:
    """A lesion model's own maps (malignant probability, upsampled to the input grid, zero off the breast content).

    Same arguments and result as :func:`gradcam_cached`; the maps are probabilities, not rescaled per image.
    """
    from mammo_utils.inference.gradcam import GradCAM
    from mammo_utils.inference.overlays import mask_to_content
    from mammo_utils.inference.regions import upsample_grid

    if rows.empty:
        raise ValueError("no rows to map: give at least one cached image")
    images = cached.images(rows)[..., 0]
    records = cached.standardization(attach_findings(rows, cached.manifest))
    grids = GradCAM(model)(images, heads=("malignancy",), batch_size=batch_size).lesion_grids
    if grids is None:
        raise ValueError(f"model {model.name!r} has no lesion map (use gradcam_cached)")
    shape = images.shape[1:3]
    shapes = zip(records["content_height"], records["content_width"], strict=True)
    maps = [
        mask_to_content(upsample_grid(grid, shape), (int(h), int(w)), renormalize=False)
        for grid, (h, w) in zip(grids, shapes, strict=True)
    ]
    return CachedMaps(images, np.stack(maps).astype(np.float32), records, kind="lesion_map")


def finding_maps(model: Any, cached: CachedImages, rows: pd.DataFrame, batch_size: int = 16) -> CachedMaps:
    """Where the model looked for malignancy: its lesion map if it has one, else Grad-CAM of the malignancy head."""
    from mammo_utils.models.lesion import is_lesion_model

    if is_lesion_model(model):
        return lesion_maps_cached(model, cached, rows, batch_size)
    return gradcam_cached(model, cached, rows, batch_size=batch_size)


def read_split(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The run's ``split.csv`` as a manifest with the schema's dtypes (extra columns kept)."""
    frame = pd.read_csv(Path(run_dir) / "split.csv")
    extra = [c for c in frame.columns if c not in make_manifest([]).columns]
    return make_manifest(frame, extra=extra)


def predict_cached(model: Any, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray | None]:
    """Run ``model`` on standardized images; return density (N, 4), malignancy (N,) and joint (N, 8) or None."""
    outputs = model.predict(images, batch_size=batch_size, verbose=0)
    if isinstance(outputs, dict) and "density" in outputs:
        return {
            "density": np.asarray(outputs["density"]),
            "malignancy": np.asarray(outputs["malignancy"]).reshape(-1),
            "joint": None,
        }
    joint = np.asarray(outputs["joint"] if isinstance(outputs, dict) else outputs)
    return {"density": None, "malignancy": None, "joint": joint}


def evaluate_run(
    run_dir: str | os.PathLike[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    threshold_rule: str = "youden",
) -> RunEvaluation:
    """Predict the run's validation and test splits, compute every metric with CIs, write the results.

    Parameters
    ----------
    run_dir
        A run directory from :func:`mammo_utils.training.train.train`; default: the latest run.
    n_boot, seed
        Patient-level bootstrap replicates and their seed (see :mod:`mammo_utils.evaluation.bootstrap`).
    batch_size
        Images per prediction batch.
    threshold_rule
        How the malignancy threshold is chosen on the validation split
        (see :func:`~mammo_utils.evaluation.metrics.choose_threshold`).

    Returns
    -------
    RunEvaluation
        Also written: ``metrics.json``, ``predictions_val.csv`` and ``predictions_test.csv`` in the run directory.
    """
    run = load_run(run_dir, compile=False)
    size = int(run.params["image_size"])
    split = read_split(run.run_dir)
    held_out = split[split["split"].isin(["val", "test"])].reset_index(drop=True)
    cached = build_cache(held_out, run.params.get("cache_dir"), size=(size, size), progress=False, on_error="skip")
    frames = {}
    for name in ("val", "test"):
        rows = cached.manifest[cached.manifest["split"] == name].reset_index(drop=True)
        if rows.empty:
            raise ValueError(f"run {run.run_dir} has no readable {name} images; cannot evaluate it")
        out = predict_cached(run.model, cached.images(rows), batch_size)
        frames[name] = predictions_frame(rows, out["density"], out["malignancy"], out["joint"])
    metrics = evaluate_predictions(
        frames["test"], frames["val"], n_boot=n_boot, seed=seed, threshold_rule=threshold_rule
    )
    metrics["model"] = {
        "name": run.params["model"],
        "run_dir": str(run.run_dir),
        "n_params": run.params.get("n_params"),
        "image_size": size,
        "epochs_trained": run.params.get("epochs_trained"),
        "fast": run.params.get("fast"),
    }
    for name, frame in frames.items():
        frame.to_csv(run.run_dir / f"predictions_{name}.csv", index=False)
    write_metrics_json(metrics, run.run_dir / METRICS_FILE)
    Registry().record_metrics(run.run_dir, metrics)  # no-op for a run that is not a registered version
    return RunEvaluation(run, metrics, frames["val"], frames["test"], cached)
