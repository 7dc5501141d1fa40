"""Time `pytest_greennlp.evp` on 10**6 scores and k = 1..1000, next to a naive reference.

The naive reference builds the dense ``len(ks) x n`` weight matrix straight from the
formulas; at 10**6 scores that matrix would hold 10**9 floats (8 GB), so it runs on a
smaller size, where it also checks that both agree. Exits 1 if any best wall-clock time
reaches the limit (0.5 s by default) or the two disagree. CPU time is printed too: on a
busy machine it shows the work apart from the wait for a core (see the load average).

Usage: ``python benchmarks/evp_speed.py [--n 1000000] [--k 1000] [--limit 0.5]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from pytest_greennlp.evp import expected_max, expected_max_std, expected_max_unbiased

Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]


def naive_mean(scores: np.ndarray, ks: np.ndarray) -> np.ndarray:
    v = np.sort(scores)
    n = v.size
    i = np.arange(1, n + 1)
    weights = (i / n) ** ks[:, None] - ((i - 1) / n) ** ks[:, None]
    result: np.ndarray = weights @ v
    return result


def naive_std(scores: np.ndarray, ks: np.ndarray) -> np.ndarray:
    v = np.sort(scores)
    n = v.size
    i = np.arange(1, n + 1)
    weights = (i / n) ** ks[:, None] - ((i - 1) / n) ** ks[:, None]
    mean = weights @ v
    result: np.ndarray = np.sqrt((weights * (v - mean[:, None]) ** 2).sum(axis=1))
    return result


def naive_unbiased(scores: np.ndarray, ks: np.ndarray) -> np.ndarray:
    v = np.sort(scores)
    n = v.size
    # P[k, i] = C(i, k) / C(n, k), down from P[k, n] = 1 by P[k, i-1] = P[k, i] (i-k) / i.
    i = np.arange(n, 0, -1)
    below = np.cumprod(np.clip((i - ks[:, None]) / i, 0.0, None), axis=1)[:, ::-1]
    cdf = np.concatenate([below, np.ones((ks.size, 1))], axis=1)
    result: np.ndarray = np.diff(cdf, axis=1) @ v
    return result


def best_time(
    function: Estimator, scores: np.ndarray, ks: np.ndarray, repeat: int
) -> tuple[float, float]:
    """Return the best wall-clock and CPU seconds of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        function(scores, ks)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def machine_info() -> list[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return [
        f"machine:  {platform.platform()} ({platform.machine()}, {platform.processor() or '?'})",
        f"cpus:     {os.cpu_count()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"python:   {platform.python_implementation()} {platform.python_version()}",
        f"numpy:    {np.__version__}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6, help="scores in the timed run")
    parser.add_argument("--k", type=int, default=1000, help="largest k (all of 1..k)")
    parser.add_argument("--naive-n", type=int, default=10**4, help="scores in the comparison")
    parser.add_argument("--limit", type=float, default=0.5, help="seconds allowed per call")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    args = parser.parse_args(argv)

    print("\n".join(machine_info()))
    rng = np.random.default_rng(0)
    ks = np.arange(1, args.k + 1)
    estimators: list[tuple[str, Estimator, Estimator]] = [
        ("expected_max", expected_max, naive_mean),
        ("expected_max_std", expected_max_std, naive_std),
        ("expected_max_unbiased", expected_max_unbiased, naive_unbiased),
    ]
    failed = False

    small = rng.normal(size=args.naive_n)
    small_ks = ks[ks <= args.naive_n]
    print(f"\nagreement and speed-up: n = {args.naive_n:,}, k = 1..{small_ks[-1]:,}")
    print(f"  {'':<22} {'evp s':>9} {'naive s':>9} {'speed-up':>9} {'max |diff|':>11}")
    for name, fast, naive in estimators:
        difference = float(np.max(np.abs(fast(small, small_ks) - naive(small, small_ks))))
        fast_s, _ = best_time(fast, small, small_ks, args.repeat)
        naive_s, _ = best_time(naive, small, small_ks, 1)
        agree = difference < 1e-9
        failed |= not agree
        print(
            f"  {name:<22} {fast_s:9.4f} {naive_s:9.4f} {naive_s / fast_s:8.0f}x"
            f" {difference:11.1e} {'ok' if agree else 'DISAGREE'}"
        )

    large = rng.normal(size=args.n)
    print(
        f"\ntimed: n = {args.n:,}, k = 1..{args.k:,}, best of {args.repeat}, limit {args.limit} s"
    )
    print(f"  {'':<22} {'wall s':>9} {'cpu s':>9}")
    for name, fast, _ in estimators:
        seconds, cpu_seconds = best_time(fast, large, ks, args.repeat)
        passed = seconds < args.limit
        failed |= not passed
        print(f"  {name:<22} {seconds:9.3f} {cpu_seconds:9.3f}  {'pass' if passed else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
