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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import keras
import numpy as np
import pandas as pd

from mammo_utils import paths
from mammo_utils.datasets.findings import empty_findings, findings_in_model
from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.models.builders import build_model, compile_model
from mammo_utils.models.networks import count_params
from mammo_utils.models.registry import Registry, current_run_dir
from mammo_utils.paths import LATEST_FILE, runs_dir
from mammo_utils.training.cache import STANDARDIZE_VERSION, CachedImages, build_cache
from mammo_utils.training.config import TrainConfig
from mammo_utils.training.lesion import LesionRun, fit_lesion_model
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


@dataclass
class _RunData:
    """The rows, cache and datasets of a run, with the epochs and batch size it actually uses."""

    frame: pd.DataFrame
    cached: CachedImages
    train_rows: pd.DataFrame
    target: Literal["multitask", "joint"]
    train_ds: tf.data.Dataset | None
    val_ds: tf.data.Dataset | None
    epochs: int
    batch_size: int
    findings_model: pd.DataFrame | None = None


def _select_rows(manifest: pd.DataFrame, config: TrainConfig) -> tuple[pd.DataFrame, int, int]:
    """The split manifest (capped in fast mode) and the epochs and batch size to train with."""
    frame = _prepare_split(manifest, config.seed)
    epochs, batch_size = config.epochs, config.batch_size
    if config.fast:
        epochs = min(epochs, FAST_EPOCHS)
        max_train, max_val = FAST_MAX_TRAIN, FAST_MAX_VAL
        if config.model == "seed":
            batch_size = min(batch_size, FAST_SEED_BATCH)
            max_train = max_val = FAST_SEED_STEPS * batch_size
        frame = _cap(_cap(frame, "train", max_train, config.seed), "val", max_val, config.seed)
    return frame, epochs, batch_size


def _load_data(manifest: pd.DataFrame, config: TrainConfig, findings: pd.DataFrame | None) -> _RunData:
    """Cache the run's images and make its training and validation datasets (the lesion model makes its own)."""
    frame, epochs, batch_size = _select_rows(manifest, config)
    size = (int(config.image_size or 0), int(config.image_size or 0))
    cached = build_cache(frame, config.cache_dir, size=size, progress=config.verbose > 0, on_error="skip")
    frame = cached.manifest
    train_rows, val_rows = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    if train_rows.empty or val_rows.empty:
        raise ValueError(f"need training and validation rows; got {len(train_rows)} train, {len(val_rows)} val")
    target: Literal["multitask", "joint"] = "joint" if config.model == "seed" else "multitask"
    if config.model == "lesion":
        table = findings if findings is not None else empty_findings()
        located = findings_in_model(table, cached.standardization(frame), size)
        return _RunData(frame, cached, train_rows, target, None, None, epochs, batch_size, located)
    seed = config.seed
    train_ds = make_dataset(cached, train_rows, target, batch_size, training=True, seed=seed, balance=config.balance)
    val_ds = make_dataset(cached, val_rows, target, batch_size, training=False, seed=seed)
    if config.steps_per_epoch is not None:
        train_ds = train_ds.repeat()
    return _RunData(frame, cached, train_rows, target, train_ds, val_ds, epochs, batch_size)


def _fit_lesion(
    network: keras.Model, data: _RunData, run_dir: Path, config: TrainConfig, callbacks: list[Any] | None
) -> pd.DataFrame:
    """Fit the lesion model on whole images (:mod:`mammo_utils.training.lesion`); save it and its history."""
    frame = data.frame
    run = LesionRun(
        cached=data.cached,
        train_rows=frame[frame["split"] == "train"],
        val_rows=frame[frame["split"] == "val"],
        findings_model=data.findings_model if data.findings_model is not None else empty_findings(),
        batch_size=data.batch_size,
        epochs=data.epochs,
        seed=config.seed,
        learning_rate=config.learning_rate,
        patience=config.patience,
        verbose=config.verbose,
    )
    history = fit_lesion_model(network, run, callbacks)
    history.to_csv(run_dir / "history.csv", index=False)
    model_path = run_dir / "model.keras"
    tmp = model_path.with_name(f".{model_path.stem}.partial.keras")
    network.save(tmp)
    os.replace(tmp, model_path)
    return history


def _build_network(
    config: TrainConfig, initial_model: keras.Model | None
) -> tuple[keras.Model, tf.distribute.Strategy | None]:
    """The compiled network (built afresh, or ``initial_model``) inside the distribution strategy's scope."""
    distribution = resolve_strategy(config.strategy)
    scope = distribution.scope() if distribution is not None else contextlib.nullcontext()
    with scope:
        if initial_model is None:
            shape = (int(config.image_size or 0), int(config.image_size or 0), 1)
            network = build_model(config.model, input_shape=shape, **(config.model_kwargs or {}))
        else:
            network = initial_model
        compile_model(network, learning_rate=config.learning_rate)
    return network, distribution


def _run_params(
    config: TrainConfig,
    data: _RunData,
    run_dir: Path,
    network: keras.Model,
    distribution: tf.distribute.Strategy | None,
    deterministic: bool,
) -> dict[str, Any]:
    """``params.json`` at the start of the run: the config, what was actually used, and the data."""
    return {
        **config.to_dict(),
        "epochs": data.epochs,
        "requested_epochs": config.epochs,
        "batch_size": data.batch_size,
        "requested_batch_size": config.batch_size,
        "target": data.target,
        "strategy": type(distribution).__name__ if distribution is not None else None,
        "replicas": int(distribution.num_replicas_in_sync) if distribution is not None else 1,
        "deterministic_ops": deterministic,
        "cache_dir": str(data.cached.cache_dir),
        "cache_version": STANDARDIZE_VERSION,
        "n_params": count_params(network),
        "data": {
            "sources": sorted({str(s) for s in data.frame["source"].dropna()}),
            "splits": describe(data.frame),
            "class_weights": class_weights(data.train_rows, data.target) if config.balance else None,
            "failed_images": data.cached.failed,
        },
        "run_dir": str(run_dir.resolve()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "status": "running",
    }


def _write_run_files(run_dir: Path, params: dict[str, Any], data: _RunData) -> None:
    """``params.json``, ``versions.json``, ``split.csv`` and ``standardization.csv`` (before fitting)."""
    write_json(run_dir / "params.json", params)
    write_json(run_dir / "versions.json", versions())
    data.frame.to_csv(run_dir / "split.csv", index=False)
    records = data.cached.records.columns
    columns = ["image_path", "split", *[c for c in records if c not in ("image_path", "cache_file")]]
    data.cached.standardization(data.frame)[columns].to_csv(run_dir / "standardization.csv", index=False)


def _fit(
    network: keras.Model, data: _RunData, run_dir: Path, config: TrainConfig, callbacks: list[Any] | None
) -> pd.DataFrame:
    """Fit with early stopping, best-model checkpointing, LR halving and a CSV log; the history."""
    model_path = run_dir / "model.keras"
    model_path.unlink(missing_ok=True)  # a reused run_dir must not keep an older run's model
    patience = config.patience
    fit_callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        BestModelCheckpoint(model_path, monitor="val_loss"),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2), verbose=0),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        *(callbacks or []),
    ]
    network.fit(
        data.train_ds,
        validation_data=data.val_ds,
        epochs=data.epochs,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=fit_callbacks,
        verbose=config.verbose,
        shuffle=False,
    )
    if not model_path.exists():  # val_loss was never finite: keep the last weights all the same
        warnings.warn("validation loss never improved (NaN?); saving the last weights", stacklevel=3)
        keras.Model(network.input, network.output, name=network.name).save(model_path)
    return pd.read_csv(run_dir / "history.csv")


def _outcome(history: pd.DataFrame, started: float) -> dict[str, Any]:
    """The finished run's entries of ``params.json``: epochs trained, the best epoch and its score, the duration.

    The best epoch is the lowest ``val_loss``; for the lesion model (which stops on it) the highest
    ``val_malignancy_auc`` (``best_val_malignancy_auc``).
    """
    out: dict[str, Any] = {"status": "finished", "epochs_trained": int(history.notna().any(axis=1).sum())}
    if "val_malignancy_auc" in history:
        aucs = history["val_malignancy_auc"].to_numpy(dtype=float)
        best = int(np.nanargmax(aucs)) if np.isfinite(aucs).any() else len(history) - 1
        out.update(best_epoch=int(history["epoch"].iloc[best]), best_val_malignancy_auc=float(aucs[best]))
    elif "val_loss" in history:
        losses = history["val_loss"].to_numpy(dtype=float)
        best = int(np.nanargmin(losses)) if np.isfinite(losses).any() else len(history) - 1
        out.update(best_epoch=int(history["epoch"].iloc[best]), best_val_loss=float(losses[best]))
    else:
        out.update(best_epoch=int(history["epoch"].iloc[-1]))
    out["duration_s"] = round(time.time() - started, 2)
    return out


def train(
    manifest: pd.DataFrame,
    config: TrainConfig | None = None,
    *,
    callbacks: list[Any] | None = None,
    initial_model: keras.Model | None = None,
    extra_params: dict[str, Any] | None = None,
    findings: pd.DataFrame | None = None,
) -> RunResult:
    """Train a model of :data:`~mammo_utils.models.builders.MODEL_NAMES` on a manifest; write a run directory.

    Parameters
    ----------
    manifest : pandas.DataFrame
        With ``split`` (if it is empty, :func:`~mammo_utils.datasets.splits.split_by_patient` assigns it with
        the config's ``seed``). Needs ``train`` and ``val`` rows; ``test`` rows are cached and recorded, not used.
    config : TrainConfig, optional
        What to train and how (default ``TrainConfig()``). In fast mode at most :data:`FAST_EPOCHS` epochs,
        :data:`FAST_MAX_TRAIN` training and :data:`FAST_MAX_VAL` validation images; for the seed model at most
        :data:`FAST_SEED_STEPS` batches of each per epoch, of at most :data:`FAST_SEED_BATCH` images.
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks for ``fit`` (e.g. a timer); they run after the built-in ones.
    initial_model : keras.Model, optional
        Start from this model (e.g. a loaded run's model, for fine-tuning) instead of building ``config.model``;
        its layers' ``trainable`` flags are kept (freeze a backbone before calling). It is compiled afresh
        with the config's ``learning_rate``, and must match ``config.model`` (an 8-way ``"joint"`` output only
        for ``"seed"``). Not combinable with a ``strategy`` (its variables already exist outside its scope).
    extra_params : dict, optional
        Merged into ``params.json`` (e.g. the parent run of a fine-tuned model).
    findings : pandas.DataFrame, optional
        The findings table (:mod:`mammo_utils.datasets.findings`): teaches the lesion model where to look and what
        it sees; without findings it learns from image labels only. Other models ignore it.

    Returns
    -------
    RunResult
        ``params`` holds :meth:`TrainConfig.to_dict` with the values actually used (fast mode's epochs and batch
        size; ``requested_epochs`` and ``requested_batch_size`` keep the asked-for ones), the data and the outcome.
    """
    config = config if config is not None else TrainConfig()
    if initial_model is not None:
        check_initial_model(initial_model, config.model, int(config.image_size or 0), config.strategy)
    started = time.time()
    deterministic = enable_determinism(config.seed)
    data = _load_data(manifest, config, findings)
    run_dir = Path(config.run_dir) if config.run_dir is not None else _new_run_dir(config.model, data.frame)
    paths.ensure_dir(run_dir)
    network, distribution = _build_network(config, initial_model)
    params = _run_params(config, data, run_dir, network, distribution, deterministic)
    params["initial_model"] = initial_model.name if initial_model is not None else None
    params.update(extra_params or {})
    _write_run_files(run_dir, params, data)
    fit = _fit_lesion if config.model == "lesion" else _fit
    history = fit(network, data, run_dir, config, callbacks)
    params.update(_outcome(history, started))
    write_json(run_dir / "params.json", params)
    if config.point_latest:
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
    from mammo_utils.datasets.catalog import load_findings

    manifest = split_by_patient(load_dataset("synthetic", fast=True, seed=seed), seed=seed)
    config = TrainConfig(model="lesion", fast=True, seed=seed, verbose=verbose)
    return train(manifest, config, findings=load_findings("synthetic", manifest)).run_dir, True
