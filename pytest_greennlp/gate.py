"""Efficiency gates: limits checked against a `Comparison`, and the ``--green-baseline`` plugin.

Limits come from ``[tool.greennlp.limits]`` in ``pyproject.toml`` (for every test and
for the run total) and from the arguments of a test's ``green_train`` / ``green_infer``
marker, which override the table for that test::

    [tool.greennlp.limits]
    max_flops_increase_pct = 0        # per test, vs the baseline; FLOPs gate strictly
    max_time_increase_pct = 10        # per test; only a change beyond the noise fails
    max_energy_increase_pct = 10      # per test; like-with-like energy basis
    min_metric_delta = -0.005         # per metric: head - base, oriented (> 0 = better)
    max_energy_j = 500                # per test, absolute: checked without a baseline too
    max_co2e_g = 0.1                  # per test, absolute
    max_total_time_increase_pct = 10  # the run total (paired tests); also _flops_, _energy_
    max_total_energy_j = 5000         # the run total, absolute; also max_total_co2e_g
    fail_on = ["worse", "costlier-at-equal-quality"]   # verdicts that fail (the default)
    # How to compare (the defaults shown); the greennlp command's flags override them:
    allow_hardware_mismatch = false   # true: compare time/energy across CPU/GPU models
    allow_method_mismatch = false     # true: compare energy read by different methods
    alpha = 0.05                      # level of the Welch t-test
    min_effect = 0.05                 # smallest relative cost change that counts
    quality_tol = 0.001               # metric changes within tol * max(1, |base|) are equal

`evaluate_gates` turns a comparison (or None, without a baseline) and the head report
into a `GateResult`: one line per failed limit. Time and energy increases fail only
when the change is beyond the noise (Welch test, see `compare`); with too few runs
they are listed as unchecked, never failed. FLOPs and metric limits still apply when
the hardware differs; time and energy limits then are unchecked.

`GatePlugin` is registered by ``plugin.py`` under ``pytest --green --green-baseline
BASE.json``: it reads the baseline when pytest configures (a bad file is a one-line
usage error, exit status 4), compares after the report is written, prints a
``greennlp gate`` section and turns a passing run's exit status into
`EXIT_REGRESSION` (6) when a gate fails. It never changes a test's outcome. A missing
baseline file is a notice and the run passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_greennlp.compare import (
    VERDICTS,
    Comparison,
    Delta,
    compare_reports,
    printable,
    render_comparison,
)
from pytest_greennlp.errors import ConfigError
from pytest_greennlp.records import Report, TestRecord, to_dict

if TYPE_CHECKING:
    from pytest_greennlp.session import GreenSession

__all__ = [
    "COMPARE_SETTINGS",
    "DEFAULT_FAIL_ON",
    "EXIT_REGRESSION",
    "RUN_LIMITS",
    "TEST_LIMITS",
    "CompareSettings",
    "GateFailure",
    "GatePlugin",
    "GateResult",
    "Limits",
    "RunLimits",
    "TestLimits",
    "evaluate_gates",
    "load_limits",
    "parse_limits",
    "render_gate",
]

#: pytest exit status of a run whose tests passed but whose efficiency gate failed
#: (pytest's own statuses are 0-5).
EXIT_REGRESSION = 6

#: Verdicts that fail the gate unless ``fail_on`` says otherwise.
DEFAULT_FAIL_ON: tuple[str, ...] = ("worse", "costlier-at-equal-quality")


@dataclass(frozen=True)
class TestLimits:
    """Limits of one test; None means no limit. Percentages are relative to the baseline."""

    __test__ = False  # not a pytest test class

    max_flops_increase_pct: float | None = None
    max_energy_increase_pct: float | None = None
    max_time_increase_pct: float | None = None
    min_metric_delta: float | None = None
    max_energy_j: float | None = None
    max_co2e_g: float | None = None


@dataclass(frozen=True)
class RunLimits:
    """Limits of the run total (the sums over paired tests; absolute ones over all tests)."""

    max_total_flops_increase_pct: float | None = None
    max_total_energy_increase_pct: float | None = None
    max_total_time_increase_pct: float | None = None
    max_total_energy_j: float | None = None
    max_total_co2e_g: float | None = None


#: Keys of a test's limits (in ``[tool.greennlp.limits]`` and as marker arguments).
TEST_LIMITS = tuple(f.name for f in dataclasses.fields(TestLimits))
#: Keys of the run's limits (``[tool.greennlp.limits]`` only).
RUN_LIMITS = tuple(f.name for f in dataclasses.fields(RunLimits))
#: The limits that need a baseline.
_RELATIVE = frozenset({
    "max_flops_increase_pct", "max_energy_increase_pct", "max_time_increase_pct",
    "min_metric_delta", "max_total_flops_increase_pct", "max_total_energy_increase_pct",
    "max_total_time_increase_pct",
})


@dataclass(frozen=True)
class CompareSettings:
    """How the gate compares: the keyword arguments of `compare.compare_reports`."""

    allow_hardware_mismatch: bool = False
    allow_method_mismatch: bool = False
    alpha: float = 0.05
    min_effect: float = 0.05
    quality_tol: float = 1e-3


#: Keys of the comparison settings (``[tool.greennlp.limits]``).
COMPARE_SETTINGS = tuple(f.name for f in dataclasses.fields(CompareSettings))


@dataclass(frozen=True)
class Limits:
    """Every limit of a run: the table's defaults per test, the run's, ``fail_on``, settings."""

    tests: TestLimits = field(default_factory=TestLimits)
    run: RunLimits = field(default_factory=RunLimits)
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON
    compare: CompareSettings = field(default_factory=CompareSettings)

    def for_test(self, record: TestRecord | None) -> TestLimits:
        """The table's limits with the test's marker arguments on top."""
        if record is None:
            return self.tests
        own = {k: float(v) for k, v in record.limits.items() if k in TEST_LIMITS}
        return dataclasses.replace(self.tests, **own)


def _limit_value(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def parse_limits(table: object, origin: str = "[tool.greennlp.limits]") -> Limits:
    """Build `Limits` from a ``[tool.greennlp.limits]`` table (None: no limits).

    Raises
    ------
    ConfigError
        One line naming the key and what was expected.
    """
    if table is None:
        return Limits()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin} must be a table, got {table!r}")
    known = {*TEST_LIMITS, *RUN_LIMITS, *COMPARE_SETTINGS, "fail_on"}
    unknown = sorted(str(k) for k in table if k not in known)
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key {unknown[0]!r}; expected one of {', '.join(sorted(known))}"
        )
    tests = {k: _limit_value(table[k], f"{origin} {k}") for k in TEST_LIMITS if k in table}
    run = {k: _limit_value(table[k], f"{origin} {k}") for k in RUN_LIMITS if k in table}
    fail_on = table.get("fail_on", DEFAULT_FAIL_ON)
    if isinstance(fail_on, str) or not isinstance(fail_on, (list, tuple)) or not all(
        v in VERDICTS for v in fail_on
    ):
        raise ConfigError(
            f"{origin} fail_on must be a list of verdicts ({', '.join(VERDICTS)}), got {fail_on!r}"
        )
    return Limits(tests=TestLimits(**tests), run=RunLimits(**run), fail_on=tuple(fail_on),
                  compare=_compare_settings(table, origin))


def _compare_settings(table: Mapping[str, object], origin: str) -> CompareSettings:
    values: dict[str, Any] = {}
    for key in ("allow_hardware_mismatch", "allow_method_mismatch"):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(f"{origin} {key} must be true or false, got {table[key]!r}")
            values[key] = table[key]
    for key in ("alpha", "min_effect", "quality_tol"):
        if key in table:
            value = _limit_value(table[key], f"{origin} {key}")
            low_ok = value > 0.0 if key == "alpha" else value >= 0.0
            high_ok = value < 1.0 if key == "alpha" else math.isfinite(value)
            if not (low_ok and high_ok):
                what = "between 0 and 1, exclusive" if key == "alpha" else "a finite number >= 0"
                raise ConfigError(f"{origin} {key} must be {what}, got {table[key]!r}")
            values[key] = value
    return CompareSettings(**values)


def load_limits(pyproject: Path) -> Limits:
    """Return the limits of ``pyproject``'s ``[tool.greennlp.limits]`` (none if absent)."""
    from pytest_greennlp.config import load_tool_table

    table = load_tool_table(pyproject)
    return parse_limits(table.get("limits"), f"[tool.greennlp.limits] in {pyproject}")


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateFailure:
    """One limit a test (``nodeid``) or the run total (``nodeid`` None) exceeded."""

    nodeid: str | None
    limit: str
    message: str


@dataclass(frozen=True)
class GateResult:
    """What `evaluate_gates` found: failures, and limits it could not check (with why)."""

    failures: tuple[GateFailure, ...]
    unchecked: tuple[str, ...]
    compared: bool

    @property
    def passed(self) -> bool:
        """True when no limit failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**to_dict(self), "passed": self.passed}


def _energy_of(record: TestRecord) -> tuple[float | None, str]:
    energy = record.energy
    if energy is None:
        return None, ""
    if energy.measured_j is not None and math.isfinite(energy.measured_j):
        return energy.measured_j, "measured"
    if energy.estimated_j is not None and math.isfinite(energy.estimated_j):
        return energy.estimated_j, "estimated"
    return None, ""


def _co2e_of(record: TestRecord) -> tuple[float | None, str]:
    co2e = record.co2e
    if co2e is None:
        return None, ""
    if co2e.from_measured_g is not None and math.isfinite(co2e.from_measured_g):
        return co2e.from_measured_g, "measured"
    if co2e.from_estimated_g is not None and math.isfinite(co2e.from_estimated_g):
        return co2e.from_estimated_g, "estimated"
    return None, ""


class _Collector:
    def __init__(self) -> None:
        self.failures: list[GateFailure] = []
        self.unchecked: list[str] = []

    def fail(self, nodeid: str | None, limit: str, message: str) -> None:
        self.failures.append(GateFailure(nodeid, limit, message))

    def absolute(self, nodeid: str | None, limit: str, allowed: float | None,
                 value: float | None, basis: str, what: str, unit: str) -> None:
        if allowed is None:
            return
        who = nodeid or "run total"
        if value is None:
            self.unchecked.append(f"{who}: {limit} not checked: no {what} figure")
        elif value > allowed:
            self.fail(nodeid, limit,
                      f"{who}: {what} {value:.4g} {unit} ({basis}) exceeds {limit} = {allowed:g}")

    def increase(self, nodeid: str | None, limit: str, allowed: float | None,
                 delta: Delta | None, refused: Sequence[str] = ()) -> None:
        if allowed is None:
            return
        who = nodeid or "run total"
        if delta is None or delta.change == "n/a":
            why = "no figure on both sides" if delta is None else delta.test
            self.unchecked.append(f"{who}: {limit} not checked: {why}")
            return
        if delta.quantity in refused:
            self.unchecked.append(f"{who}: {limit} not checked: {delta.quantity} is incomparable")
            return
        assert delta.base is not None and delta.head is not None
        label = {"time": "time", "flops": "FLOPs", "energy": "energy", "co2e": "CO2e"}[delta.quantity]
        if delta.pct is None:  # from zero
            exceeded = delta.head > delta.base
            size = f"rose from 0 to {delta.head:.4g} {delta.unit}"
        else:
            exceeded = delta.pct > allowed
            size = f"{delta.pct:+.1f}% ({delta.base:.4g} -> {delta.head:.4g} {delta.unit})"
        if not exceeded:
            return
        if delta.significant:
            how = "" if delta.quantity == "flops" else f", {delta.test}"
            self.fail(nodeid, limit, f"{who}: {label} {size} exceeds {limit} = {allowed:g}{how}")
        elif delta.significant is None:
            self.unchecked.append(f"{who}: {limit} not checked: {label} {size} but {delta.test}")
        else:
            self.unchecked.append(
                f"{who}: {limit} passed: {label} {size} is within the noise ({delta.test})"
            )


def evaluate_gates(comparison: Comparison | None, head: Report, limits: Limits) -> GateResult:
    """Check ``limits`` against ``comparison`` (None: no baseline) and ``head``'s figures.

    Per test, the limits are the table's with the test's marker arguments on top
    (`Limits.for_test`). A verdict listed in ``limits.fail_on`` fails; an increase
    above a ``max_*_increase_pct`` fails when the change is significant (FLOPs: any
    change; time and energy: the Welch test of `compare`); a metric whose oriented
    change (``gain``) is below ``min_metric_delta``, or that head no longer reports,
    fails; absolute budgets (``max_energy_j``, ``max_co2e_g`` and the run totals) are
    checked on head alone, on measured energy where there is some, else estimated.

    Parameters
    ----------
    comparison : Comparison or None, required
        From `compare.compare_reports`; None checks the absolute budgets only.
    head : Report, required
        The report being gated (its tests carry their marker limits).
    limits : Limits, required
        From `parse_limits` or `load_limits`.

    Returns
    -------
    GateResult
    """
    out = _Collector()
    records = {t.nodeid: t for t in head.tests}
    for record in head.tests:
        own = limits.for_test(record)
        value, basis = _energy_of(record)
        out.absolute(record.nodeid, "max_energy_j", own.max_energy_j, value, basis, "energy", "J")
        value, basis = _co2e_of(record)
        out.absolute(record.nodeid, "max_co2e_g", own.max_co2e_g, value, basis, "CO2e", "g")
    t = head.totals
    total_j: float | None
    total_g: float | None
    if t.measured_j is not None:
        total_j, basis_j = t.measured_j, "measured"
    else:
        total_j, basis_j = t.estimated_j, "estimated"
    if t.co2e_from_measured_g is not None:
        total_g, basis_g = t.co2e_from_measured_g, "measured"
    else:
        total_g, basis_g = t.co2e_from_estimated_g, "estimated"
    out.absolute(None, "max_total_energy_j", limits.run.max_total_energy_j, total_j, basis_j,
                 "energy", "J")
    out.absolute(None, "max_total_co2e_g", limits.run.max_total_co2e_g, total_g, basis_g,
                 "CO2e", "g")
    if comparison is None:
        given = {k for k in TEST_LIMITS if getattr(limits.tests, k) is not None}
        given |= {k for k in RUN_LIMITS if getattr(limits.run, k) is not None}
        given |= {k for r in head.tests for k in r.limits}
        if given & _RELATIVE:
            out.unchecked.append("limits relative to a baseline not checked: no baseline")
        return GateResult(tuple(out.failures), tuple(out.unchecked), compared=False)

    for test in comparison.tests:
        own = limits.for_test(records.get(test.nodeid))
        if test.verdict in limits.fail_on:
            out.fail(test.nodeid, "fail_on", f"{test.nodeid}: {test.verdict}: {test.price or test.reason}")
        out.increase(test.nodeid, "max_flops_increase_pct", own.max_flops_increase_pct, test.flops)
        out.increase(test.nodeid, "max_time_increase_pct", own.max_time_increase_pct, test.time,
                     test.refused)
        out.increase(test.nodeid, "max_energy_increase_pct", own.max_energy_increase_pct,
                     test.energy, test.refused)
        if own.min_metric_delta is not None:
            _check_metrics(out, comparison, test.nodeid, test.metrics, test.missing_metrics,
                           test.trial_groups, own.min_metric_delta)
    total = comparison.total
    if total.verdict in limits.fail_on and not any(f.limit == "fail_on" for f in out.failures):
        out.fail(None, "fail_on", f"run total: {total.verdict}: {total.price or total.reason}")
    run = limits.run
    out.increase(None, "max_total_flops_increase_pct", run.max_total_flops_increase_pct, total.flops)
    out.increase(None, "max_total_time_increase_pct", run.max_total_time_increase_pct, total.time)
    out.increase(None, "max_total_energy_increase_pct", run.max_total_energy_increase_pct,
                 total.energy)
    return GateResult(tuple(out.failures), tuple(out.unchecked), compared=True)


def _check_metrics(
    out: _Collector,
    comparison: Comparison,
    nodeid: str,
    metrics: Sequence[Any],
    missing: Sequence[str],
    groups: Sequence[str],
    allowed: float,
) -> None:
    for name in missing:
        out.fail(nodeid, "min_metric_delta",
                 f"{nodeid}: metric {name!r} is in the baseline but not reported any more")
    for metric in metrics:
        if metric.gain is None:
            out.unchecked.append(f"{nodeid}: min_metric_delta not checked for {metric.name!r}: "
                                 "no value on both sides")
        elif metric.gain < allowed:
            out.fail(nodeid, "min_metric_delta",
                     f"{nodeid}: metric {metric.name!r} changed by {metric.difference:+.4g} "
                     f"({metric.base:.4g} -> {metric.head:.4g}), below min_metric_delta = {allowed:g}")
    trials = {t.group: t for t in comparison.trials}
    for group in groups:
        trial = trials.get(group)
        if trial is None or trial.gain is None:
            out.unchecked.append(f"{nodeid}: min_metric_delta not checked for trials {group!r}")
        elif trial.gain < allowed:
            out.fail(nodeid, "min_metric_delta",
                     f"{nodeid}: trials {group!r}: expected best at equal budget changed by "
                     f"{trial.gain:+.4g} (oriented), below min_metric_delta = {allowed:g}")


def render_gate(result: GateResult) -> list[str]:
    """Return the gate's outcome as terminal lines, failures first."""
    lines = [printable(f"FAILED {f.message}") for f in result.failures]
    lines += [printable(f"note: {u}") for u in result.unchecked]
    state = "passed" if result.passed else f"{len(result.failures)} limit(s) failed"
    lines.append(f"greennlp gate: {state}")
    return lines


# --- pytest ------------------------------------------------------------------------------


class GatePlugin:
    """Compares the run's report with a baseline and gates the exit status.

    Registered by ``plugin.py`` on the controller only, under ``--green-baseline``.
    """

    def __init__(
        self, session: GreenSession, baseline_path: Path, baseline: Report | None, limits: Limits
    ) -> None:
        self.session = session
        self.baseline_path = baseline_path
        self.baseline = baseline
        self.limits = limits
        self.lines: list[str] = []

    @classmethod
    def load(cls, session: GreenSession, baseline_path: Path, limits: Limits) -> GatePlugin:
        """Read the baseline now, before this run's report may overwrite it.

        Raises
        ------
        ReportError
            The file exists but is not a readable report of this schema version.
        """
        from pytest_greennlp.report import read_report

        baseline = None
        if baseline_path.exists() or baseline_path.is_symlink():
            baseline = read_report(baseline_path)
        return cls(session, baseline_path, baseline, limits)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int
    ) -> Generator[None, None, None]:
        # A trylast wrapper is the innermost one: this runs after the session's own
        # sessionfinish wrote the final report and before the terminal summary.
        result = yield
        report = self.session.report
        if report is None or not report.complete:
            self.lines = ["greennlp gate: skipped, the run did not complete"]
            return result
        comparison = None
        if self.baseline is None:
            self.lines = [f"greennlp gate: no baseline at {self.baseline_path}; nothing compared"]
        else:
            comparison = compare_reports(
                self.baseline, report, **dataclasses.asdict(self.limits.compare)
            )
            self.lines = [f"baseline: {self.baseline_path}", *render_comparison(comparison)]
        gate = evaluate_gates(comparison, report, self.limits)
        self.lines += render_gate(gate)
        if not gate.passed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = EXIT_REGRESSION
            self.lines.append(f"greennlp gate: exit status {EXIT_REGRESSION} (efficiency regression)")
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines:
            return
        terminalreporter.write_sep("-", "greennlp gate")
        for line in self.lines:
            terminalreporter.write_line(line)
