"""What a training run sets up before fitting: seeds and deterministic ops, the distribution strategy, a check
of a given starting model, and the descriptions written into the run directory (data counts, package versions)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "check_initial_model",
    "describe",
    "enable_determinism",
    "resolve_strategy",
    "unique_run_dir",
    "versions",
    "write_json",
]


def describe(manifest: pd.DataFrame) -> dict[str, Any]:
    """Images, patients and density / pathology counts per split (``"missing"`` counts absent labels)."""
    out: dict[str, Any] = {}
    for split, group in manifest.groupby(manifest["split"].astype(object).fillna("none"), sort=True):
        density = group["density"].map(lambda v: "missing" if pd.isna(v) else str(int(v)))
        pathology = group["pathology"].map(lambda v: "missing" if pd.isna(v) else str(v))
        out[str(split)] = {
            "n_images": int(len(group)),
            "n_patients": int(group["patient_id"].nunique()),
            "density": {k: int(v) for k, v in density.value_counts().sort_index().items()},
            "pathology": {k: int(v) for k, v in pathology.value_counts().sort_index().items()},
        }
    return out


def versions() -> dict[str, str]:
    """Versions of Python, the main packages, ``mammo_utils`` and the platform."""
    import tensorflow as tf

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "mammo_utils": version("mammo-utils"),
        "scikit-image": version("scikit-image"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": str(os.cpu_count()),
    }


def enable_determinism(seed: int) -> bool:
    """Seed Python, numpy and TensorFlow; switch on deterministic ops. Returns whether that worked."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError) as exc:  # very old TF, or a runtime that refuses it
        warnings.warn(f"deterministic ops unavailable ({exc}); results may vary slightly between runs", stacklevel=3)
        return False
    return True


def resolve_strategy(strategy: str | tf.distribute.Strategy | None) -> tf.distribute.Strategy | None:
    """None, a given strategy, or for ``"mirrored"`` a MirroredStrategy over the GPUs, else all logical CPUs."""
    import tensorflow as tf

    if strategy is None or isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if str(strategy).lower() != "mirrored":
        raise ValueError(f"strategy must be None, 'mirrored' or a tf.distribute.Strategy; got {strategy!r}")
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if gpus:
        return tf.distribute.MirroredStrategy(devices=gpus)
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def check_initial_model(network: keras.Model, model: str, image_size: int, strategy: Any) -> None:
    """Refuse an ``initial_model`` that does not fit the run's model name, image size or strategy."""
    if strategy is not None:
        raise ValueError("initial_model cannot be combined with a distribution strategy; pass strategy=None")
    if not isinstance(network, keras.Model):
        raise TypeError(f"initial_model must be a keras.Model, got {type(network).__name__}")
    is_seed = "joint" in network.output_names
    if is_seed != (model == "seed"):
        raise ValueError(
            f"initial_model {network.name!r} has {'the seed' if is_seed else 'a two-head'} output "
            f"but model={model!r}; pass the model name the initial model was built as"
        )
    shape = tuple(network.input_shape[1:3])
    if shape != (image_size, image_size):
        raise ValueError(
            f"initial_model takes {shape[0]}x{shape[1]} images but image_size={image_size}; "
            "pass the image_size it was trained with"
        )


def unique_run_dir(parent: Path, label: str) -> Path:
    """``parent / "<YYYYmmdd-HHMMSS>_<label>"``, with ``-2``, ``-3`` ... appended while that name exists."""
    base = f"{time.strftime('%Y%m%d-%H%M%S')}_{label}".replace(os.sep, "-")
    run_dir, n = parent / base, 1
    while run_dir.exists():
        n += 1
        run_dir = parent / f"{base}-{n}"
    return run_dir


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON atomically (temporary file in the same folder, then ``os.replace``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
