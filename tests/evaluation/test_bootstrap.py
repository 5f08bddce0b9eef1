import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, cohen_kappa_score, roc_auc_score

from mammo_utils.evaluation import bootstrap as boot


def _frame(n_patients=40, rows_per_patient=3, seed=0):
    rng = np.random.default_rng(seed)
    patient = np.repeat([f"P{i:03d}" for i in range(n_patients)], rows_per_patient)
    y = np.repeat(rng.integers(0, 2, n_patients), rows_per_patient)
    score = np.round(np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, len(y)), 0, 1), 1)  # rounded: many ties
    return pd.DataFrame({"patient_id": patient, "y": y, "score": score})


def _auc(frame):
    return roc_auc_score(frame["y"], frame["score"]) if frame["y"].nunique() == 2 else math.nan


# ------------------------------------------------------------------------- weighted metrics == scikit-learn
def test_weighted_metrics_equal_scikit_learn_on_duplicated_rows():
    rng = np.random.default_rng(1)
    n = 60
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 1)
    true_class, pred_class = rng.integers(0, 4, n), rng.integers(0, 4, n)
    weights = rng.integers(0, 3, size=(5, n)).astype(float)
    auc = boot.weighted_roc_auc(y, score, weights)
    ap = boot.weighted_average_precision(y, score, weights)
    confusion = boot.weighted_confusion(true_class, pred_class, 4, weights)
    accuracy = boot.weighted_mean(true_class == pred_class, weights)
    for b, w in enumerate(weights.astype(int)):
        rows = np.repeat(np.arange(n), w)
        assert auc[b] == pytest.approx(roc_auc_score(y[rows], score[rows]))
        assert ap[b] == pytest.approx(average_precision_score(y[rows], score[rows]))
        assert accuracy[b] == pytest.approx(np.mean(true_class[rows] == pred_class[rows]))
        for kind in ("quadratic", "linear", None):
            expected = cohen_kappa_score(true_class[rows], pred_class[rows], weights=kind, labels=[0, 1, 2, 3])
            assert boot.kappa_from_confusion(confusion[b : b + 1], kind)[0] == pytest.approx(expected)


def test_weighted_metrics_are_nan_when_undefined():
    y = np.array([1, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.3, 0.1])
    only_positives = np.array([[1.0, 2.0, 0.0, 0.0]])
    assert np.isnan(boot.weighted_roc_auc(y, score, only_positives)).all()
    assert np.isnan(boot.weighted_average_precision(y, score, only_positives)).all()
    assert np.isnan(boot.weighted_mean(y, np.zeros((1, 4)))).all()
    assert np.isnan(boot.weighted_roc_auc(y[:0], score[:0], np.zeros((2, 0)))).all()
    same = boot.weighted_confusion([2, 2], [2, 2], 4, np.ones((1, 2)))  # one class for both raters
    assert np.isnan(boot.kappa_from_confusion(same)).all()


# ------------------------------------------------------------------------------------ resampling
def test_bootstrap_weights_resample_whole_patients():
    frame = _frame(n_patients=30, rows_per_patient=3)
    codes = boot.group_codes(frame)
    weights = boot.bootstrap_weights(codes, n_boot=200, seed=3)
    assert weights.shape == (200, 90)
    assert (weights.sum(axis=1) == 90).all()  # 30 patient draws × 3 rows each
    per_patient = weights.reshape(200, 30, 3)
    assert (per_patient == per_patient[:, :, :1]).all()  # the 3 rows of a patient always share one multiplicity
    assert (weights == boot.bootstrap_weights(codes, n_boot=200, seed=3)).all()
    assert not (weights == boot.bootstrap_weights(codes, n_boot=200, seed=4)).all()


def test_group_codes():
    frame = pd.DataFrame({"patient_id": ["a", "b", "a", None, None]})
    codes = boot.group_codes(frame)
    assert codes[0] == codes[2] and len(set(codes.tolist())) == 4  # each missing id is its own unit
    assert boot.group_codes(frame, None).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError, match="case_id"):
        boot.group_codes(frame, "case_id")


def test_patient_rows_move_together():
    # every patient has 2 rows; the metric is 1 if some patient appears an odd number of times in a replicate
    frame = _frame(n_patients=20, rows_per_patient=2)

    def odd_patient(sample):
        return float((sample["patient_id"].value_counts() % 2).max())

    by_patient = boot.bootstrap_replicates(frame, odd_patient, n_boot=100, seed=0)[""]
    by_row = boot.bootstrap_replicates(frame, odd_patient, n_boot=100, seed=0, group=None)[""]
    assert (by_patient == 0).all()
    assert by_row.mean() > 0.9


def test_bootstrap_is_deterministic_and_chunking_does_not_matter(monkeypatch):
    frame = _frame()
    y, score = frame["y"].to_numpy(), frame["score"].to_numpy()

    def auc(_, weights):
        return boot.weighted_roc_auc(y, score, weights)

    first = boot.bootstrap_ci(frame, auc, n_boot=500, seed=7, vectorized=True)
    assert first == boot.bootstrap_ci(frame, auc, n_boot=500, seed=7, vectorized=True)
    assert first != boot.bootstrap_ci(frame, auc, n_boot=500, seed=8, vectorized=True)
    monkeypatch.setattr(boot, "_CHUNK_CELLS", 120 * 7)  # 7 replicates per chunk
    assert first == boot.bootstrap_ci(frame, auc, n_boot=500, seed=7, vectorized=True)
    mean_score = boot.bootstrap_ci(frame, lambda f: f["score"].mean(), n_boot=50, seed=1)
    assert mean_score == boot.bootstrap_ci(frame, lambda f: f["score"].mean(), n_boot=50, seed=1)


def test_vectorized_and_resampled_paths_agree():
    frame = _frame()
    y, score = frame["y"].to_numpy(), frame["score"].to_numpy()
    slow = boot.bootstrap_replicates(frame, _auc, n_boot=150, seed=2)[""]
    fast = boot.bootstrap_replicates(
        frame, lambda _, w: boot.weighted_roc_auc(y, score, w), n_boot=150, seed=2, vectorized=True
    )[""]
    assert np.allclose(slow, fast, equal_nan=True)
    ci = boot.bootstrap_ci(frame, lambda _, w: boot.weighted_roc_auc(y, score, w), n_boot=150, seed=2, vectorized=True)
    assert ci.value == pytest.approx(roc_auc_score(y, score))
    assert ci.low <= ci.value <= ci.high and ci.n_used == 150


def test_several_metrics_share_replicates():
    frame = _frame()
    cis = boot.bootstrap_cis(frame, lambda f: {"auc": _auc(f), "prevalence": f["y"].mean()}, n_boot=100, seed=0)
    assert set(cis) == {"auc", "prevalence"}
    assert cis["prevalence"].value == pytest.approx(frame["y"].mean())
    with pytest.raises(ValueError, match="bootstrap_cis"):
        boot.bootstrap_ci(frame, lambda f: {"a": 1.0, "b": 2.0}, n_boot=10)


def test_undefined_replicates_are_skipped_and_counted():
    # 3 patients, one malignant: many replicates draw no malignant patient and have no AUC
    frame = pd.DataFrame({"patient_id": ["a", "a", "b", "c"], "y": [1, 1, 0, 0], "score": [0.9, 0.4, 0.5, 0.1]})
    ci = boot.bootstrap_ci(frame, _auc, n_boot=100, seed=0)
    assert 0 < ci.n_used < 100
    assert ci.low <= ci.value <= ci.high
    single = frame[frame["y"] == 0]
    undefined = boot.bootstrap_ci(single, _auc, n_boot=50)
    assert math.isnan(undefined.value) and math.isnan(undefined.low) and undefined.n_used == 0

    def raises_on_odd_sizes(f):  # a ValueError marks a replicate undefined, like NaN
        if len(f) % 2:
            raise ValueError("odd")
        return float(len(f))

    some = boot.bootstrap_ci(frame, raises_on_odd_sizes, n_boot=100, seed=0)
    assert 0 < some.n_used < 100 and some.value == 4.0
    never = boot.bootstrap_ci(frame.iloc[:3], raises_on_odd_sizes, n_boot=20, group=None)  # 3 rows: always odd
    assert math.isnan(never.value) and never.n_used == 0


def test_percentile_ci_widens_to_include_the_point():
    ci = boot.percentile_ci(np.linspace(0.6, 0.9, 101), point=0.5)
    assert ci.widened and ci.low == 0.5 and ci.high == pytest.approx(0.8925)
    ci = boot.percentile_ci(np.r_[np.linspace(0.0, 1.0, 101), np.nan], point=0.5)
    assert not ci.widened and ci.n_used == 101
    assert (ci.low, ci.high) == pytest.approx((0.025, 0.975))
    assert math.isnan(boot.percentile_ci([np.nan], 0.5).low)
    with pytest.raises(ValueError, match="alpha"):
        boot.percentile_ci([0.5], 0.5, alpha=1.5)
