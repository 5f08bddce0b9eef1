"""Tests for mammo_utils.training.train: run directory, reload, determinism, MirroredStrategy, the seed's fast path.

(The config's checks are in test_config.py, load_run in test_runs.py.)

TensorFlow's graph optimizer (Grappler) is switched off while this module runs: on these tiny runs its
one-off graph rewriting costs more than it saves (a 1-epoch run takes ~13 s instead of ~20-30 s on 2 busy
cores). It does not change what is tested; the same-numbers check passes with it on as well.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.datasets.synthetic import generate_synthetic
from mammo_utils.models.networks import DEFAULT_HISTORY_KEYS, SEED_HISTORY_KEYS, SEED_TOTAL_PARAMS, load_model
from mammo_utils.paths import latest_run_dir
from mammo_utils.training import train
from mammo_utils.training.cache import build_cache
from mammo_utils.training.config import TrainConfig
from mammo_utils.training.runs import RunResult, load_run

SETTINGS = {"epochs": 1, "batch_size": 8, "image_size": 64, "seed": 7, "verbose": 0}
CONFIG = TrainConfig(model="whole_image", fast=True, **SETTINGS)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    """A private MAMMO_HOME, so runs and the LATEST pointer land in a fresh models/ folder."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("home")
    options = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAMMO_HOME", str(folder))
        yield folder
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False, **options})


@pytest.fixture(scope="module")
def synthetic_dir(home: Path) -> Path:
    folder = home / "synthetic"
    generate_synthetic(out_dir=folder, n=24, workers=1)
    return folder


@pytest.fixture(scope="module")
def manifest(synthetic_dir: Path) -> pd.DataFrame:
    from mammo_utils.datasets.synthetic import load_synthetic

    return split_by_patient(load_synthetic(synthetic_dir), seed=7)


@pytest.fixture(scope="module")
def run(manifest: pd.DataFrame) -> RunResult:
    return train.train(manifest, CONFIG)


def test_run_directory_holds_everything(run: RunResult, manifest: pd.DataFrame, home: Path) -> None:
    assert run.run_dir.parent == home / "models" / "runs"
    assert run.run_dir.name.endswith("_whole_image_synthetic")
    for name in train.RUN_FILES:
        assert (run.run_dir / name).is_file(), name
    assert (home / "models" / "runs" / "LATEST").read_text().strip() == run.run_dir.name
    assert latest_run_dir() == run.run_dir

    params = json.loads((run.run_dir / "params.json").read_text())
    assert params == json.loads(json.dumps(run.params, default=str))
    assert {k: params[k] for k in SETTINGS} == SETTINGS
    saved = {k: v for k, v in CONFIG.to_dict().items() if k not in ("run_dir", "cache_dir")}
    assert {k: params[k] for k in saved} == saved  # every config field, as used (fast mode keeps these)
    assert params["requested_epochs"] == 1 and params["requested_batch_size"] == 8 and params["target"] == "multitask"
    assert params["run_dir"] == str(run.run_dir.resolve()) and params["initial_model"] is None
    assert params["model"] == "whole_image" and params["strategy"] is None and params["status"] == "finished"
    assert params["deterministic_ops"] is True and params["fast"] is True
    splits = params["data"]["splits"]
    assert sum(s["n_images"] for s in splits.values()) == len(manifest) == 24
    for name in ("train", "val", "test"):
        rows = manifest[manifest["split"] == name]
        assert splits[name]["n_images"] == len(rows)
        assert splits[name]["density"] == {str(k): int(v) for k, v in rows["density"].value_counts().items()}
    assert params["data"]["sources"] == ["synthetic"]
    assert set(params["data"]["class_weights"]) == {"density", "malignancy"}

    split = pd.read_csv(run.run_dir / "split.csv")
    assert split["image_path"].tolist() == manifest["image_path"].tolist()
    assert split["split"].tolist() == manifest["split"].tolist()
    crops = pd.read_csv(run.run_dir / "standardization.csv")
    assert len(crops) == 24 and {"crop_top", "crop_left", "crop_bottom", "crop_right", "flipped"} <= set(crops)
    versions = json.loads((run.run_dir / "versions.json").read_text())
    assert {"python", "numpy", "tensorflow", "keras", "mammo_utils", "platform"} <= set(versions)

    history = pd.read_csv(run.run_dir / "history.csv")
    assert len(history) == 1 and history["epoch"].tolist() == [0]
    for key in DEFAULT_HISTORY_KEYS:
        assert np.isfinite(history[key]).all() and np.isfinite(history[f"val_{key}"]).all()
    pd.testing.assert_frame_equal(history, run.history)


def test_saved_model_reloads_safely_with_the_same_predictions(run: RunResult, home: Path) -> None:
    cached = build_cache(pd.read_csv(run.run_dir / "split.csv"), home / "data" / "cache", size=(64, 64), progress=False)
    assert cached.n_reused == 24  # the run's cache
    images = cached.images()[:6]
    expected = run.model.predict(images, verbose=0)
    reloaded = load_model(run.run_dir / "model.keras", compile=False)  # safe_mode=True
    got = reloaded.predict(images, verbose=0)
    for key in ("density", "malignancy"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)
    latest = load_run()
    assert latest.run_dir == run.run_dir and latest.params["seed"] == 7
    pd.testing.assert_frame_equal(latest.history, run.history)


def test_same_parameters_give_the_same_numbers(run: RunResult, manifest: pd.DataFrame, tmp_path: Path) -> None:
    again = train.train(manifest, replace(CONFIG, run_dir=tmp_path / "again"))
    assert again.run_dir == tmp_path / "again"
    numbers = run.history.drop(columns="epoch")
    # bit-identical: seeded split/shuffle/augmentation + tf.config.experimental.enable_op_determinism()
    pd.testing.assert_frame_equal(again.history.drop(columns="epoch"), numbers, check_exact=True)
    for mine, theirs in zip(again.model.get_weights(), run.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert latest_run_dir() == tmp_path / "again"  # an explicit run_dir also becomes the latest


def test_mirrored_strategy_over_two_logical_cpus(synthetic_dir: Path, home: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        tf.config.optimizer.set_experimental_options({{"disable_meta_optimizer": True}})
        from mammo_utils.datasets.synthetic import load_synthetic
        from mammo_utils.training.config import TrainConfig
        from mammo_utils.training.train import train
        config = TrainConfig(model="whole_image", strategy="mirrored", run_dir={str(tmp_path / "run")!r}, epochs=1,
                             batch_size=8, image_size=64, seed=7, verbose=0)
        result = train(load_synthetic({str(synthetic_dir)!r}), config)
        print("replicas", result.params["replicas"])
    """)
    env = {**os.environ, "MAMMO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2" in done.stdout
    params = json.loads((tmp_path / "run" / "params.json").read_text())
    assert params["strategy"] == "MirroredStrategy" and params["replicas"] == 2 and params["status"] == "finished"
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 1 and np.isfinite(history["val_loss"]).all()
    assert (tmp_path / "run" / "model.keras").is_file()


def test_seed_model_trains_one_step_in_fast_mode(manifest: pd.DataFrame, tmp_path: Path) -> None:
    config = TrainConfig(
        model="seed", epochs=1, batch_size=2, image_size=224, seed=7, fast=True, run_dir=tmp_path / "seed", verbose=0
    )
    result = train.train(manifest, config)
    params = result.params
    assert params["n_params"]["total"] == SEED_TOTAL_PARAMS and params["target"] == "joint"
    splits = params["data"]["splits"]
    assert splits["train"]["n_images"] == splits["val"]["n_images"] == train.FAST_SEED_STEPS * 2
    expected = {"epoch", "learning_rate", *SEED_HISTORY_KEYS, *[f"val_{k}" for k in SEED_HISTORY_KEYS]}
    assert set(result.history.columns) == expected  # learning_rate: logged by ReduceLROnPlateau
    assert len(result.history) == 1 and np.isfinite(result.history["loss"]).all()
    for name in train.RUN_FILES:
        assert (result.run_dir / name).is_file(), name
    assert (result.run_dir / "model.keras").stat().st_size > 700e6  # 202 M float32 weights, no optimizer state
    (result.run_dir / "model.keras").unlink()


def test_fast_mode_caps_images_per_split() -> None:
    frame = pd.DataFrame({"split": ["train"] * 300 + ["val"] * 150 + ["test"] * 90, "x": range(540)})
    capped = train._cap(train._cap(frame, "train", train.FAST_MAX_TRAIN, 1), "val", train.FAST_MAX_VAL, 1)
    assert capped["split"].value_counts().to_dict() == {"train": 200, "val": 100, "test": 90}
    assert capped.index.is_monotonic_increasing
    assert train._cap(frame, "train", 200, 1).equals(train._cap(frame, "train", 200, 1))


def test_a_split_without_validation_rows_is_refused(manifest: pd.DataFrame, tmp_path: Path) -> None:
    no_val = manifest.assign(split=manifest["split"].replace("val", "train"))
    with pytest.raises(ValueError, match=r"need training and validation rows; got \d+ train, 0 val"):
        train.train(no_val, TrainConfig(image_size=64, verbose=0, run_dir=tmp_path / "x"))
    assert not (tmp_path / "x").exists()  # refused before the run directory is made


def test_default_config_is_the_documented_defaults() -> None:
    import inspect

    signature = inspect.signature(train.train)
    assert list(signature.parameters) == [
        "manifest",
        "config",
        "callbacks",
        "initial_model",
        "extra_params",
        "findings",
    ]
    assert signature.parameters["config"].default is None
    assert TrainConfig() == TrainConfig(model="lesion", epochs=30, batch_size=32, image_size=384, seed=42)


def _lesion_config(run_dir: Path) -> TrainConfig:
    return TrainConfig(model="lesion", **SETTINGS, fast=True, run_dir=run_dir, point_latest=False)


def test_the_lesion_model_trains_from_the_findings_table(manifest: pd.DataFrame, tmp_path: Path) -> None:
    from mammo_utils.datasets.findings import findings_from_synthetic
    from mammo_utils.models.lesion import is_lesion_model

    config = _lesion_config(tmp_path / "lesion")
    result = train.train(manifest, config, findings=findings_from_synthetic(manifest))
    history = pd.read_csv(result.run_dir / "history.csv")
    assert {"epoch", "attention_loss", "val_malignancy_auc", "density_loss", "val_density_loss"} <= set(history.columns)
    assert history["attention_loss"].gt(0).all()
    assert result.params["status"] == "finished" and "best_val_malignancy_auc" in result.params
    assert is_lesion_model(load_model(result.run_dir / "model.keras", compile=False))


def test_the_lesion_model_trains_on_image_labels_without_findings(manifest: pd.DataFrame, tmp_path: Path) -> None:
    config = _lesion_config(tmp_path / "labels")
    history = train.train(manifest, config).history
    assert (history["attention_loss"] == 0).all() and np.isfinite(history["malignancy_loss"]).all()
