"""Tests for `pytest_greennlp.exits`: temperature scaling, calibration and exit sweeps."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_greennlp.exits import (
    Sweep,
    accuracy_drop_bound,
    ece_change_interval,
    ece_noise_floor,
    expected_calibration_error,
    fit_temperature,
    operating_point,
    pareto_front,
    reliability_diagram,
    softmax,
    softmax_confidence,
    sweep,
    sweep_entropy,
    sweep_patience,
)

# The worked example from the brief: exit costs (1, 2, 4); classes A = 0, B = 1.
A, B = 0, 1
CONFIDENCE = [
    [0.95, 0.97, 0.99],
    [0.60, 0.85, 0.90],
    [0.70, 0.65, 0.80],
    [0.55, 0.75, 0.60],
    [0.92, 0.60, 0.95],
]
PREDICTION = [[A, A, A], [B, A, A], [A, B, B], [A, B, A], [B, A, A]]
LABELS = [A, A, B, A, A]
COSTS = [1.0, 2.0, 4.0]


# naive references


def naive_sweep(
    confidence: Any, prediction: Any, labels: Any, costs: Any, thresholds: Any
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Simulate the confidence rule once per threshold."""
    conf = np.asarray(confidence, dtype=np.float64)
    pred, target = np.asarray(prediction), np.asarray(labels)
    cost = np.asarray(costs, dtype=np.float64)
    n, n_exits = conf.shape
    accuracy, mean_cost, counts = [], [], []
    for tau in np.asarray(thresholds, dtype=np.float64):
        hit = conf >= tau
        exit_ = np.where(hit.any(axis=1), hit.argmax(axis=1), n_exits - 1)
        accuracy.append(np.mean(pred[np.arange(n), exit_] == target))
        mean_cost.append(np.mean(cost[exit_]))
        counts.append(np.bincount(exit_, minlength=n_exits))
    return np.array(accuracy), np.array(mean_cost), np.array(counts, dtype=np.int64)


def naive_exit_index(confidence: Any, tau: float) -> npt.NDArray[np.int64]:
    """Exit index per example under the confidence rule, looping as the model does."""
    conf = np.asarray(confidence, dtype=np.float64)
    n, n_exits = conf.shape
    out = np.full(n, n_exits - 1, dtype=np.int64)
    for i in range(n):
        for e in range(n_exits):
            if conf[i, e] >= tau:
                out[i] = e
                break
    return out


def entropy_of(prob: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = -np.sum(prob * np.log(np.where(prob > 0, prob, 1.0)), axis=-1)
    return result


def naive_exits_entropy(prob: Any, thresholds: Any) -> npt.NDArray[np.int64]:
    """Exit index per (threshold, example), looping over exits as DeeBERT does."""
    entropy = entropy_of(np.asarray(prob, dtype=np.float64))
    n, n_exits = entropy.shape
    out = np.full((len(thresholds), n), n_exits - 1, dtype=np.int64)
    for t, tau in enumerate(thresholds):
        for i in range(n):
            for e in range(n_exits):
                if entropy[i, e] < tau:
                    out[t, i] = e
                    break
    return out


def naive_exits_patience(prediction: Any, patiences: Any) -> npt.NDArray[np.int64]:
    """Exit index per (patience, example), with PABEE's counter."""
    pred = np.asarray(prediction)
    n, n_exits = pred.shape
    out = np.full((len(patiences), n), n_exits - 1, dtype=np.int64)
    for t, patience in enumerate(patiences):
        for i in range(n):
            counter = 0
            for e in range(n_exits):
                counter = counter + 1 if e > 0 and pred[i, e] == pred[i, e - 1] else 0
                if counter == patience:
                    out[t, i] = e
                    break
    return out


def check_against_exits(
    result: Sweep, exits: npt.NDArray[np.int64], pred: Any, labels: Any, costs: Any
) -> None:
    pred, target = np.asarray(pred), np.asarray(labels)
    cost = np.asarray(costs, dtype=np.float64)
    n, n_exits = pred.shape
    rows = np.arange(n)
    full = pred[:, -1] == target
    for t, exit_ in enumerate(exits):
        assert result.exit_counts[t].tolist() == np.bincount(exit_, minlength=n_exits).tolist()
        assert result.accuracy[t] == np.sum(pred[rows, exit_] == target) / n
        assert result.mean_cost[t] == pytest.approx(np.mean(cost[exit_]), rel=1e-12)
        hit = pred[rows, exit_] == target
        assert result.n_lost[t] == np.sum(full & ~hit)
        assert result.n_gained[t] == np.sum(~full & hit)


def nll(logits: npt.NDArray[np.float64], labels: Any, temperature: float) -> float:
    scaled = logits / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_prob = scaled - top - np.log(np.exp(scaled - top).sum(axis=1, keepdims=True))
    return float(-np.mean(log_prob[np.arange(len(labels)), labels]))


# hypothesis strategies

GRID = [0.05, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0]  # few values, so ties are common


@st.composite
def exit_outputs(draw: st.DrawFn) -> tuple[Any, Any, Any, Any]:
    n = draw(st.integers(1, 12))
    n_exits = draw(st.integers(1, 5))
    conf = draw(st.lists(st.sampled_from(GRID), min_size=n * n_exits, max_size=n * n_exits))
    pred = draw(st.lists(st.integers(0, 2), min_size=n * n_exits, max_size=n * n_exits))
    labels = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(0, 3), min_size=n_exits - 1, max_size=n_exits - 1))
    costs = np.cumsum([draw(st.integers(1, 3)), *steps]).astype(float)
    return (
        np.reshape(conf, (n, n_exits)),
        np.reshape(pred, (n, n_exits)),
        np.array(labels),
        costs,
    )


# softmax and softmax_confidence


def test_softmax_is_stable_and_normalised() -> None:
    prob = softmax([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], temperature=0.5)
    assert np.all(np.isfinite(prob))
    np.testing.assert_allclose(prob.sum(axis=-1), 1.0)
    np.testing.assert_allclose(prob[1], np.exp([2, 4, 6]) / np.exp([2, 4, 6]).sum())


def test_softmax_confidence_matches_softmax_and_accepts_exit_axis() -> None:
    logits = np.random.default_rng(0).normal(size=(6, 3, 4)) * 5
    confidence, prediction = softmax_confidence(logits, temperature=2.0)
    assert confidence.shape == prediction.shape == (6, 3)
    np.testing.assert_allclose(confidence, softmax(logits, 2.0).max(axis=-1))
    assert np.array_equal(prediction, logits.argmax(axis=-1))
    big, _ = softmax_confidence([[800.0, -800.0]])
    assert big.tolist() == [1.0]


# temperature scaling


def test_fit_temperature_closed_form() -> None:
    temperature = fit_temperature([[2.0, 0.0]] * 4, [0, 0, 0, 1])
    assert temperature == pytest.approx(2 / math.log(3), abs=1e-6)
    assert abs(temperature - 2 / math.log(3)) < 1e-9


def test_fit_temperature_minimises_nll() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 5)) * 3
    prob = softmax(logits, temperature=2.5)
    labels = (rng.random((300, 1)) > np.cumsum(prob, axis=1)).sum(axis=1)
    temperature = fit_temperature(logits, labels)
    assert 1.0 < temperature < 10.0
    best = nll(logits, labels, temperature)
    for factor in (0.999, 1.001, 0.5, 2.0):
        assert best <= nll(logits, labels, temperature * factor)
    grid = np.exp(np.linspace(np.log(0.02), np.log(50), 2001))
    assert best <= min(nll(logits, labels, t) for t in grid) + 1e-12


def test_fit_temperature_degenerate_cases_are_clipped() -> None:
    separable = [[2.0, 0.0], [0.0, 3.0]]
    assert fit_temperature(separable, [0, 1]) == 1e-2
    assert fit_temperature(separable, [0, 1], bounds=(0.5, 4.0)) == 0.5
    assert fit_temperature(separable, [1, 0]) == 1e2  # always wrong
    assert fit_temperature([[1.0, 1.0]] * 3, [0, 1, 0]) == 1.0  # flat NLL
    assert fit_temperature([[1.0, 1.0]], [0], bounds=(2.0, 3.0)) == 2.0


def test_temperature_scaling_lowers_ece_on_overconfident_logits() -> None:
    rng = np.random.default_rng(2)
    true_logits = rng.normal(size=(4000, 4)) * 1.5
    true_prob = softmax(true_logits)
    labels = (rng.random((4000, 1)) > np.cumsum(true_prob, axis=1)).sum(axis=1)
    logits = 4.0 * true_logits  # over-confident by a factor of 4
    temperature = fit_temperature(logits, labels)
    assert 3.0 < temperature < 5.0
    before, prediction = softmax_confidence(logits)
    after, _ = softmax_confidence(logits, temperature)
    correct = prediction == labels
    ece_before = expected_calibration_error(before, correct)
    ece_after = expected_calibration_error(after, correct)
    assert ece_before > 0.1
    assert ece_after < ece_before / 3


# calibration


def test_ece_and_reliability_diagram_by_hand() -> None:
    # 5 bins: 0.0 and 0.2 -> (0, 0.2]; 0.3 -> (0.2, 0.4]; 0.9, 0.95, 1.0 -> (0.8, 1].
    confidence = [0.0, 0.2, 0.3, 0.9, 0.95, 1.0]
    correct = [False, True, False, True, False, True]
    diagram = reliability_diagram(confidence, correct, n_bins=5)
    assert diagram.edges.tolist() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert diagram.count.tolist() == [2, 1, 0, 0, 3]
    np.testing.assert_allclose(diagram.mean_confidence[[0, 1, 4]], [0.1, 0.3, 0.95])
    np.testing.assert_allclose(diagram.accuracy[[0, 1, 4]], [0.5, 0.0, 2 / 3])
    assert np.isnan(diagram.accuracy[2]) and np.isnan(diagram.mean_confidence[3])
    # (2 * 0.4 + 1 * 0.3 + 3 * (0.95 - 2/3)) / 6
    ece = expected_calibration_error(confidence, correct, n_bins=5)
    assert ece == pytest.approx(0.325, abs=1e-12)


def test_ece_default_bins_and_edges() -> None:
    # 15 bins: 1/15 closes the first bin, the next float opens the second.
    above = math.nextafter(1 / 15, 1.0)
    diagram = reliability_diagram([0.0, 1 / 15, above, 1.0], [1, 1, 0, 1])
    assert len(diagram.count) == 15
    assert diagram.count[:2].tolist() == [2, 1] and diagram.count[-1] == 1
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    assert expected_calibration_error([0.75] * 4, [1, 1, 1, 0]) == 0.0


# the confidence sweep


def test_sweep_worked_example() -> None:
    result = sweep(CONFIDENCE, PREDICTION, LABELS, COSTS, thresholds=[0.5, 0.8, 0.93, 1.0])
    assert result.rule == "confidence"
    assert result.thresholds.tolist() == [0.5, 0.8, 0.93, 1.0]
    assert result.accuracy.tolist() == [0.4, 0.8, 1.0, 1.0]
    assert result.mean_cost.tolist() == [1.0, 2.4, 3.4, 4.0]
    assert result.exit_counts.tolist() == [[5, 0, 0], [2, 1, 2], [1, 0, 4], [0, 0, 5]]
    np.testing.assert_allclose(result.speedup, [4.0, 4 / 2.4, 4 / 3.4, 1.0])
    assert result.full_model_accuracy == 1.0 and result.full_model_cost == 4.0
    # The full model is right on all five, so every disagreement is a loss.
    assert result.n_lost.tolist() == [3, 1, 0, 0]
    assert result.n_gained.tolist() == [0, 0, 0, 0]


def test_sweep_worked_example_with_string_labels() -> None:
    names = np.array(["A", "B"])
    result = sweep(CONFIDENCE, names[PREDICTION], names[LABELS], COSTS, [0.8, 0.93])
    assert result.accuracy.tolist() == [0.8, 1.0]


def test_sweep_default_thresholds() -> None:
    result = sweep(CONFIDENCE, PREDICTION, LABELS, COSTS)
    distinct = np.unique(CONFIDENCE)
    assert result.thresholds.tolist() == [*distinct.tolist(), 1.0]
    assert result.exit_counts[0].tolist() == [5, 0, 0]
    assert result.exit_counts[-1].tolist() == [0, 0, 5]
    accuracy, mean_cost, counts = naive_sweep(
        CONFIDENCE, PREDICTION, LABELS, COSTS, result.thresholds
    )
    assert np.array_equal(result.exit_counts, counts)
    assert np.array_equal(result.accuracy, accuracy)
    np.testing.assert_allclose(result.mean_cost, mean_cost, rtol=1e-12)


def test_sweep_default_top_threshold_when_confidence_reaches_one() -> None:
    result = sweep([[1.0, 1.0], [0.5, 1.0]], [[0, 1], [0, 1]], [1, 1], [1.0, 2.0])
    assert result.thresholds[-2] == 1.0 and result.thresholds[-1] > 1.0
    assert result.exit_counts[-2].tolist() == [1, 1]
    assert result.exit_counts[-1].tolist() == [0, 2]


def test_sweep_is_read_only() -> None:
    result = sweep(CONFIDENCE, PREDICTION, LABELS, COSTS)
    with pytest.raises(ValueError, match="read-only"):
        result.accuracy[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rule = "entropy"  # type: ignore[misc]


@settings(max_examples=200, deadline=None, database=None)
@given(outputs=exit_outputs(), extra=st.lists(st.sampled_from([*GRID, 0.3, 0.999]), max_size=4))
def test_sweep_matches_naive_simulation(
    outputs: tuple[Any, Any, Any, Any], extra: list[float]
) -> None:
    conf, pred, labels, costs = outputs
    default = sweep(conf, pred, labels, costs)
    thresholds = [t for t in default.thresholds.tolist() if t <= 1] + extra
    for result in (default, sweep(conf, pred, labels, costs, thresholds)):
        accuracy, mean_cost, counts = naive_sweep(conf, pred, labels, costs, result.thresholds)
        assert np.array_equal(result.exit_counts, counts)
        assert np.array_equal(result.accuracy, accuracy)
        np.testing.assert_allclose(result.mean_cost, mean_cost, rtol=1e-12)
        np.testing.assert_allclose(result.speedup, costs[-1] / mean_cost, rtol=1e-12)
        assert result.full_model_accuracy == np.mean(pred[:, -1] == labels)
        exits = [naive_exit_index(conf, tau) for tau in result.thresholds]
        check_against_exits(result, np.array(exits), pred, labels, costs)


# entropy and patience rules


@settings(max_examples=100, deadline=None, database=None)
@given(outputs=exit_outputs(), extra=st.lists(st.floats(0.0, 1.0), max_size=3))
def test_sweep_entropy_matches_naive_loop(
    outputs: tuple[Any, Any, Any, Any], extra: list[float]
) -> None:
    conf, _, labels, costs = outputs
    labels = labels % 2
    prob = np.stack([conf, 1.0 - conf], axis=-1)  # two classes; ties in entropy
    default = sweep_entropy(prob, labels, costs)
    assert default.rule == "entropy"
    assert default.exit_counts[0, -1] == len(labels)  # below every entropy: last exit
    assert default.exit_counts[-1, 0] == len(labels)  # above every entropy: first exit
    thresholds = [*default.thresholds.tolist(), *extra]
    result = sweep_entropy(prob, labels, costs, thresholds)
    exits = naive_exits_entropy(prob, thresholds)
    check_against_exits(result, exits, prob.argmax(axis=-1), labels, costs)


@settings(max_examples=100, deadline=None, database=None)
@given(outputs=exit_outputs(), patiences=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_sweep_patience_matches_pabee_counter(
    outputs: tuple[Any, Any, Any, Any], patiences: list[int]
) -> None:
    _, pred, labels, costs = outputs
    for chosen in (None, patiences):
        result = sweep_patience(pred, labels, costs, chosen)
        assert result.rule == "patience"
        used = [int(t) for t in result.thresholds]
        check_against_exits(result, naive_exits_patience(pred, used), pred, labels, costs)


def test_sweep_patience_default_and_single_exit() -> None:
    pred = [[0, 0, 1, 1], [2, 2, 2, 2]]
    result = sweep_patience(pred, [1, 2], [1.0, 2.0, 3.0, 5.0])
    assert result.thresholds.tolist() == [1.0, 2.0, 3.0]
    assert result.exit_counts.tolist() == [[0, 2, 0, 0], [0, 0, 1, 1], [0, 0, 0, 2]]
    assert result.mean_cost.tolist() == [2.0, 4.0, 5.0]
    single = sweep_patience([[3]], [3], [2.0])
    assert single.thresholds.tolist() == [1.0] and single.exit_counts.tolist() == [[1]]


# pareto front and operating point


def test_pareto_front() -> None:
    front = pareto_front([3, 1, 2, 2, 4, 1], [0.9, 0.5, 0.7, 0.6, 0.9, 0.5])
    assert front.tolist() == [1, 2, 0]
    assert pareto_front([], []).tolist() == []
    assert pareto_front([1.0, 1.0], [0.2, 0.3]).tolist() == [1]  # same cost, better
    assert pareto_front([2.0, 1.0], [0.5, 0.5]).tolist() == [1]  # same quality, cheaper


@settings(max_examples=100, deadline=None, database=None)
@given(points=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=0, max_size=15))
def test_pareto_front_matches_definition(points: list[tuple[int, int]]) -> None:
    cost = np.array([p[0] for p in points], dtype=float)
    quality = np.array([p[1] for p in points], dtype=float)
    front = pareto_front(cost, quality).tolist()
    expected = []
    for i in range(len(points)):
        dominated = any(
            cost[j] <= cost[i]
            and quality[j] >= quality[i]
            and (cost[j] < cost[i] or quality[j] > quality[i] or j < i)
            for j in range(len(points))
            if j != i
        )
        if not dominated:
            expected.append(i)
    assert sorted(front) == expected
    assert np.all(np.diff(cost[front]) > 0) and np.all(np.diff(quality[front]) > 0)


def test_operating_point() -> None:
    result = sweep(CONFIDENCE, PREDICTION, LABELS, COSTS, thresholds=[0.5, 0.8, 0.93, 1.0])
    assert operating_point(result) == 2
    assert operating_point(result, max_accuracy_drop=0.0) == 2
    assert operating_point(result, max_accuracy_drop=0.2) == 1  # 1.0 - 0.2 vs 0.8
    assert operating_point(result, max_accuracy_drop=0.6) == 0
    assert operating_point(result, reference_accuracy=0.9, max_accuracy_drop=0.1) == 1
    reordered = sweep(CONFIDENCE, PREDICTION, LABELS, COSTS, thresholds=[1.0, 0.93, 0.8])
    assert operating_point(reordered) == 1


def test_operating_point_prefers_accuracy_among_equal_costs() -> None:
    # Example 0 is right at exit 0; example 1 only at exit 1; both exits cost the same.
    result = sweep([[0.9, 0.95], [0.6, 0.7]], [[0, 0], [0, 1]], [0, 1], [1.0, 1.0], [0.5, 0.8])
    assert result.mean_cost.tolist() == [1.0, 1.0]
    assert operating_point(result, max_accuracy_drop=0.5) == 1


# ECE noise: floor and paired bootstrap


def test_ece_noise_floor_by_hand() -> None:
    # Two predictions at 0.5: ECE |k/2 - 0.5| with k ~ Binomial(2, 1/2) is 0.5 half the time.
    assert ece_noise_floor([0.5, 0.5], n_draws=20000) == pytest.approx(0.25, abs=0.01)
    assert ece_noise_floor([1.0, 1.0, 1.0]) == 0.0  # always right: no scatter
    # One prediction at 0.8: ECE 0.2 when right (p = 0.8), 0.8 when wrong: mean 0.32.
    assert ece_noise_floor([0.8], n_draws=20000) == pytest.approx(0.32, abs=0.01)


def test_ece_noise_floor_matches_naive_draws() -> None:
    conf = np.linspace(0.3, 1.0, 37)
    rng = np.random.default_rng(7)
    hits = rng.random((50, len(conf))) < conf
    naive = np.mean([expected_calibration_error(conf, row, n_bins=10) for row in hits])
    assert ece_noise_floor(conf, 10, n_draws=50, seed=7) == pytest.approx(naive, abs=1e-12)


def test_ece_change_interval_matches_naive_resampling() -> None:
    before = np.linspace(0.4, 1.0, 30)
    after = np.sqrt(before)
    correct = (np.arange(30) % 4 != 0)
    rng = np.random.default_rng(3)
    index = rng.integers(0, 30, size=(200, 30))
    change = [
        expected_calibration_error(after[i], correct[i]) - expected_calibration_error(before[i], correct[i])
        for i in index
    ]
    expected = np.percentile(change, [5.0, 95.0])
    got = ece_change_interval(before, correct, after, correct, level=0.9, n_resamples=200, seed=3)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert ece_change_interval(before, correct, before, correct) == (0.0, 0.0)


def test_ece_resampling_in_chunks_draws_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = np.linspace(0.3, 1.0, 41)
    correct = np.arange(41) % 3 != 0
    whole = (ece_change_interval(conf, correct, conf**0.5, correct, n_resamples=30),
             ece_noise_floor(conf, n_draws=30))
    import pytest_greennlp.exits as module

    monkeypatch.setattr(module, "_CHUNK_VALUES", 100)  # two rows of 41 per chunk
    chunked = (ece_change_interval(conf, correct, conf**0.5, correct, n_resamples=30),
               ece_noise_floor(conf, n_draws=30))
    assert chunked[0] == whole[0] and chunked[1] == pytest.approx(whole[1], abs=1e-15)


def test_ece_resampling_error_messages() -> None:
    with pytest.raises(ValueError, match=msg("level must be between 0 and 1, exclusive.")):
        ece_change_interval([0.5], [1], [0.5], [1], level=1.0)
    with pytest.raises(ValueError, match=msg("n_resamples must be a positive integer.")):
        ece_change_interval([0.5], [1], [0.5], [1], n_resamples=0)
    with pytest.raises(ValueError, match=msg("confidence_after must have shape (1,), not (2,).")):
        ece_change_interval([0.5], [1], [0.5, 0.6], [1, 0])
    with pytest.raises(ValueError, match=msg("n_draws must be a positive integer.")):
        ece_noise_floor([0.5], n_draws=True)
    with pytest.raises(ValueError, match=msg("confidence must be between 0 and 1, inclusive.")):
        ece_noise_floor([1.5])


# two losses (confidence 0.9 at exit 0), six gains (0.5), twelve agreements (0.1)
BOUND_CONFIDENCE = [[0.9, 0.9]] * 2 + [[0.5, 0.9]] * 6 + [[0.1, 0.9]] * 12
BOUND_PREDICTION = [[1, 0]] * 2 + [[0, 1]] * 6 + [[0, 0]] * 12


def test_accuracy_drop_bound_by_hand() -> None:
    result = sweep(BOUND_CONFIDENCE, BOUND_PREDICTION, [0] * 20, [1.0, 2.0], [1.0, 0.8, 0.4])
    assert result.n_lost.tolist() == [0, 2, 2] and result.n_gained.tolist() == [0, 0, 6]
    np.testing.assert_allclose(result.accuracy, [0.7, 0.6, 0.9])
    # Wilson's upper bound on the loss share 2/8 with z = 1.6449 (one-sided 95 %):
    # (0.25 + z^2/16 + z sqrt(0.25 * 0.75 / 8 + z^2 / 256)) / (1 + z^2 / 8) = 0.53985,
    # so the drop is at most 8 (2 * 0.53985 - 1) / 20 = 0.03188; observed -0.2.
    bound = accuracy_drop_bound(result)
    assert bound[0] == 0.0 and bound[1] == pytest.approx(0.1, abs=1e-15)  # all losses
    assert bound[2] == pytest.approx(0.03188, abs=1e-5)
    # A higher level gives a wider bound where the share is uncertain, never below the
    # observed drop.
    wide = accuracy_drop_bound(result, level=0.99)
    assert wide[2] > bound[2] > -0.2 and wide[1] == bound[1]


def test_accuracy_drop_bound_one_gain_is_not_significant() -> None:
    # One gain, no loss, n = 10: pi_upper = z^2 / (1 + z^2) and the bound is
    # (z^2 - 1) / (z^2 + 1) / 10 > 0 although the observed drop is -0.1.
    result = sweep([[0.9, 0.5]] + [[0.1, 0.9]] * 9, [[0, 1]] + [[0, 0]] * 9, [0] * 10,
                   [1.0, 2.0], [0.8])
    z2 = 1.6448536269514722**2
    assert accuracy_drop_bound(result).tolist() == pytest.approx([(z2 - 1) / (z2 + 1) / 10])
    assert result.accuracy[0] - result.full_model_accuracy == pytest.approx(0.1)


@settings(max_examples=100, deadline=None, database=None)
@given(outputs=exit_outputs())
def test_accuracy_drop_bound_is_above_the_observed_drop(
    outputs: tuple[Any, Any, Any, Any]
) -> None:
    conf, pred, labels, costs = outputs
    result = sweep(conf, pred, labels, costs)
    drop = result.full_model_accuracy - result.accuracy
    bound = accuracy_drop_bound(result)
    assert np.all(bound >= drop - 1e-12)
    assert np.all(bound <= (result.n_lost + result.n_gained) / len(labels) + 1e-12)
    assert np.all((bound == 0) == (result.n_lost + result.n_gained == 0))


def test_operating_point_with_level_stops_at_the_first_failure() -> None:
    result = sweep(BOUND_CONFIDENCE, BOUND_PREDICTION, [0] * 20, [1.0, 2.0], [1.0, 0.8, 0.4])
    # Observed accuracies: the cheapest threshold (0.4) is the most accurate.
    assert operating_point(result, max_accuracy_drop=0.05) == 2
    # Its bound (0.032) passes, but 0.8 (bound 0.1) fails first in the sequence from the
    # full model down, so the sequence stops at the full model.
    assert operating_point(result, max_accuracy_drop=0.05, level=0.95) == 0
    # Allowing 0.1 lets the sequence through 0.8 to 0.4.
    assert operating_point(result, max_accuracy_drop=0.1, level=0.95) == 2
    reordered = sweep(BOUND_CONFIDENCE, BOUND_PREDICTION, [0] * 20, [1.0, 2.0],
                      [0.4, 1.0, 0.8])
    assert operating_point(reordered, max_accuracy_drop=0.05, level=0.95) == 1


# every error message


def msg(text: str) -> str:
    return "^" + re.escape(text) + "$"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: softmax(3.0), "logits must have at least one dimension, not 0D."),
        (lambda: softmax(np.zeros((2, 0))), "logits must have at least one class."),
        (lambda: softmax([[np.nan, 0.0]]), "logits must be finite."),
        (lambda: softmax([[1.0]], temperature=0.0), "temperature must be positive and finite."),
        (
            lambda: softmax_confidence([[1.0]], temperature=math.inf),
            "temperature must be positive and finite.",
        ),
        (lambda: softmax_confidence([[math.inf]]), "logits must be finite."),
        (lambda: fit_temperature([1.0, 2.0], [0]), "logits must be a 2D array, not 1D."),
        (lambda: fit_temperature(np.zeros((0, 2)), []), "logits must have at least one row."),
        (lambda: fit_temperature(np.zeros((1, 0)), [0]), "logits must have at least one class."),
        (lambda: fit_temperature([[np.nan, 1.0]], [0]), "logits must be finite."),
        (lambda: fit_temperature([[1.0, 2.0]], [0, 1]), "labels must have shape (1,), not (2,)."),
        (lambda: fit_temperature([[1.0, 2.0]], [0.0]), "labels must be integers."),
        (lambda: fit_temperature([[1.0, 2.0]], [2]), "labels must be between 0 and 1, inclusive."),
        (lambda: fit_temperature([[1.0, 2.0]], [-1]), "labels must be between 0 and 1, inclusive."),
        (
            lambda: fit_temperature([[1.0, 2.0]], [0], bounds=(2.0, 1.0)),
            "bounds must satisfy 0 < low < high < inf.",
        ),
        (
            lambda: fit_temperature([[1.0, 2.0]], [0], bounds=(0.0, 1.0)),
            "bounds must satisfy 0 < low < high < inf.",
        ),
        (
            lambda: expected_calibration_error([[0.5]], [1]),
            "confidence must be a 1D array, not 2D.",
        ),
        (lambda: expected_calibration_error([], []), "confidence must be non-empty."),
        (
            lambda: reliability_diagram([1.5], [1]),
            "confidence must be between 0 and 1, inclusive.",
        ),
        (
            lambda: expected_calibration_error([np.nan], [1]),
            "confidence must be between 0 and 1, inclusive.",
        ),
        (lambda: reliability_diagram([0.5], [1, 0]), "correct must have shape (1,), not (2,)."),
        (lambda: expected_calibration_error([0.5], [2]), "correct must be boolean or 0/1."),
        (
            lambda: expected_calibration_error([0.5], [1], n_bins=0),
            "n_bins must be a positive integer.",
        ),
        (
            lambda: reliability_diagram([0.5], [1], n_bins=2.5),  # type: ignore[arg-type]
            "n_bins must be a positive integer.",
        ),
        (
            lambda: reliability_diagram([0.5], [1], n_bins=True),
            "n_bins must be a positive integer.",
        ),
        (lambda: sweep([0.5], [0], [0], [1.0]), "confidence must be a 2D array (n, E), not 1D."),
        (
            lambda: sweep(np.zeros((0, 2)), np.zeros((0, 2)), [], [1.0, 2.0]),
            "confidence must have at least one example and one exit.",
        ),
        (
            lambda: sweep([[1.2]], [[0]], [0], [1.0]),
            "confidence must be between 0 and 1, inclusive.",
        ),
        (
            lambda: sweep([[0.5, 0.6]], [[0]], [0], [1.0, 2.0]),
            "prediction must have the same shape as confidence: (1, 2), not (1, 1).",
        ),
        (lambda: sweep([[0.5]], [[0]], [0, 1], [1.0]), "labels must have shape (1,), not (2,)."),
        (
            lambda: sweep([[0.5, 0.6]], [[0, 0]], [0], [1.0]),
            "exit_costs must have shape (2,), not (1,).",
        ),
        (
            lambda: sweep([[0.5, 0.6]], [[0, 0]], [0], [0.0, 1.0]),
            "exit_costs must be positive and finite.",
        ),
        (
            lambda: sweep([[0.5, 0.6]], [[0, 0]], [0], [1.0, math.inf]),
            "exit_costs must be positive and finite.",
        ),
        (
            lambda: sweep([[0.5, 0.6]], [[0, 0]], [0], [2.0, 1.0]),
            "exit_costs must be non-decreasing.",
        ),
        (lambda: sweep([[0.5]], [[0]], [0], [1.0], []), "thresholds must be a non-empty 1D array."),
        (
            lambda: sweep([[0.5]], [[0]], [0], [1.0], [[0.5]]),
            "thresholds must be a non-empty 1D array.",
        ),
        (lambda: sweep([[0.5]], [[0]], [0], [1.0], [0.0]), "thresholds must be in (0, 1]."),
        (lambda: sweep([[0.5]], [[0]], [0], [1.0], [1.01]), "thresholds must be in (0, 1]."),
        (lambda: sweep([[0.5]], [[0]], [0], [1.0], [np.nan]), "thresholds must be in (0, 1]."),
        (
            lambda: sweep_entropy([[0.5, 0.5]], [0], [1.0]),
            "probabilities must be a 3D array (n, E, C), not 2D.",
        ),
        (
            lambda: sweep_entropy(np.zeros((1, 1, 0)), [0], [1.0]),
            "probabilities must have at least one example, exit and class.",
        ),
        (
            lambda: sweep_entropy([[[1.5, -0.5]]], [0], [1.0]),
            "probabilities must be between 0 and 1, inclusive.",
        ),
        (
            lambda: sweep_entropy([[[0.5, 0.4]]], [0], [1.0]),
            "probabilities must sum to 1 along the last axis.",
        ),
        (
            lambda: sweep_entropy([[[0.5, 0.5]]], [2], [1.0]),
            "labels must be between 0 and 1, inclusive.",
        ),
        (lambda: sweep_entropy([[[0.5, 0.5]]], ["a"], [1.0]), "labels must be integers."),
        (
            lambda: sweep_entropy([[[0.5, 0.5]]], [0], [1.0, 2.0]),
            "exit_costs must have shape (1,), not (2,).",
        ),
        (
            lambda: sweep_entropy([[[0.5, 0.5]]], [0], [1.0], [-0.1]),
            "thresholds must be non-negative and finite.",
        ),
        (
            lambda: sweep_entropy([[[0.5, 0.5]]], [0], [1.0], [math.inf]),
            "thresholds must be non-negative and finite.",
        ),
        (
            lambda: sweep_entropy([[[0.5, 0.5]]], [0], [1.0], []),
            "thresholds must be a non-empty 1D array.",
        ),
        (
            lambda: sweep_patience([0, 1], [0], [1.0]),
            "prediction must be a 2D array (n, E), not 1D.",
        ),
        (
            lambda: sweep_patience(np.zeros((1, 0)), [0], []),
            "prediction must have at least one example and one exit.",
        ),
        (
            lambda: sweep_patience([[0, 1]], [], [1.0, 2.0]),
            "labels must have shape (1,), not (0,).",
        ),
        (
            lambda: sweep_patience([[0, 1]], [0], [1.0, -2.0]),
            "exit_costs must be positive and finite.",
        ),
        (
            lambda: sweep_patience([[0, 1]], [0], [1.0, 2.0], []),
            "patiences must be a non-empty 1D array.",
        ),
        (
            lambda: sweep_patience([[0, 1]], [0], [1.0, 2.0], [0]),
            "patiences must be positive integers.",
        ),
        (
            lambda: sweep_patience([[0, 1]], [0], [1.0, 2.0], [1.5]),
            "patiences must be positive integers.",
        ),
        (lambda: pareto_front([[1.0]], [[1.0]]), "cost must be a 1D array, not 2D."),
        (lambda: pareto_front([1.0, 2.0], [1.0]), "quality must have shape (2,), not (1,)."),
        (lambda: pareto_front([1.0, np.nan], [1.0, 2.0]), "cost and quality must not contain NaN."),
        (lambda: pareto_front([1.0], [np.nan]), "cost and quality must not contain NaN."),
    ],
)
def test_error_messages(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=msg(message)):
        call()


def test_operating_point_error_messages() -> None:
    result = sweep(CONFIDENCE, PREDICTION, LABELS, COSTS, thresholds=[0.5, 0.8])
    with pytest.raises(ValueError, match=msg("max_accuracy_drop must be non-negative and finite.")):
        operating_point(result, max_accuracy_drop=-0.01)
    with pytest.raises(ValueError, match=msg("max_accuracy_drop must be non-negative and finite.")):
        operating_point(result, max_accuracy_drop=math.nan)
    with pytest.raises(
        ValueError, match=msg("reference_accuracy must be between 0 and 1, inclusive.")
    ):
        operating_point(result, reference_accuracy=1.5)
    with pytest.raises(ValueError, match=msg("no threshold has accuracy within 0.01 of 1.0.")):
        operating_point(result)
    with pytest.raises(
        ValueError,
        match=msg("no threshold has a 0.95-level upper bound on its accuracy drop within 0.01."),
    ):
        operating_point(result, level=0.95)
    with pytest.raises(ValueError, match=msg(
        "reference_accuracy cannot be combined with level: the bound is on the drop from "
        "the full model."
    )):
        operating_point(result, reference_accuracy=0.9, level=0.95)
    for level in (0.4, 1.0, math.nan):
        with pytest.raises(ValueError, match=msg("level must be at least 0.5 and below 1.")):
            operating_point(result, level=level)
        with pytest.raises(ValueError, match=msg("level must be at least 0.5 and below 1.")):
            accuracy_drop_bound(result, level=level)
