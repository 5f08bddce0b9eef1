"""The "synthetic" data set: seeded, deterministic mammogram-like phantoms written as PNG files + ``manifest.csv``.

No mammography data set can be downloaded here, so this is the project's embedded default. Each patient
(``SYN-00001``, ...) has 4 images (CC + MLO of both breasts) or 2 (CC + MLO of one breast); when ``n`` is odd
the last patient has a single CC image. BI-RADS density is a property of the patient, pathology of the breast.
Each image is drawn by :func:`~mammo_utils.datasets.synthetic_phantom.synthetic_phantom` from its own seed
``SeedSequence([seed, 1, index])``, so the files do not depend on the number of worker processes.

Label noise, so that a good model lands below perfect: 5 % of breasts have their pathology flipped and 5 % of
patients have their density moved to an adjacent class. The manifest's ``density`` and ``pathology`` hold the
(noisy) labels; ``true_density``, ``true_pathology``, ``dense_fraction``, ``finding``, ``subtlety`` (1 = subtle,
5 = obvious), ``label_noise`` and the finding's centre and radius in pixels (``finding_y``, ``finding_x``,
``finding_radius``) hold the ground truth. About 12 % of images are colour-tinted RGB, about
15 % of the rest are 16-bit grey PNGs, the others 8-bit grey.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from mammo_utils import paths
from mammo_utils.datasets import schema
from mammo_utils.datasets.synthetic_findings import sample_finding
from mammo_utils.datasets.synthetic_phantom import IMAGE_SHAPE, sample_dense_fraction, synthetic_phantom

__all__ = ["generate_synthetic", "load_synthetic", "plan_synthetic", "default_dir"]

GENERATOR_VERSION = 3
DEFAULT_N = 2000
FAST_N = 200
EXTRA_COLUMNS: tuple[str, ...] = (
    "true_density",
    "true_pathology",
    "dense_fraction",
    "finding",
    "subtlety",
    "label_noise",
    "finding_y",
    "finding_x",
    "finding_radius",
)
DENSITY_PROBABILITIES: tuple[float, ...] = (0.18, 0.32, 0.32, 0.18)
MALIGNANT_PROBABILITY = 0.45
FOUR_IMAGE_PROBABILITY = 0.5
PATHOLOGY_NOISE = 0.05
DENSITY_NOISE = 0.05
_CHUNK = 8
_PNG_LEVEL_GREY8 = 4  # zlib level: 8-bit grey compresses as well as at 6 and faster; RGB/16-bit barely gain above 1


def default_dir(fast: bool = False) -> Path:
    """``data/synthetic`` (or ``data/synthetic_fast`` in fast mode) under :func:`mammo_utils.paths.data_dir`."""
    return paths.data_dir() / ("synthetic_fast" if fast else "synthetic")


def plan_synthetic(
    n: int, seed: int = 42, density_probabilities: Sequence[float] | None = None
) -> list[dict[str, Any]]:
    """Draw patients, labels, label noise and findings for ``n`` images, without drawing any pixels.

    ``density_probabilities`` (four numbers summing to 1, BI-RADS a..d) replaces the default density mix
    :data:`DENSITY_PROBABILITIES`, e.g. to make a synthetic set whose distribution differs from the training data.

    Returns
    -------
    list of dict
        One job per image, in file order: index, patient_id, laterality, view, true/noisy labels,
        dense_fraction and the breast's finding spec.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    mix = _density_mix(density_probabilities)
    rng = np.random.default_rng([int(seed), 0])
    jobs: list[dict[str, Any]] = []
    patient = 0
    while len(jobs) < n:
        patient += 1
        remaining = n - len(jobs)
        count = 4 if rng.random() < FOUR_IMAGE_PROBABILITY else 2
        count = min(count, remaining if remaining != 3 else 2)
        density = int(rng.choice(4, p=mix)) + 1
        fraction = sample_dense_fraction(rng, density)
        noisy_density = density
        if rng.random() < DENSITY_NOISE:
            step = 1 if density == 1 else -1 if density == 4 else int(rng.choice([-1, 1]))
            noisy_density = density + step
        sides = ["L", "R"] if count == 4 else [str(rng.choice(["L", "R"]))]
        for side in sides:
            malignant = bool(rng.random() < MALIGNANT_PROBABILITY)
            finding = sample_finding(rng, malignant)
            flipped = bool(rng.random() < PATHOLOGY_NOISE)
            true_pathology = "malignant" if malignant else "benign"
            noisy_pathology = ("benign" if malignant else "malignant") if flipped else true_pathology
            for view in ("CC", "MLO")[: 1 if count == 1 else 2]:
                jobs.append(
                    {
                        "index": len(jobs),
                        "patient_id": f"SYN-{patient:05d}",
                        "laterality": side,
                        "view": view,
                        "density": noisy_density,
                        "pathology": noisy_pathology,
                        "true_density": density,
                        "true_pathology": true_pathology,
                        "dense_fraction": fraction,
                        "finding": finding,
                        "label_noise": flipped or noisy_density != density,
                    }
                )
    return jobs


def _density_mix(probabilities: Sequence[float] | None) -> tuple[float, ...]:
    """The density mix to draw from: the default, or four non-negative numbers summing to 1."""
    if probabilities is None:
        return DENSITY_PROBABILITIES
    mix = tuple(float(p) for p in probabilities)
    if len(mix) != 4 or not all(np.isfinite(mix)) or min(mix) < 0 or not np.isclose(sum(mix), 1.0):
        raise ValueError(
            "density_probabilities must be four non-negative numbers (BI-RADS a, b, c, d) "
            f"summing to 1, got {probabilities!r}"
        )
    return mix


def _render_chunk(jobs: list[dict[str, Any]], images_dir: str, seed: int) -> list[dict[str, Any]]:
    """Draw and save the images of ``jobs``; return their manifest rows (image_path relative to the set)."""
    rows = []
    for job in jobs:
        rng = np.random.default_rng([int(seed), 1, job["index"]])
        image, truth = synthetic_phantom(
            rng,
            job["true_density"],
            job["true_pathology"] == "malignant",
            job["view"],
            job["laterality"],
            dense_fraction=job["dense_fraction"],
            finding=job["finding"],
        )
        name = f"{job['patient_id']}_{job['laterality']}_{job['view']}.png"
        level = _PNG_LEVEL_GREY8 if image.dtype == np.uint8 and image.ndim == 2 else 1
        Image.fromarray(image).save(Path(images_dir) / name, format="PNG", compress_level=level)
        rows.append(
            {
                "index": job["index"],
                "image_path": f"images/{name}",
                "patient_id": job["patient_id"],
                "laterality": job["laterality"],
                "view": job["view"],
                "density": job["density"],
                "pathology": job["pathology"],
                "source": "synthetic",
                "split": None,
                "true_density": truth["density"],
                "true_pathology": truth["pathology"],
                "dense_fraction": truth["dense_fraction"],
                "finding": truth["finding"],
                "subtlety": truth["subtlety"],
                "label_noise": job["label_noise"],
                "finding_y": truth["finding_centre"][0],
                "finding_x": truth["finding_centre"][1],
                "finding_radius": truth["finding_radius"],
            }
        )
    return rows


def _params(n: int, seed: int, mix: tuple[float, ...] = DENSITY_PROBABILITIES) -> dict[str, Any]:
    params = {
        "name": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "n": int(n),
        "seed": int(seed),
        "image_shape": list(IMAGE_SHAPE),
    }
    if mix != DENSITY_PROBABILITIES:  # recorded only when changed, so existing default sets stay reusable
        params["density_probabilities"] = list(mix)
    return params


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _existing(out_dir: Path, params: dict[str, Any]) -> pd.DataFrame | None:
    """The complete set in ``out_dir`` if it was made with ``params``, else None."""
    try:
        stored = json.loads((out_dir / "params.json").read_text(encoding="utf-8"))
        frame = load_synthetic(out_dir)
    except (OSError, ValueError, KeyError):
        return None
    if stored != params or len(frame) != params["n"]:
        return None
    if not all(os.path.exists(path) for path in frame["image_path"]):
        return None
    return frame


def _run(jobs: list[dict[str, Any]], images_dir: Path, seed: int, workers: int) -> list[dict[str, Any]]:
    chunks = [jobs[i : i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), desc="Generating synthetic mammograms", unit="img") as bar:
        if workers <= 1 or len(chunks) == 1:
            for chunk in chunks:
                rows.extend(_render_chunk(chunk, str(images_dir), seed))
                bar.update(len(chunk))
        else:
            # forkserver/spawn: safe even when the parent has already started threads (e.g. TensorFlow)
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
                futures = [pool.submit(_render_chunk, chunk, str(images_dir), seed) for chunk in chunks]
                for future in as_completed(futures):
                    done = future.result()
                    rows.extend(done)
                    bar.update(len(done))
    return sorted(rows, key=lambda row: row["index"])


def generate_synthetic(
    out_dir: str | os.PathLike[str] | None = None,
    n: int = DEFAULT_N,
    seed: int = 42,
    fast: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    density_probabilities: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Generate (or reuse) the synthetic data set and return its manifest.

    Parameters
    ----------
    out_dir
        Folder for ``images/*.png``, ``params.json`` and ``manifest.csv``; default :func:`default_dir`.
    n
        Number of images (default 2000). ``fast=True`` caps it at 200.
    seed
        Seed of the whole set; same seed and ``n`` give byte-identical files.
    fast
        Small set for quick runs and CI (also changes the default folder to ``synthetic_fast``).
    workers
        Worker processes (default ``os.cpu_count()``); results do not depend on it.
    overwrite
        Regenerate even if a complete set with the same parameters exists.
    density_probabilities
        Four probabilities of BI-RADS a..d per patient (default :data:`DENSITY_PROBABILITIES`); a different
        mix makes a synthetic set whose distribution differs from the default one (e.g. synthetic "submissions").

    Returns
    -------
    pandas.DataFrame
        :func:`~mammo_utils.datasets.schema.make_manifest` output with absolute ``image_path``,
        ``source="synthetic"``, ``split`` NA and the extra columns ``EXTRA_COLUMNS``.

    Notes
    -----
    ``manifest.csv`` is written last and atomically, so its presence with a matching ``params.json``
    means the set is complete; an interrupted run is regenerated next time.
    """
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = min(int(n), FAST_N) if fast else int(n)
    out_dir = Path(out_dir) if out_dir is not None else default_dir(fast)
    mix = _density_mix(density_probabilities)
    params = _params(n, int(seed), mix)
    if not overwrite:
        existing = _existing(out_dir, params)
        if existing is not None:
            return existing
    jobs = plan_synthetic(n, int(seed), mix)
    images_dir = paths.ensure_dir(out_dir / "images")
    (out_dir / "manifest.csv").unlink(missing_ok=True)  # the set is incomplete until the new manifest lands
    rows = _run(jobs, images_dir, int(seed), workers if workers is not None else (os.cpu_count() or 1))
    _remove_stale_images(images_dir, {Path(row["image_path"]).name for row in rows})
    frame = pd.DataFrame(rows).drop(columns="index")
    _write_atomic(out_dir / "params.json", json.dumps(params, indent=2) + "\n")
    _write_atomic(out_dir / "manifest.csv", frame.to_csv(index=False, float_format="%.6f", lineterminator="\n"))
    return load_synthetic(out_dir)


def _remove_stale_images(images_dir: Path, keep: set[str]) -> None:
    """Delete the ``SYN-*.png`` files of an earlier, different set that are not in ``keep``."""
    for stale in images_dir.glob("SYN-*.png"):
        if stale.name not in keep:
            stale.unlink()


def load_synthetic(out_dir: str | os.PathLike[str] | None = None, fast: bool = False) -> pd.DataFrame:
    """Read a generated set's ``manifest.csv`` back into the manifest DataFrame (absolute image paths).

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``manifest.csv`` (run :func:`generate_synthetic` first).
    """
    out_dir = Path(out_dir) if out_dir is not None else default_dir(fast)
    csv = out_dir / "manifest.csv"
    if not csv.is_file():
        raise FileNotFoundError(f"no synthetic manifest at {csv}; run generate_synthetic() to create it")
    frame = pd.read_csv(csv, dtype={"patient_id": str, "finding": str, "true_pathology": str})
    root = out_dir.resolve()
    frame["image_path"] = [str(root / rel) for rel in frame["image_path"]]
    frame["true_density"] = frame["true_density"].astype(int)
    frame["subtlety"] = frame["subtlety"].astype(int)
    frame["dense_fraction"] = frame["dense_fraction"].astype(float)
    frame["label_noise"] = frame["label_noise"].astype(str).str.lower().eq("true")
    return schema.make_manifest(frame, extra=EXTRA_COLUMNS)
