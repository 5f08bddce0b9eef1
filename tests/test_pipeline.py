"""Tests for mammo_utils.pipeline: the standardized-image cache, targets and weights, the tf.data dataset."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo_utils import pipeline
from mammo_utils.datasets.schema import make_manifest
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.io import read_mammogram
from mammo_utils.standardize import standardize

SIZE = (64, 64)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return generate_synthetic(out_dir=tmp_path_factory.mktemp("synthetic"), n=24, workers=1)


@pytest.fixture(scope="module")
def cached(manifest: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pipeline.CachedImages:
    return pipeline.build_cache(manifest, tmp_path_factory.mktemp("cache"), size=SIZE, workers=1, progress=False)


def _rows(paths: list[Path], density: list | None = None, pathology: list | None = None) -> pd.DataFrame:
    n = len(paths)
    return make_manifest({"image_path": [str(p) for p in paths], "patient_id": [f"P{i}" for i in range(n)],
                          "density": density or [1 + i % 4 for i in range(n)],
                          "pathology": pathology or ["benign", "malignant"] * (n // 2) + ["benign"] * (n % 2),
                          "source": "synthetic"})


# ------------------------------------------------------------------------------------------------- cache
def test_cache_holds_quantized_standardized_images(manifest: pd.DataFrame, cached: pipeline.CachedImages) -> None:
    images = cached.images()
    assert images.shape == (24, *SIZE, 1) and images.dtype == np.float32
    assert cached.uint8().dtype == np.uint8
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.5
    np.testing.assert_allclose(images * 255, np.round(images * 255), atol=1e-3)  # stored as uint8 levels
    direct = standardize(read_mammogram(manifest["image_path"][5]), size=SIZE).image
    np.testing.assert_allclose(images[5, ..., 0], direct, atol=0.5 / 255 + 1e-6)
    assert cached.n_computed == 24 and cached.n_reused == 0 and not cached.failed
    records = cached.standardization()
    assert len(records) == 24 and records["image_path"].tolist() == manifest["image_path"].tolist()
    assert {"crop_top", "crop_left", "crop_bottom", "crop_right", "flipped"} <= set(records.columns)
    assert (records["crop_bottom"] > records["crop_top"]).all() and records["flipped"].dtype == bool
    subset = manifest.iloc[[7, 2]]  # rows are looked up by path, in the caller's order
    np.testing.assert_array_equal(cached.images(subset), images[[7, 2]])


def test_cache_is_reused_and_redone_for_changed_files(manifest: pd.DataFrame, tmp_path: Path) -> None:
    copies = []
    for source in manifest["image_path"][:3]:
        copies.append(tmp_path / Path(source).name)
        shutil.copy(source, copies[-1])
    rows, cache = _rows(copies), tmp_path / "cache"
    first = pipeline.build_cache(rows, cache, size=SIZE, workers=1, progress=False)
    mtimes = {f: os.stat(f).st_mtime_ns for f in first.records["cache_file"]}
    second = pipeline.build_cache(rows, cache, size=SIZE, workers=1, progress=False)
    assert (first.n_computed, second.n_computed, second.n_reused) == (3, 0, 3)
    assert {f: os.stat(f).st_mtime_ns for f in second.records["cache_file"]} == mtimes
    np.testing.assert_array_equal(first.images(), second.images())
    stat = os.stat(copies[1])
    os.utime(copies[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "edited" file
    third = pipeline.build_cache(rows, cache, size=SIZE, workers=1, progress=False)
    assert (third.n_computed, third.n_reused) == (1, 2)
    assert third.records["cache_file"][1] != first.records["cache_file"][1]
    other_size = pipeline.build_cache(rows, cache, size=(32, 32), workers=1, progress=False)
    assert other_size.n_computed == 3 and other_size.images().shape == (3, 32, 32, 1)


def test_cache_in_worker_processes_matches_in_process(manifest: pd.DataFrame, cached: pipeline.CachedImages,
                                                      tmp_path: Path) -> None:
    parallel = pipeline.build_cache(manifest, tmp_path, size=SIZE, workers=2, progress=False)
    assert parallel.n_computed == len(manifest)
    np.testing.assert_array_equal(parallel.uint8(), cached.uint8())
    pd.testing.assert_frame_equal(parallel.records.drop(columns="cache_file"),
                                  cached.records.drop(columns="cache_file"))


def test_cache_files_are_written_atomically(manifest: pd.DataFrame, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rows = manifest.iloc[:2]
    real_save = np.save

    def crash_midway(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(pipeline.np, "save", crash_midway)
    with pytest.warns(UserWarning, match="disk full"):
        broken = pipeline.build_cache(rows, tmp_path, size=SIZE, workers=1, progress=False, on_error="skip")
    assert len(broken.failed) == 2 and len(broken) == 0
    assert list(tmp_path.iterdir()) == []  # neither partial .npy nor temporary files are left
    monkeypatch.setattr(pipeline.np, "save", real_save)
    good = pipeline.build_cache(rows, tmp_path, size=SIZE, workers=1, progress=False)
    assert good.n_computed == 2
    Path(good.records["cache_file"][0]).with_suffix(".json").unlink()  # an entry without its record is redone
    again = pipeline.build_cache(rows, tmp_path, size=SIZE, workers=1, progress=False)
    assert (again.n_computed, again.n_reused) == (1, 1)
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".npy", ".json")]


def test_unreadable_images_raise_one_clear_error_or_are_skipped(manifest: pd.DataFrame, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    missing = tmp_path / "missing.dcm"
    rows = _rows([Path(manifest["image_path"][0]), broken, missing, Path(manifest["image_path"][1])])
    with pytest.raises(pipeline.CacheBuildError) as info:
        pipeline.build_cache(rows, tmp_path / "cache", size=SIZE, workers=1, progress=False)
    message = str(info.value)
    assert "2 of 4 image(s)" in message and str(broken) in message and str(missing) in message
    assert "on_error='skip'" in message
    with pytest.warns(UserWarning, match="could not be read"):
        kept = pipeline.build_cache(rows, tmp_path / "cache", size=SIZE, workers=1, progress=False,
                                    on_error="skip")
    assert kept.manifest["image_path"].tolist() == [manifest["image_path"][0], manifest["image_path"][1]]
    assert [p for p, _ in kept.failed] == [str(broken), str(missing)]
    assert kept.images().shape == (2, *SIZE, 1) and kept.n_reused == 2
    with pytest.raises(ValueError, match="on_error"):
        pipeline.build_cache(rows, tmp_path / "cache", on_error="ignore")


# --------------------------------------------------------------------------------------- targets, weights
def test_class_weights_are_inverse_frequency() -> None:
    rows = _rows([Path(f"/x/{i}.png") for i in range(8)], density=[1, 1, 1, 1, 1, 1, 2, 3],
                 pathology=["benign"] * 6 + ["malignant"] * 2)
    weights = pipeline.class_weights(rows)
    assert weights["density"] == pytest.approx({0: 8 / 18, 1: 8 / 3, 2: 8 / 3})
    assert weights["malignancy"] == pytest.approx({0: 8 / 12, 1: 2.0})
    joint = pipeline.class_weights(rows, "joint")["joint"]
    assert joint == pytest.approx({0: 8 / 18, 3: 8 / 3, 5: 8 / 3})  # joint = (density - 1) * 2 + malignant
    with pytest.raises(ValueError, match="target"):
        pipeline.class_weights(rows, "density")


def test_missing_labels_are_masked_per_head_or_dropped() -> None:
    rows = _rows([Path(f"/x/{i}.png") for i in range(5)], density=[1, None, 3, None, 2],
                 pathology=["benign", "malignant", None, None, "malignant"])
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
    complete = _rows([Path(f"/x/{i}.png") for i in range(4)])
    assert pipeline.targets_and_weights(complete, "multitask", balance=False)[2] is None


# ------------------------------------------------------------------------------------------------ dataset
def test_multitask_dataset_shapes_dtypes_and_weights(cached: pipeline.CachedImages) -> None:
    import tensorflow as tf

    train = pipeline.make_dataset(cached, batch_size=8, training=True)
    x, y, w = next(iter(train))
    assert x.shape == (8, *SIZE, 1) and x.dtype == tf.float32
    assert y["density"].shape == (8,) and y["density"].dtype == tf.int32
    assert y["malignancy"].shape == (8, 1) and y["malignancy"].dtype == tf.float32
    assert set(w) == {"density", "malignancy"} and w["density"].dtype == tf.float32
    expected = pipeline.class_weights(cached.manifest)["density"]
    assert all(abs(float(wi) - expected[int(c)]) < 1e-6 for wi, c in zip(w["density"], y["density"]))
    assert sum(int(b[0].shape[0]) for b in train) == 24  # 3 full batches
    val = pipeline.make_dataset(cached, batch_size=10)
    batches = list(val)
    assert [len(b) for b in batches] == [2, 2, 2]  # no weights: no balancing, no missing labels
    assert [int(b[0].shape[0]) for b in batches] == [10, 10, 4]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), cached.images())
    np.testing.assert_array_equal(np.concatenate([b[1]["density"] for b in batches]),
                                  cached.manifest["density"].astype(int).to_numpy() - 1)


def test_joint_dataset_for_the_seed(cached: pipeline.CachedImages) -> None:
    x, y, w = next(iter(pipeline.make_dataset(cached, target="joint", batch_size=6, training=True)))
    assert x.shape == (6, *SIZE, 1) and y.shape == (6, 8) and w.shape == (6,)
    np.testing.assert_array_equal(np.sort(np.asarray(y), axis=1)[:, -1], 1.0)
    np.testing.assert_array_equal(np.asarray(y).sum(axis=1), 1.0)
    _, y_val = next(iter(pipeline.make_dataset(cached, target="joint", batch_size=4)))
    expected = [(d - 1) * 2 + (p == "malignant") for d, p in cached.manifest[["density", "pathology"]].values[:4]]
    assert np.asarray(y_val).argmax(axis=1).tolist() == expected


def test_rows_without_labels_are_dropped_with_a_warning(cached: pipeline.CachedImages) -> None:
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


def test_augmentation_changes_training_images_reproducibly(cached: pipeline.CachedImages) -> None:
    plain = cached.images()
    augmented = np.concatenate([b[0] for b in pipeline.make_dataset(cached, batch_size=8, augment=True)])
    assert augmented.shape == plain.shape and 0 <= augmented.min() and augmented.max() <= 1
    assert all(np.abs(a - p).mean() > 1e-3 for a, p in zip(augmented, plain))

    def epochs(seed: int) -> list[np.ndarray]:
        ds = pipeline.make_dataset(cached, batch_size=8, training=True, seed=seed)
        return [np.concatenate([b[0] for b in ds]) for _ in range(2)]

    first, again, other = epochs(3), epochs(3), epochs(4)
    np.testing.assert_array_equal(first[0], again[0])  # same seed, same numbers
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])  # reshuffled and re-augmented each epoch
    assert not np.array_equal(first[0], other[0])


def test_augmentation_never_flips() -> None:
    image = np.full((64, 64), 0.1, dtype=np.float32)
    image[:32, :32] = 0.9  # bright top-left quadrant
    images = np.repeat(image[None], 32, axis=0)
    rows = _rows([Path(f"/x/{i}.png") for i in range(32)])
    for batch in pipeline.make_dataset(images, rows, batch_size=16, training=True, seed=5):
        out = np.asarray(batch[0])[..., 0]
        top_left, top_right = out[:, :32, :32].mean((1, 2)), out[:, :32, 32:].mean((1, 2))
        bottom_left = out[:, 32:, :32].mean((1, 2))
        assert (top_left > top_right + 0.3).all() and (top_left > bottom_left + 0.3).all()


def test_augment_images_without_jitter_is_the_identity() -> None:
    import tensorflow as tf

    images = tf.random.stateless_uniform((3, 40, 48, 1), seed=(1, 2))
    same = pipeline.augment_images(images, tf.constant([7, 8]), rotation=0, zoom=0, translation=0,
                                   brightness=0, contrast=0)
    np.testing.assert_allclose(same, images, atol=1e-6)
    shifted = pipeline.augment_images(images, tf.constant([7, 8]), rotation=0, zoom=0, translation=0.2,
                                      brightness=0, contrast=0)
    assert not np.allclose(shifted, images)


def test_make_dataset_checks_its_inputs(cached: pipeline.CachedImages) -> None:
    with pytest.raises(ValueError, match="N = len"):
        pipeline.make_dataset(np.zeros((3, 8, 8, 1), np.float32), cached.manifest)
    with pytest.raises(ValueError, match="manifest"):
        pipeline.make_dataset(np.zeros((3, 8, 8, 1), np.float32))
    with pytest.raises(KeyError, match="not in this cache"):
        pipeline.make_dataset(cached, _rows([Path("/nowhere/x.png")]))
