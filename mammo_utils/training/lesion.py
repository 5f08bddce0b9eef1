"""Train the lesion model (:mod:`mammo_utils.models.lesion`) on whole images: where the finding is, what it is.

One Keras ``fit`` of :func:`~mammo_utils.models.lesion.training_model` (it shares the full model's layers) on
whole standardized images, each with its targets from the findings table (:func:`image_targets`):

* ``attention``: the image's finding cells (those whose centre lies within 3/4 of a finding's radius, at least
  :data:`MIN_FINDING_RADIUS` input pixels; the nearest cell for a tiny finding) share probability 1; cross-entropy
  against the model's softmax over cells teaches it to look at the finding rather than anywhere else;
* ``finding_probability``: per cell, finding (1) or background (0), finding cells weighing
  :data:`FINDING_CELL_WEIGHT`: anchors the logits so the map's finding probability means what it says;
* ``cell_malignancy``: on the finding cells only, the finding's recorded pathology (the image's mean over its
  finding cells, so a large finding weighs as much as a small one);
* ``malignancy`` and ``density``: the image labels (the attention-weighted image score, and the density branch).

An image without findings (normal, or a data set without annotations, or users' submissions) trains on its
image labels only: its finding may lie anywhere, so none of its cells can be called background. A missing label
(density unknown, pathology unknown) weighs 0. Training images are flipped up-down and left-right at random (the
grid flips with them). After every epoch :class:`ImageAUC` scores the whole validation images and logs
``val_malignancy_auc``; training stops on it and keeps the best weights, so no density term can dominate.
The learning rate decays along a cosine over the planned epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mammo_utils.models.lesion import (
    ATTENTION,
    CELL_MALIGNANCY,
    FINDING_PROBABILITY,
    LESION_STRIDE,
    training_model,
)
from mammo_utils.models.networks import DENSITY_OUTPUT, MALIGNANCY_OUTPUT
from mammo_utils.training.pipeline import label_arrays

if TYPE_CHECKING:
    from mammo_utils.training.cache import CachedImages

__all__ = [
    "FINDING_CELL_WEIGHT",
    "ImageAUC",
    "ImageTargets",
    "LOSS_WEIGHTS",
    "LesionImages",
    "LesionRun",
    "fit_lesion_model",
    "image_findings",
    "image_targets",
]

FINDING_CELL_WEIGHT = 4.0  # a finding cell's weight in the per-cell finding loss (background cells weigh 1)
MIN_FINDING_RADIUS = 12.0  # input pixels: the smallest radius a finding's cells are drawn with
_RADIUS_SHARE = 0.75  # a cell is a finding cell when its centre lies within this share of the finding's radius
LOSS_WEIGHTS: dict[str, float] = {
    ATTENTION: 1.0,
    FINDING_PROBABILITY: 1.0,
    CELL_MALIGNANCY: 1.0,
    MALIGNANCY_OUTPUT: 0.5,
    DENSITY_OUTPUT: 1.0,
}


@dataclass(frozen=True)
class ImageFindings:
    """The findings of one image on the model grid: centres ``(y, x)``, radii and 1 (benign) / 2 (malignant)."""

    y: np.ndarray
    x: np.ndarray
    radius: np.ndarray
    label: np.ndarray


def image_findings(rows: pd.DataFrame, findings_model: pd.DataFrame) -> list[ImageFindings | None]:
    """Per manifest row, its findings with a known pathology on the model grid (None if it has none).

    ``findings_model`` is :func:`mammo_utils.datasets.findings.findings_in_model` output (``image_path``,
    ``model_y``, ``model_x``, ``model_radius``, ``pathology``).
    """
    known = findings_model[findings_model["pathology"].isin(["benign", "malignant"])]
    groups = {str(k): g for k, g in known.groupby("image_path")}
    out: list[ImageFindings | None] = []
    for path in rows["image_path"].astype(str):
        group = groups.get(path)
        if group is None or group.empty:
            out.append(None)
            continue
        out.append(
            ImageFindings(
                y=group["model_y"].to_numpy(float),
                x=group["model_x"].to_numpy(float),
                radius=group["model_radius"].to_numpy(float),
                label=np.where(group["pathology"] == "malignant", 2, 1).astype(np.int32),
            )
        )
    return out


@dataclass(frozen=True)
class ImageTargets:
    """The per-image targets of :func:`image_targets` for ``N`` images on a ``(h, w)`` grid of cells.

    Attributes
    ----------
    attention : np.ndarray
        float32 ``(N, h, w)``: the finding cells share 1; all 0 for an image without findings.
    finding : np.ndarray
        float32 ``(N, h, w)``: 1 on finding cells, 0 elsewhere.
    malignant_cells : np.ndarray
        float32 ``(N, h, w)``: 1 on cells of a malignant finding (malignant wins where findings overlap).
    has_findings : np.ndarray
        bool ``(N,)``.
    """

    attention: np.ndarray
    finding: np.ndarray
    malignant_cells: np.ndarray
    has_findings: np.ndarray


def image_targets(found: Sequence[ImageFindings | None], image_shape: tuple[int, ...]) -> ImageTargets:
    """The cell targets of each image's findings on the lesion grid of a ``image_shape`` input (see module notes)."""
    rows, cols = int(image_shape[0]) // LESION_STRIDE, int(image_shape[1]) // LESION_STRIDE
    yy, xx = np.meshgrid(
        np.arange(rows) * LESION_STRIDE + (LESION_STRIDE - 1) / 2.0,
        np.arange(cols) * LESION_STRIDE + (LESION_STRIDE - 1) / 2.0,
        indexing="ij",
    )
    finding = np.zeros((len(found), rows, cols), dtype=np.float32)
    malignant = np.zeros_like(finding)
    for i, item in enumerate(found):
        if item is None:
            continue
        for y, x, radius, label in zip(item.y, item.x, item.radius, item.label, strict=True):
            distance = np.hypot(yy - y, xx - x)
            cells = distance <= max(_RADIUS_SHARE * radius, MIN_FINDING_RADIUS)
            if not cells.any():
                cells = distance == distance.min()
            finding[i][cells] = 1.0
            if label == 2:
                malignant[i][cells] = 1.0
    counts = finding.sum(axis=(1, 2), keepdims=True)
    attention = np.divide(finding, counts, out=np.zeros_like(finding), where=counts > 0)
    return ImageTargets(attention, finding, malignant, counts[:, 0, 0] > 0)


class LesionImages(keras.utils.PyDataset):
    """Batches of whole images with the targets and weights of :func:`~mammo_utils.models.lesion.training_model`.

    Parameters
    ----------
    images : np.ndarray
        uint8 ``(N, H, W)`` standardized images.
    rows : pandas.DataFrame
        The images' manifest rows (``pathology``, ``density``).
    found : sequence of ImageFindings or None
        Per image, its findings on the model grid (:func:`image_findings`).
    batch_size, seed : int
        Images per batch; the seed of the shuffling and flips (drawn afresh each epoch).
    augment : bool
        Shuffle and flip (training); False keeps the order (validation).
    """

    def __init__(
        self,
        images: np.ndarray,
        rows: pd.DataFrame,
        found: Sequence[ImageFindings | None],
        *,
        batch_size: int = 16,
        seed: int = 42,
        augment: bool = True,
    ) -> None:
        super().__init__()
        if len(images) != len(rows) or len(found) != len(rows):
            raise ValueError(f"{len(images)} images, {len(rows)} rows and {len(found)} findings lists must match")
        if len(images) == 0:
            raise ValueError("no images to train on")
        self.images, self.batch_size, self.seed, self.augment, self.epoch = images, batch_size, seed, augment, 0
        self.targets = image_targets(found, images.shape[1:3])
        density, malignant, has_density, has_pathology = label_arrays(rows)
        self.density = np.where(has_density, density, -1)
        self.malignant = np.where(has_pathology, malignant, np.nan)
        self._order()

    def _order(self) -> None:
        rng = np.random.default_rng([self.seed, 11, self.epoch])
        count = len(self.images)
        self.order = rng.permutation(count) if self.augment else np.arange(count)
        self.flips = rng.random((count, 2)) < 0.5 if self.augment else np.zeros((count, 2), dtype=bool)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        grids = [self.images[rows], self.targets.attention[rows], self.targets.finding[rows]]
        grids.append(self.targets.malignant_cells[rows])
        for j, (up_down, left_right) in enumerate(self.flips[rows]):
            for axis, flip in ((0, up_down), (1, left_right)):
                if flip:
                    for grid in grids:
                        grid[j] = np.flip(grid[j], axis)
        image, attention, finding, malignant_cells = grids
        n, (h, w) = len(rows), attention.shape[1:]
        located = self.targets.has_findings[rows].astype(np.float32)
        malignant, density = self.malignant[rows], self.density[rows]
        per_cell = finding * (h * w / np.maximum(finding.sum(axis=(1, 2), keepdims=True), 1.0))
        x = image.astype(np.float32)[..., None] / np.float32(255)
        y = {
            ATTENTION: attention.reshape(n, h * w),
            FINDING_PROBABILITY: finding[..., None],
            CELL_MALIGNANCY: malignant_cells[..., None],
            MALIGNANCY_OUTPUT: np.nan_to_num(malignant).astype(np.float32)[:, None],
            DENSITY_OUTPUT: np.maximum(density, 0)[:, None],
        }
        weights = {
            ATTENTION: located,
            FINDING_PROBABILITY: np.where(finding > 0, FINDING_CELL_WEIGHT, 1.0).astype(np.float32)
            * located[:, None, None],
            CELL_MALIGNANCY: per_cell.astype(np.float32),
            MALIGNANCY_OUTPUT: np.isfinite(malignant).astype(np.float32),
            DENSITY_OUTPUT: (density >= 0).astype(np.float32),
        }
        return x, y, weights

    def on_epoch_end(self) -> None:
        """Draw the next epoch's order and flips."""
        self.epoch += 1
        self._order()


class ImageAUC(keras.callbacks.Callback):
    """After each epoch: ROC AUC of the full model's malignancy on whole validation images → ``val_malignancy_auc``.

    Put it first among the callbacks, so early stopping and the CSV log see the value.
    """

    def __init__(self, full_model: keras.Model, images: np.ndarray, malignant: np.ndarray, batch_size: int = 16):
        super().__init__()
        self.full_model, self.images, self.batch_size = full_model, images, batch_size
        self.malignant = np.asarray(malignant, dtype=float)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Score the validation images and add ``val_malignancy_auc`` to ``logs``."""
        known = np.isfinite(self.malignant)
        scores = []
        for start in range(0, int(known.sum()), self.batch_size):
            batch = self.images[known][start : start + self.batch_size].astype(np.float32) / np.float32(255)
            scores.append(np.asarray(self.full_model(batch, training=False)[MALIGNANCY_OUTPUT]).reshape(-1))
        labels = self.malignant[known]
        auc = roc_auc_score(labels, np.concatenate(scores)) if len(np.unique(labels)) == 2 else math.nan
        if logs is not None:
            logs["val_malignancy_auc"] = float(auc)


@dataclass
class LesionRun:
    """What :func:`fit_lesion_model` needs: the cache, the run's rows and their findings on the model grid."""

    cached: CachedImages
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    findings_model: pd.DataFrame
    batch_size: int
    epochs: int
    seed: int
    learning_rate: float
    patience: int
    verbose: int


def _malignant(rows: pd.DataFrame) -> np.ndarray:
    """1 malignant, 0 benign, NaN where the pathology is unknown."""
    _, malignant, _, has_pathology = label_arrays(rows)
    return np.where(has_pathology, malignant, np.nan)


def _compile(network: keras.Model, run: LesionRun, steps: int) -> keras.Model:
    model = training_model(network)
    schedule = keras.optimizers.schedules.CosineDecay(run.learning_rate, max(1, steps), alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss={
            ATTENTION: keras.losses.CategoricalCrossentropy(),
            FINDING_PROBABILITY: keras.losses.BinaryCrossentropy(),
            CELL_MALIGNANCY: keras.losses.BinaryCrossentropy(),
            MALIGNANCY_OUTPUT: keras.losses.BinaryCrossentropy(),
            DENSITY_OUTPUT: keras.losses.SparseCategoricalCrossentropy(),
        },
        loss_weights=LOSS_WEIGHTS,
        weighted_metrics={DENSITY_OUTPUT: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
    )
    return model


def fit_lesion_model(network: keras.Model, run: LesionRun, callbacks: list[Any] | None = None) -> pd.DataFrame:
    """Train a lesion model on whole images (see the module docstring); its per-epoch history.

    Returns
    -------
    pandas.DataFrame
        ``epoch``, ``loss`` and one ``<output>_loss`` per training output (``attention``, ``finding_probability``,
        ``cell_malignancy``, ``malignancy``, ``density``), ``density_accuracy``, their ``val_`` versions, and
        ``val_malignancy_auc`` (whole validation images).
    """
    train_images, val_images = run.cached.uint8(run.train_rows)[..., 0], run.cached.uint8(run.val_rows)[..., 0]
    data = LesionImages(
        train_images,
        run.train_rows,
        image_findings(run.train_rows, run.findings_model),
        batch_size=run.batch_size,
        seed=run.seed,
    )
    val = LesionImages(
        val_images,
        run.val_rows,
        image_findings(run.val_rows, run.findings_model),
        batch_size=run.batch_size,
        augment=False,
    )
    model = _compile(network, run, len(data) * run.epochs)
    monitor = {"monitor": "val_malignancy_auc", "mode": "max"}
    history = model.fit(
        data,
        validation_data=val,
        epochs=run.epochs,
        callbacks=[
            ImageAUC(network, val_images, _malignant(run.val_rows)),
            keras.callbacks.EarlyStopping(patience=run.patience, restore_best_weights=True, **monitor),
            *(callbacks or []),
        ],
        verbose=run.verbose,
    )
    frame = pd.DataFrame(history.history).drop(columns=["learning_rate"], errors="ignore")
    frame.insert(0, "epoch", np.arange(len(frame)))
    return frame
