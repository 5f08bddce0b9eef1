"""Tests for mammo_utils.training.pipeline: targets and weights, the tf.data dataset (batches, seeds, augmentation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cached import SIZE, label_rows, synthetic_cache

from mammo_utils.training import cache, pipeline


@pytest.fixture(scope="module")
def cached() -> cache.CachedImages:
    return synthetic_cache()


def test_class_weights_are_inverse_frequency() -> None:
    rows = label_rows(
        [Path(f"/x/{i}.png") for i in range(8)],
        density=[1, 1, 1, 1, 1, 1, 2, 3],
        pathology=["benign"] * 6 + ["malignant"] * 2,
    )
    weights = pipeline.class_weights(rows)
    assert weights["density"] == pytest.approx({0: 8 / 18, 1: 8 / 3, 2: 8 / 3})
    assert weights["malignancy"] == pytest.approx({0: 8 / 12, 1: 2.0})
    joint = pipeline.class_weights(rows, "joint")["joint"]
    assert joint == pytest.approx({0: 8 / 18, 3: 8 / 3, 5: 8 / 3})  # joint = (density - 1) * 2 + malignant
    with pytest.raises(ValueError, match="target"):
        pipeline.class_weights(rows, "density")


def test_missing_labels_are_masked_per_head_or_dropped() -> None:
    rows = label_rows(
        [Path(f"/x/{i}.png") for i in range(5)],
        density=[1, None, 3, None, 2],
        pathology=["benign", "malignant", None, None, "malignant"],
    )
    keep, targets, weights = pipeline.targets_and_weights(rows, "multitask", balance=False)
    assert keep.tolist() == [True, True, True, False, True]
    assert targets["density"].tolist() == [0, 0, 2, 1]  # placeholder 0 where missing
    assert weights["density"].tolist() == [1, 0, 1, 1] and weights["malignancy"].tolist() == [1, 1, 0, 1]
    _, _, balanced = pipeline.targets_and_weights(rows, "multitask", balance=True)
    assert balanced["density"][1] == 0 and balanced["malignancy"][2] == 0
    assert balanced["density"][[0, 2, 3]].mean() == pytest.approx(1.0)
    keep, joint, joint_weights = pipeline.targets_and_weights(rows, "joint")
    assert keep.tolist() == [True, False, False, False, True] and joint_weights is None
    assert joint.argmax(axis=1).tolist() == [0, 3]
    complete = label_rows([Path(f"/x/{i}.png") for i in range(4)])
    assert pipeline.targets_and_weights(complete, "multitask", balance=False)[2] is None


# ------------------------------------------------------------------------------------------------ dataset
def test_multitask_dataset_shapes_dtypes_and_weights(cached: cache.CachedImages) -> None:
    import tensorflow as tf

    train = pipeline.make_dataset(cached, batch_size=8, training=True)
    x, y, w = next(iter(train))
    assert x.shape == (8, *SIZE, 1) and x.dtype == tf.float32
    assert y["density"].shape == (8,) and y["density"].dtype == tf.int32
    assert y["malignancy"].shape == (8, 1) and y["malignancy"].dtype == tf.float32
    assert set(w) == {"density", "malignancy"} and w["density"].dtype == tf.float32
    expected = pipeline.class_weights(cached.manifest)["density"]
    assert all(abs(float(wi) - expected[int(c)]) < 1e-6 for wi, c in zip(w["density"], y["density"], strict=True))
    assert sum(int(b[0].shape[0]) for b in train) == 24  # 3 full batches
    val = pipeline.make_dataset(cached, batch_size=10)
    batches = list(val)
    assert [len(b) for b in batches] == [2, 2, 2]  # no weights: no balancing, no missing labels
    assert [int(b[0].shape[0]) for b in batches] == [10, 10, 4]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), cached.images())
    np.testing.assert_array_equal(
        np.concatenate([b[1]["density"] for b in batches]), cached.manifest["density"].astype(int).to_numpy() - 1
    )


def test_joint_dataset_for_the_seed(cached: cache.CachedImages) -> None:
    x, y, w = next(iter(pipeline.make_dataset(cached, target="joint", batch_size=6, training=True)))
    assert x.shape == (6, *SIZE, 1) and y.shape == (6, 8) and w.shape == (6,)
    np.testing.assert_array_equal(np.sort(np.asarray(y), axis=1)[:, -1], 1.0)
    np.testing.assert_array_equal(np.asarray(y).sum(axis=1), 1.0)
    _, y_val = next(iter(pipeline.make_dataset(cached, target="joint", batch_size=4)))
    expected = [(d - 1) * 2 + (p == "malignant") for d, p in cached.manifest[["density", "pathology"]].values[:4]]
    assert np.asarray(y_val).argmax(axis=1).tolist() == expected


def test_rows_without_labels_are_dropped_with_a_warning(cached: cache.CachedImages) -> None:
    rows = cached.manifest.copy()
    rows["density"] = rows["density"].astype("Int64")
    rows.loc[[0, 1], ["density", "pathology"]] = pd.NA
    rows.loc[2, "density"] = pd.NA
    with pytest.warns(UserWarning, match="2 of 24"):
        ds = pipeline.make_dataset(cached, rows, batch_size=32)
    x, y, w = next(iter(ds))
    assert x.shape[0] == 22 and float(w["density"][0]) == 0.0 and float(w["malignancy"][0]) == 1.0
    with pytest.warns(UserWarning, match="3 of 24"):
        pipeline.make_dataset(cached, rows, target="joint")


def test_augmentation_changes_training_images_reproducibly(cached: cache.CachedImages) -> None:
    plain = cached.images()
    augmented = np.concatenate([b[0] for b in pipeline.make_dataset(cached, batch_size=8, augment=True)])
    assert augmented.shape == plain.shape and augmented.min() >= 0 and augmented.max() <= 1
    assert all(np.abs(a - p).mean() > 1e-3 for a, p in zip(augmented, plain, strict=True))

    def epochs(seed: int) -> list[np.ndarray]:
        ds = pipeline.make_dataset(cached, batch_size=8, training=True, seed=seed)
        return [np.concatenate([b[0] for b in ds]) for _ in range(2)]

    first, again, other = epochs(3), epochs(3), epochs(4)
    np.testing.assert_array_equal(first[0], again[0])  # same seed, same numbers
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])  # reshuffled and re-augmented each epoch
    assert not np.array_equal(first[0], other[0])


def test_augmentation_never_flips_training_batches() -> None:
    image = np.full((64, 64), 0.1, dtype=np.float32)
    image[:32, :32] = 0.9  # bright top-left quadrant
    images = np.repeat(image[None], 32, axis=0)
    rows = label_rows([Path(f"/x/{i}.png") for i in range(32)])
    for batch in pipeline.make_dataset(images, rows, batch_size=16, training=True, seed=5):
        out = np.asarray(batch[0])[..., 0]
        top_left, top_right = out[:, :32, :32].mean((1, 2)), out[:, :32, 32:].mean((1, 2))
        bottom_left = out[:, 32:, :32].mean((1, 2))
        assert (top_left > top_right + 0.3).all() and (top_left > bottom_left + 0.3).all()


def test_make_dataset_checks_its_inputs(cached: cache.CachedImages) -> None:
    with pytest.raises(ValueError, match="N = len"):
        pipeline.make_dataset(np.zeros((3, 8, 8, 1), np.float32), cached.manifest)
    with pytest.raises(ValueError, match="manifest"):
        pipeline.make_dataset(np.zeros((3, 8, 8, 1), np.float32))
    with pytest.raises(KeyError, match="not in this cache"):
        pipeline.make_dataset(cached, label_rows([Path("/nowhere/x.png")]))
