"""Tests for mammo_utils.training.config: TrainConfig's defaults, checks and JSON form."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mammo_utils.training.config import MIN_IMAGE_SIZE, TrainConfig


def test_defaults_and_json_form() -> None:
    config = TrainConfig()
    assert (config.model, config.epochs, config.batch_size, config.image_size, config.seed) == (
        "lesion",
        30,
        32,
        384,
        42,
    )
    assert config.point_latest is True and config.balance is True and config.model_kwargs is None
    payload = config.to_dict()
    assert list(payload) == [field.name for field in dataclasses.fields(TrainConfig)]
    assert json.loads(json.dumps(payload)) == payload and payload["model_kwargs"] == {}


def test_paths_and_strategy_objects_become_strings(tmp_path: Path) -> None:
    class FakeStrategy:  # stands in for a tf.distribute.Strategy (no TensorFlow import needed)
        pass

    config = TrainConfig(model="whole_image", run_dir=tmp_path / "run", cache_dir=tmp_path, strategy=FakeStrategy())
    payload = config.to_dict()
    assert payload["run_dir"] == str(tmp_path / "run") and payload["cache_dir"] == str(tmp_path)
    assert payload["strategy"] == "FakeStrategy"
    assert TrainConfig(model="whole_image", strategy="mirrored").to_dict()["strategy"] == "mirrored"
    with pytest.raises(ValueError, match="lesion model trains in one process"):
        TrainConfig(strategy="mirrored")


def test_config_is_frozen_and_replaceable() -> None:
    config = TrainConfig(epochs=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 4  # type: ignore[misc]
    assert dataclasses.replace(config, epochs=5).epochs == 5 and config.epochs == 3
    assert TrainConfig(epochs=np.int64(2)).epochs == 2  # numpy integers are integers


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "resnet"}, "unknown model 'resnet'; choose one of lesion, whole_image, seed, transfer"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"image_size": 16}, f"image_size must be at least {MIN_IMAGE_SIZE}, got 16"),
        ({"patience": -1}, "patience must be at least 0"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
        ({"verbose": 3}, r"verbose must be one of \(0, 1, 2\), got 3"),
        ({"strategy": "tpu"}, "strategy must be None, 'mirrored' or a tf.distribute.Strategy; got 'tpu'"),
        ({"model_kwargs": ["width", 16]}, "model_kwargs must be a dict or None, got list"),
    ],
)
def test_bad_values_are_refused_when_the_config_is_made(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)
