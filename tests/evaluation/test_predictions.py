"""Tests for mammo_utils.evaluation.predictions: the predictions table, its label columns, joint probabilities."""

import numpy as np
import pandas as pd
import pytest

from mammo_utils import labels
from mammo_utils.datasets.schema import make_manifest
from mammo_utils.evaluation import predictions as pt


def test_joint_from_heads_follows_the_label_convention():
    density = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    malignant = np.array([0.25, 0.9])
    joint = pt.joint_from_heads(density, malignant)
    assert np.allclose(joint.sum(axis=1), 1.0)
    for d in labels.DENSITY_CLASSES:
        for m in (0, 1):
            expected = density[:, d - 1] * (malignant if m else 1 - malignant)
            assert np.allclose(joint[:, labels.joint_index(d, m)], expected)


def test_joint_from_heads_agrees_with_models_joint_probabilities():
    models = pytest.importorskip(
        "mammo_utils.models.networks"
    )  # imports TensorFlow (slow); the predictions table does not
    rng = np.random.default_rng(0)
    density = rng.dirichlet(np.ones(4), size=20)
    malignant = rng.random(20)
    assert np.allclose(pt.joint_from_heads(density, malignant), models.joint_probabilities(density, malignant))
    back_density, back_malignant = models.marginals_from_joint(pt.joint_from_heads(density, malignant))
    assert np.allclose(back_density, density) and np.allclose(back_malignant, malignant)


def test_predictions_frame_from_manifest_and_from_the_seed_joint():
    manifest = make_manifest(
        [
            {"image_path": "/a.png", "patient_id": "P1", "density": "c", "pathology": "MALIGNANT", "view": "CC"},
            {"image_path": "/b.png", "patient_id": "P2", "density": None, "pathology": None, "view": "MLO"},
        ]
    )
    joint = np.array([[0.0, 0.1, 0.1, 0.1, 0.1, 0.4, 0.1, 0.1], np.full(8, 1 / 8)])
    frame = pt.predictions_frame(manifest, joint_probs=joint)
    assert frame["density"].tolist()[0] == 3 and frame["density"].isna().tolist() == [False, True]
    assert frame["malignant"].tolist()[0] == 1 and frame["pathology"].isna().tolist() == [False, True]
    assert np.allclose(frame[list(pt.DENSITY_PROB_COLUMNS)].iloc[0], [0.1, 0.2, 0.5, 0.2])
    assert frame[pt.MALIGNANCY_PROB_COLUMN].tolist() == pytest.approx([0.7, 0.5])
    assert list(frame[list(pt.JOINT_PROB_COLUMNS)].iloc[0]) == pytest.approx(joint[0].tolist())
    assert frame["image_path"].tolist() == ["/a.png", "/b.png"]
    with pytest.raises(ValueError, match="shape"):
        pt.predictions_frame(manifest, np.full((3, 4), 0.25), np.zeros(3))
    with pytest.raises(ValueError, match="joint_probs"):
        pt.predictions_frame(manifest, np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pt.predictions_frame(manifest, np.full((2, 4), 0.25), np.array([0.5, 1.5]))


def test_label_array_and_finite_rows():
    assert np.isnan(pt.label_array(pd.Series([1, None, float("nan")], dtype=object))[1:]).all()
    assert pt.label_array(pd.array([1, None, 0], dtype="Int64"))[[0, 2]].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="must be numbers"):
        pt.label_array(["c", 1])  # a letter is not silently dropped
    y, p = pt.finite_rows([1, None, 0], [0.9, 0.5, 0.2])
    assert y.tolist() == [1.0, 0.0] and p.tolist() == [0.9, 0.2]  # the unlabelled row goes with its prediction
    with pytest.raises(ValueError, match="3 labels but 2 prediction rows"):
        pt.finite_rows([1, 0, 1], [0.9, 0.5])


def test_label_columns_from_the_table():
    frame = pt.predictions_frame(
        make_manifest(
            [
                {"image_path": "/a.png", "patient_id": "P1", "density": 2, "pathology": "BENIGN"},
                {"image_path": "/b.png", "patient_id": "P2", "density": None, "pathology": "MALIGNANT"},
            ]
        ),
        np.full((2, 4), 0.25),
        np.array([0.3, 0.8]),
    )
    assert pt.density_labels(frame)[0] == 2 and np.isnan(pt.density_labels(frame)[1])
    assert pt.malignancy_labels(frame).tolist() == [0.0, 1.0]
    from_pathology = frame.drop(columns="malignant")  # e.g. a CSV written without the 0/1 column
    assert pt.malignancy_labels(from_pathology).tolist() == [0.0, 1.0]
    no_labels = frame.drop(columns=["density", "malignant", "pathology"])
    assert np.isnan(pt.density_labels(no_labels)).all() and np.isnan(pt.malignancy_labels(no_labels)).all()
