"""Train a model on a manifest and keep everything about the run in one run directory.

A run directory (default ``models/runs/<YYYYmmdd-HHMMSS>_<model>_<source>``) holds:

* ``model.keras`` — the best model by validation loss (Keras format, loads with ``safe_mode=True``; no
  optimizer state, see :class:`BestModelCheckpoint`),
* ``history.csv`` — per-epoch losses and metrics (``CSVLogger``), ``params.json`` — every parameter, the data
  (images and class counts per split) and the outcome, ``split.csv`` — the manifest rows of the run with
  their split, ``standardization.csv`` — crop boxes and flips, ``versions.json`` — Python, packages, platform.

``models/runs/LATEST`` is a text file holding the name of the latest run directory (a portable pointer
rather than a symlink).

Reproducibility: :func:`train` calls ``keras.utils.set_random_seed(seed)`` and
``tf.config.experimental.enable_op_determinism()``, and the data pipeline uses seeded shuffles and stateless
augmentation, so the same parameters on the same machine give the same numbers. Op determinism is
process-wide and stays on once enabled (it makes a few ops slower). Across different CPUs or TensorFlow
builds the numbers can differ in the last digits. With ``strategy="mirrored"`` the reduction order across
replicas is fixed as well, but this is not covered by TensorFlow's determinism guarantee.

The seed model (202 M parameters, ~800 MB of weights, ~2.4 GB with Adam's moments, 5–6 GB peak memory at
batch 2, ~10 GB at batch 32) trains at roughly one image per second on 2 CPU cores: one epoch over the
~1,400 training images of the 2,000-image synthetic set takes about 25 minutes, a 30-epoch run about half a
day. Fast mode trains it for one small batch per epoch.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import pandas as pd

from mammo_utils import paths
from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.models.networks import MODEL_NAMES, build_model, compile_model, count_params
from mammo_utils.models.registry import Registry, current_run_dir
from mammo_utils.paths import LATEST_FILE, runs_dir
from mammo_utils.training.cache import STANDARDIZE_VERSION, build_cache
from mammo_utils.training.pipeline import class_weights, make_dataset
from mammo_utils.training.runs import RunResult
from mammo_utils.training.steps import (
    check_initial_model,
    describe,
    enable_determinism,
    resolve_strategy,
    unique_run_dir,
    versions,
    write_json,
)

if TYPE_CHECKING:
    import tensorflow as tf

FAST_EPOCHS = 2  # fast mode: at most this many epochs,
FAST_MAX_TRAIN = 200  # at most this many training images,
FAST_MAX_VAL = 100  # and validation images,
FAST_SEED_STEPS = 1  # and for the seed model at most this many batches per epoch (train and validation)
FAST_SEED_BATCH = 8  # of at most this many images (a 32-image seed step takes ~40 s and ~10 GB on 2 cores)
RUN_FILES: tuple[str, ...] = (
    "model.keras",
    "history.csv",
    "params.json",
    "split.csv",
    "versions.json",
    "standardization.csv",
)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model to ``path`` (``.keras``) whenever ``monitor`` improves, without optimizer state.

    Like ``keras.callbacks.ModelCheckpoint(save_best_only=True)``, but it saves an uncompiled functional
    view of the same layers (no weight copy), written to a temporary file and moved into place. Leaving
    out Adam's two moment tensors per weight makes the seed's file 0.8 GB instead of 2.4 GB and its save
    ~3× faster with ~3 GB less peak memory; fine-tuning starts with a fresh optimizer anyway.
    """

    def __init__(self, path: str | os.PathLike[str], monitor: str = "val_loss") -> None:
        super().__init__()
        self.path, self.monitor, self.best = Path(path), monitor, np.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Save the model when the monitored value improved (a finite value below the best so far)."""
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or value >= self.best:
            return
        self.best = float(value)
        export = keras.Model(self.model.input, self.model.output, name=self.model.name)
        tmp = self.path.with_name(f".{self.path.stem}.partial.keras")
        export.save(tmp)
        os.replace(tmp, self.path)


def _prepare_split(manifest: pd.DataFrame, seed: int) -> pd.DataFrame:
    frame = manifest.copy()
    if "split" not in frame.columns or frame["split"].isna().all():
        return split_by_patient(frame, seed=seed)
    unassigned = int(frame["split"].isna().sum())
    if unassigned:
        warnings.warn(f"{unassigned} row(s) have no split and are left out of the run", stacklevel=3)
        frame = frame[frame["split"].notna()]
    return frame


def _cap(frame: pd.DataFrame, split: str, limit: int, seed: int) -> pd.DataFrame:
    """Keep at most ``limit`` rows of ``split`` (a seeded sample, original order)."""
    rows = frame[frame["split"] == split]
    if len(rows) <= limit:
        return frame
    drop = rows.index.difference(rows.sample(n=limit, random_state=seed).index)
    return frame.drop(index=drop)


def _new_run_dir(model: str, frame: pd.DataFrame) -> Path:
    sources = sorted({str(s) for s in frame["source"].dropna()}) or ["manifest"]
    source = "+".join(sources) if len(sources) <= 2 else "mixed"
    return unique_run_dir(runs_dir(), f"{model}_{source}")


def _point_latest(run_dir: Path) -> None:
    root = paths.ensure_dir(runs_dir())
    name = run_dir.name if run_dir.resolve().parent == root.resolve() else str(run_dir.resolve())
    tmp = root / f"{LATEST_FILE}.tmp"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, root / LATEST_FILE)


def train(
    manifest: pd.DataFrame,
    model: str = "default",
    epochs: int = 30,
    batch_size: int = 32,
    image_size: int = 224,
    seed: int = 42,
    run_dir: str | os.PathLike[str] | None = None,
    strategy: str | tf.distribute.Strategy | None = None,
    learning_rate: float = 1e-3,
    patience: int = 5,
    fast: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    verbose: int = 1,
    steps_per_epoch: int | None = None,
    balance: bool = True,
    model_kwargs: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    initial_model: keras.Model | None = None,
    point_latest: bool = True,
    extra_params: dict[str, Any] | None = None,
) -> RunResult:
    """Train ``"default"``, ``"seed"`` or ``"transfer"`` on a manifest; write a run directory.

    Parameters
    ----------
    manifest : pandas.DataFrame
        With ``split`` (if it is empty, :func:`~mammo_utils.datasets.splits.split_by_patient` assigns it with
        ``seed``). Needs ``train`` and ``val`` rows; ``test`` rows are cached and recorded, not used.
    model : {"default", "seed", "transfer"}
    epochs, batch_size, image_size, learning_rate : int, int, int, float
        ``image_size`` is the side of the square input; the seed's 201,933,704 parameters hold at 224 only.
    seed : int
        Seeds the split, weights, shuffling and augmentation.
    run_dir : path, optional
        Default ``models/runs/<timestamp>_<model>_<source>``. ``models/runs/LATEST`` is pointed at it.
    strategy : None, "mirrored" or tf.distribute.Strategy
        ``"mirrored"``: ``MirroredStrategy`` over the GPUs, else over all logical CPU devices.
        ``batch_size`` is the global batch (split across replicas).
    patience : int
        Early stopping on ``val_loss``; the best weights are restored and checkpointed.
    fast : bool
        At most :data:`FAST_EPOCHS` epochs, :data:`FAST_MAX_TRAIN` training and :data:`FAST_MAX_VAL`
        validation images; for the seed model at most :data:`FAST_SEED_STEPS` batches of each per epoch,
        of at most :data:`FAST_SEED_BATCH` images.
    cache_dir : path, optional
        Image cache (default ``data/cache``, see :func:`~mammo_utils.training.cache.build_cache`).
    verbose : int
        0 silent, 1 progress bars (cache and Keras), 2 one line per epoch.
    steps_per_epoch : int, optional
        Batches per epoch; the training data then repeats. Default: one pass over the training rows.
    balance : bool
        Inverse-class-frequency sample weights (see :mod:`mammo_utils.training.pipeline`).
    model_kwargs : dict, optional
        Extra arguments for the model builder (e.g. ``{"width": 16}`` or ``{"weights": "imagenet"}``).
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks for ``fit`` (e.g. a timer); they run after the built-in ones.
    initial_model : keras.Model, optional
        Start from this model (e.g. a loaded run's model, for fine-tuning) instead of building ``model``;
        its layers' ``trainable`` flags are kept (freeze a backbone before calling). It is compiled afresh
        with ``learning_rate``, and must match ``model`` (an 8-way ``"joint"`` output only for ``"seed"``).
        Not combinable with ``strategy`` (its variables already exist outside the strategy's scope).
    point_latest : bool
        Point ``models/runs/LATEST`` at this run and make it the registry's current version
        (:meth:`~mammo_utils.models.registry.Registry.adopt`); False for candidate runs that must not replace it.
    extra_params : dict, optional
        Merged into ``params.json`` (e.g. the parent run of a fine-tuned model).

    Returns
    -------
    RunResult
    """
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    if epochs < 1 or batch_size < 1 or image_size < 32:
        raise ValueError("epochs and batch_size must be positive and image_size at least 32")
    if initial_model is not None:
        check_initial_model(initial_model, model, image_size, strategy)
    started = time.time()
    deterministic = enable_determinism(seed)
    requested_epochs, requested_batch = epochs, batch_size
    frame = _prepare_split(manifest, seed)
    if fast:
        epochs = min(epochs, FAST_EPOCHS)
        max_train, max_val = FAST_MAX_TRAIN, FAST_MAX_VAL
        if model == "seed":
            batch_size = min(batch_size, FAST_SEED_BATCH)
            max_train = max_val = FAST_SEED_STEPS * batch_size
        frame = _cap(_cap(frame, "train", max_train, seed), "val", max_val, seed)
    cached = build_cache(frame, cache_dir, size=(image_size, image_size), progress=verbose > 0, on_error="skip")
    frame = cached.manifest
    train_rows, val_rows = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    if train_rows.empty or val_rows.empty:
        raise ValueError(f"need training and validation rows; got {len(train_rows)} train, {len(val_rows)} val")
    target = "joint" if model == "seed" else "multitask"
    train_ds = make_dataset(cached, train_rows, target, batch_size, training=True, seed=seed, balance=balance)
    val_ds = make_dataset(cached, val_rows, target, batch_size, training=False, seed=seed)
    if steps_per_epoch is not None:
        train_ds = train_ds.repeat()

    run_dir = Path(run_dir) if run_dir is not None else _new_run_dir(model, frame)
    paths.ensure_dir(run_dir)
    distribution = resolve_strategy(strategy)
    scope = distribution.scope() if distribution is not None else contextlib.nullcontext()
    with scope:
        network = (
            initial_model
            if initial_model is not None
            else build_model(model, input_shape=(image_size, image_size, 1), **(model_kwargs or {}))
        )
        compile_model(network, learning_rate=learning_rate)
    params: dict[str, Any] = {
        "model": model,
        "epochs": epochs,
        "requested_epochs": requested_epochs,
        "batch_size": batch_size,
        "requested_batch_size": requested_batch,
        "image_size": image_size,
        "seed": seed,
        "learning_rate": learning_rate,
        "patience": patience,
        "fast": fast,
        "steps_per_epoch": steps_per_epoch,
        "balance": balance,
        "target": target,
        "model_kwargs": model_kwargs or {},
        "strategy": type(distribution).__name__ if distribution is not None else None,
        "replicas": int(distribution.num_replicas_in_sync) if distribution is not None else 1,
        "deterministic_ops": deterministic,
        "cache_dir": str(cached.cache_dir),
        "cache_version": STANDARDIZE_VERSION,
        "n_params": count_params(network),
        "data": {
            "sources": sorted({str(s) for s in frame["source"].dropna()}),
            "splits": describe(frame),
            "class_weights": class_weights(train_rows, target) if balance else None,
            "failed_images": cached.failed,
        },
        "run_dir": str(run_dir.resolve()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "status": "running",
        "initial_model": initial_model.name if initial_model is not None else None,
        **(extra_params or {}),
    }
    write_json(run_dir / "params.json", params)
    write_json(run_dir / "versions.json", versions())
    frame.to_csv(run_dir / "split.csv", index=False)
    columns = ["image_path", "split", *[c for c in cached.records.columns if c not in ("image_path", "cache_file")]]
    cached.standardization(frame)[columns].to_csv(run_dir / "standardization.csv", index=False)

    model_path = run_dir / "model.keras"
    model_path.unlink(missing_ok=True)  # a reused run_dir must not keep an older run's model
    fit_callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        BestModelCheckpoint(model_path, monitor="val_loss"),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2), verbose=0),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        *(callbacks or []),
    ]
    network.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=fit_callbacks,
        verbose=verbose,
        shuffle=False,
    )
    if not model_path.exists():  # val_loss was never finite: keep the last weights all the same
        warnings.warn("validation loss never improved (NaN?); saving the last weights", stacklevel=2)
        keras.Model(network.input, network.output, name=network.name).save(model_path)
    history = pd.read_csv(run_dir / "history.csv")
    best = int(history["val_loss"].idxmin()) if history["val_loss"].notna().any() else len(history) - 1
    params.update(
        {
            "status": "finished",
            "epochs_trained": int(len(history)),
            "best_epoch": int(history["epoch"].iloc[best]),
            "best_val_loss": float(history["val_loss"].iloc[best]),
            "duration_s": round(time.time() - started, 2),
        }
    )
    write_json(run_dir / "params.json", params)
    if point_latest:
        _point_latest(run_dir)
        Registry().adopt(run_dir)  # a model trained from scratch becomes the current version
    return RunResult(run_dir, network, history, params)


def ensure_run(
    run_dir: str | os.PathLike[str] | None = None, *, train_if_missing: bool = True, seed: int = 42, verbose: int = 0
) -> tuple[Path, bool]:
    """The run directory to predict with, training a fast default model when none exists yet.

    Parameters
    ----------
    run_dir : path, optional
        A run directory; None or "" means the registry's current version, else the latest run
        (``models/runs/LATEST``).
    train_if_missing : bool
        With no recorded run, train the default model in fast mode on the small synthetic set
        (about a minute on 2 CPU cores) instead of raising.
    seed, verbose : int
        For that training run.

    Returns
    -------
    (Path, bool)
        The run directory, and True if it was just trained.
    """
    if run_dir:
        folder = Path(run_dir)
        if not (folder / "model.keras").is_file():
            raise FileNotFoundError(
                f"{folder} holds no model.keras; give a run directory from mammo_utils.training.train"
            )
        return folder, False
    try:
        folder = current_run_dir()  # the registry's current version, else models/runs/LATEST
        if (folder / "model.keras").is_file():
            return folder, False
    except FileNotFoundError:
        pass
    if not train_if_missing:
        raise FileNotFoundError("no trained model yet: run notebooks/02_train.ipynb (or `make run`) first")
    from mammo_utils.datasets.catalog import load as load_dataset

    manifest = split_by_patient(load_dataset("synthetic", fast=True, seed=seed), seed=seed)
    return train(manifest, model="default", fast=True, seed=seed, verbose=verbose).run_dir, True
