"""The settings of a training run: :class:`TrainConfig` (what :func:`mammo_utils.training.train.train` is asked to do).

A config is frozen and checked when it is made, so a bad value fails before any image is read. Change one
setting with :func:`dataclasses.replace` (``replace(config, epochs=5)``). :meth:`TrainConfig.to_dict` is the
JSON form written into the run's ``params.json``.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from mammo_utils.models.builders import DEFAULT_IMAGE_SIZES, MODEL_NAMES
from mammo_utils.models.lesion import LESION_STRIDE

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["MIN_IMAGE_SIZE", "VERBOSITY", "TrainConfig"]

MIN_IMAGE_SIZE = 32  # the smallest square input the models of mammo_utils.models.networks accept
VERBOSITY: tuple[int, ...] = (0, 1, 2)  # Keras' verbose levels: silent, progress bars, one line per epoch


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how (see :func:`mammo_utils.training.train.train`).

    Attributes
    ----------
    model : {"lesion", "whole_image", "seed", "transfer"}
        ``lesion`` (default) learns malignancy from the findings table; the others from image labels only.
    epochs, batch_size : int
        ``batch_size`` is the global batch (split across replicas).
    image_size : int, optional
        Side of the square input (at least :data:`MIN_IMAGE_SIZE`; a multiple of 16 for the lesion model).
        None means the model's default (:data:`~mammo_utils.models.builders.DEFAULT_IMAGE_SIZES`: 384 for the
        lesion model, 224 for the others); the seed's 201,933,704 parameters hold at 224 only.
    seed : int
        Seeds the split, weights, shuffling and augmentation.
    run_dir : path, optional
        Default ``models/runs/<timestamp>_<model>_<source>``.
    strategy : None, "mirrored" or tf.distribute.Strategy
        ``"mirrored"``: ``MirroredStrategy`` over the GPUs, else over all logical CPU devices.
    learning_rate : float
        Adam's initial learning rate (> 0; halved on validation-loss plateaus).
    patience : int
        Early stopping on ``val_loss`` (>= 0); the best weights are restored and checkpointed.
    fast : bool
        Fast mode: few epochs and images (see :data:`mammo_utils.training.train.FAST_EPOCHS` and the limits next to it).
    cache_dir : path, optional
        Image cache (default ``data/cache``, see :func:`~mammo_utils.training.cache.build_cache`).
    verbose : {0, 1, 2}
        0 silent, 1 progress bars (cache and Keras), 2 one line per epoch.
    steps_per_epoch : int, optional
        Batches per epoch (>= 1); the training data then repeats. Default: one pass over the training rows.
    balance : bool
        Inverse-class-frequency sample weights (see :mod:`mammo_utils.training.pipeline`).
    model_kwargs : dict, optional
        Extra arguments for the model builder (e.g. ``{"width": 16}`` or ``{"weights": "imagenet"}``).
    point_latest : bool
        Point ``models/runs/LATEST`` at the run and make it the registry's current version; False for
        candidate runs that must not replace it.

    Raises
    ------
    ValueError
        On an unknown model name or strategy, or a number out of range.
    """

    model: str = "lesion"
    epochs: int = 30
    batch_size: int = 32
    image_size: int | None = None
    seed: int = 42
    run_dir: str | os.PathLike[str] | None = None
    strategy: str | tf.distribute.Strategy | None = None
    learning_rate: float = 1e-3
    patience: int = 5
    fast: bool = False
    cache_dir: str | os.PathLike[str] | None = None
    verbose: int = 1
    steps_per_epoch: int | None = None
    balance: bool = True
    model_kwargs: dict[str, Any] | None = None
    point_latest: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}")
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        size = DEFAULT_IMAGE_SIZES[self.model] if self.image_size is None else self.image_size
        object.__setattr__(self, "image_size", size)
        _check_int("image_size", size, MIN_IMAGE_SIZE)
        if self.model == "lesion" and size % LESION_STRIDE:
            raise ValueError(f"the lesion model needs an image_size that is a multiple of {LESION_STRIDE}, got {size}")
        _check_int("patience", self.patience, 0)
        _check_int("seed", self.seed, None)
        if self.steps_per_epoch is not None:
            _check_int("steps_per_epoch", self.steps_per_epoch, 1)
        if not isinstance(self.learning_rate, numbers.Real) or not math.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate must be a finite number, got {self.learning_rate!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.verbose not in VERBOSITY:
            raise ValueError(f"verbose must be one of {VERBOSITY}, got {self.verbose!r}")
        if isinstance(self.strategy, str) and self.strategy.lower() != "mirrored":
            raise ValueError(f"strategy must be None, 'mirrored' or a tf.distribute.Strategy; got {self.strategy!r}")
        if self.model == "lesion" and self.strategy is not None:
            raise ValueError("the lesion model trains in one process for now; pass strategy=None")
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict or None, got {type(self.model_kwargs).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values: paths as strings, a strategy object as its class name."""
        out = {field.name: getattr(self, field.name) for field in fields(self)}
        for key in ("run_dir", "cache_dir"):
            out[key] = None if out[key] is None else str(out[key])
        if out["strategy"] is not None and not isinstance(out["strategy"], str):
            out["strategy"] = type(out["strategy"]).__name__
        out["model_kwargs"] = dict(self.model_kwargs or {})
        return out


def _check_int(name: str, value: Any, minimum: int | None) -> None:
    """Refuse a non-integer (bools included) or one below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
