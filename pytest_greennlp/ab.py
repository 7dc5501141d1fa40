"""Same-job A/B: base and head measured in interleaved rounds on one machine, one report per side.

Time and energy measured on different runners, or hours apart on the same one, differ
for reasons that have nothing to do with the code. An A/B measures both checkouts in
the same job, interleaved: round 1 runs ``python -m pytest --green`` in the base
checkout, then in the head checkout; round 2 does the same, and so on, so drifts of
the machine (thermal state, noisy neighbours, frequency scaling) hit both sides
alike. `run_ab` does this through an injectable `Runner`; `combine_rounds` (pure, no
I/O) folds each side's per-round reports into one report, so that
``greennlp compare BASE.json HEAD.json`` can test each change against the noise
(it needs at least `compare.MIN_SAMPLES` = 3 rounds).

Combining one side's rounds (`combine_rounds`)
-----------------------------------------------
* **One sample per round.** A test's round sample is that round's headline figure
  (with ``--green-repeats R`` the run's median over its R runs). ``timing`` holds the
  per-round wall and CPU times in ``wall_samples_s`` / ``cpu_samples_s`` and their
  medians as ``wall_s`` / ``cpu_s``; energy holds the per-round measured and estimated
  joules in ``samples_measured_j`` / ``samples_estimated_j`` and their medians, each
  energy part the median of its domain's joules; CO2e the medians per basis; memory
  the largest peak. The samples come from the rounds in which the test passed, or
  from every round if it passed in none.
* **Outcome.** The worst outcome over the rounds (error, failed, xpassed, passed,
  xfailed, skipped); a test whose outcome differs between rounds gets a note listing
  them. Tests failing is recorded, never fatal.
* **Quality.** A metric is the median of its per-round values, with a note when they
  differ; FLOPs, trials, limits and the rest are the first round's (a note says when
  the FLOPs differ).
* **Tests in some rounds only** are combined over the rounds they are in, with a
  note. Tests of one side only are simply absent from the other side's report:
  compare lists them as added or removed.
* **The report.** ``settings.repeats`` is the number of rounds; the fingerprint,
  carbon intensity and tool version are the first round's; the report is complete
  only if every round's was; the run energy is combined like a test's; totals are
  recomputed. The first note says it was an interleaved A/B of N rounds and gives the
  order of the runs (and the seed, if the order was randomised).

Running (`run_ab`)
------------------
Each run is ``PYTHON -m pytest --green --rootdir=DIR --confcutdir=DIR -m "green_train
or green_infer" [pytest args] --green-report=TMP/<side>-round<i>.json`` in the side's
folder ``DIR``, with ``DIR/src`` (if it exists) and ``DIR`` first on ``PYTHONPATH`` so
each side imports its own code, and ``--ignore`` of the other side's folder when that
lies inside ``DIR``. The pytest arguments come after ``-m`` (a later ``-m`` wins) and
before the report path (which always wins). pytest exit statuses 0 (passed), 1 (tests
failed) and 5 (no marked test: a base from before the first one) are accepted; any
other status, or a run that wrote no report, is a `MeasurementError` of one line that
names the side and the round.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from pytest_greennlp.errors import ConfigError, MeasurementError, ReportError
from pytest_greennlp.records import (
    Emissions,
    Energy,
    EnergyPart,
    Memory,
    Metric,
    Outcome,
    Report,
    TestRecord,
    Timing,
)
from pytest_greennlp.report import read_report, totals

__all__ = [
    "ACCEPTED_EXIT_CODES",
    "MARK_EXPRESSION",
    "ABPlan",
    "ABResult",
    "RunSpec",
    "Runner",
    "Side",
    "combine_rounds",
    "plan_rounds",
    "run_ab",
    "run_subprocess",
]

logger = logging.getLogger(__name__)

Side = Literal["base", "head"]

#: pytest exit statuses a run may end with: 0 passed, 1 tests failed (recorded in the
#: report, not fatal), 5 no test collected (a base commit from before the first marked test).
ACCEPTED_EXIT_CODES = frozenset({0, 1, 5})

#: The ``-m`` expression every run starts with: the marked tests only.
MARK_EXPRESSION = "green_train or green_infer"

_EXIT_NAMES = {0: "passed", 1: "tests failed", 2: "interrupted", 3: "internal error",
               4: "usage error", 5: "no tests collected"}
#: Outcomes, worst first: the combined outcome is the worst of the rounds'.
_OUTCOME_RANK: tuple[Outcome, ...] = ("error", "failed", "xpassed", "passed", "xfailed", "skipped")

K = TypeVar("K")


# --- private helpers -----------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _median_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return _median(present) if present else None


def _max_or_none(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _unique(items: Iterable[K]) -> list[K]:
    return list(dict.fromkeys(items))


def _combine_timing(timings: Sequence[Timing | None]) -> Timing | None:
    present = [t for t in timings if t is not None]
    if not present:
        return None
    wall = tuple(t.wall_s for t in present)
    cpu = tuple(t.cpu_s for t in present)
    return Timing(
        wall_s=_median(wall), cpu_s=_median(cpu), wall_samples_s=wall, cpu_samples_s=cpu,
        warmup_runs=present[0].warmup_runs,
        synchronized=tuple(_unique(s for t in present for s in t.synchronized)),
    )


def _combine_energy(energies: Sequence[Energy | None]) -> Energy | None:
    present = [e for e in energies if e is not None]
    if not present:
        return None
    groups: dict[tuple[str, str, bool, str, Literal["machine", "process"]], list[float]] = {}
    for energy in present:
        for part in energy.parts:
            key = (part.domain, part.method, part.measured, part.source, part.scope)
            groups.setdefault(key, []).append(part.energy_j)
    parts = tuple(
        EnergyPart(domain=domain, energy_j=_median(joules), method=method, measured=measured,
                   source=source, scope=scope)
        for (domain, method, measured, source, scope), joules in groups.items()
    )
    measured = tuple(e.measured_j for e in present if e.measured_j is not None)
    estimated = tuple(e.estimated_j for e in present if e.estimated_j is not None)
    return Energy(
        parts=parts,
        measured_j=_median(measured) if measured else None,
        estimated_j=_median(estimated) if estimated else None,
        samples_measured_j=measured,
        samples_estimated_j=estimated,
        attribution=present[0].attribution,
    )


def _combine_co2e(values: Sequence[Emissions | None]) -> Emissions | None:
    present = [e for e in values if e is not None]
    if not present:
        return None
    return Emissions(
        from_measured_g=_median_or_none(e.from_measured_g for e in present),
        from_estimated_g=_median_or_none(e.from_estimated_g for e in present),
    )


def _combine_memory(values: Sequence[Memory | None]) -> Memory | None:
    present = [m for m in values if m is not None]
    if not present:
        return None
    return Memory(
        peak_rss_bytes=_max_or_none(m.peak_rss_bytes for m in present),
        rss_method=present[0].rss_method,
        cuda_peak_allocated_bytes=_max_or_none(m.cuda_peak_allocated_bytes for m in present),
    )


def _combine_metrics(records: Sequence[TestRecord]) -> tuple[tuple[Metric, ...], list[str]]:
    by_name: dict[str, list[Metric]] = {}
    for record in records:
        for metric in record.metrics:
            by_name.setdefault(metric.name, []).append(metric)
    metrics, notes = [], []
    for name, copies in by_name.items():
        values = [m.value for m in copies if m.value is not None]
        metrics.append(replace(copies[0], value=_median(values) if values else None))
        if len(set(values)) > 1:
            notes.append(f"A/B: metric {name!r} varied over the rounds ({min(values):.6g} to "
                         f"{max(values):.6g}); the median is kept")
    return tuple(metrics), notes


def _worst_outcome(records: Sequence[TestRecord]) -> Outcome:
    outcomes = {r.outcome for r in records}
    return next((o for o in _OUTCOME_RANK if o in outcomes), records[0].outcome)


def _combine_test(copies: Sequence[tuple[int, TestRecord]], rounds: int) -> TestRecord:
    records = [record for _, record in copies]
    first = records[0]
    passed = [r for r in records if r.outcome == "passed"]
    sampled = passed or records
    notes = _unique(note for r in records for note in r.notes)
    if len(copies) < rounds:
        notes.append(f"A/B: in {len(copies)} of {rounds} rounds "
                     f"(round {', '.join(str(i) for i, _ in copies)})")
    if len({r.outcome for r in records}) > 1:
        notes.append("A/B: outcome per round: "
                     + ", ".join(f"{i} {r.outcome}" for i, r in copies)
                     + (f"; time and energy from the {len(passed)} passed round(s)" if passed
                        else ""))
    flops = [r.flops.total for r in records if r.flops is not None]
    if len(set(flops)) > 1:
        notes.append(f"A/B: FLOPs differ between rounds ({min(flops)} to {max(flops)}); "
                     "round 1's are kept")
    metrics, metric_notes = _combine_metrics(records)
    notes += metric_notes
    return replace(
        first,
        outcome=_worst_outcome(records),
        timing=_combine_timing([r.timing for r in sampled]),
        energy=_combine_energy([r.energy for r in sampled]),
        co2e=_combine_co2e([r.co2e for r in sampled]),
        memory=_combine_memory([r.memory for r in records]),
        metrics=metrics,
        notes=tuple(notes),
    )


def _exit_status(statuses: Sequence[int | None]) -> int | None:
    if None in statuses:
        return None
    codes = [s for s in statuses if s is not None]
    bad = [s for s in codes if s not in (0, 5)]
    if bad:
        return max(bad)
    return 5 if all(s == 5 for s in codes) else 0


def _report_notes(reports: Sequence[Report], plan: ABPlan | None, side: Side | None) -> list[str]:
    n = len(reports)
    who = f"{side} side, " if side else ""
    if plan is not None:
        first = (f"interleaved A/B on one machine ({who}{n} round(s), run order "
                 f"{plan.describe()}); each figure is the median over the rounds, "
                 "one sample per round")
    else:
        first = (f"combined from {n} round(s) ({who}order not recorded); each figure is the "
                 "median over the rounds, one sample per round")
    notes = [first]
    one = reports[0]
    if one.settings.repeats > 1:
        notes.append(f"each run measured {one.settings.repeats} repeats; "
                     "its median is the round's sample")
    for i, report in enumerate(reports, 1):
        status = report.exit_status
        if status is not None and status != 0:
            notes.append(f"round {i}: pytest exited with {status} "
                         f"({_EXIT_NAMES.get(status, 'error')})")
        if not report.complete:
            notes.append(f"round {i}: the run did not finish (its report is incomplete)")
    if any(r.fingerprint != one.fingerprint for r in reports):
        notes.append("the rounds' fingerprints differ; round 1's is shown")
    if any(r.carbon != one.carbon for r in reports):
        notes.append("the rounds used different carbon intensities; round 1's is shown")
    if any(replace(r.settings, repeats=0) != replace(one.settings, repeats=0) for r in reports):
        notes.append("the rounds used different settings; round 1's are shown")
    notes += _unique(note for r in reports for note in r.notes)
    return _unique(notes)


# --- public API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ABPlan:
    """The order of the runs: per round, the side that runs first and the one that runs second.

    ``seed`` is the seed that randomised the order within each round, None for the
    fixed order (base first in every round).
    """

    rounds: tuple[tuple[Side, Side], ...]
    seed: int | None = None

    def describe(self) -> str:
        """Return the order as one line, e.g. ``1 base-head, 2 head-base (random, seed 7)``."""
        order = ", ".join(f"{i} {a}-{b}" for i, (a, b) in enumerate(self.rounds, 1))
        how = "base first" if self.seed is None else f"random, seed {self.seed}"
        return f"{order} ({how})"


def plan_rounds(rounds: int, seed: int | None = None) -> ABPlan:
    """Return the order of the runs of an A/B of ``rounds`` rounds.

    Parameters
    ----------
    rounds : int, required
        The number of rounds; each runs the base once and the head once.
    seed : int or None, optional
        Without a seed base runs first in every round (base, head, base, head, ...).
        With one, a coin seeded with it decides each round's order, so the order is
        random yet reproducible (and recorded in the reports' notes).

    Returns
    -------
    ABPlan

    Raises
    ------
    ValueError
        If ``rounds`` is not an integer >= 1.

    Examples
    --------
    >>> plan_rounds(2).describe()
    '1 base-head, 2 base-head (base first)'
    >>> plan_rounds(3, seed=1) == plan_rounds(3, seed=1)
    True
    """
    # Validate the arguments.
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError("rounds must be an integer >= 1.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer or None.")

    if seed is None:
        return ABPlan(rounds=(("base", "head"),) * rounds)
    coin = random.Random(seed)
    order: list[tuple[Side, Side]] = [
        ("base", "head") if coin.random() < 0.5 else ("head", "base") for _ in range(rounds)
    ]
    return ABPlan(rounds=tuple(order), seed=seed)


def combine_rounds(
    reports: Sequence[Report], *, plan: ABPlan | None = None, side: Side | None = None
) -> Report:
    """Fold one side's per-round reports into one report with one sample per round.

    Pure: reports in, a report out. See the module docstring for the rules.

    Parameters
    ----------
    reports : sequence of Report, required
        One report per round, in round order.
    plan : ABPlan or None, optional
        The order the runs were made in; it goes into the first note.
    side : {"base", "head"} or None, optional
        Which side the reports are of; it goes into the first note.

    Returns
    -------
    Report
        ``settings.repeats`` is ``len(reports)``; every timed test has one wall and CPU
        sample per round it passed in.

    Raises
    ------
    ValueError
        If ``reports`` is empty, ``plan`` has another number of rounds, ``side`` is not
        base or head, or a nodeid appears twice in one report.
    """
    # Validate the arguments.
    if not reports:
        raise ValueError("reports must not be empty.")
    if plan is not None and len(plan.rounds) != len(reports):
        raise ValueError(
            f"plan has {len(plan.rounds)} rounds but {len(reports)} reports were given.")
    if side is not None and side not in ("base", "head"):
        raise ValueError("side must be 'base', 'head' or None.")

    by_id: dict[str, list[tuple[int, TestRecord]]] = {}
    for i, report in enumerate(reports, 1):
        for test in report.tests:
            copies = by_id.setdefault(test.nodeid, [])
            if copies and copies[-1][0] == i:
                raise ValueError(f"{test.nodeid!r} appears twice in round {i}.")
            copies.append((i, test))
    tests = tuple(_combine_test(by_id[nodeid], len(reports)) for nodeid in sorted(by_id))

    first = reports[0]
    finished = [r.finished_at for r in reports]
    return Report(
        tool_version=first.tool_version,
        complete=all(r.complete for r in reports),
        exit_status=_exit_status([r.exit_status for r in reports]),
        started_at=min(r.started_at for r in reports),
        finished_at=None if None in finished else max(f for f in finished if f is not None),
        fingerprint=first.fingerprint,
        carbon=first.carbon,
        settings=replace(first.settings, repeats=len(reports)),
        tests=tests,
        totals=totals(tests),
        run_energy=_combine_energy([r.run_energy for r in reports]),
        notes=tuple(_report_notes(reports, plan, side)),
    )


@dataclass(frozen=True)
class RunSpec:
    """One ``pytest --green`` run of an A/B: which side and round, and how to start it.

    ``env`` holds the variables to set on top of the current environment.
    """

    side: Side
    round: int
    rounds: int
    argv: tuple[str, ...]
    cwd: Path
    report: Path
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """``base run of round 2 of 3``: how errors and progress lines name the run."""
        return f"{self.side} run of round {self.round} of {self.rounds}"


class Runner(Protocol):
    """Starts one run and returns its exit status (`run_subprocess`; tests pass fakes)."""

    def __call__(self, spec: RunSpec) -> int: ...


def run_subprocess(spec: RunSpec) -> int:
    """Run ``spec.argv`` in ``spec.cwd``, its output going to ours; return its exit status.

    Raises
    ------
    MeasurementError
        One line, when the program cannot be started.
    """
    logger.debug("%s: %s in %s", spec.describe(), spec.argv, spec.cwd)
    try:
        done = subprocess.run(list(spec.argv), cwd=spec.cwd, env={**os.environ, **spec.env},
                              check=False)
    except OSError as exc:
        raise MeasurementError(
            f"{spec.describe()}: cannot start {spec.argv[0]!r} ({exc.strerror or exc})"
        ) from exc
    return done.returncode


@dataclass(frozen=True)
class ABResult:
    """The combined report of each side, and the order the runs were made in."""

    base: Report
    head: Report
    plan: ABPlan


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def _spec(side: Side, folder: Path, other: Path, number: int, rounds: int, python: str,
          pytest_args: Sequence[str], workdir: Path) -> RunSpec:
    report = workdir / f"{side}-round{number}.json"
    argv = [python, "-m", "pytest", "--green", f"--rootdir={folder}", f"--confcutdir={folder}"]
    if _inside(other, folder):
        argv.append(f"--ignore={other}")
    argv += ["-m", MARK_EXPRESSION, *pytest_args, f"--green-report={report}"]
    paths = [str(p) for p in (folder / "src", folder) if p.is_dir()]
    inherited = os.environ.get("PYTHONPATH")
    if inherited:
        paths.append(inherited)
    return RunSpec(side=side, round=number, rounds=rounds, argv=tuple(argv), cwd=folder,
                   report=report, env={"PYTHONPATH": os.pathsep.join(paths)})


def _read_run(spec: RunSpec, status: int) -> Report:
    if status not in ACCEPTED_EXIT_CODES:
        why = _EXIT_NAMES.get(status, "killed by a signal" if status < 0 else "error")
        raise MeasurementError(
            f"{spec.describe()} failed: pytest exited with {status} ({why}) in {spec.cwd}"
        )
    try:
        return read_report(spec.report)
    except ReportError as exc:
        raise MeasurementError(
            f"{spec.describe()} (pytest exited with {status}) left no readable report: {exc}"
        ) from exc


def run_ab(
    base: Path | str,
    head: Path | str,
    *,
    rounds: int = 3,
    pytest_args: Sequence[str] = (),
    seed: int | None = None,
    python: str = sys.executable,
    runner: Runner | None = None,
    workdir: Path | None = None,
    on_run: Callable[[RunSpec], None] | None = None,
) -> ABResult:
    """Measure the marked tests of two checkouts in interleaved rounds; combine each side.

    Parameters
    ----------
    base, head : path, required
        The two checkouts (folders); the runs start in them.
    rounds : int, optional
        Rounds of one base and one head run each (default 3, the fewest the noise test
        of ``greennlp compare`` needs).
    pytest_args : sequence of str, optional
        More pytest arguments for every run (paths in them are relative to each side's
        folder).
    seed : int or None, optional
        Randomise which side runs first in each round (see `plan_rounds`).
    python : str, optional
        The interpreter that runs pytest (default: this one); the project and
        pytest-greennlp must be installed in it.
    runner : Runner or None, optional
        Starts each run (default `run_subprocess`).
    workdir : path or None, optional
        Where the per-run reports go (default: a temporary folder, removed afterwards).
    on_run : callable or None, optional
        Called with each `RunSpec` just before it runs (progress output).

    Returns
    -------
    ABResult

    Raises
    ------
    ConfigError
        A folder is missing, both are the same, or ``rounds`` is not an integer >= 1.
    MeasurementError
        One line naming the side and round: a run exited with a status other than 0, 1
        or 5, or wrote no readable report.
    """
    # Validate the arguments.
    folders: dict[Side, Path] = {"base": Path(base).resolve(), "head": Path(head).resolve()}
    for side, folder in folders.items():
        if not folder.is_dir():
            raise ConfigError(f"{folder}: not a folder (expected the {side} checkout)")
    if folders["base"] == folders["head"]:
        raise ConfigError(f"{folders['base']}: base and head are the same folder")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds must be an integer >= 1, got {rounds!r}")

    plan = plan_rounds(rounds, seed)
    start = runner if runner is not None else run_subprocess
    collected: dict[Side, list[Report]] = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="greennlp-ab-") as tmp:
        where = Path(workdir) if workdir is not None else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for number, order in enumerate(plan.rounds, 1):
            for side in order:
                other: Side = "head" if side == "base" else "base"
                spec = _spec(side, folders[side], folders[other], number, rounds, python,
                             pytest_args, where)
                spec.report.unlink(missing_ok=True)
                if on_run is not None:
                    on_run(spec)
                collected[side].append(_read_run(spec, start(spec)))
    return ABResult(
        base=combine_rounds(collected["base"], plan=plan, side="base"),
        head=combine_rounds(collected["head"], plan=plan, side="head"),
        plan=plan,
    )
