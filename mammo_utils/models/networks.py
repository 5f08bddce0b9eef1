"""Keras models: the seed's 8-way network, the compact whole-image multi-task model, and a transfer-learning option.

The lesion-supervised default lives in :mod:`mammo_utils.models.lesion`; :mod:`mammo_utils.models.builders` builds
any of them by name.

Every model takes one input named ``"image"``: float32, shape ``(H, W, 1)``, values in [0, 1] (the output of
``standardize``). Every model has a layer named :data:`LAST_CONV_LAYER` whose output is the last spatial feature
map, for Grad-CAM.

Outputs, targets and the names Keras writes into ``History.history``
--------------------------------------------------------------------
* ``whole_image`` and ``transfer`` (compiled with :func:`compile_default`): a dict
  ``{"density": (N, 4) softmax, "malignancy": (N, 1) sigmoid}``. Targets: ``density`` = class index 0–3
  (BI-RADS density − 1), ``malignancy`` = 0/1. History keys (:data:`DEFAULT_HISTORY_KEYS`): ``loss`` (the sum),
  ``density_loss``, ``malignancy_loss``, ``density_accuracy``, ``malignancy_auc``, ``malignancy_accuracy``,
  and the same with a ``val_`` prefix.
* ``seed`` (compiled with :func:`compile_seed`): one output ``"joint"``, (N, 8) softmax over the joint index
  ``(density - 1) * 2 + malignant`` (see :mod:`mammo_utils.labels`); target = one-hot of that index.
  History keys (:data:`SEED_HISTORY_KEYS`): ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``.

Only built-in Keras layers are used (no ``Lambda``, no custom classes), so ``.keras`` files load with
``safe_mode=True`` in a fresh process without ``custom_objects``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from mammo_utils.labels import N_JOINT

LAST_CONV_LAYER = "last_conv"
BACKBONE_LAYER = "backbone"
INPUT_NAME = "image"
DENSITY_OUTPUT = "density"
MALIGNANCY_OUTPUT = "malignancy"
SEED_OUTPUT = "joint"
DEFAULT_HISTORY_KEYS: tuple[str, ...] = (
    "loss",
    "density_loss",
    "malignancy_loss",
    "density_accuracy",
    "malignancy_auc",
    "malignancy_accuracy",
)
SEED_HISTORY_KEYS: tuple[str, ...] = ("loss", "accuracy")
# BatchNorm moving-average momentum of the default model: 0.9 rather than Keras's 0.99, so the inference-mode
# statistics settle within the few dozen steps of an epoch on small data (with 0.99, validation outputs stay
# near-constant for the first epochs).
BN_MOMENTUM = 0.9
SEED_TOTAL_PARAMS = 201_933_704
SEED_TRAINABLE_PARAMS = 201_933_064


class PretrainedWeightsError(RuntimeError):
    """Raised when pretrained (ImageNet) backbone weights cannot be obtained, typically offline."""


# --------------------------------------------------------------------------------------------- the seed model
def build_seed_model(
    input_shape: tuple[int, int, int] = (224, 224, 1),
    conv_dropout: float = 0.25,
    dense_dropout: float = 0.5,
) -> keras.Model:
    """The seed web app's network, layer for layer (201,933,704 parameters at 224×224×1).

    Pooling is 2×2 with stride 1 and "valid" padding (224 → 223 → 222), which is what makes the Flatten
    3,154,176 wide and the first Dense layer 201,867,328 parameters. The dropout rates are not recoverable
    from the seed's README (its summary shows no rates); 0.25 after conv blocks and 0.5 after dense layers
    are the common Keras-example choices.

    Parameters
    ----------
    input_shape : tuple of int
        ``(H, W, 1)``; the parameter count above holds for 224×224×1 only.
    conv_dropout, dense_dropout : float
        Dropout rates after the convolutional and the dense blocks.

    Returns
    -------
    keras.Model
        Uncompiled; output ``"joint"`` is an 8-way softmax (see :func:`compile_seed`).
    """
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2d")(inputs)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2d_1")(x)
    x = layers.BatchNormalization(name="batch_normalization")(x)
    x = layers.MaxPooling2D(pool_size=2, strides=1, padding="valid", name="max_pooling2d")(x)
    x = layers.Dropout(conv_dropout, name="dropout")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name=LAST_CONV_LAYER)(x)
    x = layers.BatchNormalization(name="batch_normalization_1")(x)
    x = layers.MaxPooling2D(pool_size=2, strides=1, padding="valid", name="max_pooling2d_1")(x)
    x = layers.Dropout(conv_dropout, name="dropout_1")(x)
    x = layers.Dropout(conv_dropout, name="dropout_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.BatchNormalization(name="batch_normalization_2")(x)
    x = layers.Dropout(dense_dropout, name="dropout_3")(x)
    x = layers.Dense(128, activation="relu", name="dense_1")(x)
    x = layers.BatchNormalization(name="batch_normalization_3")(x)
    x = layers.Dropout(dense_dropout, name="dropout_4")(x)
    outputs = layers.Dense(N_JOINT, activation="softmax", name=SEED_OUTPUT)(x)
    return keras.Model(inputs, outputs, name="seed")


def compile_seed(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Compile the seed model as the seed did: Adam, categorical cross-entropy on one-hot joint labels, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# ------------------------------------------------------------------------------------- the whole-image model
def separable_unit(x: Any, filters: int, strides: int, activation: str, name: str) -> Any:
    """Depthwise 3×3 → BN → act → pointwise 1×1 → BN → act, with a residual add when shapes allow.

    The building block of the whole-image model and of the lesion model (:mod:`mammo_utils.models.lesion`); its
    layers are named ``<name>_dw``, ``_dw_bn``, ``_dw_act``, ``_pw``, ``_pw_bn``, ``_pw_act`` (and ``_add``).
    """
    shortcut = x
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.Activation(activation, name=f"{name}_dw_act")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pw_bn")(x)
    x = layers.Activation(activation, name=f"{name}_pw_act")(x)
    if strides == 1 and shortcut.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def build_whole_image_model(
    input_shape: tuple[int, int, int] = (224, 224, 1),
    width: int = 32,
    dropout: float = 0.2,
    activation: str = "silu",
) -> keras.Model:
    """Compact multi-task CNN: a shared backbone, a density head and a malignancy head.

    Stem: 3×3 conv, stride 2. Then four stages, each a strided depthwise-separable unit followed by a residual
    one, with ``2w, 4w, 8w, 12w`` channels (``w = width``); a 1×1 conv to ``16w`` channels named
    :data:`LAST_CONV_LAYER` (its activated output, 1/32 of the input size, e.g. 7×7, feeds Grad-CAM); global
    average pooling; dropout; two heads. About 0.6 M parameters at ``width=32`` (0.3 % of the seed).
    No in-model rescaling: the input is already in [0, 1] and the stem's BatchNorm normalizes it.

    Parameters
    ----------
    input_shape : tuple of int
        ``(H, W, 1)``; any size ≥ 32 works (global pooling).
    width : int
        Channel multiplier ``w``.
    dropout : float
        Dropout rate before the heads.
    activation : str
        Keras activation name for the conv blocks.

    Returns
    -------
    keras.Model
        Uncompiled; outputs ``{"density": (N, 4), "malignancy": (N, 1)}`` (see :func:`compile_default`).
    """
    if width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_act")(x)
    for stage, multiplier in enumerate((2, 4, 8, 12), start=1):
        x = separable_unit(x, width * multiplier, 2, activation, f"stage{stage}_down")
        x = separable_unit(x, width * multiplier, 1, activation, f"stage{stage}_res")
    x = layers.Conv2D(width * 16, 1, use_bias=False, name=f"{LAST_CONV_LAYER}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{LAST_CONV_LAYER}_bn")(x)
    x = layers.Activation(activation, name=LAST_CONV_LAYER)(x)
    return _with_heads(inputs, x, dropout, name="whole_image")


def _with_heads(inputs: Any, features: Any, dropout: float, name: str) -> keras.Model:
    """Density from global *average* pooling (a whole-breast property); malignancy from average + *max* pooling,
    so one small finding is not averaged away over the breast."""
    average = layers.GlobalAveragePooling2D(name="gap")(features)
    peak = layers.GlobalMaxPooling2D(name="gmp")(features)
    x = layers.Dropout(dropout, name="head_dropout")(average)
    lesion = layers.Dropout(dropout, name="lesion_dropout")(layers.Concatenate(name="gap_gmp")([average, peak]))
    density = layers.Dense(4, activation="softmax", name=DENSITY_OUTPUT)(x)
    malignancy = layers.Dense(1, activation="sigmoid", name=MALIGNANCY_OUTPUT)(lesion)
    return keras.Model(inputs, {DENSITY_OUTPUT: density, MALIGNANCY_OUTPUT: malignancy}, name=name)


def compile_default(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Compile a two-head model: Adam, summed loss (weights 1, 1), density accuracy, malignancy AUC + accuracy.

    ``density`` uses sparse categorical cross-entropy (targets 0–3), ``malignancy`` binary cross-entropy.
    The history keys are :data:`DEFAULT_HISTORY_KEYS` (plus ``val_`` versions).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss={DENSITY_OUTPUT: "sparse_categorical_crossentropy", MALIGNANCY_OUTPUT: "binary_crossentropy"},
        loss_weights={DENSITY_OUTPUT: 1.0, MALIGNANCY_OUTPUT: 1.0},
        metrics={
            DENSITY_OUTPUT: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            MALIGNANCY_OUTPUT: [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
        },
    )
    return model


# ----------------------------------------------------------------------------------------- the transfer model
# name -> (constructor, preprocessing the backbone expects from a [0, 1] image)
_BACKBONES: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "efficientnetb0": (keras.applications.EfficientNetB0, "0_255"),
    "efficientnetv2b0": (keras.applications.EfficientNetV2B0, "0_255"),
    "mobilenetv3small": (keras.applications.MobileNetV3Small, "0_255"),
    "mobilenetv3large": (keras.applications.MobileNetV3Large, "0_255"),
    "mobilenetv2": (keras.applications.MobileNetV2, "minus1_1"),
    "resnet50": (keras.applications.ResNet50, "caffe"),
}
BACKBONES: tuple[str, ...] = tuple(_BACKBONES)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _preprocess(x: Any, mode: str) -> Any:
    if mode == "0_255":  # EfficientNet / MobileNetV3 rescale 0-255 input themselves
        return layers.Rescaling(255.0, name="to_backbone_range")(x)
    if mode == "minus1_1":
        return layers.Rescaling(2.0, offset=-1.0, name="to_backbone_range")(x)
    x = layers.Rescaling(255.0, name="to_backbone_range")(x)  # caffe: 0-255 BGR minus ImageNet mean
    return layers.Normalization(mean=list(_CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name="caffe_mean")(x)


def _backbone(
    constructor: Callable[..., keras.Model], key: str, weights: str | None, rgb_shape: tuple[int, int, int]
) -> keras.Model:
    """The headless backbone named :data:`BACKBONE_LAYER`; a failed weights download is a PretrainedWeightsError."""
    try:
        return constructor(include_top=False, weights=weights, input_shape=rgb_shape, name=BACKBONE_LAYER)
    except (ValueError, TypeError):
        raise
    except Exception as exc:  # keras.utils.get_file raises a bare Exception("URL fetch failure ...")
        if weights is None:
            raise
        raise PretrainedWeightsError(
            f"could not get {weights!r} weights for {key}: {exc}. ImageNet weights need internet "
            f"(they are downloaded once to ~/.keras/models); use weights=None to build the model offline."
        ) from exc


def build_transfer_model(
    backbone: str = "efficientnetb0",
    weights: str | None = None,
    input_shape: tuple[int, int, int] = (224, 224, 1),
    train_backbone: bool = False,
    dropout: float = 0.2,
) -> keras.Model:
    """A ``keras.applications`` backbone (sub-model named ``"backbone"``) with the density and malignancy heads.

    The grey image is repeated to 3 channels (``Concatenate``) and scaled to the range the backbone expects
    (0–255 for EfficientNet/MobileNetV3, which normalize internally; [-1, 1] for MobileNetV2; caffe mean
    subtraction for ResNet50), all inside the model with serializable built-in layers.

    Parameters
    ----------
    backbone : str
        One of :data:`BACKBONES`.
    weights : {None, "imagenet"} or str
        ``None`` (random init, works offline) or ``"imagenet"`` (downloaded once to ``~/.keras/models``;
        needs internet) or a path to a weights file.
    input_shape : tuple of int
        ``(H, W, 1)``.
    train_backbone : bool
        If False the backbone is frozen; if True it is trainable with its BatchNorm layers kept frozen
        (see :func:`set_backbone_trainable`).
    dropout : float
        Dropout rate before the heads.

    Raises
    ------
    ValueError
        Unknown backbone or input that is not single-channel.
    PretrainedWeightsError
        The pretrained weights could not be downloaded (e.g. offline).
    """
    key = backbone.lower().replace("_", "").replace("-", "")
    if key not in _BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if len(input_shape) != 3 or input_shape[-1] != 1:
        raise ValueError(f"input_shape must be (H, W, 1) for grey mammograms, got {input_shape!r}")
    constructor, mode = _BACKBONES[key]
    base = _backbone(constructor, key, weights, (input_shape[0], input_shape[1], 3))
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    x = layers.Concatenate(axis=-1, name="grey_to_rgb")([inputs, inputs, inputs])
    x = _preprocess(x, mode)
    x = base(x)
    features = layers.Identity(name=LAST_CONV_LAYER)(x)
    model = _with_heads(inputs, features, dropout, name=f"transfer_{key}")
    set_backbone_trainable(model, train_backbone)
    return model


def set_backbone_trainable(model: keras.Model, trainable: bool, top_n_layers: int | None = None) -> keras.Model:
    """Freeze or unfreeze the ``"backbone"`` sub-model of a transfer model (in place; recompile afterwards).

    When unfreezing, BatchNormalization layers stay frozen: in Keras 3 a non-trainable BatchNorm runs in
    inference mode, so its ImageNet moving statistics are not wrecked by small fine-tuning batches.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_transfer_model`.
    trainable : bool
        False freezes the whole backbone.
    top_n_layers : int, optional
        With ``trainable=True``, unfreeze only the last ``top_n_layers`` layers of the backbone (None = all).
    """
    try:
        base = model.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no {BACKBONE_LAYER!r} sub-model (not a transfer model)") from None
    if not trainable:
        base.trainable = False
        return model
    if top_n_layers is not None and top_n_layers < 0:
        raise ValueError(f"top_n_layers must be >= 0 or None, got {top_n_layers!r}")
    base.trainable = True
    first = 0 if top_n_layers is None else max(0, len(base.layers) - top_n_layers)
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= first and not isinstance(layer, layers.BatchNormalization)
    return model


# ------------------------------------------------------------------------------------ joint ↔ marginal probs
def joint_probabilities(density_probs: np.ndarray, malignancy_prob: np.ndarray) -> np.ndarray:
    """The seed's 8-way joint distribution from the two heads, assuming they are independent.

    ``joint[:, (d - 1) * 2 + m] = P(density = d) * P(malignant = m)``; rows sum to 1.

    Parameters
    ----------
    density_probs : np.ndarray
        (N, 4), rows summing to 1.
    malignancy_prob : np.ndarray
        (N,) or (N, 1), probabilities of malignancy in [0, 1].

    Returns
    -------
    np.ndarray
        (N, 8) float64.
    """
    density = np.asarray(density_probs, dtype=np.float64)
    malignant = np.asarray(malignancy_prob, dtype=np.float64)
    if density.ndim != 2 or density.shape[1] != 4:
        raise ValueError(f"density_probs must have shape (N, 4), got {density.shape}")
    if malignant.shape not in {(density.shape[0],), (density.shape[0], 1)}:
        raise ValueError(f"malignancy_prob must have shape (N,) or (N, 1), N={len(density)}; got {malignant.shape}")
    malignant = malignant.reshape(-1)
    if np.any(density < 0) or not np.allclose(density.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("density_probs rows must be non-negative and sum to 1")
    if np.any((malignant < 0) | (malignant > 1)):
        raise ValueError("malignancy_prob must be in [0, 1]")
    density = density / density.sum(axis=1, keepdims=True)
    joint = np.stack([density * (1.0 - malignant)[:, None], density * malignant[:, None]], axis=-1)
    return joint.reshape(len(density), N_JOINT)


def marginals_from_joint(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density (N, 4) and malignancy (N,) marginals of an 8-way joint distribution (e.g. the seed's output).

    Rows are renormalized to sum to 1 first.
    """
    probs = np.asarray(joint, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != N_JOINT:
        raise ValueError(f"joint must have shape (N, {N_JOINT}), got {probs.shape}")
    totals = probs.sum(axis=1, keepdims=True)
    if np.any(probs < 0) or np.any(totals <= 0):
        raise ValueError("joint probabilities must be non-negative with positive row sums")
    pairs = (probs / totals).reshape(len(probs), 4, 2)
    return pairs.sum(axis=2), pairs[:, :, 1].sum(axis=1)


# ----------------------------------------------------------------------------------------- save, load, misc
def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save a model in the ``.keras`` format (parent folders are created); return the path."""
    target = Path(path)
    if target.suffix != ".keras":
        raise ValueError(f"model files use the .keras format; got {target.name!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    return target


def load_model(path: str | os.PathLike, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` model with ``safe_mode=True`` (no custom objects needed)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no model file at {source}; train one first (notebooks/02_train.ipynb)")
    return keras.saving.load_model(source, compile=compile, safe_mode=True)


def count_params(model: keras.Model) -> dict[str, int]:
    """Parameter counts: ``{"total", "trainable", "non_trainable"}``."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}
