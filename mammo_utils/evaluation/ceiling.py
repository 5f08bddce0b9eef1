"""The ceiling of the malignancy task on the synthetic data: what the noisy labels and an oracle allow.

Two measurements bound what any malignancy model can reach on the held-out synthetic test split:

* :func:`label_noise_bound`: the ROC AUC of the generator's *true* pathology (as a 0/1 score) against the recorded,
  noisy ``pathology`` (5 % of breasts flipped). No model scored against the noisy labels can do better.
* An oracle that is *told where the finding is*: :func:`finding_crops` cuts a crop centred on each image's finding
  (``finding_y``, ``finding_x`` of the synthetic manifest, original pixels) at full generator resolution, and
  :func:`train_oracle` fits a small CNN on those crops with the noisy training labels, as a real data set would give
  them. :func:`oracle_scores` scores crops (mean over the 8 flips/90° rotations); :func:`auc_ci` gives any score's
  ROC AUC against the noisy or the true labels with a patient-level bootstrap 95 % CI
  (:mod:`mammo_utils.evaluation.bootstrap`).

The oracle skips what makes the real task hard (finding the lesion in a whole, downsampled mammogram), so its AUC is
an upper reference for a whole-image model, and the label-noise bound an upper reference for the oracle.
Keras is imported only inside the functions that train or run the CNN, so the crop-reading worker processes never
load TensorFlow.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mammo_utils.evaluation.bootstrap import BootstrapCI, bootstrap_ci, weighted_roc_auc
from mammo_utils.imaging.io import read_mammogram

if TYPE_CHECKING:
    import keras

__all__ = [
    "OracleFit",
    "auc_ci",
    "build_oracle",
    "finding_crops",
    "label_noise_bound",
    "oracle_scores",
    "train_oracle",
]

MALIGNANT = "malignant"
_CHUNK = 50  # most images per worker task when reading crops
_FILTERS = (16, 32, 48, 64)
_SCORE_CHUNK = 256  # crops per predict call of oracle_scores (x 8 views with test-time augmentation)


def auc_ci(
    rows: pd.DataFrame, score: Sequence[float] | np.ndarray, label: str = "pathology", n_boot: int = 1000, seed: int = 0
) -> BootstrapCI:
    """ROC AUC of ``score`` against ``rows[label] == "malignant"``, with a patient-level bootstrap 95 % CI.

    Parameters
    ----------
    rows
        One row per image, with ``patient_id`` and the ``label`` column (``benign`` / ``malignant``; rows where it is
        missing are left out).
    score
        One score per row of ``rows`` (higher = more malignant).
    label
        ``"pathology"`` (the recorded, noisy label) or ``"true_pathology"`` (the synthetic generator's truth).
    n_boot, seed
        Bootstrap replicates and the seed of their draws.

    Returns
    -------
    BootstrapCI
        ``(value, low, high, n_used, widened)``; NaN when only one class is present.
    """
    score = np.asarray(score, dtype=np.float64)
    if len(score) != len(rows):
        raise ValueError(f"{len(score)} scores for {len(rows)} rows")
    known = rows[label].notna().to_numpy()
    frame = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].to_numpy()[known],
            "y": (rows[label].to_numpy()[known] == MALIGNANT),
            "score": score[known],
        }
    )

    def metric(data: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
        return weighted_roc_auc(data["y"].to_numpy(), data["score"].to_numpy(), weights)

    return bootstrap_ci(frame, metric, n_boot=n_boot, seed=seed, vectorized=True)


def label_noise_bound(test_rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> BootstrapCI:
    """The best ROC AUC any model can reach against the noisy labels: the true labels as a 0/1 score.

    Parameters
    ----------
    test_rows
        The test split of the synthetic manifest: ``patient_id``, ``pathology`` (noisy) and ``true_pathology``.
    n_boot, seed
        Bootstrap replicates (patient level) and their seed.

    Returns
    -------
    BootstrapCI
        The AUC of ``true_pathology == "malignant"`` against ``pathology`` with its 95 % CI (1.0 without label noise).
    """
    truth = (test_rows["true_pathology"] == MALIGNANT).astype(float).to_numpy()
    return auc_ci(test_rows, truth, label="pathology", n_boot=n_boot, seed=seed)


def _crop(pixels: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    """The ``size`` × ``size`` window whose pixel ``(size // 2, size // 2)`` is ``(y, x)``; 0 outside the image."""
    out = np.zeros((size, size), dtype=np.float32)
    top, left = y - size // 2, x - size // 2
    ys = slice(max(top, 0), min(top + size, pixels.shape[0]))
    xs = slice(max(left, 0), min(left + size, pixels.shape[1]))
    if ys.stop > ys.start and xs.stop > xs.start:
        out[ys.start - top : ys.stop - top, xs.start - left : xs.stop - left] = pixels[ys, xs]
    return out


def _read_crops(jobs: list[tuple[str, int, int]], size: int) -> np.ndarray:
    """Read each ``(path, y, x)`` and cut its crop; a ``(len(jobs), size, size)`` float32 array."""
    return np.stack([_crop(read_mammogram(path).pixels, y, x, size) for path, y, x in jobs])


def finding_crops(manifest: pd.DataFrame, size: int = 96, workers: int | None = None) -> np.ndarray:
    """A ``size`` × ``size`` crop of every image centred on its finding, at the image's full resolution.

    Parameters
    ----------
    manifest
        Rows with ``image_path``, ``finding_y`` and ``finding_x`` (the finding's centre in original pixels, as in the
        synthetic manifest).
    size
        Side of the crop in pixels; the finding's centre lands on pixel ``(size // 2, size // 2)``.
    workers
        Reader processes (default: ``os.cpu_count()``); 1 reads in this process. Workers start by forkserver (or
        spawn), so they import neither TensorFlow nor anything else the caller has loaded.

    Returns
    -------
    numpy.ndarray
        float32 ``(len(manifest), size, size)``, the pixels as read (:func:`~mammo_utils.imaging.io.read_mammogram`,
        in [0, 1]); no flipping; 0 where the crop reaches past the image's edge.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    centres = manifest[["finding_y", "finding_x"]].to_numpy(dtype=np.float64)
    if not np.isfinite(centres).all():
        raise ValueError("every row needs a finding centre (finding_y, finding_x)")
    jobs = [
        (str(path), int(round(y)), int(round(x))) for path, (y, x) in zip(manifest["image_path"], centres, strict=True)
    ]
    if not jobs:
        return np.zeros((0, size, size), dtype=np.float32)
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    step = min(_CHUNK, math.ceil(len(jobs) / workers))  # at least one chunk per worker
    chunks = [jobs[i : i + step] for i in range(0, len(jobs), step)]
    workers = min(workers, len(chunks))
    if workers <= 1:
        return np.concatenate([_read_crops(chunk, size) for chunk in chunks])
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return np.concatenate(list(pool.map(_read_crops, chunks, [size] * len(chunks))))


def _dihedral(crops: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """``crops`` (N, H, W) rotated by ``k`` quarter turns, then mirrored left-right if ``flip``."""
    out = np.rot90(crops, k, axes=(1, 2))
    return out[:, :, ::-1] if flip else out


def _augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each crop under one random element of the 8 flips/90° rotations (square crops)."""
    choice = rng.integers(0, 8, len(crops))
    out = np.empty_like(crops)
    for t in range(8):
        rows = choice == t
        if rows.any():
            out[rows] = _dihedral(crops[rows], t % 4, t >= 4)
    return out


def build_oracle(size: int = 96, filters: Sequence[int] = _FILTERS, dropout: float = 0.3) -> keras.Model:
    """The oracle CNN: standardize the crop, pool 2× by averaging, 4 blocks (pool, conv, batch norm, ReLU), sigmoid.

    Each block is a 2×2 max pool, a 3×3 convolution, batch norm and ReLU; then global average pooling, dropout and
    one sigmoid unit. The crop arrives at full resolution; the network averages it down 2× first. In trials on the
    synthetic split this trained 2–4× faster than convolving at full resolution and did no worse on validation.

    Parameters
    ----------
    size
        Side of the square input crop (one grey channel).
    filters
        Filters of each block (default 16, 32, 48, 64: about 47,000 parameters).
    dropout
        Dropout before the output unit.

    Returns
    -------
    keras.Model
        Uncompiled; input ``(size, size, 1)`` in [0, 1], output the malignancy probability ``(1,)``.
    """
    import keras

    inputs = keras.Input((size, size, 1), name="crop")
    mean = keras.ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
    std = keras.ops.std(inputs, axis=(1, 2, 3), keepdims=True)
    x = (inputs - mean) / (std + 0.02)  # contrast against the crop's own background, not the image's brightness
    x = keras.layers.AveragePooling2D(2, name="downsample")(x)
    for i, n in enumerate(filters):
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        x = keras.layers.Conv2D(n, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="malignant")(x)
    return keras.Model(inputs, outputs, name="finding_oracle")


def oracle_scores(model: keras.Model, crops: np.ndarray, tta: bool = True, batch_size: int = 256) -> np.ndarray:
    """Malignancy probabilities of ``crops`` (N, H, W); with ``tta`` the mean over the 8 flips/90° rotations.

    Parameters
    ----------
    model
        A model from :func:`build_oracle` / :func:`train_oracle`.
    crops
        Square crops in [0, 1], as from :func:`finding_crops`.
    tta
        Average the predictions of the 8 dihedral transforms of each crop (test-time augmentation).
    batch_size
        Prediction batch size.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64 probabilities.
    """
    if len(crops) == 0:
        return np.zeros(0)
    views = [(k, flip) for flip in (False, True) for k in range(4)] if tta else [(0, False)]
    out = []
    for start in range(0, len(crops), _SCORE_CHUNK):  # all views of a chunk in one predict call: less overhead
        chunk = crops[start : start + _SCORE_CHUNK]
        batch = np.concatenate([_dihedral(chunk, k, flip) for k, flip in views])[..., None]
        predicted = model.predict(batch, batch_size=batch_size, verbose=0).reshape(len(views), len(chunk))
        out.append(predicted.mean(axis=0))
    return np.concatenate(out).astype(np.float64)


@dataclass
class OracleFit:
    """A trained oracle: the model (best validation epoch's weights), its learning curve and best validation AUC.

    Attributes
    ----------
    model : keras.Model
        The CNN with the weights of ``best_epoch``.
    history : pandas.DataFrame
        One row per epoch: ``epoch`` (1-based), ``loss``, ``val_auc``, ``learning_rate``.
    best_epoch : int
        The epoch with the highest validation AUC.
    val_auc : float
        That AUC (noisy validation labels, test-time augmentation).
    """

    model: keras.Model
    history: pd.DataFrame
    best_epoch: int
    val_auc: float


def _fit_epochs(
    model: keras.Model,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    epochs: int,
    patience: int,
    batch_size: int,
) -> tuple[list[dict[str, float]], list[np.ndarray], int]:
    """Fit one augmented epoch at a time; halve the learning rate after ``patience // 2`` epochs without gain."""
    from sklearn.metrics import roc_auc_score

    x_train, y_train, x_val, y_val = data
    rng = np.random.default_rng([seed, 13])
    history: list[dict[str, float]] = []
    best_weights: list[np.ndarray] = model.get_weights()
    best, best_epoch, since = -math.inf, 0, 0
    for epoch in range(1, epochs + 1):
        fitted = model.fit(
            _augment(x_train, rng)[..., None], y_train, batch_size=batch_size, epochs=1, shuffle=True, verbose=0
        )
        val_auc = float(roc_auc_score(y_val, oracle_scores(model, x_val))) if len(set(y_val)) == 2 else math.nan
        rate = float(model.optimizer.learning_rate.numpy())
        history.append({"epoch": epoch, "loss": float(fitted.history["loss"][-1]), "val_auc": val_auc, "lr": rate})
        if val_auc > best or best_epoch == 0:  # the first epoch counts even when its AUC is undefined
            best, best_epoch, since, best_weights = val_auc, epoch, 0, model.get_weights()
            continue
        since += 1
        if since >= patience:
            break
        if since % max(patience // 2, 1) == 0:
            model.optimizer.learning_rate.assign(rate / 2)
    return history, best_weights, best_epoch


def train_oracle(
    crops_train: np.ndarray,
    y_train: Sequence[int] | np.ndarray,
    crops_val: np.ndarray,
    y_val: Sequence[int] | np.ndarray,
    seed: int = 42,
    epochs: int = 40,
    patience: int = 10,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
) -> OracleFit:
    """Train the oracle CNN on finding crops, with random flips/90° rotations and early stopping on validation AUC.

    Parameters
    ----------
    crops_train, crops_val
        ``(N, size, size)`` crops from :func:`finding_crops`.
    y_train, y_val
        0/1 labels (1 = malignant); on the synthetic data the *noisy* ``pathology``, as a real data set gives them.
    seed
        Seeds Python, numpy and TensorFlow (deterministic ops) and the augmentation.
    epochs
        Most epochs; training stops after ``patience`` epochs without a better validation AUC (the learning rate
        is halved every ``patience // 2`` of them), and the best epoch's weights are kept.
    batch_size, learning_rate
        Adam's batch size and starting learning rate.

    Returns
    -------
    OracleFit
        The model with the best epoch's weights, the per-epoch history, the best epoch and its validation AUC.
    """
    import keras

    from mammo_utils.training.steps import enable_determinism

    if crops_train.ndim != 3 or crops_train.shape[1] != crops_train.shape[2]:
        raise ValueError(f"crops must be (N, size, size), got {crops_train.shape}")
    enable_determinism(seed)
    model = build_oracle(crops_train.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    data = (
        np.asarray(crops_train, np.float32),
        np.asarray(y_train, np.float32),
        np.asarray(crops_val, np.float32),
        np.asarray(y_val, np.float32),
    )
    history, weights, best_epoch = _fit_epochs(model, data, seed, epochs, patience, batch_size)
    model.set_weights(weights)
    frame = pd.DataFrame(history).rename(columns={"lr": "learning_rate"})
    val_auc = float(frame.loc[frame["epoch"] == best_epoch, "val_auc"].iloc[0]) if best_epoch else math.nan
    return OracleFit(model=model, history=frame, best_epoch=best_epoch, val_auc=val_auc)
