"""Every model by name: :data:`MODEL_NAMES`, :func:`build_model` and :func:`compile_model`.

``lesion`` (the default, :mod:`mammo_utils.models.lesion`) learns malignancy from findings; ``whole_image`` (the
compact two-head model trained on image labels only) and ``seed`` (the seed web app's 201,933,704-parameter
network) are its baselines; ``transfer`` puts the heads on a ``keras.applications`` backbone
(:mod:`mammo_utils.models.networks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from mammo_utils.models.lesion import DEFAULT_LESION_SIZE, build_lesion_model, is_lesion_model
from mammo_utils.models.networks import (
    SEED_OUTPUT,
    build_seed_model,
    build_transfer_model,
    build_whole_image_model,
    compile_default,
    compile_seed,
)

__all__ = ["DEFAULT_IMAGE_SIZES", "MODEL_NAMES", "build_model", "compile_model"]

MODEL_NAMES: tuple[str, ...] = ("lesion", "whole_image", "seed", "transfer")
DEFAULT_IMAGE_SIZES: dict[str, int] = {"lesion": DEFAULT_LESION_SIZE, "whole_image": 224, "seed": 224, "transfer": 224}


def build_model(name: str, **kwargs: Any) -> keras.Model:
    """Build ``"lesion"``, ``"whole_image"``, ``"seed"`` or ``"transfer"``; keyword arguments go to its builder."""
    builders: dict[str, Callable[..., keras.Model]] = {
        "lesion": build_lesion_model,
        "whole_image": build_whole_image_model,
        "seed": build_seed_model,
        "transfer": build_transfer_model,
    }
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return builders[name](**kwargs)


def compile_model(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Compile for training on image labels: the seed's 8-way loss, or the two heads' losses.

    A lesion model is returned uncompiled: it trains in stages on sub-models that share its layers
    (:mod:`mammo_utils.training.lesion`), each compiled there.
    """
    if is_lesion_model(model):
        return model
    if SEED_OUTPUT in model.output_names:
        return compile_seed(model, learning_rate)
    return compile_default(model, learning_rate)
