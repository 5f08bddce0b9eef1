"""One fast-trained lesion model (the default) for the predictor, panel, CLI and web-app tests (trained once).

The run lives in the session's ``MAMMO_HOME`` (set by the root conftest). A lesion-model run already recorded
there (e.g. by the 02_train notebook test) is reused; otherwise the lesion model is trained in fast mode for one
epoch on 64 synthetic images (about 30 s on 2 busy cores instead of ~80 s for the 200-image fast set), with
TensorFlow's graph optimizer off as in tests/test_train.py. Such a briefly trained model gives nearly the same
output for every image, so tests that must see predictions change use a hand-made probe model as well.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from mammo_utils.inference.predictor import Predictor


def _reusable(run_dir: Path) -> bool:
    params = run_dir / "params.json"
    return (
        (run_dir / "model.keras").is_file()
        and params.is_file()
        and json.loads(params.read_text()).get("model") == "lesion"
    )


@lru_cache(maxsize=1)
def trained_run_dir() -> Path:
    """A run directory of the lesion model, trained in fast mode (or reused)."""
    from mammo_utils.paths import latest_run_dir

    try:
        latest = latest_run_dir()
        if _reusable(latest):
            return latest
    except FileNotFoundError:
        pass
    import tensorflow as tf

    from mammo_utils import paths
    from mammo_utils.datasets.findings import findings_from_synthetic
    from mammo_utils.datasets.splits import split_by_patient
    from mammo_utils.datasets.synthetic import generate_synthetic
    from mammo_utils.training.config import TrainConfig
    from mammo_utils.training.train import train

    options = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        images = generate_synthetic(paths.data_dir() / "synthetic_predict_tests", n=64, seed=42)
        manifest = split_by_patient(images, seed=42)
        config = TrainConfig(model="lesion", fast=True, epochs=1, batch_size=16, seed=42, verbose=0)
        return train(manifest, config, findings=findings_from_synthetic(manifest)).run_dir
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False, **options})


@lru_cache(maxsize=1)
def trained_predictor() -> Predictor:
    """A :class:`Predictor` of :func:`trained_run_dir` (loaded and warmed up once)."""
    return Predictor.from_run(trained_run_dir())


@lru_cache(maxsize=1)
def whole_image_run_dir() -> Path:
    """A whole-image run of one fast epoch on the same 64 synthetic images (for tests that refit its Dense heads)."""
    from mammo_utils import paths
    from mammo_utils.datasets.splits import split_by_patient
    from mammo_utils.datasets.synthetic import generate_synthetic
    from mammo_utils.training.config import TrainConfig
    from mammo_utils.training.train import train

    folder = paths.models_dir() / "runs" / "whole_image_for_tests"
    if (folder / "model.keras").is_file():
        return folder
    images = generate_synthetic(paths.data_dir() / "synthetic_predict_tests", n=64, seed=42)
    manifest = split_by_patient(images, seed=42)
    config = TrainConfig(
        model="whole_image", fast=True, epochs=1, batch_size=16, seed=42, verbose=0, run_dir=folder, point_latest=False
    )
    return train(manifest, config).run_dir
