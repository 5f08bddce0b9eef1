"""Tests for mammo_utils.evaluation.metrics: density, malignancy and joint metrics by hand, thresholds, bad labels."""

import math

import numpy as np
import pandas as pd
import pytest

from mammo_utils.evaluation import metrics as em


def test_density_metrics_by_hand():
    # true [1,2,3,4,2,3], predicted [1,2,4,4,3,3]; confusion (rows true, cols predicted):
    #   [[1,0,0,0],[0,1,1,0],[0,0,1,1],[0,0,0,1]]; row sums r = [1,2,2,1], column sums c = [1,1,2,2], n = 6
    # quadratic: observed sum w*O = 1 + 1 = 2 (two cells one class off);
    #   expected sum (i-j)^2 r_i c_j / n = (27 + 22 + 14 + 15) / 6 = 78 / 6 = 13  ->  kappa = 1 - 2/13 = 11/13
    #   (row i=0: 1*1 + 4*2 + 9*2 = 27; i=1: 2*(1 + 2 + 8) = 22; i=2: 2*(4 + 1 + 2) = 14; i=3: 9 + 4 + 2 = 15)
    # linear: observed 2; expected (11 + 14 + 10 + 7) / 6 = 42 / 6 = 7  ->  kappa = 1 - 2/7 = 5/7
    #   (i=0: 1 + 2*2 + 3*2 = 11; i=1: 2*(1 + 2 + 4) = 14; i=2: 2*(2 + 1 + 2) = 10; i=3: 3 + 2 + 2 = 7)
    # accuracy 4/6; dense (c, d) vs not: true [0,0,1,1,0,1] predicted [0,0,1,1,1,1] -> 5/6
    true = [1, 2, 3, 4, 2, 3]
    predicted = [1, 2, 4, 4, 3, 3]
    probs = np.full((6, 4), 0.1)
    probs[np.arange(6), np.array(predicted) - 1] = 0.7
    metrics = em.density_metrics(true, probs)
    assert metrics["kappa_quadratic"] == pytest.approx(11 / 13)
    assert metrics["kappa_linear"] == pytest.approx(5 / 7)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["dense_accuracy"] == pytest.approx(5 / 6)
    assert metrics["majority_class_rate"] == pytest.approx(2 / 6)
    assert metrics["confusion_matrix"].tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    with_missing = em.density_metrics(pd.array([*true, None], dtype="Int64"), np.vstack([probs, probs[:1]]))
    assert with_missing["n"] == 6 and with_missing["kappa_quadratic"] == pytest.approx(11 / 13)


# malignancy example: negatives 0.1, 0.2, 0.55, 0.6; positives 0.5, 0.7, 0.9
Y_MAL = [0, 0, 0, 0, 1, 1, 1]
P_MAL = [0.1, 0.2, 0.55, 0.6, 0.5, 0.7, 0.9]


def test_malignancy_metrics_by_hand():
    # AUC = P(positive scores above negative) over 3 x 4 = 12 pairs: 0.5 beats 2, 0.7 beats 4, 0.9 beats 4 -> 10/12
    # PR AUC (average precision), scores descending: 0.9 + (P 1/1, R 1/3), 0.7 + (2/2, 2/3), 0.6 -, 0.55 -,
    #   0.5 + (3/5, 1) -> AP = 1/3 * 1 + 1/3 * 1 + 1/3 * 3/5 = 13/15
    # at threshold 0.7: TP 2 (0.7, 0.9), FN 1, TN 4, FP 0 -> sensitivity 2/3, specificity 1
    # at threshold 0.5: TP 3, FN 0, FP 2 (0.55, 0.6), TN 2 -> sensitivity 1, specificity 1/2, PPV 3/5
    at_07 = em.malignancy_metrics(Y_MAL, P_MAL, threshold=0.7)
    assert at_07["roc_auc"] == pytest.approx(10 / 12)
    assert at_07["pr_auc"] == pytest.approx(13 / 15)
    assert (at_07["sensitivity"], at_07["specificity"]) == pytest.approx((2 / 3, 1.0))
    assert at_07["confusion_matrix"].tolist() == [[4, 0], [1, 2]]
    at_05 = em.malignancy_metrics(Y_MAL, P_MAL, threshold=0.5)
    assert (at_05["sensitivity"], at_05["specificity"], at_05["ppv"]) == pytest.approx((1.0, 0.5, 0.6))
    assert at_05["confusion_matrix"].tolist() == [[2, 2], [0, 3]]
    assert at_05["n"] == 7 and at_05["n_malignant"] == 3 and at_05["prevalence"] == pytest.approx(3 / 7)


def test_choose_threshold_by_hand():
    # thresholds (descending) -> (sensitivity, specificity, Youden J = sens + spec - 1):
    #   0.9 (1/3, 1) 0.333 | 0.7 (2/3, 1) 0.667 | 0.6 (2/3, 3/4) 0.417 | 0.55 (2/3, 1/2) 0.167 | 0.5 (1, 1/2) 0.5
    assert em.choose_threshold(Y_MAL, P_MAL) == 0.7
    assert em.choose_threshold(Y_MAL, P_MAL, rule="sensitivity>=0.9") == 0.5  # first threshold reaching 3/3
    assert em.choose_threshold(Y_MAL, P_MAL, target_sensitivity=0.6) == 0.7
    assert em.choose_threshold(Y_MAL, P_MAL, rule="specificity>=0.75") == 0.6  # lowest threshold keeping 3/4
    with pytest.raises(ValueError, match="both benign and malignant"):
        em.choose_threshold([0, 0, 0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="threshold rule"):
        em.choose_threshold(Y_MAL, P_MAL, rule="f1")


def test_joint_accuracy_by_hand():
    # joint index = (density - 1) * 2 + malignant: (1, 0) -> 0, (3, 1) -> 5, (4, 0) -> 6, (2, 1) -> 3
    joint = np.full((4, 8), 0.01)
    joint[[0, 1, 2, 3], [0, 5, 7, 2]] = 0.93  # right, right, wrong (7 = d4 malignant), wrong (2 = d2 benign)
    assert em.joint_accuracy([1, 3, 4, 2], [0, 1, 0, 1], joint) == pytest.approx(0.5)
    assert em.joint_accuracy([1, 3, None, 2], [0, 1, 0, None], joint) == pytest.approx(1.0)  # rows 3, 4 lack a label
    assert math.isnan(em.joint_accuracy([None], [1], joint[:1]))


def test_label_checks():
    with pytest.raises(ValueError, match="BI-RADS 1-4"):
        em.density_metrics([0, 1, 2], np.full((3, 4), 0.25))  # class indices, not BI-RADS
    with pytest.raises(ValueError, match="0 .benign. or 1"):
        em.malignancy_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="must be numbers"):
        em.density_metrics(["c", 1], np.full((2, 4), 0.25))  # a letter is not silently dropped


def test_undefined_metrics_are_nan_and_do_not_crash():
    benign_only = em.malignancy_metrics([0, 0, 0], [0.1, 0.6, 0.3])
    assert math.isnan(benign_only["roc_auc"]) and math.isnan(benign_only["pr_auc"])
    assert math.isnan(benign_only["sensitivity"]) and benign_only["specificity"] == pytest.approx(2 / 3)
    one_class = em.density_metrics([2, 2], [[0.1, 0.7, 0.1, 0.1], [0.2, 0.6, 0.1, 0.1]])
    assert one_class["accuracy"] == 1.0 and math.isnan(one_class["kappa_quadratic"])
    empty = em.density_metrics([None, None], np.full((2, 4), 0.25))
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])
