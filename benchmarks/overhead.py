"""Overhead of pytest-greennlp, measured side by side in one run.

1. ``pytest --green`` on 200 small marked tests vs plain ``pytest`` on the same suite
   (whole-process wall time; target <= 1.05x).
2. Installed but not enabled (plain ``pytest``) vs the plugin blocked with
   ``-p no:greennlp`` (start-up of a one-test suite; target <= 1.02x).

Runs are interleaved (A, B, A, B, ...) so machine noise hits both sides alike; the
median of each side is compared. The targets are on wall time; the CPU time (user + system)
of the same runs is printed beside it, since on a shared machine it is the steadier figure.
Usage: ``python benchmarks/overhead.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
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
                          cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def compare(name: str, cwd: Path, a: list[str], b: list[str], rounds: int, target: float) -> bool:
    run(a, cwd), run(b, cwd)  # warm the file cache
    runs_a, runs_b = [], []
    for _ in range(rounds):
        runs_a.append(run(a, cwd))
        runs_b.append(run(b, cwd))
    wall_a, wall_b = (statistics.median(w for w, _ in r) for r in (runs_a, runs_b))
    cpu_a, cpu_b = (statistics.median(c for _, c in r) for r in (runs_a, runs_b))
    ratio = wall_a / wall_b
    ok = ratio <= target
    print(f"{name}: wall {wall_a:.3f} s vs {wall_b:.3f} s -> {ratio:.3f}x "
          f"[target <= {target}x: {'PASS' if ok else 'FAIL'}]; "
          f"CPU {cpu_a:.3f} s vs {cpu_b:.3f} s -> {cpu_a / cpu_b:.3f}x (medians of {rounds})")
    return ok


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has been busy since boot (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tests", type=int, default=200)
    opts = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    start_wall, start_busy, start_own = time.perf_counter(), busy_cpu_s(), own_cpu_s()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "pytest.ini").write_text("[pytest]\n")
        (cwd / "test_suite.py").write_text(SUITE.format(n=opts.tests))
        ok = compare(f"--green on {opts.tests} marked tests vs plain pytest", cwd,
                     ["--green", "--green-report", str(cwd / "r.json")], [], opts.rounds, 1.05)
        (cwd / "test_suite.py").write_text(SUITE.format(n=1))
        ok &= compare("installed, not enabled vs -p no:greennlp (start-up)", cwd,
                      [], ["-p", "no:greennlp"], opts.rounds, 1.02)
    end_busy = busy_cpu_s()
    if start_busy is not None and end_busy is not None:
        # CPU time of everything else on the machine while this ran, in cores.
        others = (end_busy - start_busy - (own_cpu_s() - start_own)) / (time.perf_counter() - start_wall)
        print(f"other processes used {max(others, 0.0):.2f} of {os.cpu_count()} CPUs meanwhile")
        if others > 0.2:
            print("note: other work was running; the ratios are less reliable than on an idle machine")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
