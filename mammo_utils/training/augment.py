"""Mammogram-safe random augmentation of image batches, from stateless TensorFlow ops.

**No flips.** :func:`~mammo_utils.imaging.standardize.standardize` already puts every breast on the left (chest wall at
the left edge), so a horizontal flip would create images the model never sees at inference, and a vertical flip
would turn an MLO view's pectoral muscle upside down. Augmentation is only small rotations, zoom, translations and
brightness/contrast jitter (:func:`augment_images`). TensorFlow is imported when the function runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

ROTATION_DEGREES = 8.0
ZOOM = 0.10
TRANSLATION = 0.05
BRIGHTNESS = 0.10
CONTRAST = 0.15


def augment_images(
    images: tf.Tensor,
    seed: tf.Tensor,
    rotation: float = ROTATION_DEGREES,
    zoom: float = ZOOM,
    translation: float = TRANSLATION,
    brightness: float = BRIGHTNESS,
    contrast: float = CONTRAST,
) -> tf.Tensor:
    """Mammogram-safe random augmentation of a batch, from stateless ops (same ``seed`` ⇒ same output).

    Per image: rotation by ±``rotation`` degrees about the centre, zoom by a factor in 1 ± ``zoom``,
    translation by ±``translation`` of the width/height (bilinear, zero fill = background), then contrast
    as a gamma in [1/(1+contrast), 1+contrast] and brightness as a gain in 1 ± ``brightness``, clipped to
    [0, 1]. Gamma and gain keep the black background black. No flips (see the module notes).

    Parameters
    ----------
    images : tf.Tensor
        float32 (B, H, W, 1) in [0, 1].
    seed : tf.Tensor
        int shape (2,), a stateless-random seed.
    """
    import tensorflow as tf

    batch = tf.shape(images)[0]
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    uniform = lambda shape, key, low, high: tf.random.stateless_uniform(shape, key, low, high)  # noqa: E731
    angle = uniform([batch], keys[0], -rotation, rotation) * (np.pi / 180.0)
    factor = uniform([batch], keys[1], 1.0 - zoom, 1.0 + zoom)  # > 1 zooms in
    shift = uniform([batch, 2], keys[2], -translation, translation) * tf.stack([width, height])
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_affine_transforms(angle, factor, shift, width, height),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    log_c = float(np.log1p(contrast))
    gamma = tf.exp(uniform([batch], keys[3], -log_c, log_c))[:, None, None, None]
    gain = uniform([batch], keys[4], 1.0 - brightness, 1.0 + brightness)[:, None, None, None]
    return tf.clip_by_value(gain * tf.pow(tf.maximum(warped, 0.0), gamma), 0.0, 1.0)


def _affine_transforms(
    angle: tf.Tensor, factor: tf.Tensor, shift: tf.Tensor, width: tf.Tensor, height: tf.Tensor
) -> tf.Tensor:
    """(B, 8) projective transforms: rotate by ``angle`` about the centre, zoom by ``factor``, shift by ``shift``.

    Output pixel ``p`` samples input ``c + R(angle) (p - c) / factor - shift`` (``c`` the image centre).
    """
    import tensorflow as tf

    cos, sin = tf.cos(angle) / factor, tf.sin(angle) / factor
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    zeros = tf.zeros_like(cos)
    rows = [cos, -sin, cx - cos * cx + sin * cy - shift[:, 0], sin, cos, cy - sin * cx - cos * cy - shift[:, 1]]
    return tf.stack([*rows, zeros, zeros], axis=1)
