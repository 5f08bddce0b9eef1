import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mammo_utils.evaluation import ceiling

HEIGHT, WIDTH = 72, 64  # read_mammogram refuses sides under 64


def _rows(true, noisy):
    n = len(true)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i // 2:03d}" for i in range(n)],  # two images per patient
            "pathology": noisy,
            "true_pathology": true,
        }
    )


# ------------------------------------------------------------------------------------ label-noise bound
def test_label_noise_bound_is_one_without_flips():
    true = ["malignant", "benign"] * 10
    bound = ceiling.label_noise_bound(_rows(true, true), n_boot=200, seed=1)
    assert bound.value == 1.0
    assert (bound.low, bound.high) == (1.0, 1.0)
    assert bound.n_used == 200


def test_label_noise_bound_has_the_hand_computed_value_with_one_flip():
    # noisy positives: 4 true positives (score 1) + 1 flipped benign (score 0); noisy negatives: 4 (score 0)
    # AUC = (4 * 4 wins + 1 * 4 ties / 2) / (5 * 4) = 0.9
    true = ["malignant"] * 4 + ["benign"] * 5
    noisy = ["malignant"] * 5 + ["benign"] * 4
    bound = ceiling.label_noise_bound(_rows(true, noisy), n_boot=300, seed=0)
    assert bound.value == pytest.approx(0.9)
    assert bound.low <= 0.9 <= bound.high <= 1.0
    assert bound == ceiling.label_noise_bound(_rows(true, noisy), n_boot=300, seed=0)  # seeded


def test_auc_ci_skips_missing_labels_and_checks_lengths():
    rows = _rows(["malignant", "benign", None, "benign"], ["malignant", "benign", "benign", None])
    assert ceiling.auc_ci(rows, [0.9, 0.1, 0.5, 0.5], "true_pathology", n_boot=50).value == 1.0
    assert ceiling.auc_ci(rows, [0.9, 0.1, 0.5, 0.5], "pathology", n_boot=50).value == 1.0
    with pytest.raises(ValueError, match="3 scores for 4 rows"):
        ceiling.auc_ci(rows, [0.1, 0.2, 0.3])


# ------------------------------------------------------------------------------------ crops
@pytest.fixture(scope="module")
def coordinate_image(tmp_path_factory):
    """A 16-bit PNG whose pixel (y, x) holds y * WIDTH + x + 1, so every crop pixel says where it came from."""
    values = (np.arange(HEIGHT)[:, None] * WIDTH + np.arange(WIDTH)[None, :] + 1).astype(np.uint16)
    path = tmp_path_factory.mktemp("crops") / "coordinates.png"
    Image.fromarray(values).save(path)
    return path


def _source(crop):
    """(y, x) of the image pixel behind each crop pixel; (-1, -1) where the crop is padding."""
    code = np.rint(crop.astype(np.float64) * 65535).astype(np.int64) - 1
    return np.where(code >= 0, code // WIDTH, -1), np.where(code >= 0, code % WIDTH, -1)


@settings(max_examples=25, deadline=None)
@given(
    y=st.integers(-10, HEIGHT + 10),
    x=st.integers(-10, WIDTH + 10),
    size=st.integers(1, 40),
)
def test_finding_crops_centre_the_finding_and_pad_with_zeros(coordinate_image, y, x, size):
    manifest = pd.DataFrame({"image_path": [str(coordinate_image)], "finding_y": [y], "finding_x": [x]})
    crop = ceiling.finding_crops(manifest, size=size, workers=1)
    assert crop.shape == (1, size, size) and crop.dtype == np.float32
    rows, cols = _source(crop[0])
    want_y = y - size // 2 + np.arange(size)[:, None] + 0 * np.arange(size)[None, :]
    want_x = x - size // 2 + np.arange(size)[None, :] + 0 * np.arange(size)[:, None]
    inside = (want_y >= 0) & (want_y < HEIGHT) & (want_x >= 0) & (want_x < WIDTH)
    np.testing.assert_array_equal(rows[inside], want_y[inside])
    np.testing.assert_array_equal(cols[inside], want_x[inside])
    assert (crop[0][~inside] == 0).all()


def test_finding_crops_of_a_synthetic_image_match_its_pixels_and_workers_agree(coordinate_image, tmp_path):
    from mammo_utils.imaging.io import read_mammogram

    disc = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    disc[(yy - 30) ** 2 + (xx - 20) ** 2 <= 6**2] = 255  # a bright disc centred on (30, 20)
    Image.fromarray(disc).save(tmp_path / "disc.png")
    manifest = pd.DataFrame(
        {
            "image_path": [str(tmp_path / "disc.png"), str(coordinate_image)] * 3,
            "finding_y": [30.0, 0, 30, HEIGHT - 1, 5, 40],
            "finding_x": [20.0, 0, 20, WIDTH - 1, 60, 3],
        }
    )
    serial = ceiling.finding_crops(manifest, size=16, workers=1)
    crop = serial[0]
    assert crop[8, 8] == 1.0 and crop[8, 8 + 6] == 1.0 and crop[8, 8 + 7] == 0.0  # centred, radius 6
    np.testing.assert_array_equal(crop, read_mammogram(tmp_path / "disc.png").pixels[22:38, 12:28])
    np.testing.assert_array_equal(ceiling.finding_crops(manifest, size=16, workers=2), serial)
    assert ceiling.finding_crops(manifest.iloc[:0], size=16).shape == (0, 16, 16)
    with pytest.raises(ValueError, match="finding centre"):
        ceiling.finding_crops(manifest.assign(finding_x=np.nan), size=16)


# ------------------------------------------------------------------------------------ the oracle
def _tiny_crops(n, size, seed):
    """Noise crops; label 1 has a bright centred disc."""
    rng = np.random.default_rng(seed)
    crops = rng.uniform(0.2, 0.4, (n, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    yy, xx = np.mgrid[:size, :size]
    crops[:, (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= 16] += 0.4 * y[:, None]
    return crops, y


def test_train_oracle_returns_a_model_and_finite_aucs():
    crops, y = _tiny_crops(40, 32, seed=0)
    fit = ceiling.train_oracle(crops[:28], y[:28], crops[28:], y[28:], seed=0, epochs=2, batch_size=8)
    assert list(fit.history.columns) == ["epoch", "loss", "val_auc", "learning_rate"]
    assert len(fit.history) == 2 and 1 <= fit.best_epoch <= 2
    assert math.isfinite(fit.val_auc) and fit.history["loss"].notna().all()
    scores = ceiling.oracle_scores(fit.model, crops[28:])
    assert scores.shape == (12,) and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    rows = pd.DataFrame(
        {"patient_id": [f"P{i}" for i in range(12)], "pathology": np.where(y[28:], "malignant", "benign")}
    )
    assert math.isfinite(ceiling.auc_ci(rows, scores, n_boot=50).value)
    assert ceiling.oracle_scores(fit.model, crops[:0]).shape == (0,)
    assert 10_000 < ceiling.build_oracle(96).count_params() < 100_000
