"""Tests for mammo_utils.inference.predictor: a fast-trained run, formats, calibration, batches, the joint head."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from _trained import trained_predictor, trained_run_dir
from keras import layers
from PIL import Image

from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.mammogram import MammogramReadError
from mammo_utils.inference.prediction import STAGES, Prediction
from mammo_utils.inference.predictor import Predictor

LEFT_CC_MALIGNANT = "1-280.dcm"  # P_00820 LEFT CC


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return trained_predictor()


@pytest.fixture(scope="module")
def dicom(sample_dicom_paths: list[Path]) -> Path:
    return next(p for p in sample_dicom_paths if p.name == LEFT_CC_MALIGNANT)


@pytest.fixture(scope="module")
def probe() -> Predictor:
    """A :class:`Predictor` of :func:`_brightness_probe` (built and traced once)."""
    return Predictor(_brightness_probe())


@pytest.fixture(scope="module")
def three_formats(dicom: Path) -> dict[str, bytes]:
    """The same mammogram as its DICOM, a 16-bit grey PNG and a colour-tinted RGB JPEG."""
    pixels = read_mammogram(dicom).pixels
    png = io.BytesIO()
    Image.fromarray(np.round(pixels * 65535).astype(np.uint16)).save(png, format="PNG", compress_level=1)
    tint = np.stack([pixels, 0.93 * pixels, 0.8 * pixels], axis=-1)  # sepia-like colour
    jpeg = io.BytesIO()
    Image.fromarray(np.round(tint * 255).astype(np.uint8), mode="RGB").save(jpeg, format="JPEG", quality=92)
    return {"case.dcm": dicom.read_bytes(), "case.png": png.getvalue(), "case.jpg": jpeg.getvalue()}


def _brightness_probe() -> keras.Model:
    """A two-head model whose outputs follow the mean intensity of the standardized image (no training needed).

    ``last_conv`` is a 1×1 convolution with weight 1 (the image itself), global average pooling gives the mean
    intensity m (about 0.11-0.17 for the 8 sample DICOMs); density logits are ``(m - 0.14) * (-60, -20, 20, 60)``
    and the malignancy log-odds ``40 (m - 0.14)``: a difference of 0.01 in m moves the density probabilities by
    about 0.1, so unlike an untrained or barely trained network (whose outputs hardly depend on the input) it
    cannot hide a difference between inputs.
    """
    inputs = keras.Input((224, 224, 1), name="image")
    conv = layers.Conv2D(1, 1, use_bias=False, name="last_conv")
    mean = layers.GlobalAveragePooling2D(name="gap")(conv(inputs))
    density = layers.Dense(4, activation="softmax", name="density")
    malignancy = layers.Dense(1, activation="sigmoid", name="malignancy")
    model = keras.Model(inputs, {"density": density(mean), "malignancy": malignancy(mean)}, name="probe")
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32)])
    slopes = np.array([-60.0, -20.0, 20.0, 60.0], np.float32)
    density.set_weights([slopes[None], -0.14 * slopes])
    malignancy.set_weights([np.array([[40.0]], np.float32), np.array([-40.0 * 0.14], np.float32)])
    return model


# ------------------------------------------------------------------------------------------------ one image
def test_predict_dicom_gives_a_complete_prediction(predictor: Predictor, dicom: Path):
    p = predictor.predict(dicom)
    assert isinstance(p, Prediction) and p.source == dicom.name
    assert p.density in (1, 2, 3, 4) and p.density == int(np.argmax(p.density_probs)) + 1
    assert (p.density_letter, p.density_name) == (
        {1: "a", 2: "b", 3: "c", 4: "d"}[p.density],
        {1: "almost entirely fatty", 2: "scattered fibroglandular", 3: "heterogeneously dense", 4: "extremely dense"}[
            p.density
        ],
    )
    assert math.isclose(sum(p.density_probs), 1.0, abs_tol=1e-5) and all(0 <= q <= 1 for q in p.density_probs)
    assert 0.0 <= p.malignancy_prob <= 1.0 and p.call in ("benign", "malignant")
    assert p.malignant == (p.malignancy_prob_raw >= predictor.threshold_raw)
    assert p.image.shape == predictor.image_size and p.image.dtype == np.float32
    assert set(p.cams) == {"density", "malignancy"}
    h, w = p.content_shape
    top = (p.image.shape[0] - h) // 2
    for cam in p.cams.values():
        assert cam.shape == p.image.shape and cam.min() >= 0.0 and cam.max() <= 1.0
        outside = np.ones(cam.shape, bool)
        outside[top : top + h, :w] = False
        assert not cam[outside].any(), "Grad-CAM is masked to the breast content"
    lesion = p.lesion_map  # the default lesion model's own map: malignant probability, on the image's grid
    assert lesion is not None and lesion.shape == p.image.shape and lesion.min() >= 0.0 and lesion.max() <= 1.0
    assert not lesion[outside].any() and lesion.max() <= p.malignancy_prob_raw + 1e-4
    for region in p.regions:
        top_, left_, bottom_, right_ = region.box_original
        assert 0 <= top_ < bottom_ <= p.original_shape[0] and 0 <= left_ < right_ <= p.original_shape[1]
    assert [r.probability for r in p.regions] == sorted((r.probability for r in p.regions), reverse=True)
    rows, cols = p.original_shape
    t, left, b, r = p.crop_box
    assert 0 <= t < b <= rows and 0 <= left < r <= cols
    assert (p.laterality, p.view, p.flipped, p.source_format) == ("L", "CC", False, "dicom")
    assert set(p.timings) == set(STAGES) and all(v > 0 for v in p.timings.values())
    assert p.timings["total"] >= p.timings["decode"] + p.timings["standardize"] + p.timings["model_gradcam"]
    assert p.model_version == f"{trained_run_dir().name}/lesion"
    assert max(p.thumbnail.shape) <= 384 and p.joint_probs is None
    record = json.loads(json.dumps(p.to_record()))
    assert record["density_letter"] == p.density_letter and record["call"] == p.call


def test_right_breast_is_flipped(predictor: Predictor, sample_dicom_paths: list[Path]):
    right = next(p for p in sample_dicom_paths if p.name == "1-282.dcm")  # P_00820 RIGHT CC
    assert predictor.predict(right).flipped


def test_bytes_and_path_give_the_same_prediction(predictor: Predictor, dicom: Path):
    from_path = predictor.predict(dicom)
    from_bytes = predictor.predict(memoryview(dicom.read_bytes()), filename="upload.dcm")
    assert from_bytes.source == "upload.dcm"
    np.testing.assert_allclose(from_bytes.density_probs, from_path.density_probs, atol=1e-6)
    assert from_bytes.crop_box == from_path.crop_box


@pytest.mark.parametrize("model", ["fast-trained", "brightness-probe"])
def test_same_mammogram_as_dicom_png16_and_colour_jpeg_agrees(
    model: str, predictor: Predictor, probe: Predictor, three_formats: dict[str, bytes]
):
    chosen = predictor if model == "fast-trained" else probe
    out = {name: chosen.predict(data, filename=name) for name, data in three_formats.items()}
    assert [p.source_format for p in out.values()] == ["dicom", "png", "jpeg"]
    reference = out["case.dcm"]
    for name, p in out.items():
        np.testing.assert_allclose(p.density_probs, reference.density_probs, atol=0.05, err_msg=name)
        assert p.density == reference.density, name
        assert abs(p.malignancy_prob - reference.malignancy_prob) <= 0.05, name
        assert np.abs(p.image - reference.image).mean() < 0.01, f"{name}: standardized images differ"
        assert np.abs(np.subtract(p.crop_box, reference.crop_box)).max() <= 8, name


def test_brightness_probe_is_sensitive(probe: Predictor, sample_dicom_paths: list[Path]):
    """The probe used above tells different mammograms apart by far more than the 0.05 tolerance."""
    probs = np.array([probe.predict(p).density_probs for p in sample_dicom_paths[:2] + sample_dicom_paths[4:6]])
    assert np.abs(probs[:, None] - probs[None]).max() > 0.3


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # pydicom, on the truncated file
@pytest.mark.parametrize("data", [b"", b"not an image at all", None])
def test_unreadable_input_raises_a_clear_error(predictor: Predictor, dicom: Path, data: bytes | None):
    data = dicom.read_bytes()[:3000] if data is None else data  # None: a truncated real DICOM
    with pytest.raises(MammogramReadError, match="bad.dcm"):
        predictor.predict(data, filename="bad.dcm")


# ------------------------------------------------------------------------------------------------ batches
def test_predict_many_reports_bad_files_and_keeps_going(
    predictor: Predictor, sample_dicom_paths: list[Path], tmp_path: Path
):
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    shutil.copyfile(sample_dicom_paths[0], folder / "sub" / "good.dcm")
    Image.fromarray(np.round(read_mammogram(sample_dicom_paths[0]).pixels[::4, ::4] * 255).astype(np.uint8)).save(
        folder / "good.png"
    )
    (folder / "bad.dcm").write_bytes(b"\x00" * 200)
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    result = predictor.predict_many([folder, tmp_path / "missing.png"], progress=False, keep_arrays=False)
    assert [Path(p.source).name for p in result.predictions] == ["good.png", "good.dcm"]
    assert [Path(s).name for s, _ in result.errors] == ["missing.png", "bad.dcm"] and not result.ok
    assert all(p.image is None and p.cams == {} and p.thumbnail is None for p in result.predictions)
    frame = result.to_frame()
    assert len(frame) == 4 and frame["error"].notna().sum() == 2


# ------------------------------------------------------------------------------------------------ runs
def _copy_run(tmp_path: Path, metrics: dict | None) -> Path:
    run = tmp_path / "20990101-000000_default_synthetic"
    run.mkdir()
    for name in ("model.keras", "params.json"):
        shutil.copyfile(trained_run_dir() / name, run / name)
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_calibration_and_threshold_come_from_metrics_json(tmp_path: Path, dicom: Path):
    run = _copy_run(
        tmp_path,
        {
            "calibration": {"malignancy": {"temperature": 2.5}},
            "malignancy": {"threshold": {"value": 0.3, "chosen_on": "val"}},
        },
    )
    calibrated = Predictor.from_run(run, warmup=False)
    assert calibrated.calibrated and calibrated.threshold_raw == 0.3 and "temperature 2.5" in calibrated.describe()
    p = calibrated.predict(dicom)
    logit = math.log(p.malignancy_prob_raw / (1 - p.malignancy_prob_raw))
    assert p.calibrated and p.temperature == 2.5
    assert p.malignancy_prob == pytest.approx(1 / (1 + math.exp(-logit / 2.5)), abs=1e-4)
    assert p.threshold == pytest.approx(1 / (1 + math.exp(-math.log(0.3 / 0.7) / 2.5)), abs=1e-9)
    assert p.malignant == (p.malignancy_prob_raw >= 0.3) == (p.malignancy_prob >= p.threshold)
    assert p.model_version == f"{run.name}/lesion"


def test_without_a_temperature_probabilities_are_raw(tmp_path: Path, dicom: Path, probe: Predictor):
    metrics = {"calibration": {"malignancy": {"temperature": None}}}  # NaN when the fit was impossible
    plain = Predictor.from_path(_copy_run(tmp_path, metrics) / "model.keras", warmup=False)
    assert not plain.calibrated and plain.temperature is None and plain.threshold == 0.5
    assert "uncalibrated" in plain.describe() and plain.version.endswith("/lesion")
    p = probe.predict(dicom)  # an uncalibrated Predictor reports the model's own probability
    assert not p.calibrated and p.temperature is None and p.threshold == 0.5
    assert p.malignancy_prob == p.malignancy_prob_raw and p.malignant == (p.malignancy_prob_raw >= 0.5)


def test_missing_models_raise_clear_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no model or run directory"):
        Predictor.from_path(tmp_path / "nothing.keras")
    with pytest.raises(FileNotFoundError, match="model.keras"):
        Predictor.from_run(tmp_path)
    with pytest.raises(ValueError, match="from_run"):
        Predictor(tmp_path)
    with pytest.raises(ValueError, match="threshold"):
        Predictor(_brightness_probe(), threshold=1.5, warmup=False)
    with pytest.raises(ValueError, match="temperature"):
        Predictor(_brightness_probe(), temperature=-1.0, warmup=False)


def test_seed_style_joint_model_gives_its_marginals(tmp_path: Path, dicom: Path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 1), name="image")
    x = layers.Conv2D(4, 3, strides=4, activation="relu", name="last_conv")(inputs)
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(8, activation="softmax", name="joint")(x), name="tiny_seed")
    path = tmp_path / "tiny_seed.keras"
    model.save(path)
    joint_predictor = Predictor(path, warmup=False)
    p = joint_predictor.predict(dicom)
    assert joint_predictor.image_size == (64, 64) and p.image.shape == (64, 64)
    joint = np.asarray(p.joint_probs).reshape(4, 2)
    np.testing.assert_allclose(p.density_probs, joint.sum(axis=1), atol=1e-5)
    assert p.malignancy_prob == pytest.approx(joint[:, 1].sum(), abs=1e-5)
    assert p.model_version == "tiny_seed.keras"
