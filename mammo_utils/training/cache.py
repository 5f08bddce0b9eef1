"""The standardized-image cache: read + standardize every image of a manifest once, keep the result on disk.

:func:`build_cache` reads each image (:func:`~mammo_utils.imaging.io.read_mammogram`), standardizes it
(:func:`~mammo_utils.imaging.standardize.standardize`) in parallel worker processes, and stores one ``.npy`` per image;
:class:`CachedImages` gives them back as (N, H, W, 1) arrays for :func:`mammo_utils.training.pipeline.make_dataset`.

Decisions
---------
* **Cache quantization.** Standardized images are stored as ``uint8`` (``round(x * 255)``): 50 KB per 224×224
  image (CBIS-DDSM's ~3,100 mammograms ≈ 155 MB), 4× smaller than float32. The error is ≤ 1/510 ≈ 0.002 per
  pixel, below the precision of 8-bit sources and far below the augmentation's intensity jitter.
* **Cache key.** The absolute path, file size, mtime, output size and :data:`STANDARDIZE_VERSION`: a changed file
  or a new version of the standardization is redone, everything else is reused.
* **No TensorFlow** in this module: the worker processes must not load it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import uuid
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mammo_utils import paths

STANDARDIZE_VERSION = 1  # bump when io/standardize change their output: every cache entry is then redone
CACHE_DTYPE = np.uint8
_MAX_CHUNK = 8
_MIN_PARALLEL = 24  # fewer images are faster in-process than starting worker processes
_RECORD_COLUMNS = (
    "crop_top",
    "crop_left",
    "crop_bottom",
    "crop_right",
    "flipped",
    "scale",
    "found_breast",
    "labels_removed",
    "content_height",
    "content_width",
    "original_height",
    "original_width",
    "source_format",
)


class CacheBuildError(RuntimeError):
    """Some images could not be read or standardized; the message lists them."""


@dataclass
class CachedImages:
    """Standardized images of a manifest, cached on disk (see :func:`build_cache`).

    Attributes
    ----------
    manifest : pandas.DataFrame
        The manifest rows that are cached (failed rows dropped when ``on_error="skip"``), index reset.
    records : pandas.DataFrame
        One row per unique image: ``image_path``, ``cache_file`` and what standardization did
        (``crop_top/left/bottom/right`` in original pixels, ``flipped``, ``scale``, ``found_breast`` ...).
    size : tuple of int
        ``(height, width)`` of the cached images.
    cache_dir : Path
        Folder holding the ``.npy`` files and their ``.json`` records.
    failed : list of (str, str)
        ``(image_path, error message)`` of the images that could not be cached.
    n_computed, n_reused : int
        Images standardized by this call, and images read back from an earlier one.
    """

    manifest: pd.DataFrame
    records: pd.DataFrame
    size: tuple[int, int]
    cache_dir: Path
    failed: list[tuple[str, str]]
    n_computed: int
    n_reused: int
    _stack: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.manifest)

    def uint8(self, manifest: pd.DataFrame | None = None) -> np.ndarray:
        """The cached images of ``manifest``'s rows (default: :attr:`manifest`) as uint8 (N, H, W, 1)."""
        if self._stack is None:
            self._stack = np.stack([np.load(f, allow_pickle=False) for f in self.records["cache_file"]])
        rows = self.manifest if manifest is None else manifest
        index = pd.Series(np.arange(len(self.records)), index=self.records["image_path"].to_numpy())
        keys = [_path_key(p) for p in rows["image_path"]]
        missing = [p for p in keys if p not in index.index]
        if missing:
            raise KeyError(
                f"{len(missing)} image(s) are not in this cache, e.g. {missing[:3]}; run build_cache on them"
            )
        return self._stack[index.loc[keys].to_numpy()][..., None]

    def images(self, manifest: pd.DataFrame | None = None) -> np.ndarray:
        """The cached images as float32 (N, H, W, 1) in [0, 1] (dequantized: ``uint8 / 255``)."""
        return self.uint8(manifest).astype(np.float32) / np.float32(255)

    def standardization(self, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
        """The manifest (default :attr:`manifest`) joined with the standardization records."""
        rows = (self.manifest if manifest is None else manifest).copy()
        rows["_key"] = [_path_key(p) for p in rows["image_path"]]
        records = self.records.rename(columns={"image_path": "_key"})
        return rows.merge(records, on="_key", how="left", validate="many_to_one").drop(columns="_key")


def _path_key(path: Any) -> str:
    return os.path.abspath(os.fspath(path))


def cache_key(path: str | os.PathLike[str], size: tuple[int, int]) -> str:
    """Hash of (absolute path, file size, mtime, output size, :data:`STANDARDIZE_VERSION`).

    Raises
    ------
    OSError
        If the file cannot be stat-ed (e.g. it does not exist).
    """
    absolute = _path_key(path)
    stat = os.stat(absolute)
    text = json.dumps([absolute, stat.st_size, stat.st_mtime_ns, int(size[0]), int(size[1]), STANDARDIZE_VERSION])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _write_atomic(target: Path, write: Any) -> None:
    """Write via ``write(file_object)`` to a temporary file next to ``target``, then ``os.replace`` it."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _standardize_one(image_path: str, stem: str, size: tuple[int, int]) -> dict:
    """Read and standardize one image, write ``<stem>.npy`` then ``<stem>.json``; its standardization record."""
    from mammo_utils.imaging.io import read_mammogram
    from mammo_utils.imaging.standardize import standardize

    mammogram = read_mammogram(image_path)
    result = standardize(mammogram, size=size)
    quantized = np.round(result.image * 255.0).clip(0, 255).astype(CACHE_DTYPE)
    top, left, bottom, right = result.crop_box
    record = {
        "crop_top": int(top),
        "crop_left": int(left),
        "crop_bottom": int(bottom),
        "crop_right": int(right),
        "flipped": bool(result.flipped),
        "scale": float(result.scale),
        "found_breast": bool(result.found_breast),
        "labels_removed": int(result.labels_removed),
        "content_height": int(result.content_shape[0]),
        "content_width": int(result.content_shape[1]),
        "original_height": int(mammogram.original_shape[0]),
        "original_width": int(mammogram.original_shape[1]),
        "source_format": mammogram.source_format,
    }
    del mammogram, result
    _write_atomic(Path(stem + ".npy"), lambda f: np.save(f, quantized, allow_pickle=False))
    _write_atomic(Path(stem + ".json"), lambda f: f.write(json.dumps(record).encode("utf-8")))
    return record


def _standardize_chunk(
    items: list[tuple[str, str]], size: tuple[int, int]
) -> list[tuple[str, dict | None, str | None]]:
    """Worker: read, standardize and cache each ``(image_path, cache stem)``; one full image at a time."""
    results: list[tuple[str, dict | None, str | None]] = []
    for image_path, stem in items:
        try:
            results.append((image_path, _standardize_one(image_path, stem, size), None))
        except Exception as exc:
            results.append((image_path, None, f"{type(exc).__name__}: {exc}"))
    return results


def _read_record(stem: str) -> dict | None:
    """The stored record of a complete cache entry (``.json`` is written last), else None."""
    try:
        if not os.path.isfile(stem + ".npy"):
            return None
        with open(stem + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
        return record if all(column in record for column in _RECORD_COLUMNS) else None
    except (OSError, ValueError):
        return None


def _run_jobs(
    todo: list[tuple[str, str]], size: tuple[int, int], workers: int, progress: bool
) -> list[tuple[str, dict | None, str | None]]:
    """Standardize ``todo`` in chunks, in worker processes unless there are few images or one worker."""
    chunk = max(1, min(_MAX_CHUNK, -(-len(todo) // (4 * max(workers, 1)))))
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    results: list[tuple[str, dict | None, str | None]] = []
    with tqdm(total=len(todo), desc="Standardizing images", unit="img", disable=not progress) as bar:
        if workers <= 1 or len(todo) < _MIN_PARALLEL:
            for part in chunks:
                results.extend(_standardize_chunk(part, size))
                bar.update(len(part))
            return results
        # forkserver/spawn: safe when the parent already runs TensorFlow's threads
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            futures = [pool.submit(_standardize_chunk, part, size) for part in chunks]
            try:
                for future in as_completed(futures):
                    done = future.result()
                    results.extend(done)
                    bar.update(len(done))
            except BaseException:  # e.g. KeyboardInterrupt: do not wait for the queued chunks
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return results


def build_cache(
    manifest: pd.DataFrame,
    cache_dir: str | os.PathLike[str] | None = None,
    size: tuple[int, int] = (224, 224),
    workers: int | None = None,
    progress: bool = True,
    on_error: Literal["raise", "skip"] = "raise",
) -> CachedImages:
    """Read and standardize every image of ``manifest`` once, caching the result on disk.

    Each image becomes ``<cache_dir>/<key>.npy`` (uint8, see the module notes) and ``<key>.json`` (its
    standardization record), both written atomically (temporary file + ``os.replace``). The key hashes the
    absolute path, file size, mtime, ``size`` and :data:`STANDARDIZE_VERSION`, so a re-run reuses the entries
    and a changed file is redone. Workers write their own results, so the parent never holds full images.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Needs an ``image_path`` column; repeated paths are processed once.
    cache_dir : path, optional
        Default ``paths.data_dir() / "cache"``.
    size : tuple of int
        Output ``(height, width)``.
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs in this process.
    progress : bool
        Show a tqdm progress bar.
    on_error : {"raise", "skip"}
        Unreadable images: raise one :class:`CacheBuildError` listing all of them, or drop their rows
        with a warning (they are listed in :attr:`CachedImages.failed`).

    Returns
    -------
    CachedImages
    """
    size = _checked_request(manifest, size, on_error)
    folder = paths.ensure_dir(Path(cache_dir) if cache_dir is not None else paths.data_dir() / "cache")
    unique = list(dict.fromkeys(_path_key(p) for p in manifest["image_path"]))
    records, todo, failed = _lookup(unique, folder, size)
    n_reused = len(records)
    workers = int(workers) if workers is not None else (os.cpu_count() or 1)
    stems = dict(todo)
    for image_path, record, error in _run_jobs(todo, size, workers, progress):
        if error is None and record is not None:
            records[image_path] = {**record, "cache_file": stems[image_path] + ".npy"}
        else:
            failed[image_path] = error or "no record was written"
    failures = [(p, failed[p]) for p in unique if p in failed]
    _report_failures(failures, len(unique), on_error)
    kept = [p for p in unique if p in records]
    table = pd.DataFrame(
        [{"image_path": p, **records[p]} for p in kept], columns=["image_path", "cache_file", *_RECORD_COLUMNS]
    )
    keys = pd.Series([_path_key(p) for p in manifest["image_path"]], index=manifest.index)
    rows = manifest.loc[~keys.isin(failed.keys())].reset_index(drop=True)
    return CachedImages(rows, table, size, folder, failures, len(records) - n_reused, n_reused)


def _checked_request(manifest: pd.DataFrame, size: tuple[int, int], on_error: str) -> tuple[int, int]:
    """Refuse a bad ``on_error``, a manifest without ``image_path`` or a non-positive size; the size as ints."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if "image_path" not in manifest.columns:
        raise ValueError("manifest needs an 'image_path' column")
    checked = (int(size[0]), int(size[1]))
    if min(checked) < 1:
        raise ValueError(f"size must be positive, got {checked}")
    return checked


def _lookup(
    unique: list[str], folder: Path, size: tuple[int, int]
) -> tuple[dict[str, dict], list[tuple[str, str]], dict[str, str]]:
    """Split the images into cached ones (their records), ones to do (``(path, stem)``) and unreachable ones."""
    records: dict[str, dict] = {}
    todo: list[tuple[str, str]] = []
    failed: dict[str, str] = {}
    for image_path in unique:
        try:
            stem = str(folder / cache_key(image_path, size))
        except OSError as exc:
            failed[image_path] = f"{type(exc).__name__}: {exc.strerror or exc} (is the path right?)"
            continue
        record = _read_record(stem)
        if record is None:
            todo.append((image_path, stem))
        else:
            records[image_path] = {**record, "cache_file": stem + ".npy"}
    return records, todo, failed


def _report_failures(failures: list[tuple[str, str]], n_images: int, on_error: str) -> None:
    """Raise :class:`CacheBuildError` (``on_error="raise"``) or warn about the images that could not be cached."""
    if not failures:
        return
    listing = "\n".join(f"  {p}: {message}" for p, message in failures[:20])
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    text = f"{len(failures)} of {n_images} image(s) could not be read or standardized:\n{listing}{more}"
    if on_error == "raise":
        raise CacheBuildError(text + "\nFix or remove them, or pass on_error='skip' to drop their rows.")
    warnings.warn(text + "\nTheir rows are dropped.", stacklevel=3)
