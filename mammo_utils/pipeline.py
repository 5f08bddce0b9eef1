"""tf.data input pipeline: read + standardize every image once, cache it on disk, augment, balance, batch.

Flow: :func:`build_cache` (parallel read → :func:`~mammo_utils.standardize.standardize` → one ``.npy`` per
image) → :meth:`CachedImages.images` (N, H, W, 1) → :func:`make_dataset` (shuffle, augment, weights, batch,
prefetch) → ``model.fit``.

Decisions
---------
* **Cache quantization.** Standardized images are stored as ``uint8`` (``round(x * 255)``): 50 KB per 224×224
  image (CBIS-DDSM's ~3,100 mammograms ≈ 155 MB), 4× smaller than float32. The error is ≤ 1/510 ≈ 0.002 per
  pixel, below the precision of 8-bit sources and far below the augmentation's intensity jitter.
* **No flips.** :func:`~mammo_utils.standardize.standardize` already puts every breast on the left (chest
  wall at the left edge), so a horizontal flip would create images the model never sees at inference, and a
  vertical flip would turn an MLO view's pectoral muscle upside down. Augmentation is only small rotations,
  zoom, translations and brightness/contrast jitter (:func:`augment_images`).
* **Class balance** by per-sample weights (inverse class frequency, mean 1 over the labelled rows). Keras 3
  accepts a dict of sample weights keyed like the outputs, so each head of the multi-task model gets its
  own weights: density by density class, malignancy by pathology. The seed model is weighted by its joint
  8-way class. Weights apply to training data only; validation rows get weight 1 (or 0, see below).
* **Missing labels** (multi-task): a row missing density or pathology keeps training the other head; the
  missing head gets sample weight 0 (a stand-in target of 0 is never learned from). Rows missing both
  are dropped with a warning. The seed's joint target needs both labels, so such rows are dropped with a
  warning. Note that the default model's metrics (accuracy, AUC) are compiled as unweighted ``metrics``,
  so masked stand-in targets still count in *metrics* (never in the loss).
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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mammo_utils import labels, paths

if TYPE_CHECKING:  # TensorFlow is imported lazily: the cache's worker processes must not load it
    import tensorflow as tf

STANDARDIZE_VERSION = 1  # bump when io/standardize change their output: every cache entry is then redone
CACHE_DTYPE = np.uint8
TARGETS: tuple[str, ...] = ("multitask", "joint")
DENSITY_KEY, MALIGNANCY_KEY, JOINT_KEY = "density", "malignancy", "joint"  # = the models' output names
ROTATION_DEGREES = 8.0
ZOOM = 0.10
TRANSLATION = 0.05
BRIGHTNESS = 0.10
CONTRAST = 0.15
_MAX_CHUNK = 8
_MIN_PARALLEL = 24  # fewer images are faster in-process than starting worker processes
_RECORD_COLUMNS = ("crop_top", "crop_left", "crop_bottom", "crop_right", "flipped", "scale", "found_breast",
                   "labels_removed", "content_height", "content_width", "original_height", "original_width",
                   "source_format")


class CacheBuildError(RuntimeError):
    """Some images could not be read or standardized; the message lists them."""


# ----------------------------------------------------------------------------------------------- the cache
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
            raise KeyError(f"{len(missing)} image(s) are not in this cache, e.g. {missing[:3]}; "
                           "run build_cache on them")
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


def _standardize_chunk(items: list[tuple[str, str]],
                       size: tuple[int, int]) -> list[tuple[str, dict | None, str | None]]:
    """Worker: read, standardize and cache each ``(image_path, cache stem)``; one full image at a time."""
    from mammo_utils.io import read_mammogram
    from mammo_utils.standardize import standardize

    results: list[tuple[str, dict | None, str | None]] = []
    for image_path, stem in items:
        try:
            mammogram = read_mammogram(image_path)
            result = standardize(mammogram, size=size)
            quantized = np.round(result.image * 255.0).clip(0, 255).astype(CACHE_DTYPE)
            top, left, bottom, right = result.crop_box
            record = {
                "crop_top": int(top), "crop_left": int(left), "crop_bottom": int(bottom), "crop_right": int(right),
                "flipped": bool(result.flipped), "scale": float(result.scale),
                "found_breast": bool(result.found_breast), "labels_removed": int(result.labels_removed),
                "content_height": int(result.content_shape[0]), "content_width": int(result.content_shape[1]),
                "original_height": int(mammogram.original_shape[0]),
                "original_width": int(mammogram.original_shape[1]), "source_format": mammogram.source_format,
            }
            del mammogram, result
            _write_atomic(Path(stem + ".npy"), lambda f: np.save(f, quantized, allow_pickle=False))
            _write_atomic(Path(stem + ".json"), lambda f: f.write(json.dumps(record).encode("utf-8")))
            results.append((image_path, record, None))
        except Exception as exc:  # noqa: BLE001 - reported per image, the caller decides
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


def _run_jobs(todo: list[tuple[str, str]], size: tuple[int, int], workers: int,
              progress: bool) -> list[tuple[str, dict | None, str | None]]:
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
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if "image_path" not in manifest.columns:
        raise ValueError("manifest needs an 'image_path' column")
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"size must be positive, got {size}")
    folder = paths.ensure_dir(Path(cache_dir) if cache_dir is not None else paths.data_dir() / "cache")
    unique = list(dict.fromkeys(_path_key(p) for p in manifest["image_path"]))
    failed: dict[str, str] = {}
    records: dict[str, dict] = {}
    todo: list[tuple[str, str]] = []
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
    n_reused = len(records)
    workers = int(workers) if workers is not None else (os.cpu_count() or 1)
    stems = dict(todo)
    for image_path, record, error in _run_jobs(todo, size, workers, progress):
        if error is None:
            records[image_path] = {**record, "cache_file": stems[image_path] + ".npy"}
        else:
            failed[image_path] = error
    failures = [(p, failed[p]) for p in unique if p in failed]
    if failures:
        listing = "\n".join(f"  {p}: {message}" for p, message in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        text = f"{len(failures)} of {len(unique)} image(s) could not be read or standardized:\n{listing}{more}"
        if on_error == "raise":
            raise CacheBuildError(text + "\nFix or remove them, or pass on_error='skip' to drop their rows.")
        warnings.warn(text + "\nTheir rows are dropped.", stacklevel=2)
    kept = [p for p in unique if p in records]
    table = pd.DataFrame([{"image_path": p, **records[p]} for p in kept],
                         columns=["image_path", "cache_file", *_RECORD_COLUMNS])
    keys = pd.Series([_path_key(p) for p in manifest["image_path"]], index=manifest.index)
    rows = manifest.loc[~keys.isin(failed.keys())].reset_index(drop=True)
    return CachedImages(rows, table, size, folder, failures, len(records) - n_reused, n_reused)


# ------------------------------------------------------------------------------------- targets and weights
def _balanced(values: pd.Series, mask: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights over the rows in ``mask`` (mean 1 there), 0 elsewhere."""
    weights = np.zeros(len(values), dtype=np.float32)
    present = values[mask]
    if len(present):
        counts = present.value_counts()
        weights[mask] = (len(present) / (len(counts) * present.map(counts))).to_numpy(np.float32)
    return weights


def _label_arrays(manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Density class 0–3, malignant 0/1, and their 'present' masks (stand-in 0 where missing)."""
    density = [labels.density_from_any(v) for v in manifest["density"]]
    pathology = [labels.pathology_from_any(v) for v in manifest["pathology"]]
    has_density = np.array([d is not None for d in density], dtype=bool)
    has_pathology = np.array([p is not None for p in pathology], dtype=bool)
    density_class = np.array([(d or 1) - 1 for d in density], dtype=np.int32)
    malignant = np.array([float(p == "malignant") for p in pathology], dtype=np.float32)
    return density_class, malignant, has_density, has_pathology


def class_weights(manifest: pd.DataFrame, target: str = "multitask") -> dict[str, dict[int, float]]:
    """Inverse-frequency class weights, ``n / (n_classes_present * count)``, over the labelled rows.

    Returns
    -------
    dict
        ``{"density": {0: w, ...}, "malignancy": {0: w, 1: w}}`` (density classes 0–3 = BI-RADS − 1) for
        ``target="multitask"``; ``{"joint": {index: w, ...}}`` for ``"joint"``. Absent classes are left out.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    density, malignant, has_density, has_pathology = _label_arrays(manifest)

    def table(values: np.ndarray, mask: np.ndarray) -> dict[int, float]:
        present = pd.Series(values[mask])
        counts = present.value_counts().sort_index()
        return {int(k): float(len(present) / (len(counts) * c)) for k, c in counts.items()}

    if target == "joint":
        both = has_density & has_pathology
        return {JOINT_KEY: table(density * 2 + malignant.astype(np.int32), both)}
    return {DENSITY_KEY: table(density, has_density), MALIGNANCY_KEY: table(malignant.astype(np.int32), has_pathology)}


def targets_and_weights(
    manifest: pd.DataFrame, target: str = "multitask", balance: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray] | np.ndarray, dict[str, np.ndarray] | np.ndarray | None]:
    """Keras targets and sample weights for ``manifest`` (see the module notes on missing labels).

    Returns
    -------
    keep : np.ndarray
        bool per row: rows that can be used (at least one label; both for ``"joint"``).
    targets : dict or np.ndarray
        For the kept rows: ``{"density": int32 (N,), "malignancy": float32 (N, 1)}``, or for ``"joint"``
        the float32 (N, 8) one-hot array (the seed model has a single output).
    weights : dict, np.ndarray or None
        Per-head float32 weights (multitask), per-sample weights (joint), or None when every weight is 1.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    density, malignant, has_density, has_pathology = _label_arrays(manifest)
    if target == "joint":
        keep = has_density & has_pathology
        joint = density[keep] * 2 + malignant[keep].astype(np.int32)
        targets = np.eye(labels.N_JOINT, dtype=np.float32)[joint]  # the seed has a single output
        weights = _balanced(pd.Series(joint), np.ones(len(joint), bool)) if balance else None
        return keep, targets, weights
    keep = has_density | has_pathology
    mask_d, mask_m = has_density[keep], has_pathology[keep]
    targets = {DENSITY_KEY: density[keep], MALIGNANCY_KEY: malignant[keep][:, None]}
    if balance:
        w_d = _balanced(pd.Series(density[keep]), mask_d)
        w_m = _balanced(pd.Series(malignant[keep]), mask_m)
    elif not (mask_d.all() and mask_m.all()):
        w_d, w_m = mask_d.astype(np.float32), mask_m.astype(np.float32)
    else:
        return keep, targets, None
    return keep, targets, {DENSITY_KEY: w_d, MALIGNANCY_KEY: w_m}


# ------------------------------------------------------------------------------------------- augmentation
def augment_images(images: tf.Tensor, seed: tf.Tensor, rotation: float = ROTATION_DEGREES, zoom: float = ZOOM,
                   translation: float = TRANSLATION, brightness: float = BRIGHTNESS,
                   contrast: float = CONTRAST) -> tf.Tensor:
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
    # output pixel (x, y) samples input c + R(angle) (p - c) / factor - shift
    cos, sin = tf.cos(angle) / factor, tf.sin(angle) / factor
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    zeros = tf.zeros_like(cos)
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy - shift[:, 0],
                          sin, cos, cy - sin * cx - cos * cy - shift[:, 1], zeros, zeros], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transform, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    log_c = float(np.log1p(contrast))
    gamma = tf.exp(uniform([batch], keys[3], -log_c, log_c))[:, None, None, None]
    gain = uniform([batch], keys[4], 1.0 - brightness, 1.0 + brightness)[:, None, None, None]
    return tf.clip_by_value(gain * tf.pow(tf.maximum(warped, 0.0), gamma), 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ dataset
def make_dataset(
    images: CachedImages | np.ndarray,
    manifest: pd.DataFrame | None = None,
    target: Literal["multitask", "joint"] = "multitask",
    batch_size: int = 32,
    training: bool = False,
    seed: int = 42,
    balance: bool = True,
    augment: bool | None = None,
) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of ``(image, targets[, sample_weight])``.

    Parameters
    ----------
    images : CachedImages or np.ndarray
        The cache (its rows are looked up by ``image_path``) or an array aligned with ``manifest``:
        (N, H, W[, 1]), uint8 (÷255) or float in [0, 1].
    manifest : pandas.DataFrame, optional
        Rows to use, with ``density`` and ``pathology``; default ``images.manifest``.
    target : {"multitask", "joint"}
        Two-head targets ``{"density", "malignancy"}``, or the seed's one-hot joint class (a plain tensor).
    batch_size : int
    training : bool
        Shuffle (seeded, reshuffled each epoch), augment and balance.
    seed : int
        Seeds the shuffle and the augmentation: the same seed gives the same batches, epoch after epoch.
    balance : bool
        With ``training``: inverse-class-frequency sample weights (per head for multitask).
    augment : bool, optional
        Default ``training``.

    Returns
    -------
    tf.data.Dataset
        Images float32 (B, H, W, 1); ``sample_weight`` is present when balancing or when a label is missing.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(images, CachedImages):
        manifest = images.manifest if manifest is None else manifest
        pixels = images.uint8(manifest)
    else:
        if manifest is None:
            raise ValueError("pass the manifest that goes with an image array")
        pixels = np.asarray(images)
        pixels = pixels[..., None] if pixels.ndim == 3 else pixels
        if pixels.ndim != 4 or pixels.shape[-1] != 1 or len(pixels) != len(manifest):
            raise ValueError(f"images must be (N, H, W[, 1]) with N = len(manifest) = {len(manifest)}; "
                             f"got {pixels.shape}")
    keep, targets, weights = targets_and_weights(manifest, target, balance=balance and training)
    if not keep.all():
        need = "density and pathology" if target == "joint" else "a density or a pathology"
        warnings.warn(f"{int((~keep).sum())} of {len(keep)} row(s) lack {need} and are dropped", stacklevel=2)
        pixels = pixels[keep]
    if not len(pixels):
        raise ValueError("no labelled rows to make a dataset from")
    items = (pixels, targets) if weights is None else (pixels, targets, weights)
    ds = tf.data.Dataset.from_tensor_slices(items)
    if training:
        ds = ds.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    # training drops a partial last batch (reshuffled each epoch, so every image still takes part): no
    # one-image BatchNorm batches, and one traced train step instead of two
    ds = ds.batch(batch_size, drop_remainder=training and len(pixels) >= batch_size)

    def to_float(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else tf.cast(x, tf.float32)

    if training if augment is None else augment:
        keys = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, keys)).map(
            lambda item, key: (augment_images(to_float(item[0]), key), *item[1:]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda *item: (to_float(item[0]), *item[1:]),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)

