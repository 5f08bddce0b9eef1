"""The lesion-supervised default model: where the finding is, what it is, pooled to the image's malignancy.

The field's way (Shen et al. 2019; GMIC, Shen et al. 2021): a fully convolutional lesion trunk turns the
standardized breast into a grid of cells at 1/16 of the input (24 × 24 at the default 384 × 384, one cell per 16
input pixels), and two 1 × 1 heads read every cell:

* **where**: a finding logit per cell. Its sigmoid is the cell's finding probability; its softmax over all cells
  is the **attention** (where the model looks, summing to 1 over the image);
* **what**: the cell's malignant probability, were a finding there.

The image's malignancy probability is the attention-weighted mean of the cells' malignant probabilities, so the
score comes from the place the model found (GMIC's retrieve-then-classify, in one pass and built-in layers only).
The **lesion map** output has per cell (background, benign, malignant) = (1 − f, f·(1 − m), f·m), with f the
finding and m the malignant probability. Trained on whole images (:mod:`mammo_utils.training.lesion`): attention and
finding probability against the findings table, the cells' malignancy against their finding's pathology, the image
score and density against image labels; images without findings train on image labels only.

Density is a whole-breast property and has its own small branch: the input averaged down 2× (192 × 192), a stem
and three separable stages, attention pooling (a softmax over the cells of a learned 1 × 1 score, so the average can
keep to the breast: density is a share of the breast, not of the image), a 4-way softmax. It shares no weights
with the lesion branch, so the density loss cannot crowd out the lesion losses (the whole-image model's problem: its
summed loss was dominated by density and malignancy stayed at chance).

Outputs ``{"density": (N, 4), "malignancy": (N, 1), "lesion_map": (N, H/16, W/16, 3)}``; the layer named
:data:`~mammo_utils.models.networks.LAST_CONV_LAYER` is the lesion branch's last feature map, so Grad-CAM works as
for every other model (the density head's Grad-CAM explains :data:`DENSITY_FEATURES`). Only built-in layers, so the
``.keras`` file loads with ``safe_mode=True``. :func:`training_model` exposes the attention and the per-cell heads
for training.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from mammo_utils.models.networks import (
    BN_MOMENTUM,
    DENSITY_OUTPUT,
    INPUT_NAME,
    LAST_CONV_LAYER,
    MALIGNANCY_OUTPUT,
    separable_unit,
)

__all__ = [
    "DEFAULT_LESION_SIZE",
    "DENSITY_FEATURES",
    "LESION_CLASSES",
    "LESION_OUTPUT",
    "LESION_STRIDE",
    "LESION_TRUNK",
    "ATTENTION",
    "CELL_MALIGNANCY",
    "FINDING_PROBABILITY",
    "build_lesion_model",
    "density_model",
    "is_lesion_model",
    "training_model",
]

LESION_OUTPUT = "lesion_map"
LESION_CLASSES: tuple[str, ...] = ("background", "benign", "malignant")
LESION_STRIDE = 16  # input pixels per lesion-map cell
DEFAULT_LESION_SIZE = 384  # default square input: 1.7x the seed's 224, a 24 x 24 lesion map
LESION_TRUNK = "lesion_trunk"
DENSITY_FEATURES = "density_features"  # the density branch's last feature map
ATTENTION = "attention"  # softmax of the finding logits over all cells: (N, cells)
FINDING_PROBABILITY = "finding_probability"  # sigmoid of the finding logit per cell: (N, H/16, W/16, 1)
CELL_MALIGNANCY = "cell_malignancy"  # malignant probability per cell, were a finding there: (N, H/16, W/16, 1)
_LESION_DROPOUT = "lesion_dropout"
_DENSITY_INPUT = "density_pool"


def _conv(x: Any, filters: int, strides: int, activation: str, name: str) -> Any:
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_act")(x)


def _lesion_trunk(width: int, activation: str, stem: str) -> keras.Model:
    """Stride-16 fully convolutional trunk, any input size (a nested model: fine-tuning freezes it as one backbone)."""
    inputs = keras.Input(shape=(None, None, 1), name="lesion_input")
    if stem == "patch":  # 4 x 4 patches, stride 4, straight to 1/4: no full-resolution feature maps
        x = layers.Conv2D(2 * width, 4, strides=4, use_bias=False, name="lesion_stem_conv")(inputs)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="lesion_stem_bn")(x)
        x = layers.Activation(activation, name="lesion_stem_act")(x)
    else:  # two 3 x 3 stride-2 convolutions
        x = _conv(inputs, width, 2, activation, "lesion_stem")  # 1/2
        x = _conv(x, 2 * width, 2, activation, "lesion_s1")  # 1/4
    x = separable_unit(x, 2 * width, 1, activation, "lesion_s1_res")
    for stage, multiplier in ((2, 4), (3, 8)):  # 1/8, 1/16
        x = separable_unit(x, width * multiplier, 2, activation, f"lesion_s{stage}_down")
        x = separable_unit(x, width * multiplier, 1, activation, f"lesion_s{stage}_res")
    x = separable_unit(x, width * 8, 1, activation, "lesion_s4_res")
    x = layers.Conv2D(width * 8, 1, use_bias=False, name="lesion_top_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="lesion_top_bn")(x)
    x = layers.Activation(activation, name="lesion_top_act")(x)
    return keras.Model(inputs, x, name=LESION_TRUNK)


def _density_branch(inputs: Any, width: int, pool: int, dropout: float, activation: str) -> Any:
    """The input averaged down ``pool``×, a stem and three separable stages, attention pooling → softmax."""
    x = layers.AveragePooling2D(pool, name=_DENSITY_INPUT)(inputs) if pool > 1 else inputs
    x = _conv(x, width, 2, activation, "density_stem")
    for stage, multiplier in enumerate((2, 4, 6), start=1):
        x = separable_unit(x, width * multiplier, 2, activation, f"density_s{stage}_down")
        x = separable_unit(x, width * multiplier, 1, activation, f"density_s{stage}_res")
    x = layers.Identity(name=DENSITY_FEATURES)(x)  # what Grad-CAM of the density head explains
    rows, cols, channels = x.shape[1:]
    cells = int(rows) * int(cols)
    # attention pooling: a learned weight per cell (softmax over the cells) instead of a plain average, so the
    # head can average over the breast alone, as BI-RADS density is a share of the breast, not of the image
    where = layers.Reshape((cells,), name="density_where_cells")(layers.Conv2D(1, 1, name="density_where")(x))
    weights = layers.Softmax(name="density_attention")(where)
    x = layers.Dot(axes=1, name="density_pool_cells")([weights, layers.Reshape((cells, int(channels)))(x)])
    x = layers.Dropout(dropout, name="density_dropout")(x)
    return layers.Dense(4, activation="softmax", name=DENSITY_OUTPUT)(x)


def build_lesion_model(
    input_shape: tuple[int, int, int] = (DEFAULT_LESION_SIZE, DEFAULT_LESION_SIZE, 1),
    width: int = 16,
    density_width: int = 16,
    density_pool: int = 2,
    dropout: float = 0.2,
    activation: str = "silu",
    stem: str = "patch",
) -> keras.Model:
    """The lesion-supervised two-task model (about 0.1 M parameters at the defaults, 0.05 % of the seed's).

    Parameters
    ----------
    input_shape : tuple of int
        ``(H, W, 1)``; H and W multiples of 16 (the lesion map's stride) and at least 64.
    width, density_width : int
        Channel multipliers of the lesion and the density branch.
    density_pool : int
        The density branch sees the input averaged down this many times (2: 192 × 192 at the default size).
    dropout : float
        Dropout before each head.
    activation : str
        Keras activation of the conv blocks.
    stem : {"patch", "conv"}
        To 1/4 of the input: one 4 × 4 stride-4 convolution ("patch", default: 28 s instead of 41 s per epoch at
        320 × 320 on 2 CPU cores) or two 3 × 3 stride-2 convolutions ("conv", the earlier design).

    Returns
    -------
    keras.Model
        Uncompiled; outputs ``{"density", "malignancy", "lesion_map"}`` (see the module docstring).
    """
    height, width_px, channels = input_shape
    if channels != 1 or height % LESION_STRIDE or width_px % LESION_STRIDE or min(height, width_px) < 64:
        raise ValueError(
            f"input_shape must be (H, W, 1) with H and W multiples of {LESION_STRIDE} and at least 64, "
            f"got {input_shape!r}"
        )
    if width < 1 or density_width < 1:
        raise ValueError(f"width and density_width must be positive integers, got {width!r}, {density_width!r}")
    if stem not in ("patch", "conv"):
        raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
    inputs = keras.Input(shape=input_shape, name=INPUT_NAME)
    features = layers.Identity(name=LAST_CONV_LAYER)(_lesion_trunk(width, activation, stem)(inputs))
    features = layers.Dropout(dropout, name=_LESION_DROPOUT)(features)
    cells = (height // LESION_STRIDE) * (width_px // LESION_STRIDE)
    logit = layers.Conv2D(1, 1, name="finding_logit")(features)
    finding = layers.Activation("sigmoid", name=FINDING_PROBABILITY)(logit)
    attention = layers.Softmax(name=ATTENTION)(layers.Reshape((cells,), name="finding_logits")(logit))
    malignant = layers.Conv2D(1, 1, activation="sigmoid", name=CELL_MALIGNANCY)(features)
    flat = layers.Reshape((cells,), name="cell_malignancy_cells")(malignant)
    malignancy = layers.Dot(axes=1, name=MALIGNANCY_OUTPUT)([attention, flat])
    background = layers.Rescaling(-1.0, offset=1.0, name="background_probability")(finding)
    benign_share = layers.Rescaling(-1.0, offset=1.0, name="cell_benignity")(malignant)
    benign = layers.Multiply(name="benign_probability")([finding, benign_share])
    malignant_cells = layers.Multiply(name="malignant_probability")([finding, malignant])
    lesion_map = layers.Concatenate(name=LESION_OUTPUT)([background, benign, malignant_cells])
    density = _density_branch(inputs, density_width, density_pool, dropout, activation)
    outputs = {DENSITY_OUTPUT: density, MALIGNANCY_OUTPUT: malignancy, LESION_OUTPUT: lesion_map}
    return keras.Model(inputs, outputs, name="lesion")


def is_lesion_model(model: keras.Model) -> bool:
    """True if ``model`` has a ``lesion_map`` output (a :func:`build_lesion_model` model)."""
    return LESION_OUTPUT in getattr(model, "output_names", ())


def density_model(model: keras.Model) -> keras.Model:
    """Image → density: the density branch of ``model`` alone (shared layers and weights)."""
    if not is_lesion_model(model):
        raise ValueError(f"model {model.name!r} has no {LESION_OUTPUT!r} output (not a lesion model)")
    return keras.Model(model.input, model.get_layer(DENSITY_OUTPUT).output, name="lesion_density")


def training_model(model: keras.Model) -> keras.Model:
    """Image → density, malignancy, attention, finding probability and cell malignancy (shared layers): for training.

    ``attention`` is ``(N, cells)``; ``finding_probability`` and ``cell_malignancy`` are ``(N, H/16, W/16, 1)``.
    """
    if not is_lesion_model(model):
        raise ValueError(f"model {model.name!r} has no {LESION_OUTPUT!r} output (not a lesion model)")
    names = (DENSITY_OUTPUT, MALIGNANCY_OUTPUT, ATTENTION, FINDING_PROBABILITY, CELL_MALIGNANCY)
    return keras.Model(model.input, {name: model.get_layer(name).output for name in names}, name="lesion_training")
