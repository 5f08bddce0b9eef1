"""Tests for mammo_utils.training.cache: the standardized-image cache.

Quantization, reuse, workers, atomic files, errors.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cached import SIZE, label_rows, synthetic_cache, synthetic_manifest

from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.standardize import standardize
from mammo_utils.training import cache


@pytest.fixture(scope="module")
def manifest() -> pd.DataFrame:
    return synthetic_manifest()


@pytest.fixture(scope="module")
def cached() -> cache.CachedImages:
    return synthetic_cache()


def test_cache_holds_quantized_standardized_images(manifest: pd.DataFrame, cached: cache.CachedImages) -> None:
    images = cached.images()
    assert images.shape == (24, *SIZE, 1) and images.dtype == np.float32
    assert cached.uint8().dtype == np.uint8
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.5
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
    rows, folder = label_rows(copies), tmp_path / "cache"
    first = cache.build_cache(rows, folder, size=SIZE, workers=1, progress=False)
    mtimes = {f: os.stat(f).st_mtime_ns for f in first.records["cache_file"]}
    second = cache.build_cache(rows, folder, size=SIZE, workers=1, progress=False)
    assert (first.n_computed, second.n_computed, second.n_reused) == (3, 0, 3)
    assert {f: os.stat(f).st_mtime_ns for f in second.records["cache_file"]} == mtimes
    np.testing.assert_array_equal(first.images(), second.images())
    stat = os.stat(copies[1])
    os.utime(copies[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "edited" file
    third = cache.build_cache(rows, folder, size=SIZE, workers=1, progress=False)
    assert (third.n_computed, third.n_reused) == (1, 2)
    assert third.records["cache_file"][1] != first.records["cache_file"][1]
    other_size = cache.build_cache(rows, folder, size=(32, 32), workers=1, progress=False)
    assert other_size.n_computed == 3 and other_size.images().shape == (3, 32, 32, 1)


def test_cache_in_worker_processes_matches_in_process(
    manifest: pd.DataFrame, cached: cache.CachedImages, tmp_path: Path
) -> None:
    parallel = cache.build_cache(manifest, tmp_path, size=SIZE, workers=2, progress=False)
    assert parallel.n_computed == len(manifest)
    np.testing.assert_array_equal(parallel.uint8(), cached.uint8())
    pd.testing.assert_frame_equal(
        parallel.records.drop(columns="cache_file"), cached.records.drop(columns="cache_file")
    )


def test_cache_files_are_written_atomically(
    manifest: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = manifest.iloc[:2]

    def crash_midway(handle, array, allow_pickle=False):
        handle.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(cache.np, "save", crash_midway)
    with pytest.warns(UserWarning, match="disk full"):
        broken = cache.build_cache(rows, tmp_path, size=SIZE, workers=1, progress=False, on_error="skip")
    assert len(broken.failed) == 2 and len(broken) == 0
    assert list(tmp_path.iterdir()) == []  # neither partial .npy nor temporary files are left
    monkeypatch.undo()
    good = cache.build_cache(rows, tmp_path, size=SIZE, workers=1, progress=False)
    assert good.n_computed == 2
    Path(good.records["cache_file"][0]).with_suffix(".json").unlink()  # an entry without its record is redone
    again = cache.build_cache(rows, tmp_path, size=SIZE, workers=1, progress=False)
    assert (again.n_computed, again.n_reused) == (1, 1)
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".npy", ".json")]


def test_unreadable_images_raise_one_clear_error_or_are_skipped(manifest: pd.DataFrame, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    missing = tmp_path / "missing.dcm"
    rows = label_rows([Path(manifest["image_path"][0]), broken, missing, Path(manifest["image_path"][1])])
    with pytest.raises(cache.CacheBuildError) as info:
        cache.build_cache(rows, tmp_path / "cache", size=SIZE, workers=1, progress=False)
    message = str(info.value)
    assert "2 of 4 image(s)" in message and str(broken) in message and str(missing) in message
    assert "on_error='skip'" in message
    with pytest.warns(UserWarning, match="could not be read"):
        kept = cache.build_cache(rows, tmp_path / "cache", size=SIZE, workers=1, progress=False, on_error="skip")
    assert kept.manifest["image_path"].tolist() == [manifest["image_path"][0], manifest["image_path"][1]]
    assert [p for p, _ in kept.failed] == [str(broken), str(missing)]
    assert kept.images().shape == (2, *SIZE, 1) and kept.n_reused == 2
    with pytest.raises(ValueError, match="on_error"):
        cache.build_cache(rows, tmp_path / "cache", on_error="ignore")


def test_cache_key_changes_with_what_the_entry_depends_on(manifest: pd.DataFrame, tmp_path: Path) -> None:
    image = tmp_path / "image.png"
    shutil.copy(manifest["image_path"][0], image)
    key = cache.cache_key(image, SIZE)
    assert len(key) == 32 and cache.cache_key(str(image), SIZE) == key
    assert cache.cache_key(image, (32, 32)) != key
    stat = os.stat(image)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert cache.cache_key(image, SIZE) != key
    with pytest.raises(FileNotFoundError):
        cache.cache_key(tmp_path / "missing.png", SIZE)


def test_build_cache_checks_its_arguments(manifest: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_path"):
        cache.build_cache(manifest.drop(columns="image_path"), tmp_path)
    with pytest.raises(ValueError, match="size must be positive"):
        cache.build_cache(manifest, tmp_path, size=(0, 64))
