"""The lesion model: shapes, the image score is the map's maximum, shared sub-models, safe save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammo_utils.models.lesion import (
    LESION_CLASSES,
    LESION_OUTPUT,
    LESION_STRIDE,
    build_lesion_model,
    density_model,
    image_model,
    is_lesion_model,
    patch_model,
)
from mammo_utils.models.networks import SEED_TOTAL_PARAMS, build_whole_image_model, count_params, load_model


@pytest.fixture(scope="module")
def small() -> keras.Model:
    return build_lesion_model((64, 96, 1), width=4, density_width=4)


def test_default_is_compact_and_two_task() -> None:
    model = build_lesion_model()
    assert count_params(model)["total"] <= 0.01 * SEED_TOTAL_PARAMS
    assert set(model.output_names) == {"density", "malignancy", LESION_OUTPUT}
    assert model.input_shape == (None, 320, 320, 1)


def test_outputs_and_the_score_is_the_maps_malignant_maximum(small: keras.Model) -> None:
    images = np.random.default_rng(0).random((3, 64, 96, 1), dtype=np.float32)
    out = small.predict(images, verbose=0)
    assert out["density"].shape == (3, 4) and np.allclose(out["density"].sum(axis=1), 1, atol=1e-5)
    grid = out[LESION_OUTPUT]
    assert grid.shape == (3, 64 // LESION_STRIDE, 96 // LESION_STRIDE, len(LESION_CLASSES))
    np.testing.assert_allclose(out["malignancy"][:, 0], grid[..., 2].reshape(3, -1).max(axis=1), rtol=1e-6)


def test_sub_models_share_the_weights(small: keras.Model) -> None:
    crops, whole = patch_model(small), density_model(small)
    images = np.random.default_rng(1).random((2, 64, 96, 1), dtype=np.float32)
    np.testing.assert_allclose(crops(images).numpy(), small(images)[LESION_OUTPUT].numpy(), atol=1e-6)
    assert crops(np.zeros((1, 32, 48, 1), np.float32)).shape == (1, 2, 3, 3)  # any crop size
    head = small.get_layer("density")
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias + 1.0])
    assert np.allclose(density_model(small).get_layer("density").get_weights()[1], bias + 1.0)
    assert whole(images).shape == (2, 4) and set(image_model(small).output_names) == {"density", "malignancy"}


def test_saved_model_loads_safely_and_predicts_the_same(small: keras.Model, tmp_path) -> None:
    path = tmp_path / "lesion.keras"
    small.save(path)
    loaded = load_model(path, compile=False)
    images = np.random.default_rng(2).random((2, 64, 96, 1), dtype=np.float32)
    a, b = small.predict(images, verbose=0), loaded.predict(images, verbose=0)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)
    assert is_lesion_model(loaded) and not loaded.get_layer("malignant_channel").trainable


@pytest.mark.parametrize("shape", [(60, 64, 1), (64, 64, 3), (48, 48, 1)])
def test_refuses_shapes_off_the_grid(shape) -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        build_lesion_model(shape)


def test_sub_models_refuse_other_models() -> None:
    other = build_whole_image_model((32, 32, 1), width=4)
    assert not is_lesion_model(other)
    for make in (patch_model, density_model, image_model):
        with pytest.raises(ValueError, match="not a lesion model"):
            make(other)
