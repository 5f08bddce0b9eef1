"""Tests for mammo_utils.models.networks (the seed model is built once per module: 202 M parameters, ~800 MB)."""

from __future__ import annotations

import urllib.error

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mammo_utils.labels import joint_index
from mammo_utils.models import networks as models

SEED_LAYER_TYPES = [
    "InputLayer",
    "Conv2D",
    "Conv2D",
    "BatchNormalization",
    "MaxPooling2D",
    "Dropout",
    "Conv2D",
    "BatchNormalization",
    "MaxPooling2D",
    "Dropout",
    "Dropout",
    "Flatten",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "Dense",
]


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_all_layers(layer))
    return found


@pytest.fixture(scope="module")
def seed_model() -> keras.Model:
    model = models.build_seed_model()
    yield model
    del model
    keras.backend.clear_session()


@pytest.fixture(scope="module")
def small_transfer() -> keras.Model:
    return models.build_transfer_model("mobilenetv3small", weights=None, input_shape=(96, 96, 1))


# ------------------------------------------------------------------------------------------------ seed model
def test_seed_exact_parameter_counts(seed_model):
    counts = models.count_params(seed_model)
    assert counts == {"total": 201_933_704, "trainable": 201_933_064, "non_trainable": 640}
    assert seed_model.count_params() == models.SEED_TOTAL_PARAMS
    assert seed_model.get_layer("dense").count_params() == 201_867_328


def test_seed_layer_table(seed_model):
    assert [type(layer).__name__ for layer in seed_model.layers] == SEED_LAYER_TYPES
    convs = [layer for layer in seed_model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.count_params() for c in convs] == [320, 18_496, 36_928]
    pools = [layer for layer in seed_model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [tuple(p.output.shape[1:3]) for p in pools] == [(223, 223), (222, 222)]
    assert seed_model.get_layer("flatten").output.shape[-1] == 3_154_176
    assert seed_model.layers[-1].name == "joint" and seed_model.output_names == ["joint"]


def test_seed_predict_is_a_distribution(seed_model):
    image = np.random.default_rng(0).random((1, 224, 224, 1), dtype=np.float32)
    probs = seed_model.predict(image, verbose=0)
    assert probs.shape == (1, 8)
    assert np.all(probs >= 0) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    density, malignant = models.marginals_from_joint(probs)
    assert density.shape == (1, 4) and malignant.shape == (1,)


def test_seed_compiles_with_categorical_crossentropy():
    model = models.compile_seed(models.build_seed_model(input_shape=(16, 16, 1)))
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.loss == "categorical_crossentropy"


# --------------------------------------------------------------------------------------------- default model
def test_default_is_at_most_one_percent_of_seed():
    counts = models.count_params(models.build_whole_image_model())
    assert 300_000 <= counts["total"] <= models.SEED_TOTAL_PARAMS // 100
    assert counts["total"] == counts["trainable"] + counts["non_trainable"]


def test_default_outputs_and_grad_cam_layer():
    model = models.build_whole_image_model()
    assert tuple(model.get_layer(models.LAST_CONV_LAYER).output.shape[1:3]) == (7, 7)
    images = np.random.default_rng(1).random((2, 224, 224, 1), dtype=np.float32)
    out = model.predict(images, verbose=0)
    assert set(out) == {"density", "malignancy"}
    assert out["density"].shape == (2, 4) and out["malignancy"].shape == (2, 1)
    assert np.allclose(out["density"].sum(axis=1), 1.0, atol=1e-5)
    assert np.all((out["malignancy"] > 0) & (out["malignancy"] < 1))
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_default_overfits_a_tiny_fixed_batch():
    keras.utils.set_random_seed(0)
    model = models.compile_default(models.build_whole_image_model((64, 64, 1), width=8, dropout=0.0), 3e-3)
    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 1), dtype=np.float32)
    y = {"density": np.array([0, 1, 2, 3]), "malignancy": np.array([[0.0], [1.0], [1.0], [0.0]])}
    history = model.fit(x, y, validation_data=(x, y), epochs=10, batch_size=4, shuffle=False, verbose=0).history
    expected = set(models.DEFAULT_HISTORY_KEYS)
    assert set(history) == expected | {f"val_{key}" for key in expected}
    losses = history["loss"]  # one step per epoch on the same 4 images
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_allclose(losses, np.add(history["density_loss"], history["malignancy_loss"]), rtol=1e-4)


# -------------------------------------------------------------------------------------------- transfer model
def test_transfer_maps_grey_to_three_channels(small_transfer):
    backbone = small_transfer.get_layer(models.BACKBONE_LAYER)
    assert backbone.input.shape[-1] == 3 and small_transfer.input.shape[-1] == 1
    head = keras.Model(small_transfer.input, small_transfer.get_layer("to_backbone_range").output)
    image = np.random.default_rng(2).random((1, 96, 96, 1), dtype=np.float32)
    scaled = head.predict(image, verbose=0)
    assert scaled.shape == (1, 96, 96, 3)
    np.testing.assert_allclose(scaled, np.repeat(image * 255.0, 3, axis=-1), rtol=1e-5)
    out = small_transfer.predict(image, verbose=0)
    assert out["density"].shape == (1, 4) and out["malignancy"].shape == (1, 1)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in _all_layers(small_transfer))


def test_freeze_and_unfreeze_backbone(small_transfer):
    frozen = models.count_params(small_transfer)
    heads = sum(small_transfer.get_layer(n).count_params() for n in ("density", "malignancy"))
    assert frozen["trainable"] == heads
    models.set_backbone_trainable(small_transfer, True)
    full = models.count_params(small_transfer)
    models.set_backbone_trainable(small_transfer, True, top_n_layers=20)
    partial = models.count_params(small_transfer)
    backbone = small_transfer.get_layer(models.BACKBONE_LAYER)
    assert all(not layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization))
    models.set_backbone_trainable(small_transfer, False)
    assert models.count_params(small_transfer) == frozen
    assert frozen["trainable"] < partial["trainable"] < full["trainable"] < full["total"]
    assert frozen["total"] == full["total"] == partial["total"]
    with pytest.raises(ValueError, match="not a transfer model"):
        models.set_backbone_trainable(models.build_whole_image_model((32, 32, 1), width=4), True)


def test_transfer_rejects_unknown_backbone_and_colour_input():
    with pytest.raises(ValueError, match="unknown backbone"):
        models.build_transfer_model("vgg99")
    with pytest.raises(ValueError, match=r"\(H, W, 1\)"):
        models.build_transfer_model("mobilenetv3small", input_shape=(96, 96, 3))


def test_imagenet_weights_offline_gives_clear_error(monkeypatch, tmp_path):
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))  # an empty cache: force a download attempt
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(models.PretrainedWeightsError, match="need internet.*weights=None"):
        models.build_transfer_model("mobilenetv3small", weights="imagenet", input_shape=(96, 96, 1))


# -------------------------------------------------------------------------------------------- save and load
@pytest.mark.parametrize("kind", ["whole_image", "transfer"])
def test_save_load_round_trip(kind, tmp_path, small_transfer):
    if kind == "whole_image":
        model = models.compile_default(models.build_whole_image_model((64, 64, 1), width=8))
        shape = (2, 64, 64, 1)
    else:
        model = models.compile_default(small_transfer)
        shape = (2, 96, 96, 1)
    images = np.random.default_rng(3).random(shape, dtype=np.float32)
    before = model.predict(images, verbose=0)
    path = models.save_model(model, tmp_path / "runs" / f"{kind}.keras")
    loaded = models.load_model(path)
    after = loaded.predict(images, verbose=0)
    for key in ("density", "malignancy"):
        np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-6)
    assert models.count_params(loaded) == models.count_params(model)
    assert loaded.get_layer(models.LAST_CONV_LAYER) is not None


def test_save_and_load_reject_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=".keras"):
        models.save_model(models.build_whole_image_model((32, 32, 1), width=4), tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match="no model file"):
        models.load_model(tmp_path / "missing.keras")


# ---------------------------------------------------------------------------------- joint ↔ marginal probs
@settings(max_examples=50, deadline=None)
@given(
    raw=arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=st.floats(0.01, 10.0)),
    data=st.data(),
)
def test_joint_probabilities_round_trip(raw, data):
    density = raw / raw.sum(axis=1, keepdims=True)
    malignant = data.draw(arrays(np.float64, (len(raw),), elements=st.floats(0.0, 1.0)))
    column = data.draw(st.booleans())
    joint = models.joint_probabilities(density, malignant[:, None] if column else malignant)
    assert joint.shape == (len(raw), 8)
    np.testing.assert_allclose(joint.sum(axis=1), 1.0, atol=1e-12)
    back_density, back_malignant = models.marginals_from_joint(joint)
    np.testing.assert_allclose(back_density, density, atol=1e-12)
    np.testing.assert_allclose(back_malignant, malignant, atol=1e-12)
    np.testing.assert_allclose(joint[:, joint_index(3, 1)], density[:, 2] * malignant, atol=1e-12)


def test_joint_probabilities_validates_inputs():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        models.joint_probabilities(np.ones((2, 3)) / 3, np.zeros(2))
    with pytest.raises(ValueError, match="sum to 1"):
        models.joint_probabilities(np.ones((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        models.joint_probabilities(np.full((1, 4), 0.25), np.array([1.5]))
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        models.marginals_from_joint(np.ones((2, 4)))


# ------------------------------------------------------------------------------------------------- counting
def test_count_params_matches_keras():
    model = models.build_whole_image_model((32, 32, 1), width=4)
    assert model.name == "whole_image"
    assert models.count_params(model)["total"] == model.count_params()
