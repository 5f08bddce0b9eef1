"""The lesion model: shapes, the image score is the attention-weighted cell malignancy, sub-models, safe save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammo_utils.models.lesion import (
    ATTENTION,
    CELL_MALIGNANCY,
    FINDING_PROBABILITY,
    LESION_CLASSES,
    LESION_OUTPUT,
    LESION_STRIDE,
    build_lesion_model,
    density_model,
    is_lesion_model,
    training_model,
)
from mammo_utils.models.networks import SEED_TOTAL_PARAMS, build_whole_image_model, count_params, load_model


@pytest.fixture(scope="module")
def small() -> keras.Model:
    return build_lesion_model((64, 96, 1), width=4, density_width=4)


def test_default_is_compact_and_two_task() -> None:
    model = build_lesion_model()
    assert count_params(model)["total"] <= 0.01 * SEED_TOTAL_PARAMS
    assert set(model.output_names) == {"density", "malignancy", LESION_OUTPUT}
    assert model.input_shape == (None, 384, 384, 1)


def test_outputs_and_the_score_is_the_attention_weighted_cell_malignancy(small: keras.Model) -> None:
    images = np.random.default_rng(0).random((3, 64, 96, 1), dtype=np.float32)
    out = small.predict(images, verbose=0)
    assert out["density"].shape == (3, 4) and np.allclose(out["density"].sum(axis=1), 1, atol=1e-5)
    grid = out[LESION_OUTPUT]
    assert grid.shape == (3, 64 // LESION_STRIDE, 96 // LESION_STRIDE, len(LESION_CLASSES))
    np.testing.assert_allclose(grid.sum(axis=-1), 1.0, atol=1e-5)  # background + benign + malignant
    parts = training_model(small).predict(images, verbose=0)
    attention, finding, malignant = parts[ATTENTION], parts[FINDING_PROBABILITY], parts[CELL_MALIGNANCY]
    assert attention.shape == (3, 4 * 6) and np.allclose(attention.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["malignancy"][:, 0], (attention * malignant.reshape(3, -1)).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(grid[..., 2], (finding * malignant)[..., 0], rtol=1e-5)
    np.testing.assert_allclose(grid[..., 0], 1.0 - finding[..., 0], rtol=1e-5)
    # the attention is the softmax of the logits whose sigmoid is the finding probability
    logits = np.log(finding / (1 - finding)).reshape(3, -1)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(attention, softmax / softmax.sum(axis=1, keepdims=True), rtol=1e-3, atol=1e-6)


def test_sub_models_share_the_weights(small: keras.Model) -> None:
    images = np.random.default_rng(1).random((2, 64, 96, 1), dtype=np.float32)
    trained = training_model(small)
    np.testing.assert_allclose(trained(images)["malignancy"].numpy(), small(images)["malignancy"].numpy(), atol=1e-6)
    head = small.get_layer("density")
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias + 1.0])
    assert np.allclose(density_model(small).get_layer("density").get_weights()[1], bias + 1.0)
    assert density_model(small)(images).shape == (2, 4)


def test_saved_model_loads_safely_and_predicts_the_same(small: keras.Model, tmp_path) -> None:
    path = tmp_path / "lesion.keras"
    small.save(path)
    loaded = load_model(path, compile=False)
    images = np.random.default_rng(2).random((2, 64, 96, 1), dtype=np.float32)
    a, b = small.predict(images, verbose=0), loaded.predict(images, verbose=0)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)
    assert is_lesion_model(loaded)


@pytest.mark.parametrize("shape", [(60, 64, 1), (64, 64, 3), (48, 48, 1)])
def test_refuses_shapes_off_the_grid(shape) -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        build_lesion_model(shape)


def test_sub_models_refuse_other_models() -> None:
    other = build_whole_image_model((32, 32, 1), width=4)
    assert not is_lesion_model(other)
    for make in (density_model, training_model):
        with pytest.raises(ValueError, match="not a lesion model"):
            make(other)


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_both_stems_reach_the_same_grid(stem: str) -> None:
    model = build_lesion_model((64, 96, 1), width=4, density_width=4, stem=stem)
    grid = model.predict(np.zeros((1, 64, 96, 1), dtype=np.float32), verbose=0)[LESION_OUTPUT]
    assert grid.shape == (1, 4, 6, len(LESION_CLASSES))
    names = {layer.name for layer in model.get_layer("lesion_trunk").layers}
    assert ("lesion_s1_conv" in names) == (stem == "conv")


def test_refuses_an_unknown_stem() -> None:
    with pytest.raises(ValueError, match="stem must be"):
        build_lesion_model((64, 64, 1), stem="pyramid")


def test_density_pools_with_weights_that_sum_to_one(small: keras.Model) -> None:
    probe = keras.Model(small.input, small.get_layer("density_attention").output)
    weights = probe.predict(np.random.default_rng(3).random((2, 64, 96, 1), dtype=np.float32), verbose=0)
    assert weights.shape == (2, 2 * 3)  # the density branch's 1/32 grid of a 64 x 96 input
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
