"""`gate`: limits, their evaluation, and ``pytest --green --green-baseline`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from reportfactory import energy, record, report

from pytest_greennlp.compare import compare_reports
from pytest_greennlp.errors import ConfigError
from pytest_greennlp.gate import (
    EXIT_REGRESSION,
    CompareSettings,
    Limits,
    RunLimits,
    TestLimits,
    evaluate_gates,
    parse_limits,
    render_gate,
)

FIVE_1S = [1.0, 1.01, 0.99, 1.02, 0.98]


def gate(base: object, head: object, limits: Limits) -> list[str]:
    """Messages of the failed limits."""
    comparison = None if base is None else compare_reports(base, head)  # type: ignore[arg-type]
    result = evaluate_gates(comparison, head, limits)  # type: ignore[arg-type]
    return [f.message for f in result.failures]


# --- limits ----------------------------------------------------------------------------------


def test_parse_limits() -> None:
    limits = parse_limits({"max_flops_increase_pct": 0, "max_total_energy_j": 10.5,
                           "fail_on": ["worse"]})
    assert limits.tests == TestLimits(max_flops_increase_pct=0.0)
    assert limits.run == RunLimits(max_total_energy_j=10.5)
    assert limits.fail_on == ("worse",)
    assert parse_limits(None) == Limits()
    settings = parse_limits({"allow_hardware_mismatch": True, "alpha": 0.01, "min_effect": 0}).compare
    assert settings == CompareSettings(allow_hardware_mismatch=True, alpha=0.01, min_effect=0.0)
    assert Limits().fail_on == ("worse", "costlier-at-equal-quality")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_flops": 1}, "[tool.greennlp.limits]: unknown key 'max_flops'; expected one of allow_hardware_mismatch, "),
        ({"max_energy_j": "lots"}, "[tool.greennlp.limits] max_energy_j must be a number, got 'lots'"),
        ({"max_energy_j": True}, "[tool.greennlp.limits] max_energy_j must be a number, got True"),
        ({"fail_on": "worse"}, "[tool.greennlp.limits] fail_on must be a list of verdicts"),
        ({"fail_on": ["bad"]}, "[tool.greennlp.limits] fail_on must be a list of verdicts"),
        ([1], "[tool.greennlp.limits] must be a table, got [1]"),
        ({"alpha": 1}, "[tool.greennlp.limits] alpha must be between 0 and 1, exclusive, got 1"),
        ({"min_effect": -0.1}, "[tool.greennlp.limits] min_effect must be a finite number >= 0"),
        ({"allow_method_mismatch": "yes"},
         "[tool.greennlp.limits] allow_method_mismatch must be true or false, got 'yes'"),
    ],
)
def test_bad_limits_are_one_line(table: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_limits(table)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_marker_limits_override_the_table() -> None:
    limits = Limits(tests=TestLimits(max_flops_increase_pct=50.0, max_energy_j=1.0))
    own = limits.for_test(record(limits={"max_flops_increase_pct": 0.0, "examples": 3.0}))
    assert own == TestLimits(max_flops_increase_pct=0.0, max_energy_j=1.0)


# --- evaluation ----------------------------------------------------------------------------


def test_flops_gate_strictly() -> None:
    base, head = report(record(flops=1000)), report(record(flops=1010))
    none = Limits(fail_on=())
    assert gate(base, head, none) == []  # +1% is below the min effect: no verdict failure
    strict = Limits(tests=TestLimits(max_flops_increase_pct=0.0), fail_on=())
    assert gate(base, head, strict) == [
        ("tests/test_model.py::test_a: FLOPs +1.0% (1000 -> 1010 FLOPs) exceeds "
        "max_flops_increase_pct = 0")
    ]
    per_test = report(record(flops=1010, limits={"max_flops_increase_pct": 2.0}))
    assert gate(base, per_test, strict) == []


def test_time_gates_only_beyond_the_noise() -> None:
    limits = Limits(tests=TestLimits(max_time_increase_pct=10.0), fail_on=())
    one_run = evaluate_gates(compare_reports(report(record(wall=1.0)), report(record(wall=2.0))),
                             report(record(wall=2.0)), limits)
    assert one_run.passed
    assert one_run.unchecked == (
        ("tests/test_model.py::test_a: max_time_increase_pct not checked: time +100.0% "
        "(1 -> 2 s) but too few runs to test (1 vs 1; need 3 per side)"),
    )
    base, head = report(record(wall=FIVE_1S)), report(record(wall=[v * 1.5 for v in FIVE_1S]))
    (message,) = gate(base, head, limits)
    assert message.startswith("tests/test_model.py::test_a: time +50.0% (1 -> 1.5 s) exceeds "
                              "max_time_increase_pct = 10, Welch t-test on log samples, p=")


def test_energy_increase_and_absolute_budgets() -> None:
    base = report(record(energy_=energy(measured=[1.0, 1.0, 1.0])))
    head = report(record(energy_=energy(measured=[3.0, 3.0, 3.0], estimated=9.0)))
    limits = Limits(tests=TestLimits(max_energy_increase_pct=5.0, max_energy_j=2.0,
                                     max_co2e_g=1.0), fail_on=())
    assert gate(base, head, limits) == [
        "tests/test_model.py::test_a: energy 3 J (measured) exceeds max_energy_j = 2",
        ("tests/test_model.py::test_a: energy +200.0% (1 -> 3 J) exceeds max_energy_increase_pct = 5, "
        "Welch t-test on log samples, p=0 (3 vs 3 runs)"),
    ]


def test_absolute_budgets_without_a_baseline() -> None:
    head = report(record("t::a", energy_=energy(estimated=5.0)), record("t::b", energy_=energy(estimated=1.0)))
    limits = Limits(tests=TestLimits(max_energy_j=4.0, min_metric_delta=0.0),
                    run=RunLimits(max_total_energy_j=5.5))
    result = evaluate_gates(None, head, limits)
    assert [f.message for f in result.failures] == [
        "t::a: energy 5 J (estimated) exceeds max_energy_j = 4",
        "run total: energy 6 J (estimated) exceeds max_total_energy_j = 5.5",
    ]
    assert result.unchecked == ("limits relative to a baseline not checked: no baseline",)
    assert not result.compared
    assert render_gate(result)[-1] == "greennlp gate: 2 limit(s) failed"


def test_metric_limits() -> None:
    limits = Limits(tests=TestLimits(min_metric_delta=-0.01), fail_on=())
    base = report(record(metrics={"acc": 0.9, "f1": 0.8}))
    assert gate(base, report(record(metrics={"acc": 0.895, "f1": 0.8})), limits) == []
    assert gate(base, report(record(metrics={"acc": 0.85, "f1": 0.8})), limits) == [
        ("tests/test_model.py::test_a: metric 'acc' changed by -0.05 (0.9 -> 0.85), "
        "below min_metric_delta = -0.01")
    ]
    assert gate(base, report(record(metrics={"acc": 0.9})), limits) == [
        "tests/test_model.py::test_a: metric 'f1' is in the baseline but not reported any more"
    ]


def test_verdicts_fail_per_fail_on() -> None:
    base, head = report(record(flops=100)), report(record(flops=200))
    assert gate(base, head, Limits()) == [
        ("tests/test_model.py::test_a: costlier-at-equal-quality: no metric; passed on both sides; "
        "FLOPs +100.0%"),
    ]  # the run total's verdict adds no second failure
    assert gate(base, head, Limits(fail_on=())) == []


def test_run_total_increase() -> None:
    base = report(record("t::a", flops=100), record("t::b", flops=100))
    head = report(record("t::a", flops=104), record("t::b", flops=104))
    limits = Limits(run=RunLimits(max_total_flops_increase_pct=3.0), fail_on=())
    assert gate(base, head, limits) == [
        "run total: FLOPs +4.0% (200 -> 208 FLOPs) exceeds max_total_flops_increase_pct = 3"
    ]


def test_incomparable_time_is_not_gated() -> None:
    from reportfactory import fingerprint

    base = report(record(wall=FIVE_1S, flops=1), fp=fingerprint(cpu="A"))
    head = report(record(wall=[v * 3 for v in FIVE_1S], flops=2), fp=fingerprint(cpu="B"))
    limits = Limits(tests=TestLimits(max_time_increase_pct=1.0, max_flops_increase_pct=0.0))
    result = evaluate_gates(compare_reports(base, head), head, limits)
    assert [f.limit for f in result.failures] == ["max_flops_increase_pct"]
    assert any("time is incomparable" in u for u in result.unchecked)


# --- pytest --green --green-baseline -------------------------------------------------------

MODEL_TEST = """
import os, pytest

@pytest.mark.green_infer
def test_model(green):
    green.flops(int(os.environ["GREEN_FLOPS"]))
    green.metric("accuracy", 0.9)
"""


@pytest.fixture
def baseline(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A baseline written by a real run with 1000 FLOPs."""
    pytester.makepyfile(MODEL_TEST)
    monkeypatch.setenv("GREEN_FLOPS", "1000")
    result = pytester.runpytest("--green", "--green-energy", "none", "-p", "no:cacheprovider")
    assert result.ret == 0
    path = pytester.path / "base.json"
    shutil.copy(pytester.path / "green-report.json", path)
    return path


def test_regression_sets_a_distinct_exit_status(
    pytester: pytest.Pytester, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREEN_FLOPS", "2000")
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-baseline", "base.json")
    result.assert_outcomes(passed=1)  # the test itself still passes
    assert result.ret == EXIT_REGRESSION == 6
    result.stdout.fnmatch_lines([
        "*greennlp gate*",
        "baseline: *base.json",
        "*test_model*costlier-at-equal-quality*+100.0% !*",
        "FAILED *::test_model: costlier-at-equal-quality: accuracy +0 (equal); FLOPs +100.0%*",
        "greennlp gate: exit status 6 (efficiency regression)",
    ])


def test_unchanged_run_passes(
    pytester: pytest.Pytester, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyprojecttoml("[tool.greennlp.limits]\nmax_flops_increase_pct = 0\n")
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-baseline", "base.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_model*unchanged*", "greennlp gate: passed"])


def test_marker_limit_and_pyproject_limits(
    pytester: pytest.Pytester, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyprojecttoml('[tool.greennlp]\nbaseline = "base.json"\n'
                               "[tool.greennlp.limits]\nfail_on = []\nmax_flops_increase_pct = 5\n")
    monkeypatch.setenv("GREEN_FLOPS", "1040")
    result = pytester.runpytest("--green", "--green-energy", "none")
    assert result.ret == 0
    pytester.makepyfile(MODEL_TEST.replace("green_infer", "green_infer(max_flops_increase_pct=1)"))
    result = pytester.runpytest("--green", "--green-energy", "none")
    assert result.ret == EXIT_REGRESSION
    result.stdout.fnmatch_lines([("FAILED *test_model: FLOPs +4.0% (1000 -> 1040 FLOPs) exceeds "
                                 "max_flops_increase_pct = 1")])


def test_hardware_override_from_pyproject(
    pytester: pytest.Pytester, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads(baseline.read_text())
    data["fingerprint"]["cpu_model"] = "Some Other CPU"
    baseline.write_text(json.dumps(data))
    monkeypatch.setenv("GREEN_FLOPS", "2000")
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-baseline", "base.json")
    assert result.ret == 0  # incomparable is not a regression
    result.stdout.fnmatch_lines(["REFUSED: hardware differs: cpu_model 'Some Other CPU' vs *",
                                 "*test_model*incomparable*"])
    pytester.makepyprojecttoml("[tool.greennlp.limits]\nallow_hardware_mismatch = true\n")
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-baseline", "base.json")
    assert result.ret == EXIT_REGRESSION
    result.stdout.fnmatch_lines(["note: hardware differs: *; compared anyway*"])


def test_missing_baseline_is_a_notice_and_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(MODEL_TEST)
    monkeypatch.setenv("GREEN_FLOPS", "1")
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-baseline", "nope.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["greennlp gate: no baseline at *nope.json; nothing compared",
                                 "greennlp gate: passed"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"schema_version": 1, "tests": [', "is not valid JSON"),
        (b'{"schema_version": 99}', "has schema_version 99, newer than 1; upgrade pytest-greennlp"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not valid JSON"),
        (b"[" * 200_000, "is nested too deeply to be a report"),
    ],
)
def test_bad_baseline_is_a_one_line_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, content: bytes, problem: str
) -> None:
    pytester.makepyfile(MODEL_TEST)
    monkeypatch.setenv("GREEN_FLOPS", "1")
    (pytester.path / "bad.json").write_bytes(content)
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-baseline", "bad.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("ERROR: pytest-greennlp: ") and "bad.json: " + problem in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "green-report.json").exists()  # no test ran


def test_baseline_that_is_the_report_path_is_read_first(
    pytester: pytest.Pytester, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREEN_FLOPS", "3000")
    result = pytester.runpytest("--green", "--green-energy", "none",
                                "--green-baseline", "green-report.json")
    assert result.ret == EXIT_REGRESSION
    data = json.loads((pytester.path / "green-report.json").read_text())
    assert data["tests"][0]["flops"]["total"] == 3000
