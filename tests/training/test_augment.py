"""Tests for mammo_utils.training.augment: mammogram-safe augmentation (identity without jitter, seeded, no flips)."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_utils.training.augment import augment_images

tf = pytest.importorskip("tensorflow")


def test_augment_images_without_jitter_is_the_identity() -> None:
    images = tf.random.stateless_uniform((3, 40, 48, 1), seed=(1, 2))
    same = augment_images(images, tf.constant([7, 8]), rotation=0, zoom=0, translation=0, brightness=0, contrast=0)
    np.testing.assert_allclose(same, images, atol=1e-6)
    shifted = augment_images(images, tf.constant([7, 8]), rotation=0, zoom=0, translation=0.2, brightness=0, contrast=0)
    assert not np.allclose(shifted, images)


def test_same_seed_same_output_and_values_stay_in_range() -> None:
    images = tf.random.stateless_uniform((4, 32, 32, 1), seed=(3, 4))
    first = augment_images(images, tf.constant([1, 2]))
    np.testing.assert_array_equal(first, augment_images(images, tf.constant([1, 2])))
    assert not np.array_equal(first, augment_images(images, tf.constant([1, 3])))
    assert float(tf.reduce_min(first)) >= 0.0 and float(tf.reduce_max(first)) <= 1.0
    black = augment_images(tf.zeros((2, 32, 32, 1)), tf.constant([5, 6]))
    assert float(tf.reduce_max(black)) == 0.0  # gamma and gain keep the background black


def test_augmentation_never_flips() -> None:
    image = np.full((64, 64), 0.1, dtype=np.float32)
    image[:32, :32] = 0.9  # bright top-left quadrant
    images = tf.constant(np.repeat(image[None, ..., None], 32, axis=0))
    for seed in ([5, 0], [5, 1]):
        out = np.asarray(augment_images(images, tf.constant(seed)))[..., 0]
        top_left, top_right = out[:, :32, :32].mean((1, 2)), out[:, :32, 32:].mean((1, 2))
        bottom_left = out[:, 32:, :32].mean((1, 2))
        assert (top_left > top_right + 0.3).all() and (top_left > bottom_left + 0.3).all()
