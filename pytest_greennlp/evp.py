"""Expected validation performance: tuning curves, their bands and budget crossovers.

Pure math, arrays in and arrays out. It imports only numpy and the standard library;
`tuning_curve_band` imports opda when it is called (``pip install pytest-greennlp[evp]``).

The tuning curve answers "how good is the best of ``k`` random-search trials?". With
``n`` trial scores sorted ascending, :math:`v_{(1)} \\le \\dots \\le v_{(n)}`, the
with-replacement estimator of Dodge et al. (2019) is

.. math:: \\hat E[\\max_k] = \\sum_{i=1}^n v_{(i)}
          \\left[(i/n)^k - ((i-1)/n)^k\\right],

and the unbiased (without-replacement) estimator, for :math:`k \\le n`, is

.. math:: \\hat U[\\max_k] = \\sum_{i=1}^n v_{(i)}
          \\binom{i-1}{k-1} \\Big/ \\binom{n}{k}.

Summation by parts gives the form computed here,
:math:`v_{(n)} - \\sum_{i<n} (v_{(i+1)} - v_{(i)}) P_i(k)`, with
:math:`P_i(k) = (i/n)^k` or :math:`\\binom{i}{k} / \\binom{n}{k}`, the chance that the
best of ``k`` draws is at most :math:`v_{(i)}`. Every term is non-negative and the
gaps add up to ``max - min``, so skipping the terms whose :math:`P_i(k)` is below
``2**-56`` moves the result by less than ``2**-56 * (max - min)``, a fraction of a unit
in its last place (the standard deviation cuts at ``2**-112`` where that matters). That
skip, runs of ``k`` that reuse ``P_i(k - 1)``, and blocks of rows that stay in cache keep
10**6 scores and ``k = 1..1000`` well under a second (``benchmarks/evp_speed.py``).
Results agree with exact rational arithmetic to about 1e-15.

Policies shared by every function:

* **Failed trials** are NaN scores (or ``-inf`` when maximizing, ``+inf`` when
  minimizing). ``nan_policy="worst"`` (the default) keeps them in ``n``, the trial
  count, and ranks them below every successful trial, tied with the worst one: they
  use up budget but can never be the best, and if all ``k`` draws fail you are credited
  with the worst successful score. ``"omit"`` drops them (they cost nothing and ``n``
  counts successes only); ``"raise"`` raises ValueError. If no trial succeeded, every
  estimate is NaN. A result that would be infinite is returned as NaN, never as inf.
* **Ties** need no special case: the weights of tied order statistics add up to the
  jump of the empirical CDF at the tied value, whatever order the sort puts them in.
* **Minimization** (loss, perplexity): ``minimize=True`` gives the expected minimum;
  ``f(x, minimize=True) == -f(-x)``.
* **n = 1** gives the one score for every ``k``; **k > n** is fine with replacement and
  a ValueError for the unbiased estimator. An empty ``scores`` is a ValueError.

References
----------
.. [1] Dodge, Jesse, Suchin Gururangan, Dallas Card, Roy Schwartz and Noah A. Smith.
   "Show Your Work: Improved Reporting of Experimental Results." EMNLP-IJCNLP (2019).
.. [2] Lourie, Nicholas, Kyunghyun Cho and He He. "Show Your Work with Confidence:
   Confidence Bands for Tuning Curves." NAACL (2024). arXiv:2311.09480.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]
    IntArray = NDArray[np.int64]

__all__ = [
    "BandCurve",
    "BandMethod",
    "NanPolicy",
    "budget_curve",
    "crossover",
    "expected_max",
    "expected_max_band",
    "expected_max_std",
    "expected_max_unbiased",
    "tuning_curve_band",
]

NanPolicy = Literal["worst", "omit", "raise"]
BandMethod = Literal["dkw", "ks", "ld_equal_tailed", "ld_highest_density"]
BandCurve = Literal["median", "mean"]

# helper functions

#: Terms whose weight ``P_i(k)`` is below this are skipped (see the module docstring).
_TAIL = 2.0**-56
#: Rows (order statistics) per block: a block's working arrays stay in cache, and the
#: row sums (np.vecdot, a BLAS dot) stay below the length at which OpenBLAS starts threads
#: (10,000), which would fight pytest-xdist workers for cores.
_ROWS = 8192
#: Most batches of multiplications per run (see `_replacement_sums`, `_unbiased_sums`).
_STEPS = 32
#: Exponents per multiplication in `_replacement_sums`.
_STRIDE = 8
#: Consecutive multiplications by ``x`` before ``x**k`` is recomputed as ``exp(k log x)``.
_REFRESH = 1024
#: `expected_max_std` redoes a ``k`` with a deeper cut unless the skipped terms are this
#: small next to its variance.
_VARIANCE_RTOL = 1e-12


def _as_scores(scores: ArrayLike) -> FloatArray:
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be a 1D array, not {values.ndim}D.")
    if values.size == 0:
        raise ValueError("scores must be non-empty.")
    return values


def _check_options(minimize: object, nan_policy: object) -> None:
    if not isinstance(minimize, bool):
        raise TypeError("minimize must be a boolean.")
    if nan_policy not in get_args(NanPolicy):
        raise ValueError(f'nan_policy must be "worst", "omit" or "raise", not {nan_policy!r}.')


def _as_ks(ks: ArrayLike | None, n: int) -> IntArray:
    if ks is None:
        return np.arange(1, n + 1, dtype=np.int64)
    raw = np.atleast_1d(np.asarray(ks))
    if raw.ndim != 1:
        raise ValueError(f"ks must be an integer or a 1D array, not {raw.ndim}D.")
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    if raw.dtype.kind not in "iuf" or not np.all(np.isfinite(raw)) or np.any(raw % 1 != 0):
        raise ValueError("ks must contain only integers.")
    if np.any(raw < 1):
        raise ValueError("ks must be positive.")
    return raw.astype(np.int64)


def _ranked(values: FloatArray, minimize: bool, nan_policy: str) -> tuple[FloatArray | None, int]:
    """Return the counted scores sorted ascending, oriented so that larger is better.

    Failed trials are floored at the worst successful score (``"worst"``) or dropped
    (``"omit"``). Also return ``n``, the number of trials counted. The array is None
    when no trial succeeded.
    """
    oriented = -values if minimize else values
    if np.any(oriented == np.inf):
        best = "-inf when minimizing" if minimize else "inf when maximizing"
        raise ValueError(f"scores must not contain {best}.")
    failed = np.isnan(oriented) | (oriented == -np.inf)
    n_failed = int(np.count_nonzero(failed))
    if n_failed and nan_policy == "raise":
        worst = "+inf" if minimize else "-inf"
        raise ValueError(
            f'scores has {n_failed} failed trial(s) (NaN or {worst}) and nan_policy is "raise".'
        )
    counted = values.size - n_failed if nan_policy == "omit" else values.size
    if n_failed == values.size:
        return None, counted
    if nan_policy == "omit":
        return np.sort(oriented[~failed]), counted
    ranked = np.sort(np.where(failed, -np.inf, oriented))
    ranked[:n_failed] = ranked[n_failed]
    return ranked, counted


def _finite_or_nan(values: FloatArray) -> FloatArray:
    return np.where(np.isfinite(values), values, np.nan)


def _unique_ks(ks: IntArray) -> tuple[IntArray, IntArray]:
    unique, inverse = np.unique(ks, return_inverse=True)
    return unique.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def _replacement_sums(
    x: FloatArray, weights: FloatArray, ks: IntArray, tail: float, factor: FloatArray | None
) -> FloatArray:
    """Return ``sum_i weights[i] * x[i]**k`` for each k, and the same sum with each term
    times ``factor[i]`` as a second column when ``factor`` is given.

    ``x`` is ascending in (0, 1); ``weights`` and ``factor`` are non-negative; ``ks`` is
    sorted, unique and positive. Rows with ``x**k < tail`` are skipped. Per block of
    rows, a run of consecutive ``k`` goes ``_STRIDE`` at a time: ``q = weights * x**k``
    is multiplied by ``x**_STRIDE``, and dot products of ``q`` with ``x**j`` (and
    ``factor * x**j``), ``j < _STRIDE``, give the sums for ``k .. k + _STRIDE - 1``. Any
    other ``k`` starts from ``exp(k * log(x))``.
    """
    n_rows = x.size
    m = 1 if factor is None else 2
    sums = np.zeros((ks.size, m))
    if n_rows == 0 or ks.size == 0:
        return sums
    stride = _STRIDE
    starts = np.searchsorted(x, tail ** (1.0 / ks))
    buffer = np.empty((_STEPS, _ROWS))
    powers = np.empty((m * stride, _ROWS))
    for lo in range(0, n_rows, _ROWS):
        hi = min(lo + _ROWS, n_rows)
        needed = int(np.searchsorted(starts, hi))
        if needed == 0:
            continue
        xb = x[lo:hi]
        # powers[j] = x**j and powers[stride + j] = factor * x**j for j < stride.
        against = powers[:, : hi - lo]
        against[0] = 1.0
        for j in range(1, stride):
            np.multiply(against[j - 1], xb, out=against[j])
        jump = against[stride - 1] * xb
        if factor is not None:
            np.multiply(against[:stride], factor[lo:hi], out=against[stride:])
        log_x: FloatArray | None = None
        row0 = lo
        state = weights[lo:hi]
        t = 0
        chained = _REFRESH
        idx = 0
        while idx < needed:
            new_row0 = max(row0, int(starts[idx]))
            state = state[new_row0 - row0 :]
            row0 = new_row0
            off = row0 - lo
            k = int(ks[idx])
            if k != t + 1 or chained >= _REFRESH:
                if k == 1:
                    state = weights[row0:hi] * xb[off:]
                else:
                    log_x = np.log(xb) if log_x is None else log_x
                    state = weights[row0:hi] * np.exp(k * log_x[off:])
                sums[idx] += np.vecdot(state, against[::stride, off:])
                t = k
                chained = 0
                idx += 1
                continue
            # A run of consecutive exponents: ks[idx + c] == t + 1 + c.
            length = min(_STEPS * stride, needed - idx, _REFRESH - chained)
            run = ks[idx : idx + length] - (t + 1) == np.arange(length)
            if not run.all():
                length = int(np.argmin(run))
            n_groups = -(-length // stride)
            products = buffer[:n_groups, off : hi - lo]
            np.multiply(state, xb[off:], out=products[0])
            for c in range(1, n_groups):
                np.multiply(products[c - 1], jump[off:], out=products[c])
            block = np.vecdot(products[:, None, :], against[:, off:])
            sums[idx : idx + length] += (
                block.reshape(n_groups, m, stride).transpose(0, 2, 1).reshape(-1, m)[:length]
            )
            last = length - 1
            state = products[last // stride] * against[last % stride, off:]
            t += length
            chained += length
            idx += length
    return sums


def _falling_from_top(n: int, k: int, start: int) -> FloatArray:
    """Return ``C(i, k) / C(n, k)`` for ``i = start + 1 .. n - 1``, by a product from the top."""
    i = np.arange(n - 1, start, -1, dtype=np.float64)
    ratios = np.cumprod((i + 1.0 - k) / (i + 1.0))[::-1]
    return np.asarray(ratios, dtype=np.float64)


def _unbiased_sums(gaps: FloatArray, n: int, ks: IntArray) -> FloatArray:
    """Return ``sum_i gaps[i-1] * C(i, k) / C(n, k)`` over ``i = 1 .. n-1`` for each k.

    ``ks`` is sorted, unique and at most ``n``; ``gaps`` is non-negative. Per block of
    rows, with ``q = gaps * C(i, t) / C(n, t)``, the sums for ``k = t + 1 .. t + s`` are
    dot products of ``q`` with ``p_j(i - t) = (i - t) (i - t - 1) ... (i - t - j + 1)``,
    divided by ``(n - t) ... (n - t - j + 1)``; then ``q`` moves on by ``p_s(i - t)``.
    The rows are consecutive integers, so ``p_j(i - t)`` for every ``t`` of a run is a
    shifted window of one array. A ``k`` far past the previous one whose window is short
    is computed directly from the top instead (`_falling_from_top`).
    """
    rows = n - 1
    sums = np.zeros(ks.size)
    scale = float(gaps.max()) if rows else 0.0
    if scale == 0.0 or ks.size == 0:
        return sums
    weights = gaps / scale
    stride = _STRIDE
    # First row (0-based; row r is i = r + 1) whose term is not negligible: i >= k and
    # (i/n)**k >= _TAIL, which bounds C(i, k) / C(n, k) from above.
    tail_rows = np.ceil(n * _TAIL ** (1.0 / ks)).astype(np.int64) - 1
    starts = np.clip(np.maximum(ks - 1, tail_rows), 0, rows)
    direct: dict[int, FloatArray] = {}
    previous = 0
    for idx, (k, start) in enumerate(zip(ks.tolist(), starts.tolist())):
        if k - previous > max(rows - start, _STEPS):
            direct[idx] = _falling_from_top(n, k, start)
        previous = k
    next_direct = np.full(ks.size + 1, ks.size, dtype=np.int64)
    for idx in range(ks.size - 1, -1, -1):
        next_direct[idx] = idx if idx in direct else next_direct[idx + 1]
    buffer = np.empty((_STEPS, _ROWS))
    poly_buffer = np.empty((stride + 1, _ROWS + _STEPS * stride))
    for lo in range(0, rows, _ROWS):
        hi = min(lo + _ROWS, rows)
        needed = int(np.searchsorted(starts, hi))
        t = 0
        row0 = lo
        state = weights[lo:hi]
        idx = 0
        while idx < needed:
            new_row0 = max(row0, int(starts[idx]))
            state = state[new_row0 - row0 :]
            row0 = new_row0
            if idx in direct:
                offset = row0 - int(starts[idx])
                state = weights[row0:hi] * direct[idx][offset : offset + hi - row0]
                sums[idx] += state.sum()
                t = int(ks[idx])
                idx += 1
                continue
            k_stop = int(ks[min(next_direct[idx], needed) - 1])
            length = min(_STEPS * stride, k_stop - t)
            n_groups = -(-length // stride)
            width = hi - row0
            # poly[j] = p_j(y) for y = i - t - c * stride over every row i and group c.
            y = np.arange(row0 + 1 - t - (n_groups - 1) * stride, hi - t + 1, dtype=np.float64)
            poly = poly_buffer[:, : y.size]
            poly[0] = 1.0
            for j in range(1, stride + 1):
                np.multiply(poly[j - 1], y - (j - 1), out=poly[j])
            # windows[j, c] = p_j(i - t - c * stride) for i = row0 + 1 .. hi.
            windows = np.lib.stride_tricks.sliding_window_view(poly, width, axis=1)
            windows = windows[:, (n_groups - 1) * stride :: -stride][:, :n_groups]
            # inverse[c, j] = 1 / ((n - t - c*stride) ... (n - t - c*stride - j)).
            # (Entries past k = n, in the unused tail of the last group, are set to 1.)
            falling = np.maximum(n - t - np.arange(n_groups * stride, dtype=np.float64), 1.0)
            inverse = 1.0 / np.cumprod(falling.reshape(n_groups, stride), axis=1)
            products = buffer[:n_groups, :width]
            products[0] = state
            for c in range(1, n_groups):
                np.multiply(products[c - 1], windows[stride, c - 1], out=products[c])
                products[c] *= inverse[c - 1, stride - 1]
            dots = np.vecdot(products[:, None, :], windows[1:].transpose(1, 0, 2))
            values = (dots * inverse).reshape(-1)  # entry g is k = t + g + 1
            stop = min(int(np.searchsorted(ks, t + length, side="right")), needed)
            sums[idx:stop] += values[ks[idx:stop] - t - 1]
            c, j = divmod(length - 1, stride)
            state = products[c] * windows[j + 1, c] * inverse[c, j]
            t += length
            idx = stop
    result: FloatArray = sums * scale
    return result


def _mean_and_std(ranked: FloatArray, ks: IntArray, spread: bool) -> tuple[FloatArray, FloatArray]:
    """Return the with-replacement expected best and its standard deviation (if spread)."""
    n = ranked.size
    gaps = np.diff(ranked)
    rows = np.flatnonzero(gaps > 0)
    x = (rows + 1.0) / n
    unique, inverse = _unique_ks(ks)
    if not spread:
        sums = _replacement_sums(x, gaps[rows], unique, _TAIL, None)
        return (ranked[-1] - sums[:, 0])[inverse], np.zeros(ks.size)
    # Second moment about the best score: sum_i P_i(k) * gap_i * (a_i + a_{i+1}), with
    # a = best - v, is again a sum of non-negative terms.
    below = ranked[-1] - ranked
    weights, factor = gaps[rows], below[rows] + below[rows + 1]
    sums = _replacement_sums(x, weights, unique, _TAIL, factor)
    # Skipped terms move the variance by at most 3 * _TAIL * span**2. Where that is not
    # negligible next to the variance (a nearly degenerate best), cut at _TAIL**2 instead:
    # the deviation is then off by at most 2 * _TAIL * span.
    span = ranked[-1] - ranked[0]
    variance = sums[:, 1] - sums[:, 0] ** 2
    loose = variance * _VARIANCE_RTOL < 3.0 * _TAIL * span**2
    if loose.any():
        sums[loose] = _replacement_sums(x, weights, unique[loose], _TAIL**2, factor)
        variance = sums[:, 1] - sums[:, 0] ** 2
    mean = ranked[-1] - sums[:, 0]
    return mean[inverse], np.sqrt(np.maximum(variance, 0.0))[inverse]


def _check_curve(budget: ArrayLike, curve: ArrayLike, label: str) -> tuple[FloatArray, FloatArray]:
    xs = np.asarray(budget, dtype=np.float64)
    ys = np.asarray(curve, dtype=np.float64)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"budget_{label} must be a non-empty 1D array.")
    if ys.shape != xs.shape:
        raise ValueError(
            f"curve_{label} must have the same shape as budget_{label}: {xs.shape}, not {ys.shape}."
        )
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError(f"budget_{label} and curve_{label} must be finite (no NaN).")
    if np.any(np.diff(xs) <= 0):
        raise ValueError(f"budget_{label} must be strictly increasing.")
    return xs, ys


# public functions


def expected_max(
    scores: ArrayLike,
    ks: ArrayLike | None = None,
    *,
    minimize: bool = False,
    nan_policy: NanPolicy = "worst",
) -> FloatArray:
    """Return the expected best score of ``k`` trials (with replacement) for each k.

    This is the estimator of Dodge et al. (2019) and opda's ``average_tuning_curve``
    of the empirical distribution: ``sum_i v_(i) * ((i/n)**k - ((i-1)/n)**k)`` over the
    scores sorted ascending.

    Parameters
    ----------
    scores : 1D array of floats, required
        One validation score per hyperparameter trial. NaN marks a failed trial.
    ks : positive int or 1D array of positive ints or None, optional
        The trial budgets at which to evaluate the curve, in any order and possibly
        larger than ``n``. If ``None``, then ``1, 2, ..., n``, where ``n`` is the
        number of trials counted (see ``nan_policy``).
    minimize : bool, optional
        Whether lower is better (loss, perplexity): then return the expected minimum.
    nan_policy : {"worst", "omit", "raise"}, optional
        What a failed trial (NaN, or ``-inf`` when maximizing, ``+inf`` when
        minimizing) is. ``"worst"``: it counts in ``n`` and ranks below every success,
        tied with the worst one, so it uses up budget but is never the best.
        ``"omit"``: it is dropped and ``n`` counts successes. ``"raise"``: ValueError.

    Returns
    -------
    1D array of floats
        The expected best score for each entry of ``ks``: non-decreasing in ``k``
        (non-increasing if ``minimize``), the mean at ``k = 1``, tending to the best
        score. NaN if no trial succeeded.

    Notes
    -----
    Ties need no special case. The weights of a block of tied order statistics
    ``v_(a+1) = ... = v_(b)`` telescope to ``(b/n)**k - (a/n)**k``: the chance that
    the best of ``k`` draws equals that value, which is what the formula over the
    distinct values gives. The same holds without replacement.

    References
    ----------
    .. [1] Dodge et al. "Show Your Work: Improved Reporting of Experimental Results."
       EMNLP-IJCNLP (2019).

    Examples
    --------
    >>> expected_max([0.1, 0.5, 0.3, 0.9]).round(8).tolist()
    [0.45, 0.6125, 0.703125, 0.76015625]
    >>> expected_max([2.0, 3.0], ks=[1, 2], minimize=True).tolist()
    [2.5, 2.25]

    A failed trial uses up budget but is never the best:

    >>> expected_max([0.8, float("nan")], ks=[1, 2]).tolist()
    [0.8, 0.8]
    """
    # Validate the arguments.
    values = _as_scores(scores)
    _check_options(minimize, nan_policy)
    ranked, counted = _ranked(values, minimize, nan_policy)
    k = _as_ks(ks, counted)

    # Compute the expected best score.
    if ranked is None:
        return np.full(k.size, np.nan)
    mean, _ = _mean_and_std(ranked, k, spread=False)
    return _finite_or_nan(-mean if minimize else mean)


def expected_max_std(
    scores: ArrayLike,
    ks: ArrayLike | None = None,
    *,
    minimize: bool = False,
    nan_policy: NanPolicy = "worst",
) -> FloatArray:
    """Return the standard deviation of the best score of ``k`` trials for each k.

    With the with-replacement weights ``w_i(k) = (i/n)**k - ((i-1)/n)**k`` of
    `expected_max`, this is ``sqrt(sum_i w_i(k) * (v_(i) - E_k)**2)``: the spread of the
    best of ``k`` draws from the empirical distribution (Dodge et al. 2019 shade
    ``E_k`` plus or minus this).

    Parameters
    ----------
    scores : 1D array of floats, required
        One validation score per trial; NaN marks a failed trial.
    ks : positive int or 1D array of positive ints or None, optional
        The trial budgets; ``None`` means ``1, ..., n``.
    minimize : bool, optional
        Whether lower is better.
    nan_policy : {"worst", "omit", "raise"}, optional
        What a failed trial is (see `expected_max`).

    Returns
    -------
    1D array of non-negative floats
        The standard deviation for each entry of ``ks``; 0 when ``n = 1``, NaN if no
        trial succeeded.

    Examples
    --------
    >>> expected_max_std([0.0, 1.0], ks=[1, 2]).round(6).tolist()
    [0.5, 0.433013]
    >>> expected_max_std([7.0], ks=[1, 5]).tolist()
    [0.0, 0.0]
    """
    # Validate the arguments.
    values = _as_scores(scores)
    _check_options(minimize, nan_policy)
    ranked, counted = _ranked(values, minimize, nan_policy)
    k = _as_ks(ks, counted)

    # Compute the spread of the best score.
    if ranked is None:
        return np.full(k.size, np.nan)
    _, std = _mean_and_std(ranked, k, spread=True)
    return _finite_or_nan(std)


def expected_max_band(
    scores: ArrayLike,
    ks: ArrayLike | None = None,
    *,
    minimize: bool = False,
    nan_policy: NanPolicy = "worst",
) -> tuple[FloatArray, FloatArray]:
    """Return ``expected_max`` minus and plus ``expected_max_std``, clipped to the scores.

    Parameters
    ----------
    scores : 1D array of floats, required
        One validation score per trial; NaN marks a failed trial.
    ks : positive int or 1D array of positive ints or None, optional
        The trial budgets; ``None`` means ``1, ..., n``.
    minimize : bool, optional
        Whether lower is better.
    nan_policy : {"worst", "omit", "raise"}, optional
        What a failed trial is (see `expected_max`).

    Returns
    -------
    lower : 1D array of floats
        ``max(E_k - std_k, min(scores))`` for each entry of ``ks``.
    upper : 1D array of floats
        ``min(E_k + std_k, max(scores))``. Both are NaN if no trial succeeded.

    Notes
    -----
    This is a one-standard-deviation band on the best of ``k`` draws from the
    observed scores, not a confidence band for the true tuning curve; for that, see
    `tuning_curve_band`.

    Examples
    --------
    >>> lower, upper = expected_max_band([0.0, 1.0], ks=[1, 2])
    >>> lower.round(6).tolist(), upper.round(6).tolist()
    ([0.0, 0.316987], [1.0, 1.0])
    """
    # Validate the arguments.
    values = _as_scores(scores)
    _check_options(minimize, nan_policy)
    ranked, counted = _ranked(values, minimize, nan_policy)
    k = _as_ks(ks, counted)

    # Compute the band.
    if ranked is None:
        return np.full(k.size, np.nan), np.full(k.size, np.nan)
    mean, std = _mean_and_std(ranked, k, spread=True)
    lower = np.clip(mean - std, ranked[0], ranked[-1])
    upper = np.clip(mean + std, ranked[0], ranked[-1])
    if minimize:
        lower, upper = -upper, -lower
    return _finite_or_nan(lower), _finite_or_nan(upper)


def expected_max_unbiased(
    scores: ArrayLike,
    ks: ArrayLike | None = None,
    *,
    minimize: bool = False,
    nan_policy: NanPolicy = "worst",
) -> FloatArray:
    """Return the unbiased (without-replacement) expected best of ``k`` trials.

    The weights are ``C(i-1, k-1) / C(n, k)``: the chance that ``v_(i)`` is the best of
    ``k`` trials drawn without replacement. This is the average of the best score over
    all size-``k`` subsets of the trials, an unbiased estimate for ``k <= n`` (opda's
    ``u_tuning_curve``). The ratios come from products of ``(i - t) / (n - t)``, never
    from binomial coefficients (which overflow), so ``n`` may be 10**6.

    Parameters
    ----------
    scores : 1D array of floats, required
        One validation score per trial; NaN marks a failed trial.
    ks : positive int or 1D array of positive ints or None, optional
        The trial budgets, each at most ``n``; ``None`` means ``1, ..., n``.
    minimize : bool, optional
        Whether lower is better.
    nan_policy : {"worst", "omit", "raise"}, optional
        What a failed trial is (see `expected_max`).

    Returns
    -------
    1D array of floats
        The estimate for each entry of ``ks``: the mean at ``k = 1`` and the best score
        at ``k = n``. NaN if no trial succeeded.

    Examples
    --------
    >>> expected_max_unbiased([0.1, 0.5, 0.3, 0.9]).round(8).tolist()
    [0.45, 0.66666667, 0.8, 0.9]
    >>> expected_max_unbiased([0.1, 0.5], ks=[3])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ks must be at most the number of trials counted (2) for the unbiased ...
    """
    # Validate the arguments.
    values = _as_scores(scores)
    _check_options(minimize, nan_policy)
    ranked, counted = _ranked(values, minimize, nan_policy)
    k = _as_ks(ks, counted)
    if k.size and ranked is not None and int(k.max()) > counted:
        raise ValueError(
            f"ks must be at most the number of trials counted ({counted}) for the"
            f" unbiased estimator, not {int(k.max())}."
        )

    # Compute the unbiased estimate.
    if ranked is None:
        return np.full(k.size, np.nan)
    unique, inverse = _unique_ks(k)
    sums = _unbiased_sums(np.diff(ranked), ranked.size, unique)[inverse]
    best = ranked[-1] - sums
    return _finite_or_nan(-best if minimize else best)


def tuning_curve_band(
    scores: ArrayLike,
    ks: ArrayLike,
    *,
    confidence: float = 0.80,
    minimize: bool = False,
    method: BandMethod = "ld_equal_tailed",
    curve: BandCurve = "median",
    a: float = -math.inf,
    b: float = math.inf,
    nan_policy: NanPolicy = "worst",
    generator: np.random.Generator | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return a distribution-free confidence band for the tuning curve (needs opda).

    Following Lourie et al. (2024), opda's
    ``EmpiricalDistribution.confidence_bands(ys, confidence, a, b, method=...)`` bounds
    the CDF of the score distribution with simultaneous coverage ``confidence``; the
    tuning curves of the upper and lower CDF bounds (``quantile_tuning_curve`` with
    ``q=0.5`` for the median curve, ``average_tuning_curve`` for the mean curve) then
    bound the tuning curve for every ``k`` at once.

    Parameters
    ----------
    scores : 1D array of floats, required
        One validation score per i.i.d. random-search trial; NaN marks a failed trial.
    ks : positive int or 1D array of positive ints, required
        The trial budgets.
    confidence : float from 0 to 1 inclusive, optional
        The simultaneous coverage of the band.
    minimize : bool, optional
        Whether lower is better.
    method : {"dkw", "ks", "ld_equal_tailed", "ld_highest_density"}, optional
        opda's CDF band. The ``ld`` (Learned-Miller-DeStefano) bands are the tightest
        but simulate 100,000 samples of size ``n`` (about 1 s for ``n = 50``;
        ``"ld_highest_density"`` is ten times slower); ``"ks"`` and ``"dkw"`` take
        milliseconds.
    curve : {"median", "mean"}, optional
        Which tuning curve to bound. The mean curve's band is infinite (NaN here) at
        small ``k`` unless ``a`` and ``b`` bound the scores.
    a, b : float, optional
        Known bounds on any score, such as 0 and 1 for accuracy.
    nan_policy : {"worst", "omit", "raise"}, optional
        What a failed trial is (see `expected_max`).
    generator : numpy.random.Generator or None, optional
        Random numbers for the ``ld`` methods; ``None`` uses opda's default.

    Returns
    -------
    lower : 1D array of floats
        The lower end of the band for each entry of ``ks``.
    point : 1D array of floats
        The point estimate: the same tuning curve of the empirical distribution.
    upper : 1D array of floats
        The upper end. Infinite ends, and every entry when no trial succeeded, are NaN.

    Raises
    ------
    ImportError
        If opda is not installed (``pip install pytest-greennlp[evp]``).

    Notes
    -----
    The opda calls (``opda/nonparametric.py``, checked against opda 0.8.0)::

        lower_cdf, point_cdf, upper_cdf = EmpiricalDistribution.confidence_bands(
            ys, confidence, a=a, b=b, generator=generator, method=method, n_jobs=1
        )
        lower = upper_cdf.quantile_tuning_curve(ks, q=0.5, minimize=minimize)
        upper = lower_cdf.quantile_tuning_curve(ks, q=0.5, minimize=minimize)

    or ``average_tuning_curve(ks, minimize=minimize)`` for the mean curve. ``n_jobs=1``
    keeps opda from starting a process pool inside a test run. Failed trials under
    ``"worst"`` tie with the worst success; opda's warning about duplicate scores (exact
    coverage assumes continuous scores) is silenced when those ties are the only
    duplicates.

    References
    ----------
    .. [1] Lourie, Cho and He. "Show Your Work with Confidence: Confidence Bands for
       Tuning Curves." NAACL (2024).

    Examples
    --------
    >>> scores = [0.62, 0.71, 0.55, 0.80, 0.68, 0.74, 0.59, 0.77]
    >>> lower, point, upper = tuning_curve_band(scores, [1, 4, 8], method="dkw")
    >>> lower.tolist(), point.tolist(), upper.tolist()
    ([0.55, 0.68, 0.71], [0.68, 0.77, 0.8], [0.8, nan, nan])

    Nothing bounds the upper end beyond ``k = 1`` unless ``b`` does. Accuracy lies in
    [0, 1], which also makes the mean curve's band finite:

    >>> lower, point, upper = tuning_curve_band(
    ...     scores, [1, 4, 8], method="dkw", curve="mean", a=0.0, b=1.0)
    >>> lower.round(3).tolist(), point.round(3).tolist(), upper.round(3).tolist()
    ([0.391, 0.654, 0.692], [0.682, 0.765, 0.786], [0.839, 0.968, 0.995])
    """
    # Validate the arguments.
    values = _as_scores(scores)
    _check_options(minimize, nan_policy)
    ranked, counted = _ranked(values, minimize, nan_policy)
    k = _as_ks(ks, counted)
    if not 0.0 <= confidence <= 1.0:
        raise ValueError("confidence must be between 0 and 1, inclusive.")
    if method not in get_args(BandMethod):
        raise ValueError(
            f'method must be "dkw", "ks", "ld_equal_tailed" or "ld_highest_density",'
            f" not {method!r}."
        )
    if curve not in get_args(BandCurve):
        raise ValueError(f'curve must be "median" or "mean", not {curve!r}.')
    if ranked is not None:
        ys = -ranked if minimize else ranked
        if a > ys.min() or b < ys.max():
            raise ValueError(
                f"a and b must bound the scores: [{ys.min()}, {ys.max()}], not [{a}, {b}]."
            )
    try:
        from opda.nonparametric import EmpiricalDistribution
    except ImportError as exc:
        raise ImportError(
            "tuning_curve_band needs opda: install pytest-greennlp[evp].", name="opda"
        ) from exc

    # Compute the band.
    if ranked is None or k.size == 0:
        nans = np.full(k.size, np.nan)
        return nans, nans.copy(), nans.copy()
    successes = values[np.isfinite(values)]
    ties_are_failures = np.unique(successes).size == successes.size
    with warnings.catch_warnings():
        if ties_are_failures:
            # Failed trials tie with the worst success; opda's warning would be about them.
            warnings.filterwarnings("ignore", "Duplicates detected in ys", RuntimeWarning)
        lower_cdf, point_cdf, upper_cdf = EmpiricalDistribution.confidence_bands(
            ys, confidence, a=a, b=b, generator=generator, method=method, n_jobs=1
        )

    def tuning_curve(distribution: Any) -> FloatArray:
        if curve == "median":
            result = distribution.quantile_tuning_curve(k, q=0.5, minimize=minimize)
        else:
            result = distribution.average_tuning_curve(k, minimize=minimize)
        return _finite_or_nan(np.asarray(result, dtype=np.float64).reshape(k.shape))

    # The upper CDF bound is stochastically smaller: it gives the lower curve.
    return tuning_curve(upper_cdf), tuning_curve(point_cdf), tuning_curve(lower_cdf)


def budget_curve(
    scores: ArrayLike,
    costs: ArrayLike,
    ks: ArrayLike | None = None,
    *,
    minimize: bool = False,
    nan_policy: NanPolicy = "worst",
) -> tuple[FloatArray, FloatArray]:
    """Return `expected_max` against the compute budget of ``k`` trials.

    The budget of ``k`` trials is ``k`` times the cost per counted trial: the mean of
    ``costs`` under ``nan_policy="worst"``; under ``"omit"`` the total cost divided by
    the number of successful trials, since failed trials were paid for too.

    Parameters
    ----------
    scores : 1D array of floats, required
        One validation score per trial; NaN marks a failed trial.
    costs : 1D array of non-negative floats, required
        What each trial cost (seconds, joules, dollars), failed trials included.
    ks : positive int or 1D array of positive ints or None, optional
        The trial budgets; ``None`` means ``1, ..., n``.
    minimize : bool, optional
        Whether lower is better.
    nan_policy : {"worst", "omit", "raise"}, optional
        What a failed trial is (see `expected_max`).

    Returns
    -------
    budget : 1D array of floats
        The cost of ``k`` trials for each entry of ``ks``, in the unit of ``costs``.
    expected : 1D array of floats
        ``expected_max(scores, ks, ...)``.

    Examples
    --------
    >>> budget, expected = budget_curve([0.1, 0.5, 0.3, 0.9], [10.0, 20.0, 10.0, 20.0])
    >>> budget.tolist()
    [15.0, 30.0, 45.0, 60.0]
    >>> budget, _ = budget_curve([0.5, float("nan")], [3.0, 1.0], nan_policy="omit")
    >>> budget.tolist()
    [4.0]
    """
    # Validate the arguments.
    values = _as_scores(scores)
    spent = np.asarray(costs, dtype=np.float64)
    if spent.shape != values.shape:
        raise ValueError(
            f"costs must have the same shape as scores: {values.shape}, not {spent.shape}."
        )
    if not np.all(np.isfinite(spent)) or np.any(spent < 0):
        raise ValueError("costs must be finite and non-negative.")
    _check_options(minimize, nan_policy)
    ranked, counted = _ranked(values, minimize, nan_policy)
    k = _as_ks(ks, counted)

    # Compute the budget axis.
    per_trial = float(spent.sum()) / counted if counted else math.nan
    budget = np.asarray(k * per_trial, dtype=np.float64)
    if ranked is None:
        return budget, np.full(k.size, np.nan)
    mean, _ = _mean_and_std(ranked, k, spread=False)
    return budget, _finite_or_nan(-mean if minimize else mean)


def crossover(
    budget_a: ArrayLike,
    curve_a: ArrayLike,
    budget_b: ArrayLike,
    curve_b: ArrayLike,
    *,
    minimize: bool = False,
) -> float | None:
    """Return the smallest budget beyond which B stays better than A, or None if never.

    Both curves are interpolated linearly on the union of their budgets within the
    range they share, so the answer is the exact crossing of the two piecewise-linear
    curves: "B beats A only once the budget exceeds X".

    Parameters
    ----------
    budget_a, curve_a : 1D arrays of floats, required
        A's tuning curve against budget, as from `budget_curve`; budgets strictly
        increasing.
    budget_b, curve_b : 1D arrays of floats, required
        B's, likewise. The two budget ranges must overlap.
    minimize : bool, optional
        Whether lower is better.

    Returns
    -------
    float or None
        X such that B is strictly better than A at every shared budget above X (and
        not at X, unless X is the start of the shared range because B is better
        throughout). None if B is not better at the largest shared budget.

    Examples
    --------
    >>> crossover([1, 2, 3], [0.5, 0.6, 0.65], [1, 2, 3], [0.4, 0.6, 0.7])
    2.0
    >>> crossover([1, 3], [0.5, 0.7], [1, 3], [0.6, 0.6])
    >>> crossover([1, 3], [0.5, 0.7], [1, 3], [0.6, 0.6], minimize=True)
    2.0
    """
    # Validate the arguments.
    xa, ya = _check_curve(budget_a, curve_a, "a")
    xb, yb = _check_curve(budget_b, curve_b, "b")
    if not isinstance(minimize, bool):
        raise TypeError("minimize must be a boolean.")
    start, end = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if start > end:
        raise ValueError(
            f"budget_a [{xa[0]}, {xa[-1]}] and budget_b [{xb[0]}, {xb[-1]}] must overlap."
        )

    # Find the last budget where B is not better, then where the lead turns positive.
    grid = np.union1d(xa, xb)
    grid = grid[(grid >= start) & (grid <= end)]
    lead = np.interp(grid, xb, yb) - np.interp(grid, xa, ya)
    if minimize:
        lead = -lead
    behind = np.flatnonzero(lead <= 0)
    if behind.size == 0:
        return float(grid[0])
    j = int(behind[-1])
    if j == grid.size - 1:
        return None
    fraction = -lead[j] / (lead[j + 1] - lead[j])
    return float(grid[j] + fraction * (grid[j + 1] - grid[j]))
