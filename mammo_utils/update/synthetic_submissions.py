"""Synthetic "submissions" for the version-2 workflow: a shifted synthetic set sent through the real store.

No user has submitted anything on a fresh machine, so ``notebooks/05_update_model.ipynb`` plays the users: it draws
a synthetic set whose density mix differs from the training data (:data:`SHIFTED_DENSITY_MIX`, mostly dense
breasts), submits every image through :meth:`mammo_utils.submissions.store.Store.submit` (de-identification,
deduplication and all), withholds some labels as real submitters would, and then plays the reviewer who accepts
labelled submissions. Everything here is synthetic and called so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mammo_utils import labels, paths
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.submissions.store import Store

__all__ = ["SHIFTED_DENSITY_MIX", "accept_labelled", "submit_synthetic"]

SHIFTED_DENSITY_MIX: tuple[float, ...] = (0.05, 0.15, 0.40, 0.40)  # BI-RADS a..d; training data: .18/.32/.32/.18
SUBMITTER = "synthetic-submitter"


def submit_synthetic(
    store: Store,
    n: int,
    seed: int = 7,
    *,
    density_mix: Sequence[float] = SHIFTED_DENSITY_MIX,
    unlabelled_fraction: float = 0.1,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Generate ``n`` shifted synthetic images and submit each one to ``store`` with consent.

    Parameters
    ----------
    store : Store
        The submission database.
    n : int
        Number of synthetic images (and submissions).
    seed : int
        Seeds the images and which labels are withheld; use a seed other than the training set's.
    density_mix : sequence of 4 floats
        Probabilities of BI-RADS a..d (see :func:`~mammo_utils.datasets.synthetic.generate_synthetic`).
    unlabelled_fraction : float
        Share of submissions sent without any label (a reviewer cannot accept those for training).
    out_dir : path, optional
        Where the synthetic images are drawn; default ``data/synthetic_submissions_<seed>_<n>``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``image_path``, the labels sent, ``submission_id`` and ``duplicate``.
    """
    if not 0.0 <= unlabelled_fraction <= 1.0:
        raise ValueError(f"unlabelled_fraction must be in [0, 1], got {unlabelled_fraction!r}")
    folder = Path(out_dir) if out_dir is not None else paths.data_dir() / f"synthetic_submissions_{seed}_{n}"
    images = generate_synthetic(folder, n=n, seed=seed, density_probabilities=density_mix, workers=None)
    withheld = np.random.default_rng(seed).random(len(images)) < unlabelled_fraction
    records: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in images.to_dict("records")]
    pairs = zip(records, withheld, strict=True)
    bar = tqdm(pairs, total=len(images), disable=not progress, desc="Submitting synthetic images", unit="img")
    return pd.DataFrame([_submit_one(store, image, bool(no_label)) for image, no_label in bar])


def _submit_one(store: Store, image: dict[str, Any], withhold_labels: bool) -> dict[str, Any]:
    """Submit one synthetic image with consent (its labels, or none); what was sent and the submission's id."""
    density = None if withhold_labels or labels.is_missing(image["density"]) else int(image["density"])
    pathology = None if withhold_labels or labels.is_missing(image["pathology"]) else str(image["pathology"])
    stored = store.submit(
        image["image_path"],
        filename=Path(image["image_path"]).name,
        density=density,
        pathology=pathology,
        consent=True,
        submitter=SUBMITTER,
    )
    return {
        "image_path": image["image_path"],
        "density": density,
        "pathology": pathology,
        "submission_id": stored.id,
        "duplicate": stored.duplicate,
    }


def accept_labelled(store: Store, reviewer: str = "synthetic-reviewer") -> pd.Series:
    """Play the reviewer: accept pending submissions with at least one label, reject those with none.

    Returns
    -------
    pandas.Series
        Number of submissions per status after the review.
    """
    pending = store.submissions(status="pending")
    for submission_id, density, pathology in zip(
        pending["id"].astype(int), pending["density"], pending["pathology"], strict=True
    ):
        labelled = not (labels.is_missing(density) and labels.is_missing(pathology))
        store.review(int(submission_id), "accepted" if labelled else "rejected", reviewer=reviewer)
    return store.submissions()["status"].value_counts()
