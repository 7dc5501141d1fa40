"""Tests for `pytest_greennlp.evp`: exact vectors, opda as the reference, exact rational
arithmetic for large ``n``, properties (hypothesis), policies and validation."""

from __future__ import annotations

import math
import sys
import warnings
from fractions import Fraction
from random import Random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_greennlp import evp
from pytest_greennlp.evp import (
    budget_curve,
    crossover,
    expected_max,
    expected_max_band,
    expected_max_std,
    expected_max_unbiased,
    tuning_curve_band,
)

SCORES = [0.1, 0.5, 0.3, 0.9]
NAN = float("nan")


def naive_weights(n: int, ks: np.ndarray) -> np.ndarray:
    """The with-replacement weights as a dense (len(ks), n) matrix, straight from the formula."""
    i = np.arange(1, n + 1)
    weights: np.ndarray = (i / n) ** ks[:, None] - ((i - 1) / n) ** ks[:, None]
    return weights


def naive_mean_std(scores: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(scores)
    w = naive_weights(v.size, ks)
    mean = w @ v
    return mean, np.sqrt((w * (v - mean[:, None]) ** 2).sum(axis=1))


def exact_with_replacement(scores: np.ndarray, k: int) -> float:
    v = [Fraction(float(s)) for s in np.sort(scores)]
    n = len(v)
    total = sum((vi * ((i + 1) ** k - i**k) for i, vi in enumerate(v)), Fraction(0))
    return float(total / n**k)


def exact_unbiased(scores: np.ndarray, k: int) -> float:
    v = [Fraction(float(s)) for s in np.sort(scores)]
    n = len(v)
    total, comb = Fraction(0), 1  # comb = C(i - 1, k - 1), starting at i = k
    for i in range(k, n + 1):
        if i > k:
            comb = comb * (i - 1) // (i - k)
        total += v[i - 1] * comb
    return float(total / math.comb(n, k))


def opda_distribution(scores: np.ndarray) -> Any:
    nonparametric = pytest.importorskip("opda.nonparametric")
    return nonparametric.EmpiricalDistribution(scores)


# Exact vectors.


def test_with_replacement_vector() -> None:
    np.testing.assert_allclose(
        expected_max(SCORES), [0.45, 0.6125, 0.703125, 0.76015625], rtol=0.0, atol=1e-12
    )


def test_unbiased_vector() -> None:
    np.testing.assert_allclose(
        expected_max_unbiased(SCORES), [0.45, 2 / 3, 0.8, 0.9], rtol=0.0, atol=1e-12
    )


def test_minimize_vectors() -> None:
    negated = [-s for s in SCORES]
    np.testing.assert_allclose(
        expected_max(negated, minimize=True), [-0.45, -0.6125, -0.703125, -0.76015625], atol=1e-12
    )
    np.testing.assert_allclose(
        expected_max_unbiased(negated, minimize=True), [-0.45, -2 / 3, -0.8, -0.9], atol=1e-12
    )


def test_ks_order_duplicates_scalar_and_beyond_n() -> None:
    full = expected_max(SCORES, range(1, 5))
    np.testing.assert_array_equal(expected_max(SCORES, [3, 1, 3]), full[[2, 0, 2]])
    np.testing.assert_array_equal(expected_max(SCORES, 2), full[[1]])
    beyond = expected_max(SCORES, [5, 10**9])
    assert beyond[0] == pytest.approx(0.9 - 0.4 * 0.75**5 - 0.2 * 0.5**5 - 0.2 * 0.25**5)
    assert beyond[1] == 0.9
    assert expected_max(SCORES, []).shape == (0,)


def test_single_score() -> None:
    assert expected_max([0.7], [1, 2, 50]).tolist() == [0.7, 0.7, 0.7]
    assert expected_max_unbiased([0.7]).tolist() == [0.7]
    assert expected_max_std([0.7], [1, 9]).tolist() == [0.0, 0.0]


def test_ties_match_the_distinct_value_formula() -> None:
    # Values 1 (twice) and 3: the best of k is 3 unless every draw is a 1.
    for k in (1, 2, 5):
        assert expected_max([1.0, 3.0, 1.0], [k])[0] == pytest.approx(3 - 2 * (2 / 3) ** k)
    # Without replacement: 3 is missed only when all k draws are the two 1s.
    assert expected_max_unbiased([1.0, 3.0, 1.0], [2])[0] == pytest.approx(3 - 2 / 3)


def test_std_and_band_vectors() -> None:
    np.testing.assert_allclose(expected_max_std([0.0, 1.0], [1, 2]), [0.5, math.sqrt(3) / 4])
    lower, upper = expected_max_band([0.0, 1.0], [1, 2])
    np.testing.assert_allclose(lower, [0.0, 0.75 - math.sqrt(3) / 4])
    np.testing.assert_allclose(upper, [1.0, 1.0])
    lower, upper = expected_max_band([0.0, -1.0], [1, 2], minimize=True)
    np.testing.assert_allclose(lower, [-1.0, -1.0])
    np.testing.assert_allclose(upper, [0.0, -0.75 + math.sqrt(3) / 4])


# References: opda, dense formulas and exact rational arithmetic.


@pytest.mark.parametrize("minimize", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_opda(minimize: bool, ties: bool) -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=300) / 5 if ties else rng.normal(size=300)
    ks = np.array([1, 2, 3, 10, 50, 299, 300, 301, 2000])
    distribution = opda_distribution(scores)
    np.testing.assert_allclose(
        expected_max(scores, ks, minimize=minimize),
        distribution.average_tuning_curve(ks, minimize=minimize),
        rtol=0.0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        expected_max(scores, ks, minimize=minimize),
        distribution.v_tuning_curve(ks, minimize=minimize),
        rtol=0.0,
        atol=1e-12,
    )
    small = ks[ks <= 300]
    np.testing.assert_allclose(
        expected_max_unbiased(scores, small, minimize=minimize),
        distribution.u_tuning_curve(small, minimize=minimize),
        rtol=0.0,
        atol=1e-9,
    )


@pytest.mark.parametrize("ties", [False, True])
def test_std_matches_dense_formula(ties: bool) -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=1000).astype(float) if ties else rng.normal(size=1000)
    ks = np.arange(1, 400)
    mean, std = naive_mean_std(scores, ks)
    np.testing.assert_allclose(expected_max(scores, ks), mean, rtol=0.0, atol=1e-13)
    # Ties make the best nearly certain for large k: a deviation of 1e-9 must survive.
    np.testing.assert_allclose(expected_max_std(scores, ks), std, rtol=1e-9, atol=1e-15)


def test_large_n_against_exact_arithmetic() -> None:
    scores = np.random.default_rng(11).normal(size=2000)
    ks = [1, 2, 37, 300, 1999, 2000]
    got = expected_max(scores, ks)
    got_unbiased = expected_max_unbiased(scores, ks)
    for k, value, unbiased in zip(ks, got, got_unbiased):
        if k <= 300:
            assert value == pytest.approx(exact_with_replacement(scores, k), abs=1e-14)
        assert unbiased == pytest.approx(exact_unbiased(scores, k), abs=1e-14)


@pytest.mark.parametrize("stride", [1, 3])
def test_blocks_runs_and_jumps(monkeypatch: pytest.MonkeyPatch, stride: int) -> None:
    # Tiny blocks and runs exercise every path of both kernels on a small problem.
    monkeypatch.setattr(evp, "_ROWS", 7)
    monkeypatch.setattr(evp, "_STEPS", 3)
    monkeypatch.setattr(evp, "_STRIDE", stride)
    monkeypatch.setattr(evp, "_REFRESH", 5)
    scores = np.random.default_rng(5).normal(size=60)
    scores[:10] = 0.0
    ks = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 30, 31, 32, 58, 59, 60])
    mean, std = naive_mean_std(scores, ks)
    np.testing.assert_allclose(expected_max(scores, ks), mean, rtol=0.0, atol=1e-14)
    np.testing.assert_allclose(expected_max_std(scores, ks), std, rtol=1e-12, atol=1e-15)
    for k, unbiased in zip(ks, expected_max_unbiased(scores, ks)):
        assert unbiased == pytest.approx(exact_unbiased(scores, k), abs=1e-14)


def test_unbiased_large_n_edges() -> None:
    scores = np.random.default_rng(2).normal(size=200_000)
    top = np.sort(scores)[-2:]
    n = scores.size
    got = expected_max_unbiased(scores, [1, n - 1, n])
    assert got[0] == pytest.approx(scores.mean(), abs=1e-14)
    assert got[1] == pytest.approx(top[1] - (top[1] - top[0]) / n, abs=1e-14)
    assert got[2] == top[1]


# Properties.

finite_scores = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=40,
)


def tolerance(scores: np.ndarray) -> float:
    return 1e-12 * (1.0 + float(np.abs(scores).max()))


@settings(max_examples=200, deadline=None, database=None)
@given(finite_scores)
def test_properties_with_replacement(raw: list[float]) -> None:
    scores = np.array(raw)
    ks = np.arange(1, 2 * scores.size + 3)
    tol = tolerance(scores)
    curve = expected_max(scores, ks)
    assert np.all(np.diff(curve) >= -tol)
    assert np.all(curve >= scores.min() - tol) and np.all(curve <= scores.max() + tol)
    assert curve[0] == pytest.approx(scores.mean(), abs=tol)
    assert expected_max(scores, [10**9])[0] == scores.max()
    minimized = expected_max(scores, ks, minimize=True)
    assert np.all(np.diff(minimized) <= tol)
    np.testing.assert_array_equal(minimized, -expected_max(-scores, ks))
    std = expected_max_std(scores, ks)
    assert np.all(std >= 0) and std[0] == pytest.approx(scores.std(), rel=1e-9, abs=tol)
    lower, upper = expected_max_band(scores, ks)
    assert np.all(lower <= curve + tol) and np.all(curve <= upper + tol)


@settings(max_examples=200, deadline=None, database=None)
@given(finite_scores)
def test_properties_unbiased(raw: list[float]) -> None:
    scores = np.array(raw)
    tol = tolerance(scores)
    curve = expected_max_unbiased(scores)
    assert np.all(np.diff(curve) >= -tol)
    assert curve[0] == pytest.approx(scores.mean(), abs=tol)
    assert curve[-1] == scores.max()
    np.testing.assert_array_equal(
        expected_max_unbiased(scores, minimize=True), -expected_max_unbiased(-scores)
    )


@settings(max_examples=100, deadline=None, database=None)
@given(finite_scores, st.randoms(use_true_random=False))
def test_permutation_invariance(raw: list[float], random: Random) -> None:
    shuffled = list(raw)
    random.shuffle(shuffled)
    for function in (expected_max, expected_max_std, expected_max_unbiased):
        np.testing.assert_array_equal(function(raw), function(shuffled))


# Failed trials.


def test_failed_trials_worst_policy() -> None:
    scores = [0.2, 0.8, NAN, NAN]
    assert expected_max(scores, [1])[0] == pytest.approx((0.2 + 0.8 + 0.2 + 0.2) / 4)
    # Same as scoring each failure as the worst success.
    np.testing.assert_array_equal(expected_max(scores), expected_max([0.2, 0.8, 0.2, 0.2]))
    np.testing.assert_array_equal(
        expected_max_unbiased(scores), expected_max_unbiased([0.2, 0.8, 0.2, 0.2])
    )
    assert expected_max([0.2, -math.inf], [1]).tolist() == [0.2]
    assert expected_max([0.2, math.inf], [1], minimize=True).tolist() == [0.2]


def test_failed_trials_omit_and_raise() -> None:
    scores = [0.2, 0.8, NAN]
    np.testing.assert_array_equal(expected_max(scores, nan_policy="omit"), expected_max([0.2, 0.8]))
    with pytest.raises(ValueError, match='1 failed trial.*nan_policy is "raise"'):
        expected_max(scores, nan_policy="raise")


def test_all_trials_failed_give_nan() -> None:
    for function in (expected_max, expected_max_std, expected_max_unbiased):
        assert np.isnan(function([NAN, NAN], [1, 2])).all()
        assert function([NAN], nan_policy="omit").shape == (0,)
    lower, upper = expected_max_band([NAN], [1])
    assert np.isnan(lower).all() and np.isnan(upper).all()
    budget, expected = budget_curve([NAN, NAN], [1.0, 2.0], [1])
    assert budget.tolist() == [1.5] and np.isnan(expected).all()


def test_best_direction_infinity_is_an_error() -> None:
    with pytest.raises(ValueError, match="must not contain inf when maximizing"):
        expected_max([0.1, math.inf])
    with pytest.raises(ValueError, match="must not contain -inf when minimizing"):
        expected_max([0.1, -math.inf], minimize=True)


# Validation.


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scores": []}, ValueError, "scores must be non-empty."),
        ({"scores": [[0.1]]}, ValueError, "scores must be a 1D array, not 2D."),
        ({"ks": [0]}, ValueError, "ks must be positive."),
        ({"ks": [1.5]}, ValueError, "ks must contain only integers."),
        ({"ks": [[1]]}, ValueError, "ks must be an integer or a 1D array, not 2D."),
        ({"minimize": 1}, TypeError, "minimize must be a boolean."),
        ({"nan_policy": "drop"}, ValueError, "nan_policy must be"),
    ],
)
def test_validation(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    arguments: dict[str, Any] = {"scores": SCORES, **kwargs}
    for function in (expected_max, expected_max_std, expected_max_band, expected_max_unbiased):
        with pytest.raises(error, match=message.replace(".", r"\.").replace("(", r"\(")):
            function(**arguments)


def test_unbiased_rejects_k_beyond_n() -> None:
    with pytest.raises(ValueError, match=r"at most the number of trials counted \(4\).*not 5"):
        expected_max_unbiased(SCORES, [5])
    with pytest.raises(ValueError, match=r"\(2\)"):
        expected_max_unbiased([0.1, NAN, 0.3], [3], nan_policy="omit")


# Confidence bands (opda).


@pytest.mark.parametrize("method", ["dkw", "ks", "ld_equal_tailed"])
@pytest.mark.parametrize("minimize", [False, True])
def test_band_delegates_to_opda(method: str, minimize: bool) -> None:
    nonparametric = pytest.importorskip("opda.nonparametric")
    scores = np.random.default_rng(1).uniform(size=30)
    ks = np.array([1, 2, 5, 30])
    lower, point, upper = tuning_curve_band(
        scores,
        ks,
        confidence=0.9,
        minimize=minimize,
        method=method,  # type: ignore[arg-type]
        curve="mean",
        a=0.0,
        b=1.0,
        generator=np.random.default_rng(0),
    )
    lo_cdf, point_cdf, hi_cdf = nonparametric.EmpiricalDistribution.confidence_bands(
        scores, 0.9, a=0.0, b=1.0, method=method, generator=np.random.default_rng(0), n_jobs=1
    )
    np.testing.assert_allclose(lower, hi_cdf.average_tuning_curve(ks, minimize=minimize))
    np.testing.assert_allclose(point, point_cdf.average_tuning_curve(ks, minimize=minimize))
    np.testing.assert_allclose(upper, lo_cdf.average_tuning_curve(ks, minimize=minimize))
    np.testing.assert_allclose(point, expected_max(scores, ks, minimize=minimize), atol=1e-12)
    assert np.all(lower <= point) and np.all(point <= upper)


def test_band_median_curve_and_infinite_ends() -> None:
    pytest.importorskip("opda")
    scores = [0.62, 0.71, 0.55, 0.80, 0.68, 0.74, 0.59, 0.77]
    lower, point, upper = tuning_curve_band(scores, [1, 4, 8], method="dkw")
    assert point.tolist() == [0.68, 0.77, 0.8]
    assert upper[0] == 0.8 and np.isnan(upper[1:]).all()
    lower, _, upper = tuning_curve_band(scores, [1, 4], method="dkw", curve="mean")
    assert np.isnan(lower).all() and np.isnan(upper).all()


def test_band_failed_trials_tie_without_warning() -> None:
    pytest.importorskip("opda")
    scores = [0.62, 0.71, NAN, 0.80, NAN, 0.74]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lower, point, upper = tuning_curve_band(scores, [1, 3], method="ks", a=0.0, b=1.0)
    assert np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))
    lower, point, upper = tuning_curve_band([NAN, NAN], [1, 3], method="ks")
    assert np.isnan(lower).all() and np.isnan(point).all() and np.isnan(upper).all()


def test_band_keeps_opda_warning_for_tied_scores() -> None:
    pytest.importorskip("opda")
    with pytest.warns(RuntimeWarning, match="Duplicates detected"):
        tuning_curve_band([0.5, 0.5, 0.7], [1], method="ks")


def test_band_validation() -> None:
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        tuning_curve_band(SCORES, [1], confidence=1.5)
    with pytest.raises(ValueError, match="method must be"):
        tuning_curve_band(SCORES, [1], method="bootstrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="curve must be"):
        tuning_curve_band(SCORES, [1], curve="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a and b must bound the scores: \[0.1, 0.9\]"):
        tuning_curve_band(SCORES, [1], a=0.2)


def test_band_without_opda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opda", None)
    monkeypatch.setitem(sys.modules, "opda.nonparametric", None)
    with pytest.raises(ImportError, match=r"install pytest-greennlp\[evp\]") as info:
        tuning_curve_band(SCORES, [1])
    assert info.value.name == "opda"


# Budget axis.


def test_budget_curve() -> None:
    budget, expected = budget_curve(SCORES, [10.0, 20.0, 10.0, 20.0], [1, 4])
    assert budget.tolist() == [15.0, 60.0]
    np.testing.assert_array_equal(expected, expected_max(SCORES, [1, 4]))
    # Failed trials were paid for: under "omit" their cost is spread over the successes.
    budget, expected = budget_curve([0.5, NAN, 0.7], [1.0, 4.0, 1.0], nan_policy="omit")
    assert budget.tolist() == [3.0, 6.0]
    budget, _ = budget_curve([0.5, NAN, 0.7], [1.0, 4.0, 1.0])
    assert budget.tolist() == [2.0, 4.0, 6.0]
    budget, expected = budget_curve([-0.5, -0.7], [1.0, 1.0], minimize=True)
    np.testing.assert_array_equal(expected, expected_max([-0.5, -0.7], minimize=True))


def test_budget_curve_validation() -> None:
    with pytest.raises(ValueError, match=r"costs must have the same shape as scores: \(4,\)"):
        budget_curve(SCORES, [1.0])
    with pytest.raises(ValueError, match="costs must be finite and non-negative."):
        budget_curve(SCORES, [1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="costs must be finite and non-negative."):
        budget_curve(SCORES, [1.0, NAN, 1.0, 1.0])


def test_crossover() -> None:
    # B starts worse, ties at 2, then leads.
    assert crossover([1, 2, 3], [0.5, 0.6, 0.65], [1, 2, 3], [0.4, 0.6, 0.7]) == 2.0
    # Crossing between grid points, with different grids: A is flat at 0.6.
    assert crossover([0, 10], [0.6, 0.6], [1, 3, 5], [0.5, 0.55, 0.8]) == pytest.approx(3.4)
    # B better throughout: the start of the shared range.
    assert crossover([0, 10], [0.1, 0.2], [2, 8], [0.5, 0.6]) == 2.0
    # B never better, or better only for a while.
    assert crossover([0, 10], [0.5, 0.6], [0, 10], [0.1, 0.2]) is None
    assert crossover([1, 3], [0.5, 0.7], [1, 3], [0.6, 0.6]) is None
    assert crossover([1, 3], [0.5, 0.7], [1, 3], [0.6, 0.6], minimize=True) == 2.0


def test_crossover_with_budget_curves() -> None:
    rng = np.random.default_rng(4)
    cheap = rng.normal(0.70, 0.05, size=50)
    costly = rng.normal(0.74, 0.01, size=50)
    budget_a, curve_a = budget_curve(cheap, np.full(50, 1.0), range(1, 401))
    budget_b, curve_b = budget_curve(costly, np.full(50, 4.0), range(1, 101))
    x = crossover(budget_a, curve_a, budget_b, curve_b)
    assert x is None or 4.0 <= x <= 400.0
    if x is not None:
        assert np.interp(x + 1, budget_b, curve_b) > np.interp(x + 1, budget_a, curve_a)


def test_crossover_validation() -> None:
    with pytest.raises(ValueError, match="must overlap"):
        crossover([0, 1], [0, 1], [2, 3], [0, 1])
    with pytest.raises(ValueError, match="budget_a must be strictly increasing."):
        crossover([0, 0], [0, 1], [0, 1], [0, 1])
    with pytest.raises(ValueError, match=r"curve_b must have the same shape as budget_b"):
        crossover([0, 1], [0, 1], [0, 1], [0])
    with pytest.raises(ValueError, match="must be finite"):
        crossover([0, 1], [0, NAN], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="budget_a must be a non-empty 1D array."):
        crossover([], [], [0, 1], [0, 1])
