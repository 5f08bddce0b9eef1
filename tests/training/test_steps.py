"""Tests for mammo_utils.training.steps: data description, versions, determinism, strategy and starting-model checks."""

from __future__ import annotations

import keras
import pandas as pd
import pytest

from mammo_utils.models.networks import build_whole_image_model
from mammo_utils.training import steps as train_setup


def test_describe_counts_images_patients_and_missing_labels():
    frame = pd.DataFrame(
        {
            "split": ["train", "train", "val"],
            "patient_id": ["a", "a", "b"],
            "density": pd.array([1, None, 3], dtype="Int64"),
            "pathology": ["benign", None, "malignant"],
        }
    )
    out = train_setup.describe(frame)
    assert out["train"] == {
        "n_images": 2,
        "n_patients": 1,
        "density": {"1": 1, "missing": 1},
        "pathology": {"benign": 1, "missing": 1},
    }
    assert out["val"]["n_images"] == 1


def test_versions_names_the_main_packages():
    found = train_setup.versions()
    assert {"python", "tensorflow", "keras", "numpy", "platform"} <= set(found)
    assert found["keras"] == keras.__version__


def test_strategy_choices():
    assert train_setup.resolve_strategy(None) is None
    with pytest.raises(ValueError, match="strategy"):
        train_setup.resolve_strategy("tpu")


def test_initial_model_must_fit_the_run():
    model = build_whole_image_model((64, 64, 1), width=4)
    train_setup.check_initial_model(model, "whole_image", 64, None)
    with pytest.raises(ValueError, match="image_size"):
        train_setup.check_initial_model(model, "whole_image", 128, None)
    with pytest.raises(ValueError, match="model="):
        train_setup.check_initial_model(model, "seed", 64, None)
    with pytest.raises(ValueError, match="strategy"):
        train_setup.check_initial_model(model, "whole_image", 64, "mirrored")
    with pytest.raises(TypeError, match="keras.Model"):
        train_setup.check_initial_model("model.keras", "whole_image", 64, None)


def test_unique_run_dir_and_atomic_json(tmp_path):
    first = train_setup.unique_run_dir(tmp_path, "default_synthetic")
    assert first.parent == tmp_path and first.name.endswith("_default_synthetic") and not first.exists()
    first.mkdir()
    second = train_setup.unique_run_dir(tmp_path, "default_synthetic")
    assert second.name == first.name + "-2"
    target = tmp_path / "params.json"
    train_setup.write_json(target, {"a": 1, "path": tmp_path})
    assert target.read_text().startswith("{\n") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
