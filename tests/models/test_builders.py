"""Every model by name."""

from __future__ import annotations

import pytest

from mammo_utils.models.builders import DEFAULT_IMAGE_SIZES, MODEL_NAMES, build_model, compile_model


def test_names_and_default_sizes() -> None:
    assert MODEL_NAMES[0] == "lesion" and set(DEFAULT_IMAGE_SIZES) == set(MODEL_NAMES)
    assert DEFAULT_IMAGE_SIZES["seed"] == 224 and DEFAULT_IMAGE_SIZES["lesion"] > 224


def test_builds_each_small_model_by_name() -> None:
    assert build_model("lesion", input_shape=(64, 64, 1), width=4, density_width=4).name == "lesion"
    model = build_model("whole_image", input_shape=(32, 32, 1), width=4)
    assert model.name == "whole_image"
    assert compile_model(model).loss == {
        "density": "sparse_categorical_crossentropy",
        "malignancy": "binary_crossentropy",
    }
    seed = compile_model(build_model("seed", input_shape=(16, 16, 1)))
    assert seed.loss == "categorical_crossentropy"


def test_lesion_model_is_left_uncompiled() -> None:
    model = build_model("lesion", input_shape=(64, 64, 1), width=4, density_width=4)
    assert compile_model(model) is model and not model.compiled


def test_transfer_by_name() -> None:
    assert build_model("transfer", backbone="mobilenetv3small", input_shape=(64, 64, 1)).get_layer("backbone")


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="choose one of lesion, whole_image, seed, transfer"):
        build_model("resnet")
