"""Tests for mammo_utils.inference.gradcam (Grad-CAM).

The real default model (random weights) covers the default path; the 202 M-parameter seed model is NOT built
here: the seed path (one "joint" softmax over 8) is tested on small models with the same output convention.
A tiny CNN trained for a few seconds on synthetic images with a planted bright square shows that the maps
point at the evidence.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from mammo_utils.inference.gradcam import GradCAM
from mammo_utils.models.builders import build_model
from mammo_utils.models.networks import marginals_from_joint

SIZE = 32  # planted-signal images
QUAD = SIZE // 2


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def default_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model("whole_image")


@pytest.fixture(scope="module")
def default_cam(default_model) -> GradCAM:
    return GradCAM(default_model)


@pytest.fixture(scope="module")
def images224() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((3, 224, 224), dtype=np.float32)


def _planted(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic images: noise + a bright 9-px bar (distractor, every image) + in half of them a bright
    5×5 square (the class signal) in a random quadrant other than the bar's. Returns images, labels, quadrants."""
    x = rng.uniform(0.0, 0.3, (n, SIZE, SIZE)).astype(np.float32)
    label = np.arange(n) % 2
    quadrant = rng.integers(0, 4, n)
    for i in range(n):
        bar = (quadrant[i] + rng.integers(1, 4)) % 4
        r, c = QUAD * (bar // 2) + rng.integers(2, 13), QUAD * (bar % 2) + rng.integers(1, 7)
        x[i, r, c : c + 9] = 1.0
        if label[i]:
            r, c = QUAD * (quadrant[i] // 2) + rng.integers(2, 10), QUAD * (quadrant[i] % 2) + rng.integers(2, 10)
            x[i, r : r + 5, c : c + 5] = 1.0
    return x, label, quadrant


@pytest.fixture(scope="module")
def planted_model() -> keras.Model:
    """Tiny two-head CNN (default-model convention) trained for ~80 steps on the planted square:
    malignancy = square present; density class 1 = square present, 0 = absent (classes 2, 3 unused)."""
    keras.utils.set_random_seed(1)
    x, label, _ = _planted(512, np.random.default_rng(0))
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    h = layers.Conv2D(8, 5, strides=2, padding="same")(inputs)
    h = layers.Activation("relu")(layers.BatchNormalization(momentum=0.8)(h))
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(h)
    features = layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(
        inputs,
        {
            "density": layers.Dense(4, activation="softmax", name="density")(features),
            "malignancy": layers.Dense(1, activation="sigmoid", name="malignancy")(features),
        },
    )
    optimizer = keras.optimizers.Adam(1e-2)
    density_loss, malignancy_loss = keras.losses.SparseCategoricalCrossentropy(), keras.losses.BinaryCrossentropy()

    @tf.function
    def step(images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            out = model(images, training=True)
            loss = density_loss(targets, out["density"]) + malignancy_loss(targets[:, None], out["malignancy"])
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
        )
        return loss

    images, targets = tf.constant(x[..., None]), tf.constant(label, dtype=tf.float32)
    for i in range(80):  # a custom loop: several times faster than model.fit for this tiny job
        start = (i * 128) % len(x)
        step(images[start : start + 128], targets[start : start + 128])
    return model


@pytest.fixture(scope="module")
def planted_test() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _planted(64, np.random.default_rng(1))


def _joint_from_two_heads(model: keras.Model) -> keras.Model:
    """Seed-convention model sharing ``model``'s layers: joint logit[(d) * 2 + m] = z_density[d] + m · z_malig.

    Its softmax is exactly P(density) × P(malignancy) of the two-head model, so every marginal agrees."""
    density, malignancy = model.get_layer("density"), model.get_layer("malignancy")
    joint = layers.Dense(8, activation="softmax", name="joint")
    seed_like = keras.Model(model.inputs, joint(density.input), name="seed_like")
    wd, bd = (np.asarray(w) for w in density.get_weights())
    wm, bm = (np.asarray(w) for w in malignancy.get_weights())
    kernel = np.stack([wd, wd + wm], axis=-1).reshape(wd.shape[0], 8)
    bias = np.stack([bd, bd + bm], axis=-1).reshape(8)
    joint.set_weights([kernel, bias])
    return seed_like


def _quadrant_mass(cam: np.ndarray, quadrant: int) -> float:
    r0, c0 = QUAD * (quadrant // 2), QUAD * (quadrant % 2)
    total = float(cam.sum())
    return float(cam[r0 : r0 + QUAD, c0 : c0 + QUAD].sum()) / total if total > 0 else 0.0


# ------------------------------------------------------------------------------------ default model path
def test_default_model_maps_and_predictions(default_model, default_cam, images224):
    result = default_cam(images224)
    assert set(result.cams) == {"density", "malignancy"}
    for cam in result.cams.values():
        assert cam.shape == (3, 224, 224) and cam.dtype == np.float32
        assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0
        assert np.allclose(cam.max(axis=(1, 2)), 1.0)  # normalized per image
    outputs = default_model(images224[..., None], training=False)
    np.testing.assert_allclose(result.density_probs, np.asarray(outputs["density"]), atol=1e-5)
    np.testing.assert_allclose(result.malignancy_prob, np.asarray(outputs["malignancy"])[:, 0], atol=1e-5)
    np.testing.assert_array_equal(result.density_class, result.density_probs.argmax(axis=1))
    assert result.joint_probs is None and result.malignancy_target == "malignant"
    np.testing.assert_allclose(np.asarray(tf.nn.softmax(result.density_logits)), result.density_probs, atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-result.malignancy_logit)), result.malignancy_prob, atol=1e-6)


def test_deterministic(default_cam, images224):
    first, second = default_cam(images224[:2]), default_cam(images224[:2])
    for head in first.cams:
        np.testing.assert_array_equal(first.cams[head], second.cams[head])


def test_both_heads_in_one_call_equal_separate_calls(default_cam, images224):
    both = default_cam(images224)
    for head in ("density", "malignancy"):
        alone = default_cam(images224, heads=(head,))
        assert set(alone.cams) == {head}
        np.testing.assert_allclose(both.cams[head], alone.cams[head], atol=1e-5)
        np.testing.assert_allclose(both.density_probs, alone.density_probs, atol=1e-6)


def test_input_forms_batching_and_class_choice(default_cam, images224):
    image = images224[0]
    reference = default_cam(image[None]).cams["malignancy"]
    assert reference.shape == (1, 224, 224)
    for form in (image, image[..., None], image[None, ..., None]):
        np.testing.assert_allclose(default_cam(form).cams["malignancy"], reference, atol=1e-6)
    batched = default_cam(images224, batch_size=2)  # 2 + 1: chunked batches give the same maps
    np.testing.assert_allclose(batched.cams["density"], default_cam(images224).cams["density"], atol=1e-5)
    predicted = default_cam(images224)
    given = default_cam(images224, density_class=predicted.density_class)
    np.testing.assert_allclose(given.cams["density"], predicted.cams["density"], atol=1e-6)
    other = (predicted.density_class + 2) % 4
    changed = default_cam(images224, density_class=other)
    np.testing.assert_array_equal(changed.density_class, other)
    assert not np.allclose(changed.cams["density"], predicted.cams["density"], atol=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heads": ("birads",)},
        {"heads": ()},
        {"density_class": 4},
        {"density_class": -1},
        {"malignancy_target": "maybe"},
    ],
)
def test_bad_arguments_raise(default_cam, images224, kwargs):
    with pytest.raises(ValueError):
        default_cam(images224[:1], **kwargs)


def test_bad_model_or_image_raises(default_model, default_cam):
    with pytest.raises(ValueError, match="no layer named"):
        GradCAM(default_model, layer_name="no_such_layer")
    with pytest.raises(ValueError, match="shape"):
        default_cam(np.zeros((100, 120), dtype=np.float32))


def test_all_zero_activations_give_zero_map_without_nan():
    inputs = keras.Input((16, 16, 1), name="image")
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="last_conv")(inputs)  # zero bias
    features = layers.GlobalAveragePooling2D()(h)
    model = keras.Model(
        inputs,
        {
            "density": layers.Dense(4, activation="softmax", name="density")(features),
            "malignancy": layers.Dense(1, activation="sigmoid", name="malignancy")(features),
        },
    )
    result = GradCAM(model)(np.zeros((2, 16, 16), dtype=np.float32))
    for cam in result.cams.values():
        assert np.isfinite(cam).all() and not cam.any()


def _tiny_two_head(density_bias: list[float]) -> keras.Model:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 1), name="image")
    h = layers.Conv2D(6, 3, padding="same", activation="relu", bias_initializer="ones", name="last_conv")(inputs)
    features = layers.GlobalAveragePooling2D()(h)
    density = layers.Dense(
        4, activation="softmax", name="density", bias_initializer=keras.initializers.Constant(density_bias)
    )
    return keras.Model(
        inputs,
        {
            "density": density(features),
            "malignancy": layers.Dense(1, activation="sigmoid", name="malignancy")(features),
        },
    )


def test_probability_score_does_not_underflow_when_confident():
    """A bias of 200 makes p = 1.0 exactly in float32 (the gradient of p itself is 0); the map must not vanish
    and must equal the map without the bias (adding to one logit does not change its contrast's gradient)."""
    x = np.random.default_rng(4).random((2, 16, 16), dtype=np.float32)
    confident = GradCAM(_tiny_two_head([0.0, 200.0, 0.0, 0.0]))(x, density_class=1)
    assert np.all(confident.density_probs[:, 1] == 1.0)
    plain = GradCAM(_tiny_two_head([0.0, 0.0, 0.0, 0.0]))(x, density_class=1)
    assert confident.cams["density"].max() == pytest.approx(1.0)
    np.testing.assert_allclose(confident.cams["density"], plain.cams["density"], atol=1e-5)


def test_heads_as_separate_activation_layers_fall_back_to_log_probabilities():
    """Outputs named density/malignancy that are Activation layers (no Dense to read logits from) give the same
    probability-mode maps as the equivalent softmax/sigmoid Dense heads."""
    dense_heads = _tiny_two_head([0.0, 0.5, -0.5, 0.0])
    features = dense_heads.get_layer("density").input
    z_density = layers.Dense(4, name="density_logits")
    z_malignancy = layers.Dense(1, name="malignancy_logits")
    split = keras.Model(
        dense_heads.inputs,
        {
            "density": layers.Activation("softmax", name="density")(z_density(features)),
            "malignancy": layers.Activation("sigmoid", name="malignancy")(z_malignancy(features)),
        },
    )
    z_density.set_weights(dense_heads.get_layer("density").get_weights())
    z_malignancy.set_weights(dense_heads.get_layer("malignancy").get_weights())
    x = np.random.default_rng(6).random((3, 16, 16), dtype=np.float32)
    expected, fallback = GradCAM(dense_heads)(x), GradCAM(split)(x)
    np.testing.assert_allclose(fallback.density_probs, expected.density_probs, atol=1e-6)
    for head in ("density", "malignancy"):
        np.testing.assert_allclose(fallback.cams[head], expected.cams[head], atol=1e-4)


def test_logit_score_mode():
    model = _tiny_two_head([0.0, 0.5, -0.5, 0.0])
    x = np.random.default_rng(7).random((3, 16, 16), dtype=np.float32)
    logit, probability = GradCAM(model, score="logit")(x), GradCAM(model)(x)
    np.testing.assert_allclose(logit.cams["malignancy"], probability.cams["malignancy"], atol=1e-5)
    assert np.isfinite(logit.cams["density"]).all() and logit.cams["density"].max() <= 1.0
    assert not np.allclose(logit.cams["density"], probability.cams["density"], atol=1e-3)
    with pytest.raises(ValueError):
        GradCAM(model, score="softmax")


# ------------------------------------------------------------------------------------ the maps mean something
def test_planted_square_attracts_the_maps(planted_model, planted_test):
    x, label, quadrant = planted_test
    cam = GradCAM(planted_model)
    result = cam(x, density_class=1)
    assert ((result.malignancy_prob > 0.5) == label).mean() >= 0.9  # the tiny model did learn the task
    positives = np.flatnonzero(label == 1)
    for head in ("malignancy", "density"):
        mass = np.array([_quadrant_mass(result.cams[head][i], quadrant[i]) for i in positives])
        assert mass.mean() >= 0.5, (head, mass)
        assert (mass >= 0.5).mean() >= 0.8, (head, mass)
    benign = cam(x[positives], heads=("malignancy",), malignancy_target="benign").cams["malignancy"]
    benign_mass = np.array([_quadrant_mass(c, q) for c, q in zip(benign, quadrant[positives], strict=True)])
    assert benign_mass.mean() < 0.5  # the opposite direction does not point at the square


# ------------------------------------------------------------------------------------ seed-convention path
def test_seed_convention_marginals_and_maps_match_two_heads(planted_model, planted_test):
    x, label, quadrant = planted_test
    seed_like = _joint_from_two_heads(planted_model)
    two = GradCAM(planted_model, score="probability")(x)
    joint = GradCAM(seed_like, score="probability")(x)
    assert joint.joint_probs is not None and joint.joint_probs.shape == (len(x), 8)
    outer = two.density_probs[:, :, None] * np.stack([1 - two.malignancy_prob, two.malignancy_prob], axis=1)[:, None]
    np.testing.assert_allclose(joint.joint_probs, outer.reshape(len(x), 8), atol=1e-5)
    np.testing.assert_allclose(joint.density_probs, two.density_probs, atol=1e-5)
    np.testing.assert_allclose(joint.malignancy_prob, two.malignancy_prob, atol=1e-5)
    np.testing.assert_allclose(joint.malignancy_logit, two.malignancy_logit, atol=1e-4)  # exact marginal log-odds
    for head in ("density", "malignancy"):
        np.testing.assert_allclose(joint.cams[head], two.cams[head], atol=1e-4)
    positives = np.flatnonzero(label == 1)
    mass = [_quadrant_mass(joint.cams["malignancy"][i], quadrant[i]) for i in positives]
    assert np.mean(mass) >= 0.5


def test_seed_like_flatten_model():
    """Small model shaped like the seed (BN, stride-1 pooling after last_conv, dropout, flatten, dense)."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((24, 24, 1), name="image")
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = layers.Conv2D(6, 3, padding="same", activation="relu", name="last_conv")(h)
    h = layers.BatchNormalization()(h)
    h = layers.MaxPooling2D(pool_size=2, strides=1, padding="valid")(h)
    h = layers.Dropout(0.25)(layers.Flatten()(h))
    h = layers.Dense(8, activation="relu")(h)
    model = keras.Model(inputs, layers.Dense(8, activation="softmax", name="joint")(h))
    x = np.random.default_rng(3).random((4, 24, 24), dtype=np.float32)
    cam = GradCAM(model)
    result = cam(x)
    density, malignancy = marginals_from_joint(np.asarray(model(x[..., None], training=False)))
    np.testing.assert_allclose(result.density_probs, density, atol=1e-5)
    np.testing.assert_allclose(result.malignancy_prob, malignancy, atol=1e-5)
    np.testing.assert_array_equal(result.density_class, density.argmax(axis=1))
    for head, maps in result.cams.items():
        assert maps.shape == (4, 24, 24) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        np.testing.assert_array_equal(maps, cam(x, heads=(head,)).cams[head])
