import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mammo_utils.evaluation import calibration as cal


def test_binary_ece_by_hand():
    # 10 equal-width bins; only three are filled:
    #   bin 1 [0.1, 0.2): p = 0.15, 0.15, y = 0, 1 -> mean p 0.15, observed 0.5, gap 0.35, weight 2/5 -> 0.14
    #   bin 8 [0.8, 0.9): p = 0.85, 0.85, y = 1, 0 -> mean p 0.85, observed 0.5, gap 0.35, weight 2/5 -> 0.14
    #   bin 9 [0.9, 1.0]: p = 0.95,       y = 1    -> gap 0.05, weight 1/5                           -> 0.01
    # ECE = 0.14 + 0.14 + 0.01 = 0.29
    y = [0, 1, 1, 0, 1]
    p = [0.15, 0.15, 0.85, 0.85, 0.95]
    assert cal.expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.29)
    bins = cal.reliability_bins(y, p, n_bins=10)
    assert list(bins.columns) == [
        "bin",
        "bin_low",
        "bin_high",
        "bin_centre",
        "mean_predicted",
        "observed_frequency",
        "count",
    ]
    assert bins["count"].tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 2, 1]
    assert bins.loc[1, "observed_frequency"] == pytest.approx(0.5)
    assert bins.loc[9, "mean_predicted"] == pytest.approx(0.95)
    assert bins.loc[1, "bin_centre"] == pytest.approx(0.15)
    assert math.isnan(bins.loc[0, "mean_predicted"])  # empty bins are kept, with NaN means


def test_top_label_ece_by_hand():
    # confidences (top probability) and whether the top class is the true BI-RADS class:
    #   row 1: 0.72 -> class 1, true 1, correct -> bin 7, gap |1 - 0.72| = 0.28
    #   row 2: 0.64 -> class 2, true 3, wrong   -> bin 6, gap |0 - 0.64| = 0.64
    #   row 3: 0.85 -> class 4, true 4, correct -> bin 8, gap |1 - 0.85| = 0.15
    # ECE = (0.28 + 0.64 + 0.15) / 3 = 1.07 / 3
    probs = [[0.72, 0.08, 0.10, 0.10], [0.10, 0.64, 0.16, 0.10], [0.05, 0.05, 0.05, 0.85]]
    y = [1, 3, 4]
    assert cal.expected_calibration_error(y, probs, classes=(1, 2, 3, 4)) == pytest.approx(1.07 / 3)
    # the same with class indices 0..3
    assert cal.expected_calibration_error([0, 2, 3], probs) == pytest.approx(1.07 / 3)


def test_bin_edges_and_perfect_calibration():
    bins = cal.reliability_bins([0, 1], [0.0, 1.0], n_bins=4)
    assert bins["count"].tolist() == [1, 0, 0, 1]  # 1.0 belongs to the last bin
    assert cal.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    assert cal.expected_calibration_error([1, 0, 1, 0], [0.5] * 4) == 0.0


def test_negative_log_likelihood_by_hand():
    # -(ln 0.8 + ln(1 - 0.4)) / 2
    assert cal.negative_log_likelihood([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    # multiclass: -(ln 0.7 + ln 0.2) / 2
    probs = [[0.7, 0.2, 0.1], [0.5, 0.2, 0.3]]
    assert cal.negative_log_likelihood([0, 1], probs) == pytest.approx(-(math.log(0.7) + math.log(0.2)) / 2)


def _over_confident():
    """Reported 0.99 / 0.01 where the true frequencies are 0.7 / 0.3 (200 rows, exact, no randomness)."""
    p = np.r_[np.full(100, 0.99), np.full(100, 0.01)]
    y = np.r_[np.ones(70), np.zeros(30), np.ones(30), np.zeros(70)]
    return y, p


def test_temperature_scaling_fixes_an_over_confident_binary_model():
    y, p = _over_confident()
    before = cal.expected_calibration_error(y, p)
    assert before == pytest.approx(0.29)  # |0.99 - 0.7| in both halves
    temperature = cal.fit_temperature(p, y)
    assert temperature > 1
    # the NLL optimum puts sigmoid(logit(0.99) / T) at 0.7 exactly
    expected = math.log(0.99 / 0.01) / math.log(0.7 / 0.3)
    assert temperature == pytest.approx(expected, rel=1e-3)
    after = cal.expected_calibration_error(y, cal.apply_temperature(p, temperature))
    assert after < 0.01 < before
    assert cal.negative_log_likelihood(y, cal.apply_temperature(p, temperature)) < cal.negative_log_likelihood(y, p)


def test_temperature_below_one_for_an_under_confident_model():
    y = np.r_[np.ones(95), np.zeros(5), np.zeros(95), np.ones(5)]
    p = np.r_[np.full(100, 0.6), np.full(100, 0.4)]
    temperature = cal.fit_temperature(p, y)
    assert temperature < 1
    after = cal.expected_calibration_error(y, cal.apply_temperature(p, temperature))
    assert after < cal.expected_calibration_error(y, p)


def test_temperature_scaling_multiclass():
    # top class reported with 0.97 but right only 60 % of the time; the rest spread over the other three classes
    rng = np.random.default_rng(0)
    n = 400
    top = rng.integers(0, 4, n)
    probs = np.full((n, 4), 0.01)
    probs[np.arange(n), top] = 0.97
    correct = np.arange(n) < 240
    y = np.where(correct, top, (top + 1 + np.arange(n) % 3) % 4)
    temperature = cal.fit_temperature(probs, y + 1, classes=(1, 2, 3, 4))
    assert temperature > 1
    scaled = cal.apply_temperature(probs, temperature)
    assert np.allclose(scaled.sum(axis=1), 1.0)
    assert (scaled.argmax(axis=1) == top).all()
    before = cal.expected_calibration_error(y, probs)
    after = cal.expected_calibration_error(y, scaled)
    assert after < 0.02 and before > 0.3


def test_logits_round_trip_and_identity_temperature():
    p = np.array([0.1, 0.5, 0.9])
    assert np.allclose(cal.apply_temperature(p, 1.0), p)
    logits = cal.to_logits(p)
    assert cal.fit_temperature(logits, [0, 1, 1], from_logits=True) == pytest.approx(
        cal.fit_temperature(p, [0, 1, 1]), rel=1e-4
    )
    probs = np.array([[0.2, 0.3, 0.5]])
    assert np.allclose(cal.apply_temperature(probs, 1.0), probs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cal.expected_calibration_error([0, 2], [0.1, 0.9]), "0 or 1"),
        (lambda: cal.expected_calibration_error([0, 1], [0.1]), "rows"),
        (lambda: cal.expected_calibration_error([0, np.nan], [0.1, 0.2]), "missing"),
        (lambda: cal.expected_calibration_error([0, 1], [0.1, 1.2]), r"\[0, 1\]"),
        (lambda: cal.expected_calibration_error([5], [[0.5, 0.5]]), "not one of the classes"),
        (lambda: cal.expected_calibration_error([1], [[0.5, 0.5]], classes=(1, 2, 3)), "classes"),
        (lambda: cal.fit_temperature([], []), "non-empty"),
        (lambda: cal.fit_temperature([0.2, 0.4], [0, 3]), "0 or 1"),
        (lambda: cal.apply_temperature([0.2], 0.0), "positive"),
        (lambda: cal.reliability_bins([0], [0.2], n_bins=0), "n_bins"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_calibration_report():
    y, p = _over_confident()
    report = cal.calibration_report(y, p, y, p, n_bins=10)
    assert report["temperature"] > 1
    assert report["ece_after"] < report["ece_before"]
    assert report["val_ece_after"] < report["val_ece_before"]
    assert report["nll_after"] < report["nll_before"]
    assert len(report["reliability_before"]) == 10 and sum(b["count"] for b in report["reliability_after"]) == 200
    empty = cal.calibration_report(np.zeros(0), np.zeros(0), y, p)
    assert math.isnan(empty["temperature"]) and empty["reliability_after"] == []


probabilities = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), probabilities), min_size=1, max_size=50), st.integers(1, 20))
def test_binary_ece_is_in_unit_interval(rows, n_bins):
    y, p = zip(*rows, strict=True)
    ece = cal.expected_calibration_error(y, p, n_bins=n_bins)
    assert 0.0 <= ece <= 1.0


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(2, 5)), elements=st.floats(0.01, 1.0)), st.data())
def test_top_label_ece_is_in_unit_interval(raw, data):
    probs = raw / raw.sum(axis=1, keepdims=True)
    y = data.draw(arrays(np.int64, len(probs), elements=st.integers(0, probs.shape[1] - 1)))
    assert 0.0 <= cal.expected_calibration_error(y, probs) <= 1.0


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(2, 6)), elements=st.floats(1e-4, 1.0)),
    st.floats(0.05, 20.0),
)
def test_temperature_keeps_the_argmax(raw, temperature):
    probs = raw / raw.sum(axis=1, keepdims=True)
    top_two = np.sort(probs, axis=1)[:, -2:]
    if not (top_two[:, 1] - top_two[:, 0] > 1e-9).all():  # exact ties may legitimately resolve either way
        probs = probs[top_two[:, 1] - top_two[:, 0] > 1e-9]
    scaled = cal.apply_temperature(probs, temperature)
    assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert np.allclose(scaled.sum(axis=1), 1.0)


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, st.integers(2, 20), elements=st.floats(1e-6, 1 - 1e-6).filter(lambda x: abs(x - 0.5) > 1e-6)),
    st.floats(0.05, 20.0),
)
def test_binary_temperature_keeps_the_order_and_the_side_of_one_half(p, temperature):
    scaled = cal.apply_temperature(p, temperature)
    assert ((scaled > 0.5) == (p > 0.5)).all() and ((scaled < 0.5) == (p < 0.5)).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(scaled[order]) >= 0).all()
