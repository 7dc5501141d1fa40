"""Overhead of pytest-greennlp, measured side by side in one run.

1. ``pytest --green`` on 200 small marked tests vs plain ``pytest`` on the same suite
   (whole-process wall time; target <= 1.05x).
2. Installed but not enabled (plain ``pytest``) vs the plugin blocked with
   ``-p no:greennlp`` (start-up of a one-test suite; target <= 1.02x).

Runs are interleaved (A, B, B, A, A, B, ...: which side runs first alternates between
rounds, since the first run of a pair tends to be the slower) so machine noise hits
both sides alike. The figure judged is the median of the per-round ratios A_i / B_i
(each pair ran seconds apart, so slow drifts of the machine cancel), printed with a
distribution-free 95% interval for that median (order statistics of the ratios). The
ratio of the two sides' medians and the CPU-time (user + system) ratio are printed
beside it. On a shared virtual machine whole runs drift by a few percent; the script
prints how much CPU other processes and the hypervisor (steal) took meanwhile, so a
reader can judge a run.

``--instructions`` also counts the instructions each side executes under valgrind's
cachegrind (one run each, when valgrind is installed): a figure that does not depend on
the machine's load, for telling a real change from noise.
Usage: ``python benchmarks/overhead.py [--rounds N] [--instructions]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = '''
import pytest

@pytest.mark.green_infer(examples=8)
@pytest.mark.parametrize("i", range({n}))
def test_small(i):
    assert sum(range(2000)) == 1999000
'''


def run(args: list[str], cwd: Path) -> tuple[float, float]:
    """Return (wall seconds, CPU seconds) of one pytest process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval for the median: the order statistics (k, n+1-k) with the
    largest k whose binomial coverage is still >= ``level`` (the full range if none is)."""
    ordered = sorted(values)
    n = len(ordered)
    best = 1
    for k in range(1, n // 2 + 1):
        tail = sum(math.comb(n, i) for i in range(k)) / 2 ** n  # P(Bin(n, 1/2) <= k - 1)
        if 1 - 2 * tail >= level:
            best = k
    return ordered[best - 1], ordered[n - best]


def compare(name: str, cwd: Path, a: list[str], b: list[str], rounds: int, target: float) -> bool:
    run(a, cwd), run(b, cwd)  # warm the file cache
    runs_a, runs_b = [], []
    for _ in range(rounds):
        # Counterbalanced: the side that runs first alternates from round to round. The
        # first run of a pair is measurably slower on this kind of machine (about 0.6% in
        # one test of 40 rounds), which would otherwise count against one side only.
        if len(runs_a) % 2 == 0:
            runs_a.append(run(a, cwd))
            runs_b.append(run(b, cwd))
        else:
            runs_b.append(run(b, cwd))
            runs_a.append(run(a, cwd))
    wall_a, wall_b = (statistics.median(w for w, _ in r) for r in (runs_a, runs_b))
    cpu_a, cpu_b = (statistics.median(c for _, c in r) for r in (runs_a, runs_b))
    pairs = [wa / wb for (wa, _), (wb, _) in zip(runs_a, runs_b)]
    ratio = statistics.median(pairs)
    low, high = median_interval(pairs)
    ok = ratio <= target
    verdict = "PASS" if ok else "FAIL"
    if low <= target < high or high <= target < low:
        verdict += ", the interval straddles the target"
    print(f"{name}: wall {ratio:.3f}x, 95% interval [{low:.3f}, {high:.3f}] "
          f"(median of {rounds} paired ratios) [target <= {target}x: {verdict}]; "
          f"medians {wall_a:.3f} s vs {wall_b:.3f} s -> {wall_a / wall_b:.3f}x; "
          f"CPU {cpu_a:.3f} s vs {cpu_b:.3f} s -> {cpu_a / cpu_b:.3f}x")
    return ok


def instructions(args: list[str], cwd: Path) -> int | None:
    """Instructions one pytest process executes (valgrind cachegrind), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(
        [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )
    found = re.findall(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or not found:
        sys.exit(f"valgrind run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found[-1].replace(",", ""))


def cpu_counters() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine since boot (Linux ``/proc/stat``), or None.

    Busy excludes idle, iowait and steal; steal is time the hypervisor gave to other guests.
    """
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    steal = fields[7] if len(fields) > 7 else 0
    busy = sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0) - steal
    return busy / tick, steal / tick


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under valgrind (load-independent)")
    opts = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    start_wall, start_counters, start_own = time.perf_counter(), cpu_counters(), own_cpu_s()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "pytest.ini").write_text("[pytest]\n")
        (cwd / "test_suite.py").write_text(SUITE.format(n=opts.tests))
        green = ["--green", "--green-report", str(cwd / "r.json")]
        ok = compare(f"--green on {opts.tests} marked tests vs plain pytest", cwd,
                     green, [], opts.rounds, 1.05)
        if opts.instructions:
            counts = instructions(green, cwd), instructions([], cwd)
            if counts[0] is None or counts[1] is None:
                print("instructions: valgrind is not installed")
            else:
                print(f"instructions (cachegrind, one run each): {counts[0] / 1e6:,.0f} M vs "
                      f"{counts[1] / 1e6:,.0f} M -> {counts[0] / counts[1]:.3f}x")
        (cwd / "test_suite.py").write_text(SUITE.format(n=1))
        ok &= compare("installed, not enabled vs -p no:greennlp (start-up)", cwd,
                      [], ["-p", "no:greennlp"], opts.rounds, 1.02)
    end_counters = cpu_counters()
    if start_counters is not None and end_counters is not None:
        elapsed = time.perf_counter() - start_wall
        # CPU time of everything else on the machine while this ran, in cores.
        others = (end_counters[0] - start_counters[0] - (own_cpu_s() - start_own)) / elapsed
        steal = (end_counters[1] - start_counters[1]) / elapsed
        print(f"other processes used {max(others, 0.0):.2f} of {os.cpu_count()} CPUs meanwhile, "
              f"hypervisor steal {steal:.2f} CPUs")
        if others > 0.2 or steal > 0.1:
            print("note: other work was running; the ratios are less reliable than on an idle machine")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
