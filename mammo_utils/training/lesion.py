"""Train the lesion model (:mod:`mammo_utils.models.lesion`): lesion crops first, then density on whole images.

Stages, each a Keras ``fit`` on a sub-model that shares the full model's layers:

1. **Lesions** (when the training images have findings): :class:`LesionCrops` cuts, per training image and epoch,
   one ``patch_size`` crop that contains a finding (at a random place in the crop) and one random crop of the
   breast, with a per-cell target: the finding's pathology on the cells whose centre lies within the finding's
   radius (at least 3/4 of a cell), background elsewhere. Lesion cells weigh :data:`LESION_CELL_WEIGHT`.
   After every epoch :class:`ImageAUC` scores the **whole** validation images with the full model and logs
   ``val_malignancy_auc``; training stops on it (no density term can dominate) and keeps the best weights.
2. **Image labels** (when no training image has a finding, e.g. a data set without annotations or users'
   submissions): the full model on whole images, malignancy (the map's max) and density losses.
3. **Density**: the density branch alone on whole images, early stopping on its validation loss.

Only images with findings give crops: an image without annotations may hold its finding anywhere, so none of
its crops can be called background.
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

from mammo_utils.models.lesion import LESION_STRIDE, density_model, image_model, patch_model
from mammo_utils.models.networks import DENSITY_OUTPUT, MALIGNANCY_OUTPUT
from mammo_utils.training.pipeline import make_dataset

if TYPE_CHECKING:
    from mammo_utils.training.cache import CachedImages

__all__ = [
    "DEFAULT_PATCH_SIZE",
    "LESION_CELL_WEIGHT",
    "ImageAUC",
    "LesionCrops",
    "cell_targets",
    "fit_lesion_model",
    "image_findings",
    "patch_size_for",
]

DEFAULT_PATCH_SIZE = 96  # 6 x 6 lesion cells; a finding (radius ~16 px at 320) fits with room around it
LESION_CELL_WEIGHT = 4.0
_MIN_RADIUS_CELLS = 0.75
_FINDING_MARGIN = 8  # the finding centre lies at least this far inside a positive crop


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


def patch_size_for(image_shape: tuple[int, ...]) -> int:
    """:data:`DEFAULT_PATCH_SIZE`, or for small inputs half the shorter side (a multiple of 16, at least 16)."""
    half = (min(int(v) for v in image_shape[:2]) // 2) // LESION_STRIDE * LESION_STRIDE
    return max(LESION_STRIDE, min(DEFAULT_PATCH_SIZE, half))


def cell_targets(found: ImageFindings | None, top: int, left: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell class (0 background, 1 benign, 2 malignant) and weight of the crop at ``(top, left)``.

    A cell belongs to a finding when its centre lies within the finding's radius (at least 3/4 of a cell);
    malignant wins where findings overlap.
    """
    cells = size // LESION_STRIDE
    centres = np.arange(cells) * LESION_STRIDE + (LESION_STRIDE - 1) / 2.0
    yy, xx = np.meshgrid(centres + top, centres + left, indexing="ij")
    target = np.zeros((cells, cells), dtype=np.int32)
    if found is not None:
        for y, x, r, label in zip(found.y, found.x, found.radius, found.label, strict=True):
            inside = np.hypot(yy - y, xx - x) <= max(r, _MIN_RADIUS_CELLS * LESION_STRIDE)
            target[inside] = np.maximum(target[inside], label)
    weight = np.where(target > 0, LESION_CELL_WEIGHT, 1.0).astype(np.float32)
    return target, weight


class LesionCrops(keras.utils.PyDataset):
    """Batches of (crops, per-cell targets, per-cell weights), drawn afresh (seeded) every epoch."""

    def __init__(
        self,
        images: np.ndarray,
        found: Sequence[ImageFindings | None],
        content: Sequence[tuple[int, int, int, int]],
        *,
        patch_size: int = DEFAULT_PATCH_SIZE,
        batch_size: int = 32,
        seed: int = 42,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.images, self.patch_size, self.batch_size, self.seed, self.augment = (
            images,
            patch_size,
            batch_size,
            seed,
            augment,
        )
        self.rows = [i for i, f in enumerate(found) if f is not None]
        if not self.rows:
            raise ValueError("no image with a finding of known pathology to cut lesion crops from")
        self.found, self.content, self.epoch = list(found), list(content), 0
        self._draw()

    def _draw(self) -> None:
        rng = np.random.default_rng([self.seed, 7, self.epoch])
        crops, targets, weights = [], [], []
        for i in self.rows:
            for positive in (True, False):
                top, left = self._place(rng, i, positive)
                crop = self.images[i, top : top + self.patch_size, left : left + self.patch_size]
                target, weight = cell_targets(self.found[i], top, left, self.patch_size)
                if self.augment:
                    crop, target, weight = _flip(rng, crop, target, weight)
                crops.append(crop)
                targets.append(target)
                weights.append(weight)
        order = rng.permutation(len(crops))
        self._x = np.stack(crops)[order]
        self._y, self._w = np.stack(targets)[order], np.stack(weights)[order]

    def _place(self, rng: np.random.Generator, i: int, positive: bool) -> tuple[int, int]:
        height, width = self.images.shape[1:3]
        size, found = self.patch_size, self.found[i]
        if positive and found is not None:
            k = int(rng.integers(len(found.y)))
            cy, cx = found.y[k], found.x[k]
        else:
            top, left, bottom, right = self.content[i]
            cy, cx = rng.uniform(top, max(top + 1, bottom)), rng.uniform(left, max(left + 1, right))
        lo_y, hi_y = cy - size + _FINDING_MARGIN, cy - _FINDING_MARGIN
        lo_x, hi_x = cx - size + _FINDING_MARGIN, cx - _FINDING_MARGIN
        top = int(np.clip(round(rng.uniform(lo_y, hi_y)) if positive else round(cy - size / 2), 0, height - size))
        left = int(np.clip(round(rng.uniform(lo_x, hi_x)) if positive else round(cx - size / 2), 0, width - size))
        return top, left

    def __len__(self) -> int:
        return math.ceil(len(self._x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x = self._x[part].astype(np.float32)[..., None] / np.float32(255)
        return x, self._y[part], self._w[part]

    def on_epoch_end(self) -> None:
        """Draw the next epoch's crops."""
        self.epoch += 1
        self._draw()


def _flip(
    rng: np.random.Generator, crop: np.ndarray, target: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random up-down and left-right flip of the crop and its cell grids (findings look alike mirrored)."""
    for axis in (0, 1):
        if rng.random() < 0.5:
            crop, target, weight = np.flip(crop, axis), np.flip(target, axis), np.flip(weight, axis)
    return crop, target, weight


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
    balance: bool
    verbose: int


def _content_boxes(cached: CachedImages, rows: pd.DataFrame, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The breast content's (top, left, bottom, right) on the model grid of each row (left-aligned, centred)."""
    boxes = []
    for record in cached.standardization(rows).to_dict("records"):
        height = int(min(size[0], record.get("content_height") or size[0]))
        width = int(min(size[1], record.get("content_width") or size[1]))
        top = (size[0] - height) // 2
        boxes.append((top, 0, top + height, width))
    return boxes


def _malignant(rows: pd.DataFrame) -> np.ndarray:
    return rows["pathology"].map({"malignant": 1.0, "benign": 0.0}).astype(float).to_numpy()


def _fit_lesions(network: keras.Model, run: LesionRun, callbacks: list[Any]) -> pd.DataFrame:
    """Stage 1: the lesion branch on crops, stopped on the whole-image validation malignancy AUC."""
    train_images, val_images = run.cached.uint8(run.train_rows)[..., 0], run.cached.uint8(run.val_rows)[..., 0]
    size = train_images.shape[1:3]
    crops = LesionCrops(
        train_images,
        image_findings(run.train_rows, run.findings_model),
        _content_boxes(run.cached, run.train_rows, size),
        patch_size=patch_size_for(size),
        batch_size=run.batch_size,
        seed=run.seed,
    )
    patches = patch_model(network)
    patches.compile(optimizer=keras.optimizers.Adam(run.learning_rate), loss="sparse_categorical_crossentropy")
    monitor = {"monitor": "val_malignancy_auc", "mode": "max"}
    history = patches.fit(
        crops,
        epochs=run.epochs,
        callbacks=[
            ImageAUC(network, val_images, _malignant(run.val_rows)),
            keras.callbacks.EarlyStopping(patience=run.patience, restore_best_weights=True, **monitor),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, run.patience // 2), **monitor),
            *callbacks,
        ],
        verbose=run.verbose,
    )
    frame = pd.DataFrame(history.history).rename(columns={"loss": "lesion_loss"})
    return frame.drop(columns=[c for c in frame.columns if c == "learning_rate"])


def _density_data(run: LesionRun, rows: pd.DataFrame, training: bool) -> Any:
    """The image pipeline of :mod:`mammo_utils.training.pipeline` (augmentation, class balance), density only."""
    ds = make_dataset(
        run.cached, rows, "multitask", run.batch_size, training=training, seed=run.seed, balance=run.balance
    )

    def density_only(x: Any, y: Any, *weights: Any) -> Any:
        return (x, y[DENSITY_OUTPUT], weights[0][DENSITY_OUTPUT]) if weights else (x, y[DENSITY_OUTPUT])

    return ds.map(density_only)


def _fit_density(network: keras.Model, run: LesionRun) -> pd.DataFrame:
    """Stage 3: the density branch on whole images, early stopping on its validation loss."""
    branch = density_model(network)
    branch.compile(
        optimizer=keras.optimizers.Adam(run.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    history = branch.fit(
        _density_data(run, run.train_rows, training=True),
        validation_data=_density_data(run, run.val_rows, training=False),
        epochs=run.epochs,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=run.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, run.patience // 2)),
        ],
        verbose=run.verbose,
        shuffle=False,
    )
    frame = pd.DataFrame(history.history).drop(columns=["learning_rate"], errors="ignore")
    return frame.rename(columns=lambda c: c.replace("loss", "density_loss").replace("accuracy", "density_accuracy"))


def _fit_image_labels(network: keras.Model, run: LesionRun, callbacks: list[Any]) -> pd.DataFrame:
    """Stage 2: the full model on whole images with image labels only (no findings to learn the map from)."""
    labelled = image_model(network)
    labelled.compile(
        optimizer=keras.optimizers.Adam(run.learning_rate),
        loss={DENSITY_OUTPUT: "sparse_categorical_crossentropy", MALIGNANCY_OUTPUT: "binary_crossentropy"},
    )
    train_ds = make_dataset(run.cached, run.train_rows, "multitask", run.batch_size, training=True, seed=run.seed)
    val_ds = make_dataset(run.cached, run.val_rows, "multitask", run.batch_size, training=False, seed=run.seed)
    history = labelled.fit(
        train_ds,
        validation_data=val_ds,
        epochs=run.epochs,
        callbacks=[
            ImageAUC(network, run.cached.uint8(run.val_rows)[..., 0], _malignant(run.val_rows)),
            keras.callbacks.EarlyStopping(
                monitor="val_malignancy_auc", mode="max", patience=run.patience, restore_best_weights=True
            ),
            *callbacks,
        ],
        verbose=run.verbose,
        shuffle=False,
    )
    frame = pd.DataFrame(history.history).drop(columns=["learning_rate"], errors="ignore")
    return frame.rename(columns={"loss": "image_loss", "val_loss": "val_image_loss"})


def fit_lesion_model(network: keras.Model, run: LesionRun, callbacks: list[Any] | None = None) -> pd.DataFrame:
    """Train a lesion model in its stages (see the module docstring); the per-epoch history of all stages.

    Returns
    -------
    pandas.DataFrame
        ``epoch`` and, per stage, its columns: ``lesion_loss`` and ``val_malignancy_auc`` (lesion crops) or
        ``image_loss`` (image labels), then ``density_loss``, ``density_accuracy`` and their ``val_`` versions.
        Stages of different lengths leave NaN where one has stopped.
    """
    found = image_findings(run.train_rows, run.findings_model)
    first = (
        _fit_lesions(network, run, list(callbacks or []))
        if any(f is not None for f in found)
        else _fit_image_labels(network, run, list(callbacks or []))
    )
    density = _fit_density(network, run)
    history = pd.concat([first, density], axis=1)
    history.insert(0, "epoch", np.arange(len(history)))
    return history
