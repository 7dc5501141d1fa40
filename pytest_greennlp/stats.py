"""Small statistics: Welch's t-test on noisy repeated measurements (standard library only)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["welch_t_test"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def welch_t_test(base: Sequence[float], head: Sequence[float]) -> tuple[float, float, float]:
    """Return Welch's t statistic, its degrees of freedom and the two-sided p-value.

    The statistic is positive when ``head``'s mean is larger. Identical samples within
    each side (zero variance) give p = 0 if the means differ and p = 1 if not.

    Parameters
    ----------
    base, head : sequences of floats, required
        At least two finite values each.

    Returns
    -------
    t : float
    df : float
        Welch-Satterthwaite degrees of freedom.
    p : float
        Two-sided p-value from Student's t distribution with ``df`` degrees of freedom.

    References
    ----------
    .. [1] Welch, B. L. "The generalization of 'Student's' problem when several different
       population variances are involved." Biometrika 34 (1947).

    Examples
    --------
    >>> t, df, p = welch_t_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0])
    >>> round(t, 4), round(df, 3), round(p, 5)
    (4.0415, 4.959, 0.01008)
    """
    # Validate the arguments.
    if len(base) < 2 or len(head) < 2:
        raise ValueError("base and head must have at least two values each.")
    if not all(math.isfinite(v) for v in (*base, *head)):
        raise ValueError("base and head must be finite.")

    # Compute the test.
    na, nb = len(base), len(head)
    ma, mb = statistics.fmean(base), statistics.fmean(head)
    sa, sb = statistics.variance(base) / na, statistics.variance(head) / nb
    se2 = sa + sb
    if se2 == 0.0 or not math.isfinite(se2):
        if ma == mb:
            return 0.0, float(na + nb - 2), 1.0
        return math.copysign(math.inf, mb - ma), float(na + nb - 2), 0.0
    t = (mb - ma) / math.sqrt(se2)
    df = se2**2 / (sa**2 / (na - 1) + sb**2 / (nb - 1))
    p = _betainc(df / 2.0, 0.5, df / (df + t * t)) if math.isfinite(t) else 0.0
    return t, df, min(max(p, 0.0), 1.0)
