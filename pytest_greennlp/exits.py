"""Multi-exit models: temperature scaling, calibration and offline early-exit threshold sweeps.

A multi-exit model ("The Right Tool for the Job", Schwartz et al. 2020) attaches a
classifier to several layers and stops at the first one that is confident enough. Every
function here works on outputs cached from one full pass (every exit evaluated on every
example), so a whole cost/accuracy curve costs no extra model calls.

Conventions
-----------
* Shapes: ``n`` examples, ``E`` exits (ordered from cheapest to full model), ``C`` classes.
* ``exit_costs[e]`` is the cumulative cost of running the model up to and including exit
  ``e`` (FLOPs, seconds, joules...): positive and non-decreasing. The last exit is the
  full model.
* An example leaves at the first exit whose score passes the threshold, else at the last
  exit. The confidence rule passes when ``confidence >= threshold``; the entropy rule
  when ``entropy < threshold``; the patience rule when the prediction has stayed the
  same for ``patience`` consecutive steps.
* Calibration bins are equal-width over [0, 1] with edges ``k / n_bins``; bin ``b``
  covers ``(b / n_bins, (b + 1) / n_bins]`` and the first bin also holds 0.

This module imports only numpy and the standard library and does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ExitRule",
    "ReliabilityDiagram",
    "Sweep",
    "accuracy_drop_bound",
    "ece_change_interval",
    "ece_noise_floor",
    "expected_calibration_error",
    "fit_temperature",
    "operating_point",
    "pareto_front",
    "reliability_diagram",
    "softmax",
    "softmax_confidence",
    "sweep",
    "sweep_entropy",
    "sweep_patience",
]

#: The exit rule a `Sweep` was computed with.
ExitRule = Literal["confidence", "entropy", "patience"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Default bounds on the fitted temperature. Separable data drives the optimum to 0
#: (or a constant-logit class to infinity), so the optimum is clipped to these.
_TEMPERATURE_BOUNDS = (1e-2, 1e2)
#: Convergence tolerance of the temperature fit, in units of log T.
_TEMPERATURE_TOL = 1e-10
#: Rounding tolerance when comparing accuracies in `operating_point`.
_ACCURACY_TOL = 1e-12


# helper functions and classes


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.setflags(write=False)


def _log_softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    result: FloatArray = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return result


def _check_logits(logits: npt.ArrayLike) -> FloatArray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim == 0:
        raise ValueError("logits must have at least one dimension, not 0D.")
    if array.shape[-1] == 0:
        raise ValueError("logits must have at least one class.")
    if not np.all(np.isfinite(array)):
        raise ValueError("logits must be finite.")
    return array


def _check_temperature(temperature: float) -> float:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError("temperature must be positive and finite.")
    return float(temperature)


def _check_class_labels(labels: npt.ArrayLike, n: int, n_classes: int) -> IntArray:
    array = np.asarray(labels)
    if array.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), not {array.shape}.")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError("labels must be integers.")
    if n and (np.min(array) < 0 or np.max(array) >= n_classes):
        raise ValueError(f"labels must be between 0 and {n_classes - 1}, inclusive.")
    return array.astype(np.int64)


def _check_any_labels(labels: npt.ArrayLike, n: int) -> npt.NDArray[np.generic]:
    array = np.asarray(labels)
    if array.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), not {array.shape}.")
    return array


def _check_exit_costs(exit_costs: npt.ArrayLike, n_exits: int) -> FloatArray:
    array = np.asarray(exit_costs, dtype=np.float64)
    if array.shape != (n_exits,):
        raise ValueError(f"exit_costs must have shape ({n_exits},), not {array.shape}.")
    if not np.all(np.isfinite(array) & (array > 0)):
        raise ValueError("exit_costs must be positive and finite.")
    if np.any(np.diff(array) < 0):
        raise ValueError("exit_costs must be non-decreasing.")
    return array


def _check_thresholds(name: str, thresholds: npt.ArrayLike) -> FloatArray:
    array = np.asarray(thresholds, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1D array.")
    return array


def _check_confidence_1d(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int
) -> tuple[FloatArray, FloatArray]:
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim != 1:
        raise ValueError(f"confidence must be a 1D array, not {conf.ndim}D.")
    if conf.size == 0:
        raise ValueError("confidence must be non-empty.")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidence must be between 0 and 1, inclusive.")
    hit = np.asarray(correct)
    if hit.shape != conf.shape:
        raise ValueError(f"correct must have shape {conf.shape}, not {hit.shape}.")
    if not (hit.dtype == np.bool_ or np.all((hit == 0) | (hit == 1))):
        raise ValueError("correct must be boolean or 0/1.")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError("n_bins must be a positive integer.")
    return conf, hit.astype(np.float64)


def _bin_edges(n_bins: int) -> FloatArray:
    # Correctly rounded k / n_bins, so a confidence equal to the literal k / n_bins
    # lands in the bin that closes at that edge.
    edges: FloatArray = np.arange(n_bins + 1, dtype=np.float64) / n_bins
    return edges


def _bin_index(conf: FloatArray, edges: FloatArray) -> npt.NDArray[np.intp]:
    # Bin b is (edges[b], edges[b + 1]]; 0 goes to the first bin.
    index: npt.NDArray[np.intp] = np.clip(
        np.searchsorted(edges, conf, side="left") - 1, 0, len(edges) - 2
    )
    return index


def _reliability(conf: FloatArray, hit: FloatArray, n_bins: int) -> ReliabilityDiagram:
    edges = _bin_edges(n_bins)
    index = _bin_index(conf, edges)
    count = np.bincount(index, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=hit, minlength=n_bins) / count
    return ReliabilityDiagram(
        edges=edges, count=count, mean_confidence=mean_confidence, accuracy=accuracy
    )


def _ece_rows(conf: FloatArray, hit: FloatArray, n_bins: int) -> FloatArray:
    # ECE of each row of (R, n) arrays: sum over bins of |sum(hit) - sum(conf)| / n.
    n_rows, n = conf.shape
    key = _bin_index(conf.ravel(), _bin_edges(n_bins)) + np.repeat(
        np.arange(n_rows) * n_bins, n
    )
    size = n_rows * n_bins
    gap = np.bincount(key, weights=hit.ravel(), minlength=size) - np.bincount(
        key, weights=conf.ravel(), minlength=size
    )
    result: FloatArray = np.sum(np.abs(gap.reshape(n_rows, n_bins)), axis=1) / n
    return result


#: Resamples are drawn this many values at a time, to bound memory on large data.
_CHUNK_VALUES = 2_000_000


def _chunks(n_rows: int, n: int) -> list[int]:
    # Row counts per chunk of at most _CHUNK_VALUES values (at least one row each).
    step = max(1, _CHUNK_VALUES // max(n, 1))
    return [min(step, n_rows - start) for start in range(0, n_rows, step)]


def _check_resampling(level: float, count: int, name: str) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError("level must be between 0 and 1, exclusive.")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"{name} must be a positive integer.")


def _nll_slope(logits: FloatArray, labels: IntArray, u: float) -> tuple[float, float]:
    # With beta = 1 / T = exp(u), the mean NLL f(beta) = mean(LSE(beta z) - beta z_y) is
    # convex in beta: f'(beta) = mean(E_p[z] - z_y), f''(beta) = mean(Var_p[z]) >= 0.
    # We return h(u) = f'(beta), monotone non-decreasing in u, and dh/du = beta f''(beta).
    beta = math.exp(u)
    prob = np.exp(_log_softmax(beta * logits))
    mean_z = np.sum(prob * logits, axis=1)
    var_z = np.sum(prob * (logits - mean_z[:, None]) ** 2, axis=1)
    h = float(np.mean(mean_z - logits[np.arange(len(labels)), labels]))
    return h, beta * float(np.mean(var_z))


def _first_at_least(
    scores: FloatArray, correct: IntArray, thresholds: FloatArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Count correct answers and exits when each example leaves at its first score >= tau.

    Returns ``n_correct`` (T,), ``exit_counts`` (T, E) and ``n_lost`` (T,), the examples
    the last exit gets right and the exit taken gets wrong. An example's exit changes
    only at its prefix-maximum records: for ``m[e] = max(scores[:e + 1])``, it leaves at
    record ``r`` for ``tau`` in ``(m[previous record], m[r]]`` and at the last exit above
    its overall maximum. Each record is an event "from the exit taken just above this
    value, to this exit"; the events with value >= tau are applied to the all-last-exit
    state with suffix sums over the events sorted by value. O(n E log(n E) + T E log(n E)).
    """
    n, n_exits = scores.shape
    last = n_exits - 1
    prefix_max = np.maximum.accumulate(scores, axis=1)
    is_record = np.ones((n, n_exits), dtype=np.bool_)
    is_record[:, 1:] = scores[:, 1:] > prefix_max[:, :-1]
    rows, cols = np.nonzero(is_record)  # row-major: records of one example in exit order
    # The exit taken just above a record's value: the example's next record, or the last
    # exit above its overall maximum.
    from_exit = np.full(cols.shape, last, dtype=np.intp)
    same_row = rows[1:] == rows[:-1]
    from_exit[:-1][same_row] = cols[1:][same_row]
    moves = from_exit != cols
    rows, to_exit, from_exit = rows[moves], cols[moves], from_exit[moves]
    values = scores[rows, to_exit]

    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Events with value >= tau are those at sorted positions >= start.
    start = np.searchsorted(sorted_values, thresholds, side="left")
    n_events = len(sorted_values)

    def applied(per_exit: IntArray) -> IntArray:
        # Sum of per_exit[i, exit taken] over examples, at each threshold.
        delta = (per_exit[rows, to_exit] - per_exit[rows, from_exit])[order]
        suffix = np.zeros(n_events + 1, dtype=np.int64)
        suffix[:-1] = np.cumsum(delta[::-1])[::-1]
        total: IntArray = int(np.sum(per_exit[:, last])) + suffix[start]
        return total

    n_correct = applied(correct)
    n_lost = applied((1 - correct) * correct[:, last:])

    exit_counts: IntArray = np.zeros((len(thresholds), n_exits), dtype=np.int64)
    exit_counts[:, last] = n
    for e in range(n_exits):
        arrive = np.sort(values[to_exit == e])
        leave = np.sort(values[from_exit == e])
        exit_counts[:, e] += len(arrive) - np.searchsorted(arrive, thresholds, side="left")
        exit_counts[:, e] -= len(leave) - np.searchsorted(leave, thresholds, side="left")
    return n_correct, exit_counts, n_lost


def _make_sweep(
    rule: ExitRule,
    thresholds: FloatArray,
    scores: FloatArray,
    cut: FloatArray,
    correct: IntArray,
    exit_costs: FloatArray,
) -> Sweep:
    n = scores.shape[0]
    n_correct, exit_counts, n_lost = _first_at_least(scores, correct, cut)
    mean_cost = exit_counts @ exit_costs / n
    full_correct = int(np.sum(correct[:, -1]))
    return Sweep(
        rule=rule,
        thresholds=thresholds.copy(),
        accuracy=n_correct / n,
        mean_cost=mean_cost,
        exit_counts=exit_counts,
        speedup=exit_costs[-1] / mean_cost,
        full_model_accuracy=float(np.mean(correct[:, -1])),
        full_model_cost=float(exit_costs[-1]),
        n_lost=n_lost,
        n_gained=n_lost + n_correct - full_correct,
    )


# main functions and classes


@dataclass(frozen=True, eq=False)
class ReliabilityDiagram:
    """Per-bin calibration statistics, ready to plot.

    Attributes
    ----------
    edges : (n_bins + 1,) array of floats
        Bin edges ``k / n_bins``. Bin ``b`` is ``(edges[b], edges[b + 1]]``; the first
        bin also holds 0.
    count : (n_bins,) array of ints
        Number of examples per bin.
    mean_confidence : (n_bins,) array of floats
        Mean confidence per bin; NaN for an empty bin.
    accuracy : (n_bins,) array of floats
        Fraction correct per bin; NaN for an empty bin.
    """

    edges: FloatArray
    count: IntArray
    mean_confidence: FloatArray
    accuracy: FloatArray

    def __post_init__(self) -> None:
        for array in (self.edges, self.count, self.mean_confidence, self.accuracy):
            _readonly(array)


@dataclass(frozen=True, eq=False)
class Sweep:
    """Accuracy and cost of an early-exit rule at each threshold.

    The arrays are read-only; row ``t`` of each describes ``thresholds[t]``.

    Attributes
    ----------
    rule : {"confidence", "entropy", "patience"}
        The exit rule: leave when ``confidence >= threshold``, when
        ``entropy < threshold``, or when the prediction has stayed the same for
        ``threshold`` consecutive steps (the patience, stored as a float).
    thresholds : (T,) array of floats
        The thresholds, in the order given.
    accuracy : (T,) array of floats
        Fraction of examples whose prediction at their exit is correct.
    mean_cost : (T,) array of floats
        Mean over examples of ``exit_costs[exit]``, in the units of ``exit_costs``.
    exit_counts : (T, E) array of ints
        Number of examples leaving at each exit; each row sums to ``n``.
    speedup : (T,) array of floats
        ``full_model_cost / mean_cost`` (1.0 means no saving).
    full_model_accuracy : float
        Accuracy of the last exit alone (the full model).
    full_model_cost : float
        Cost of the last exit, ``exit_costs[-1]``.
    n_lost : (T,) array of ints
        Examples the full model gets right and the rule gets wrong.
    n_gained : (T,) array of ints
        Examples the rule gets right and the full model gets wrong. The accuracy drop
        is ``(n_lost - n_gained) / n``; `accuracy_drop_bound` bounds it.
    """

    rule: ExitRule
    thresholds: FloatArray
    accuracy: FloatArray
    mean_cost: FloatArray
    exit_counts: IntArray
    speedup: FloatArray
    full_model_accuracy: float
    full_model_cost: float
    n_lost: IntArray
    n_gained: IntArray

    def __post_init__(self) -> None:
        for array in (
            self.thresholds,
            self.accuracy,
            self.mean_cost,
            self.exit_counts,
            self.speedup,
            self.n_lost,
            self.n_gained,
        ):
            _readonly(array)


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    """Return ``softmax(logits / temperature)`` along the last axis, computed stably.

    Parameters
    ----------
    logits : array of floats, shape (..., C)
        Finite scores; the last axis holds the classes.
    temperature : float, optional (default=1.0)
        Positive divisor applied to the logits.

    Returns
    -------
    array of floats, shape (..., C)
        Probabilities that sum to 1 along the last axis.

    Examples
    --------
    >>> softmax([[1000.0, 1000.0], [0.0, 0.0]]).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    # Validate the arguments.
    array = _check_logits(logits)
    temperature = _check_temperature(temperature)

    # Compute the probabilities.
    result: FloatArray = np.exp(_log_softmax(array / temperature))
    return result


def softmax_confidence(
    logits: npt.ArrayLike, temperature: float = 1.0
) -> tuple[FloatArray, IntArray]:
    """Return the max-softmax confidence and the predicted class of each row.

    Parameters
    ----------
    logits : array of floats, shape (..., C)
        Finite scores; the last axis holds the classes. A multi-exit model's cached
        logits of shape (n, E, C) give arrays of shape (n, E), ready for `sweep`.
    temperature : float, optional (default=1.0)
        Positive divisor applied to the logits (see `fit_temperature`).

    Returns
    -------
    confidence : array of floats, shape (...)
        ``max_c softmax(logits / temperature)[c]``, in (0, 1].
    prediction : array of ints, shape (...)
        The arg max; ties go to the lowest class index.

    Examples
    --------
    >>> confidence, prediction = softmax_confidence([[2.0, 0.0], [0.0, 3.0]])
    >>> confidence.round(4).tolist(), prediction.tolist()
    ([0.8808, 0.9526], [0, 1])
    >>> softmax_confidence([[2.0, 0.0]], temperature=1e9)[0].round(4).tolist()
    [0.5]
    """
    # Validate the arguments.
    array = _check_logits(logits)
    temperature = _check_temperature(temperature)

    # Compute the confidence and the prediction.
    scaled = array / temperature
    shifted = scaled - np.max(scaled, axis=-1, keepdims=True)
    confidence: FloatArray = 1.0 / np.sum(np.exp(shifted), axis=-1)
    prediction: IntArray = np.argmax(array, axis=-1).astype(np.int64)
    return confidence, prediction


def fit_temperature(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    bounds: tuple[float, float] = _TEMPERATURE_BOUNDS,
) -> float:
    """Return the temperature T that minimises the mean NLL of ``softmax(logits / T)``.

    Temperature scaling [1]_ calibrates a classifier with one parameter fitted on
    held-out data; it does not change the predictions.

    Parameters
    ----------
    logits : array of floats, shape (n, C)
        Finite held-out logits, with ``n >= 1``.
    labels : array of ints, shape (n,)
        True classes, between 0 and ``C - 1``.
    bounds : (float, float), optional (default=(1e-2, 1e2))
        The result is clipped to ``[low, high]``. Data that the logits already separate
        perfectly has its optimum at T -> 0 and returns ``low``; data whose labels the
        logits always get wrong returns ``high``.

    Returns
    -------
    float
        The fitted temperature, to within a relative 1e-10. If the NLL does not depend on
        T (every row of logits is constant), 1.0 clipped to the bounds.

    Notes
    -----
    With ``beta = 1 / T`` the mean NLL is convex in ``beta``, so its derivative is
    monotone and has at most one root. We find that root in ``log T`` with Newton's
    method on the analytic derivative and curvature, falling back to bisection of the
    bracket whenever a Newton step leaves it or the curvature vanishes, and stop when
    the step or the bracket is below 1e-10 in ``log T``.

    References
    ----------
    .. [1] Guo, Chuan, Geoff Pleiss, Yu Sun, and Kilian Q. Weinberger. "On Calibration
       of Modern Neural Networks." ICML (2017).

    Examples
    --------
    Three of four identical predictions are right, so the fitted probability is 3/4:

    >>> temperature = fit_temperature([[2.0, 0.0]] * 4, [0, 0, 0, 1])
    >>> round(temperature, 6), round(2 / math.log(3), 6)
    (1.820478, 1.820478)
    >>> fit_temperature([[2.0, 0.0], [0.0, 2.0]], [0, 1])  # separable: clipped
    0.01
    """
    # Validate the arguments.
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"logits must be a 2D array, not {array.ndim}D.")
    n, n_classes = array.shape
    if n == 0:
        raise ValueError("logits must have at least one row.")
    if n_classes == 0:
        raise ValueError("logits must have at least one class.")
    if not np.all(np.isfinite(array)):
        raise ValueError("logits must be finite.")
    target = _check_class_labels(labels, n, n_classes)
    low, high = (float(bound) for bound in bounds)
    if not (0 < low < high < math.inf):
        raise ValueError("bounds must satisfy 0 < low < high < inf.")

    # Find the root of the monotone derivative, u = log(1 / T).
    u_low, u_high = -math.log(high), -math.log(low)
    h_low, _ = _nll_slope(array, target, u_low)
    h_high, _ = _nll_slope(array, target, u_high)
    if h_low >= 0 and h_high <= 0:  # flat: the NLL does not depend on T
        return min(max(1.0, low), high)
    if h_low >= 0:
        return high
    if h_high <= 0:
        return low
    u = min(max(0.0, u_low), u_high)
    for _ in range(200):
        h, slope = _nll_slope(array, target, u)
        if h == 0:
            break
        if h < 0:
            u_low = u
        else:
            u_high = u
        u_next = u - h / slope if slope > 0 else math.nan
        if not u_low < u_next < u_high:
            u_next = 0.5 * (u_low + u_high)
        step = abs(u_next - u)
        u = u_next
        if step < _TEMPERATURE_TOL or u_high - u_low < _TEMPERATURE_TOL:
            break
    return math.exp(-u)


def reliability_diagram(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 15
) -> ReliabilityDiagram:
    """Bin predictions by confidence and return each bin's count, confidence and accuracy.

    Parameters
    ----------
    confidence : array of floats, shape (n,)
        Confidence of each prediction, between 0 and 1; ``n >= 1``.
    correct : array of bools or 0/1, shape (n,)
        Whether each prediction is right.
    n_bins : int, optional (default=15)
        Number of equal-width bins over [0, 1]. Bin ``b`` is
        ``(b / n_bins, (b + 1) / n_bins]``; the first bin also holds 0.

    Returns
    -------
    ReliabilityDiagram
        Edges, counts, mean confidence and accuracy per bin (NaN for empty bins).

    Examples
    --------
    >>> diagram = reliability_diagram([0.1, 0.2, 0.9], [1, 0, 1], n_bins=2)
    >>> diagram.count.tolist(), diagram.mean_confidence.round(2).tolist()
    ([2, 1], [0.15, 0.9])
    >>> diagram.accuracy.tolist()
    [0.5, 1.0]
    """
    # Validate the arguments.
    conf, hit = _check_confidence_1d(confidence, correct, n_bins)

    # Bin the predictions.
    return _reliability(conf, hit, int(n_bins))


def expected_calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 15
) -> float:
    """Return the expected calibration error: ``sum_b (n_b / n) |accuracy_b - confidence_b|``.

    Parameters
    ----------
    confidence : array of floats, shape (n,)
        Confidence of each prediction, between 0 and 1; ``n >= 1``.
    correct : array of bools or 0/1, shape (n,)
        Whether each prediction is right.
    n_bins : int, optional (default=15)
        Number of equal-width bins over [0, 1], as in [1]_. Bin ``b`` is
        ``(b / n_bins, (b + 1) / n_bins]``; the first bin also holds 0.

    Returns
    -------
    float
        The ECE, between 0 and 1. Empty bins contribute nothing.

    References
    ----------
    .. [1] Guo, Chuan, Geoff Pleiss, Yu Sun, and Kilian Q. Weinberger. "On Calibration
       of Modern Neural Networks." ICML (2017).

    Examples
    --------
    Bins (0, 0.5] and (0.5, 1]: ``(2/3) |0.5 - 0.15| + (1/3) |1.0 - 0.9|``.

    >>> round(expected_calibration_error([0.1, 0.2, 0.9], [1, 0, 1], n_bins=2), 6)
    0.266667
    """
    # Validate the arguments.
    conf, hit = _check_confidence_1d(confidence, correct, n_bins)

    # Compute the weighted gap over the non-empty bins.
    diagram = _reliability(conf, hit, int(n_bins))
    filled = diagram.count > 0
    gap = np.abs(diagram.accuracy[filled] - diagram.mean_confidence[filled])
    return float(np.sum(diagram.count[filled] * gap) / np.sum(diagram.count))


def ece_noise_floor(
    confidence: npt.ArrayLike, n_bins: int = 15, *, n_draws: int = 1000, seed: int = 0
) -> float:
    """Return the mean ECE of a perfectly calibrated model with these confidences.

    The binned ECE is biased upwards on finite data: even when each prediction is right
    with exactly its confidence, the per-bin accuracies scatter around the confidences.
    This draws ``correct ~ Bernoulli(confidence)`` `n_draws` times and averages the
    ECE, the level below which no calibration method can be seen to help on this many
    examples [1]_.

    Parameters
    ----------
    confidence : array of floats, shape (n,)
        Confidence of each prediction, between 0 and 1; ``n >= 1``.
    n_bins : int, optional (default=15)
        As in `expected_calibration_error`.
    n_draws : int, optional (default=1000)
        Number of simulated label sets.
    seed : int, optional (default=0)
        Seed of the random generator, so the result is reproducible.

    Returns
    -------
    float

    References
    ----------
    .. [1] Roelofs, Rebecca, Nicholas Cain, Jonathon Shlens, and Michael C. Mozer.
       "Mitigating Bias in Calibration Error Estimation." AISTATS (2022).

    Examples
    --------
    Two predictions at 0.5: the ECE is ``|k / 2 - 0.5|`` with ``k ~ Binomial(2, 0.5)``,
    0.5 with probability 1/2, so 0.25 on average:

    >>> round(ece_noise_floor([0.5, 0.5], n_draws=20000), 2)
    0.25
    >>> ece_noise_floor([1.0, 1.0, 1.0])
    0.0
    """
    # Validate the arguments.
    conf, _ = _check_confidence_1d(confidence, np.ones(np.shape(confidence)), n_bins)
    _check_resampling(0.5, n_draws, "n_draws")

    # Simulate calibrated labels.
    rng = np.random.default_rng(seed)
    total = 0.0
    for size in _chunks(n_draws, len(conf)):
        rows = np.broadcast_to(conf, (size, len(conf)))
        hits = (rng.random(rows.shape) < rows).astype(np.float64)
        total += float(np.sum(_ece_rows(np.ascontiguousarray(rows), hits, int(n_bins))))
    return total / n_draws


def ece_change_interval(
    confidence_before: npt.ArrayLike,
    correct_before: npt.ArrayLike,
    confidence_after: npt.ArrayLike,
    correct_after: npt.ArrayLike,
    n_bins: int = 15,
    *,
    level: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Return a bootstrap interval for the change in ECE, after minus before calibration.

    The examples are resampled with replacement, the same ones for both sides (a paired
    bootstrap), and the interval is the percentile interval of ``ECE(after) -
    ECE(before)`` over the resamples. An interval that holds 0 means these data cannot
    tell the two apart.

    Parameters
    ----------
    confidence_before, confidence_after : array of floats, shape (n,)
        Confidence of each prediction before and after calibration, between 0 and 1.
    correct_before, correct_after : array of bools or 0/1, shape (n,)
        Whether each prediction is right (the same when calibration keeps the
        predictions, as temperature scaling does).
    n_bins : int, optional (default=15)
        As in `expected_calibration_error`.
    level : float, optional (default=0.95)
        Two-sided coverage, between 0 and 1, exclusive.
    n_resamples : int, optional (default=1000)
    seed : int, optional (default=0)
        Seed of the random generator, so the result is reproducible.

    Returns
    -------
    (float, float)
        Lower and upper ends of the interval.

    Examples
    --------
    >>> ece_change_interval([0.9, 0.8], [1, 0], [0.9, 0.8], [1, 0])
    (0.0, 0.0)

    Half of 100 predictions right, at confidence 0.9 before and 0.5 after: a resample
    with accuracy ``h`` has ECE ``0.9 - h`` before and ``|h - 0.5|`` after, a change of
    -0.4 for ``h <= 0.5`` and ``2 h - 1.4`` above; ``h`` rarely exceeds 0.6:

    >>> low, high = ece_change_interval([0.9] * 100, [1, 0] * 50, [0.5] * 100, [1, 0] * 50)
    >>> round(low, 6), round(high, 6)
    (-0.4, -0.2)
    """
    # Validate the arguments.
    before, hit_before = _check_confidence_1d(confidence_before, correct_before, n_bins)
    after, hit_after = _check_confidence_1d(confidence_after, correct_after, n_bins)
    if after.shape != before.shape:
        raise ValueError(f"confidence_after must have shape {before.shape}, not {after.shape}.")
    _check_resampling(level, n_resamples, "n_resamples")

    # Resample the examples, the same for both sides.
    rng = np.random.default_rng(seed)
    parts = []
    for size in _chunks(n_resamples, len(before)):
        index = rng.integers(0, len(before), size=(size, len(before)))
        parts.append(_ece_rows(after[index], hit_after[index], int(n_bins))
                     - _ece_rows(before[index], hit_before[index], int(n_bins)))
    change = np.concatenate(parts)
    tail = 50 * (1 - level)
    low, high = np.percentile(change, [tail, 100 - tail])
    return float(low), float(high)


def sweep(
    confidence: npt.ArrayLike,
    prediction: npt.ArrayLike,
    labels: npt.ArrayLike,
    exit_costs: npt.ArrayLike,
    thresholds: npt.ArrayLike | None = None,
) -> Sweep:
    """Return accuracy and cost of the confidence exit rule at every threshold.

    An example leaves at the first exit ``e`` with ``confidence[i, e] >= threshold``,
    else at the last exit [1]_. The sweep never re-simulates per threshold: it sorts
    the points where each example's exit changes (the records of its running maximum
    confidence) and answers each threshold with a binary search over cumulative sums,
    in O(n E log(n E) + T E log(n E)) time.

    Parameters
    ----------
    confidence : array of floats, shape (n, E)
        Confidence of each exit on each example, between 0 and 1 (e.g. from
        `softmax_confidence`); ``n, E >= 1``.
    prediction : array, shape (n, E)
        Predicted class of each exit on each example.
    labels : array, shape (n,)
        True classes, compared to ``prediction`` with ``==``.
    exit_costs : array of floats, shape (E,)
        Cumulative cost of running up to and including each exit; positive and
        non-decreasing.
    thresholds : array of floats, shape (T,), or None, optional (default=None)
        Thresholds in (0, 1], in any order. A threshold above every confidence sends
        every example to the last exit. ``None`` means every distinct confidence value,
        ascending, followed by one above them all: 1.0, or the float just above 1.0
        when some confidence is exactly 1.

    Returns
    -------
    Sweep
        Accuracy, mean cost, exit counts and speedup at each threshold.

    References
    ----------
    .. [1] Schwartz, Roy, Gabriel Stanovsky, Swabha Swayamdipta, Jesse Dodge, and
       Noah A. Smith. "The Right Tool for the Job: Matching Model and Instance
       Complexities." ACL (2020).

    Examples
    --------
    >>> confidence = [[0.95, 0.97, 0.99], [0.60, 0.85, 0.90], [0.70, 0.65, 0.80],
    ...               [0.55, 0.75, 0.60], [0.92, 0.60, 0.95]]
    >>> prediction = [[0, 0, 0], [1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 0]]
    >>> result = sweep(confidence, prediction, [0, 0, 1, 0, 0], [1.0, 2.0, 4.0],
    ...                thresholds=[0.5, 0.8, 0.93, 1.0])
    >>> result.accuracy.tolist(), result.mean_cost.tolist()
    ([0.4, 0.8, 1.0, 1.0], [1.0, 2.4, 3.4, 4.0])
    >>> result.exit_counts.tolist()
    [[5, 0, 0], [2, 1, 2], [1, 0, 4], [0, 0, 5]]
    """
    # Validate the arguments.
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim != 2:
        raise ValueError(f"confidence must be a 2D array (n, E), not {conf.ndim}D.")
    n, n_exits = conf.shape
    if n == 0 or n_exits == 0:
        raise ValueError("confidence must have at least one example and one exit.")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidence must be between 0 and 1, inclusive.")
    pred = np.asarray(prediction)
    if pred.shape != conf.shape:
        raise ValueError(
            f"prediction must have the same shape as confidence: {conf.shape}, not {pred.shape}."
        )
    target = _check_any_labels(labels, n)
    costs = _check_exit_costs(exit_costs, n_exits)
    if thresholds is None:
        top = 1.0 if np.max(conf) < 1.0 else float(np.nextafter(1.0, 2.0))
        taus = np.append(np.unique(conf), top)
    else:
        taus = _check_thresholds("thresholds", thresholds)
        if not np.all((taus > 0) & (taus <= 1)):
            raise ValueError("thresholds must be in (0, 1].")

    # Sweep.
    correct = (pred == target[:, None]).astype(np.int64)
    return _make_sweep("confidence", taus, conf, taus, correct, costs)


def sweep_entropy(
    probabilities: npt.ArrayLike,
    labels: npt.ArrayLike,
    exit_costs: npt.ArrayLike,
    thresholds: npt.ArrayLike | None = None,
) -> Sweep:
    """Return accuracy and cost of the entropy exit rule (DeeBERT) at every threshold.

    An example leaves at the first exit whose predictive entropy (in nats) is strictly
    below the threshold, else at the last exit [1]_. It predicts the arg max there.

    Parameters
    ----------
    probabilities : array of floats, shape (n, E, C)
        Class probabilities of each exit on each example (e.g. from `softmax`); each
        row sums to 1 (to within 1e-6); ``n, E, C >= 1``.
    labels : array of ints, shape (n,)
        True classes, between 0 and ``C - 1``.
    exit_costs : array of floats, shape (E,)
        Cumulative cost of running up to and including each exit; positive and
        non-decreasing.
    thresholds : array of floats, shape (T,), or None, optional (default=None)
        Non-negative entropy thresholds, in any order; 0 means "always the last exit".
        ``None`` means every distinct entropy value, ascending, followed by the float
        just above the largest (every example leaves at the first exit).

    Returns
    -------
    Sweep
        With ``rule="entropy"``.

    References
    ----------
    .. [1] Xin, Ji, Raphael Tang, Jaejun Lee, Yaoliang Yu, and Jimmy Lin. "DeeBERT:
       Dynamic Early Exiting for Accelerating BERT Inference." ACL (2020).

    Examples
    --------
    >>> probabilities = [[[0.9, 0.1], [0.99, 0.01]], [[0.5, 0.5], [0.2, 0.8]]]
    >>> result = sweep_entropy(probabilities, [0, 1], [1.0, 3.0], thresholds=[0.0, 0.5])
    >>> result.exit_counts.tolist(), result.accuracy.tolist()
    ([[0, 2], [1, 1]], [1.0, 1.0])
    """
    # Validate the arguments.
    prob = np.asarray(probabilities, dtype=np.float64)
    if prob.ndim != 3:
        raise ValueError(f"probabilities must be a 3D array (n, E, C), not {prob.ndim}D.")
    n, n_exits, n_classes = prob.shape
    if min(prob.shape) == 0:
        raise ValueError("probabilities must have at least one example, exit and class.")
    if not np.all((prob >= 0) & (prob <= 1)):
        raise ValueError("probabilities must be between 0 and 1, inclusive.")
    if not np.allclose(np.sum(prob, axis=-1), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError("probabilities must sum to 1 along the last axis.")
    target = _check_class_labels(labels, n, n_classes)
    costs = _check_exit_costs(exit_costs, n_exits)
    log_prob = np.log(np.where(prob > 0, prob, 1.0))
    entropy = -np.sum(prob * log_prob, axis=-1)
    if thresholds is None:
        distinct = np.unique(entropy)
        taus = np.append(distinct, np.nextafter(distinct[-1], math.inf))
    else:
        taus = _check_thresholds("thresholds", thresholds)
        if not np.all(np.isfinite(taus) & (taus >= 0)):
            raise ValueError("thresholds must be non-negative and finite.")

    # Sweep: entropy < s  <=>  entropy <= prev(s)  <=>  -entropy >= -prev(s), exactly.
    correct = (np.argmax(prob, axis=-1) == target[:, None]).astype(np.int64)
    cut = -np.nextafter(taus, -math.inf)
    return _make_sweep("entropy", taus, -entropy, cut, correct, costs)


def sweep_patience(
    prediction: npt.ArrayLike,
    labels: npt.ArrayLike,
    exit_costs: npt.ArrayLike,
    patiences: npt.ArrayLike | None = None,
) -> Sweep:
    """Return accuracy and cost of the patience exit rule (PABEE) at every patience.

    With patience ``t``, an example leaves at the first exit ``e`` whose prediction
    equals those of the ``t`` exits before it (it has stayed the same for ``t``
    consecutive steps, so ``t + 1`` exits agree), else at the last exit [1]_.

    Parameters
    ----------
    prediction : array, shape (n, E)
        Predicted class of each exit on each example; ``n, E >= 1``.
    labels : array, shape (n,)
        True classes, compared to ``prediction`` with ``==``.
    exit_costs : array of floats, shape (E,)
        Cumulative cost of running up to and including each exit; positive and
        non-decreasing.
    patiences : array of ints, shape (T,), or None, optional (default=None)
        Positive patiences, in any order; ``t >= E - 1`` means "always the last exit".
        ``None`` means ``1, 2, ..., max(E - 1, 1)``.

    Returns
    -------
    Sweep
        With ``rule="patience"`` and the patiences (as floats) in ``thresholds``.

    References
    ----------
    .. [1] Zhou, Wangchunshu, Canwen Xu, Tao Ge, Julian McAuley, Ke Xu, and Furu Wei.
       "BERT Loses Patience: Fast and Robust Inference with Early Exit." NeurIPS (2020).

    Examples
    --------
    >>> result = sweep_patience([[0, 0, 0, 1], [1, 0, 0, 0]], [0, 0], [1.0, 2.0, 3.0, 4.0])
    >>> result.thresholds.tolist(), result.exit_counts.tolist()
    ([1.0, 2.0, 3.0], [[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 2]])
    >>> result.accuracy.tolist()
    [1.0, 1.0, 0.5]
    """
    # Validate the arguments.
    pred = np.asarray(prediction)
    if pred.ndim != 2:
        raise ValueError(f"prediction must be a 2D array (n, E), not {pred.ndim}D.")
    n, n_exits = pred.shape
    if n == 0 or n_exits == 0:
        raise ValueError("prediction must have at least one example and one exit.")
    target = _check_any_labels(labels, n)
    costs = _check_exit_costs(exit_costs, n_exits)
    if patiences is None:
        taus = np.arange(1, max(n_exits, 2), dtype=np.float64)
    else:
        taus = _check_thresholds("patiences", patiences)
        if not np.all((taus >= 1) & (taus == np.floor(taus)) & np.isfinite(taus)):
            raise ValueError("patiences must be positive integers.")

    # Sweep over the run length of unchanged predictions ending at each exit.
    run = np.zeros(pred.shape, dtype=np.float64)
    for e in range(1, n_exits):
        run[:, e] = np.where(pred[:, e] == pred[:, e - 1], run[:, e - 1] + 1, 0)
    correct = (pred == target[:, None]).astype(np.int64)
    return _make_sweep("patience", taus, run, taus, correct, costs)


def pareto_front(cost: npt.ArrayLike, quality: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Return the indices of the points that no other point beats on cost and quality.

    A point is dominated when another costs no more and scores no less, and is strictly
    better on one of the two. Of several identical points only the first (lowest index)
    is kept, so along the front cost and quality both strictly increase.

    Parameters
    ----------
    cost : array of floats, shape (m,)
        Lower is better.
    quality : array of floats, shape (m,)
        Higher is better.

    Returns
    -------
    array of ints
        Indices of the front, sorted by increasing cost.

    Examples
    --------
    >>> pareto_front([3, 1, 2, 2, 4, 1], [0.9, 0.5, 0.7, 0.6, 0.9, 0.5]).tolist()
    [1, 2, 0]
    """
    # Validate the arguments.
    costs = np.asarray(cost, dtype=np.float64)
    if costs.ndim != 1:
        raise ValueError(f"cost must be a 1D array, not {costs.ndim}D.")
    qualities = np.asarray(quality, dtype=np.float64)
    if qualities.shape != costs.shape:
        raise ValueError(f"quality must have shape {costs.shape}, not {qualities.shape}.")
    if np.any(np.isnan(costs)) or np.any(np.isnan(qualities)):
        raise ValueError("cost and quality must not contain NaN.")

    # Scan by increasing cost (best quality, then lowest index, first among equal costs).
    order = np.lexsort((np.arange(len(costs)), -qualities, costs))
    best = np.maximum.accumulate(qualities[order])
    keep = np.ones(len(order), dtype=np.bool_)
    keep[1:] = qualities[order][1:] > best[:-1]
    front: npt.NDArray[np.intp] = order[keep]
    return front


def accuracy_drop_bound(result: Sweep, /, *, level: float = 0.95) -> FloatArray:
    """Return an upper confidence bound on each threshold's accuracy drop vs the full model.

    The drop ``full_model_accuracy - accuracy`` is ``(lost - gained) / n``, where
    ``lost`` examples are right at the last exit and wrong at the exit taken, and
    ``gained`` the reverse (``Sweep.n_lost``, ``Sweep.n_gained``). Only these ``m =
    lost + gained`` discordant examples carry information about the difference, as in
    McNemar's test [1]_: given ``m``, ``lost`` is binomial with a share ``pi`` of the
    disagreements going against early exit, and the drop is ``m (2 pi - 1) / n``. The
    bound plugs in the one-sided Wilson score upper bound on ``pi`` [2]_:
    ``m (2 pi_upper - 1) / n``. It is 0 where the rule and the full model are right on
    the same examples (``m = 0``), equals the observed drop ``m / n`` where every
    disagreement is a loss, and otherwise lies above the observed drop.

    Parameters
    ----------
    result : Sweep
        The sweep, on data that played no part in training.
    level : float, optional (default=0.95)
        One-sided confidence level, at least 0.5 and below 1.

    Returns
    -------
    array of floats, shape (T,)
        Upper bound on the drop at each threshold, as a fraction (0.01 is one point);
        negative where the rule is significantly better than the full model.

    Notes
    -----
    The bound is conditional on the number of disagreements: it does not account for
    how often a fresh sample would disagree, so it says nothing beyond the data when
    ``m = 0``. With a few hundred examples no bound that also covers that variation can
    certify a drop below half a point (zero disagreements in 445 examples still allow a
    disagreement rate of 0.67 % at 95 %).

    References
    ----------
    .. [1] McNemar, Quinn. "Note on the Sampling Error of the Difference between
       Correlated Proportions or Percentages." Psychometrika 12, no. 2 (1947).
    .. [2] Wilson, Edwin B. "Probable Inference, the Law of Succession, and Statistical
       Inference." Journal of the American Statistical Association 22, no. 158 (1927).

    Examples
    --------
    Ten examples, all right at the last exit but one, which the first exit gets right
    (confidence 0.9); one more is wrong at the first exit (confidence 0.7). At 0.8 one
    gain and no loss bound the drop at ``(z**2 - 1) / (z**2 + 1) / 10`` (``z`` the 95 %
    normal quantile); at 0.6 the gain and the loss cancel, and the bound is wider:

    >>> result = sweep([[0.9, 0.5], [0.7, 0.5]] + [[0.1, 0.9]] * 8,
    ...                [[0, 1], [1, 0]] + [[0, 0]] * 8, [0] * 10, [1.0, 2.0],
    ...                thresholds=[0.95, 0.8, 0.6])
    >>> result.n_lost.tolist(), result.n_gained.tolist()
    ([0, 0, 1], [0, 1, 1])
    >>> z2 = NormalDist().inv_cdf(0.95) ** 2
    >>> accuracy_drop_bound(result).round(4).tolist(), round((z2 - 1) / (z2 + 1) / 10, 4)
    ([0.0, 0.046, 0.1517], 0.046)
    """
    # Validate the arguments.
    if not (isinstance(level, (int, float)) and 0.5 <= level < 1):
        raise ValueError("level must be at least 0.5 and below 1.")

    # Wilson's upper bound on the share of disagreements that are losses.
    n = int(np.sum(result.exit_counts[0]))
    lost = result.n_lost.astype(np.float64)
    disagree = lost + result.n_gained
    z = NormalDist().inv_cdf(level)
    m = np.maximum(disagree, 1.0)
    share = lost / m
    center = share + z * z / (2 * m)
    spread = z * np.sqrt(share * (1 - share) / m + z * z / (4 * m * m))
    upper = np.minimum((center + spread) / (1 + z * z / m), 1.0)
    bound: FloatArray = np.where(disagree > 0, disagree * (2 * upper - 1) / n, 0.0)
    return bound


def operating_point(
    result: Sweep,
    /,
    *,
    max_accuracy_drop: float = 0.01,
    reference_accuracy: float | None = None,
    level: float | None = None,
) -> int:
    """Return the index of the cheapest threshold that keeps accuracy near the reference.

    With ``level=None`` the chosen threshold has the lowest ``mean_cost`` among those
    with ``accuracy >= reference_accuracy - max_accuracy_drop`` (up to a 1e-12 rounding
    tolerance); among equally cheap ones, the most accurate, then the first.

    A threshold picked that way on a few hundred dev examples often loses more on new
    data: the cheapest threshold that passes is the one whose luck was best. With a
    `level`, a threshold qualifies only when the upper confidence bound on its drop
    (`accuracy_drop_bound`) is within `max_accuracy_drop`, and the thresholds are tested
    in a fixed sequence, from the most expensive (the full model) to the cheapest,
    stopping at the first that fails, as in Learn then Test [1]_ (used for early exit by
    CALM [2]_): a cheap threshold where gains happen to cancel losses is never reached
    past a more expensive one that fails. The choice is then the cheapest that passed.

    Parameters
    ----------
    result : Sweep
        The sweep to pick from.
    max_accuracy_drop : float, optional (default=0.01)
        Largest acceptable loss of accuracy, as a fraction (0.01 is one point).
    reference_accuracy : float or None, optional (default=None)
        Accuracy to stay close to; ``None`` means the full model's,
        ``result.full_model_accuracy`` (the last exit alone). Not with `level`, whose
        bound is always against the full model.
    level : float or None, optional (default=None)
        One-sided confidence level of the bound (e.g. 0.95), at least 0.5 and below 1;
        ``None`` compares the observed accuracies.

    Returns
    -------
    int
        An index into ``result.thresholds``.

    References
    ----------
    .. [1] Angelopoulos, Anastasios N., Stephen Bates, Emmanuel J. Candes, Michael I.
       Jordan, and Lihua Lei. "Learn then Test: Calibrating Predictive Algorithms to
       Achieve Risk Control." arXiv:2110.01052 (2021).
    .. [2] Schuster, Tal, Adam Fisch, Jai Gupta, Mostafa Dehghani, Dara Bahri, Vinh Q.
       Tran, Yi Tay, and Donald Metzler. "Confident Adaptive Language Modeling."
       NeurIPS (2022).

    Examples
    --------
    >>> confidence = [[0.95, 0.97, 0.99], [0.60, 0.85, 0.90], [0.70, 0.65, 0.80],
    ...               [0.55, 0.75, 0.60], [0.92, 0.60, 0.95]]
    >>> prediction = [[0, 0, 0], [1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 0]]
    >>> result = sweep(confidence, prediction, [0, 0, 1, 0, 0], [1.0, 2.0, 4.0],
    ...                thresholds=[0.5, 0.8, 0.93, 1.0])
    >>> operating_point(result), operating_point(result, max_accuracy_drop=0.2)
    (2, 1)
    >>> accuracy_drop_bound(result).tolist()  # every disagreement is a loss
    [0.6, 0.2, 0.0, 0.0]
    >>> operating_point(result, max_accuracy_drop=0.2, level=0.95)
    1
    """
    # Validate the arguments.
    if not (math.isfinite(max_accuracy_drop) and max_accuracy_drop >= 0):
        raise ValueError("max_accuracy_drop must be non-negative and finite.")
    if reference_accuracy is None:
        reference = result.full_model_accuracy
    elif 0 <= reference_accuracy <= 1:
        reference = float(reference_accuracy)
    else:
        raise ValueError("reference_accuracy must be between 0 and 1, inclusive.")
    if level is not None:
        if reference_accuracy is not None:
            raise ValueError("reference_accuracy cannot be combined with level: the bound "
                             "is on the drop from the full model.")
        bound = accuracy_drop_bound(result, level=level)

        # Test from the most expensive threshold down; keep those before the first failure.
        order = np.lexsort((np.arange(len(bound)), -result.mean_cost))
        passed = bound[order] <= max_accuracy_drop + _ACCURACY_TOL
        tested = order[: int(np.argmin(passed))] if not np.all(passed) else order
        if len(tested) == 0:
            raise ValueError(f"no threshold has a {level:g}-level upper bound on its accuracy "
                             f"drop within {max_accuracy_drop}.")
        best = np.lexsort((tested, -result.accuracy[tested], result.mean_cost[tested]))[0]
        return int(tested[best])

    # Pick the cheapest qualifying threshold.
    floor = reference - max_accuracy_drop
    ok = np.nonzero(result.accuracy >= floor - _ACCURACY_TOL)[0]
    if len(ok) == 0:
        raise ValueError(f"no threshold has accuracy within {max_accuracy_drop} of {reference}.")
    best = np.lexsort((ok, -result.accuracy[ok], result.mean_cost[ok]))[0]
    return int(ok[best])
