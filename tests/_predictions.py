"""Synthetic predictions tables for the evaluation tests (test_evaluate, test_evaluate_tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mammo_utils.datasets.schema import make_manifest
from mammo_utils.evaluation.predictions import predictions_frame


def synthetic_predictions(n_patients: int = 75, split: str = "test", seed: int = 0) -> pd.DataFrame:
    """Synthetic predictions: 4 views per patient, informative but imperfect probabilities."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        density, malignant = int(rng.integers(1, 5)), bool(rng.random() < 0.35)
        for view in ("CC", "MLO"):
            for side in ("L", "R"):
                rows.append(
                    {
                        "image_path": f"/synthetic/{split}/{i}_{side}_{view}.png",
                        "patient_id": f"{split}-{i}",
                        "laterality": side,
                        "view": view,
                        "density": density,
                        "pathology": "malignant" if malignant else "benign",
                        "source": "synthetic",
                        "split": split,
                    }
                )
    manifest = make_manifest(rows)
    n = len(manifest)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), manifest["density"].to_numpy(int) - 1] += 1.5
    density_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (manifest["pathology"] == "malignant").to_numpy()
    p = 1 / (1 + np.exp(-(2.5 * (y - 0.5) + rng.normal(0, 1.5, n))))
    return predictions_frame(manifest, density_probs, p)
