"""tf.data input pipeline: targets, class balance, augmentation, batching, from the standardized-image cache.

Flow: :func:`~mammo_utils.training.cache.build_cache` (read → standardize once → one ``.npy`` per image) →
:meth:`~mammo_utils.training.cache.CachedImages.images` (N, H, W, 1) → :func:`make_dataset` (shuffle, augment
(:func:`~mammo_utils.training.augment.augment_images`), weights, batch, prefetch) → ``model.fit``.

Decisions
---------
* **Class balance** by per-sample weights (inverse class frequency, mean 1 over the labelled rows). Keras 3
  accepts a dict of sample weights keyed like the outputs, so each head of the multi-task model gets its
  own weights: density by density class, malignancy by pathology. The seed model is weighted by its joint
  8-way class. Weights apply to training data only; validation rows get weight 1 (or 0, see below).
* **Missing labels** (multi-task): a row missing density or pathology keeps training the other head; the
  missing head gets sample weight 0 (a stand-in target of 0 is never learned from). Rows missing both
  are dropped with a warning. The seed's joint target needs both labels, so such rows are dropped with a
  warning. Note that the default model's metrics (accuracy, AUC) are compiled as unweighted ``metrics``,
  so masked stand-in targets still count in *metrics* (never in the loss).
* **No flips** in the augmentation (see :mod:`mammo_utils.training.augment`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from mammo_utils import labels
from mammo_utils.training.augment import augment_images
from mammo_utils.training.cache import CachedImages

if TYPE_CHECKING:  # TensorFlow is imported lazily (importing this module stays fast)
    import tensorflow as tf

__all__ = ["TARGETS", "class_weights", "make_dataset", "targets_and_weights"]

TARGETS: tuple[str, ...] = ("multitask", "joint")
DENSITY_KEY, MALIGNANCY_KEY, JOINT_KEY = "density", "malignancy", "joint"  # = the models' output names


def _balanced(values: pd.Series, mask: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights over the rows in ``mask`` (mean 1 there), 0 elsewhere."""
    weights = np.zeros(len(values), dtype=np.float32)
    present = values[mask]
    if len(present):
        counts = present.value_counts()
        weights[mask] = (len(present) / (len(counts) * present.map(counts))).to_numpy(np.float32)
    return weights


def label_arrays(manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Density class 0–3, malignant 0/1, and their 'present' masks (stand-in 0 where missing)."""
    density = [labels.density_from_any(v) for v in manifest["density"]]
    pathology = [labels.pathology_from_any(v) for v in manifest["pathology"]]
    has_density = np.array([d is not None for d in density], dtype=bool)
    has_pathology = np.array([p is not None for p in pathology], dtype=bool)
    density_class = np.array([(d or 1) - 1 for d in density], dtype=np.int32)
    malignant = np.array([float(p == "malignant") for p in pathology], dtype=np.float32)
    return density_class, malignant, has_density, has_pathology


def class_weights(manifest: pd.DataFrame, target: str = "multitask") -> dict[str, dict[int, float]]:
    """Inverse-frequency class weights, ``n / (n_classes_present * count)``, over the labelled rows.

    Returns
    -------
    dict
        ``{"density": {0: w, ...}, "malignancy": {0: w, 1: w}}`` (density classes 0–3 = BI-RADS − 1) for
        ``target="multitask"``; ``{"joint": {index: w, ...}}`` for ``"joint"``. Absent classes are left out.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    density, malignant, has_density, has_pathology = label_arrays(manifest)

    def table(values: np.ndarray, mask: np.ndarray) -> dict[int, float]:
        present = pd.Series(values[mask])
        counts = present.value_counts().sort_index()
        return {int(k): float(len(present) / (len(counts) * c)) for k, c in zip(counts.index, counts, strict=True)}

    if target == "joint":
        both = has_density & has_pathology
        return {JOINT_KEY: table(density * 2 + malignant.astype(np.int32), both)}
    return {DENSITY_KEY: table(density, has_density), MALIGNANCY_KEY: table(malignant.astype(np.int32), has_pathology)}


def targets_and_weights(
    manifest: pd.DataFrame, target: str = "multitask", balance: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray] | np.ndarray, dict[str, np.ndarray] | np.ndarray | None]:
    """Keras targets and sample weights for ``manifest`` (see the module notes on missing labels).

    Returns
    -------
    keep : np.ndarray
        bool per row: rows that can be used (at least one label; both for ``"joint"``).
    targets : dict or np.ndarray
        For the kept rows: ``{"density": int32 (N,), "malignancy": float32 (N, 1)}``, or for ``"joint"``
        the float32 (N, 8) one-hot array (the seed model has a single output).
    weights : dict, np.ndarray or None
        Per-head float32 weights (multitask), per-sample weights (joint), or None when every weight is 1.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    density, malignant, has_density, has_pathology = label_arrays(manifest)
    if target == "joint":
        keep = has_density & has_pathology
        joint = density[keep] * 2 + malignant[keep].astype(np.int32)
        targets = np.eye(labels.N_JOINT, dtype=np.float32)[joint]  # the seed has a single output
        weights = _balanced(pd.Series(joint), np.ones(len(joint), bool)) if balance else None
        return keep, targets, weights
    keep = has_density | has_pathology
    mask_d, mask_m = has_density[keep], has_pathology[keep]
    targets = {DENSITY_KEY: density[keep], MALIGNANCY_KEY: malignant[keep][:, None]}
    if balance:
        w_d = _balanced(pd.Series(density[keep]), mask_d)
        w_m = _balanced(pd.Series(malignant[keep]), mask_m)
    elif not (mask_d.all() and mask_m.all()):
        w_d, w_m = mask_d.astype(np.float32), mask_m.astype(np.float32)
    else:
        return keep, targets, None
    return keep, targets, {DENSITY_KEY: w_d, MALIGNANCY_KEY: w_m}


def make_dataset(
    images: CachedImages | np.ndarray,
    manifest: pd.DataFrame | None = None,
    target: Literal["multitask", "joint"] = "multitask",
    batch_size: int = 32,
    training: bool = False,
    seed: int = 42,
    balance: bool = True,
    augment: bool | None = None,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of ``(image, targets[, sample_weight])``.

    Parameters
    ----------
    images : CachedImages or np.ndarray
        The cache (its rows are looked up by ``image_path``) or an array aligned with ``manifest``:
        (N, H, W[, 1]), uint8 (÷255) or float in [0, 1].
    manifest : pandas.DataFrame, optional
        Rows to use, with ``density`` and ``pathology``; default ``images.manifest``.
    target : {"multitask", "joint"}
        Two-head targets ``{"density", "malignancy"}``, or the seed's one-hot joint class (a plain tensor).
    batch_size : int
    training : bool
        Shuffle (seeded, reshuffled each epoch), augment and balance.
    seed : int
        Seeds the shuffle and the augmentation: the same seed gives the same batches, epoch after epoch.
    balance : bool
        With ``training``: inverse-class-frequency sample weights (per head for multitask).
    augment : bool, optional
        Default ``training``.

    Returns
    -------
    tf.data.Dataset
        Images float32 (B, H, W, 1); ``sample_weight`` is present when balancing or when a label is missing.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    manifest, pixels = _pixels(images, manifest)
    keep, targets, weights = targets_and_weights(manifest, target, balance=balance and training)
    if not keep.all():
        need = "density and pathology" if target == "joint" else "a density or a pathology"
        warnings.warn(f"{int((~keep).sum())} of {len(keep)} row(s) lack {need} and are dropped", stacklevel=2)
        pixels = pixels[keep]
    if not len(pixels):
        raise ValueError("no labelled rows to make a dataset from")
    items = (pixels, targets) if weights is None else (pixels, targets, weights)
    ds = tf.data.Dataset.from_tensor_slices(items)
    if training:
        ds = ds.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    # training drops a partial last batch (reshuffled each epoch, so every image still takes part): no
    # one-image BatchNorm batches, and one traced train step instead of two
    ds = ds.batch(batch_size, drop_remainder=training and len(pixels) >= batch_size)
    return _to_float(ds, augment=training if augment is None else augment, seed=seed).prefetch(tf.data.AUTOTUNE)


def _pixels(images: CachedImages | np.ndarray, manifest: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The manifest and its images as (N, H, W, 1), from the cache or a checked array aligned with the manifest."""
    if isinstance(images, CachedImages):
        manifest = images.manifest if manifest is None else manifest
        return manifest, images.uint8(manifest)
    if manifest is None:
        raise ValueError("pass the manifest that goes with an image array")
    pixels = np.asarray(images)
    pixels = pixels[..., None] if pixels.ndim == 3 else pixels
    if pixels.ndim != 4 or pixels.shape[-1] != 1 or len(pixels) != len(manifest):
        raise ValueError(f"images must be (N, H, W[, 1]) with N = len(manifest) = {len(manifest)}; got {pixels.shape}")
    return manifest, pixels


def _to_float(ds: tf.data.Dataset, augment: bool, seed: int) -> tf.data.Dataset:
    """Map the batches' images to float32 in [0, 1] (uint8 ÷ 255), augmented with seeded stateless keys if asked."""
    import tensorflow as tf

    def to_float(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else tf.cast(x, tf.float32)

    if augment:
        keys = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip((ds, keys)).map(
            lambda item, key: (augment_images(to_float(item[0]), key), *item[1:]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.map(lambda *item: (to_float(item[0]), *item[1:]), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
