"""Real pytest sessions of the plugin, run with `pytester`; energy comes from stand-in readers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from installed import require

from pytest_greennlp.errors import GreenNLPWarning, MeterUnavailableWarning
from pytest_greennlp.records import Report
from pytest_greennlp.report import read_report

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "pytest_greennlp" / "schema" / "green-report.schema.json").read_text()
)

#: A stand-in measured counter: every read adds 1.5 J, so one window costs exactly 1.5 J.
FAKE_METER = """
import pytest

class CounterReader:
    domain = "fake"
    method = "fake-counter"
    measured = True
    source = "stand-in counter"
    scope = "machine"

    def __init__(self):
        self.j = 0.0

    def open(self):
        pass

    def read_j(self):
        self.j += 1.5
        return self.j

    def close(self):
        pass

def pytest_greennlp_energy_readers(config):
    return [CounterReader()]
"""


def load(pytester: pytest.Pytester, name: str = "green-report.json") -> dict[str, Any]:
    path = pytester.path / name
    data = json.loads(path.read_text())
    jsonschema.validate(data, SCHEMA)
    read_report(path)  # the strict reader accepts what the plugin wrote
    return data


def by_id(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["nodeid"].split("::")[-1]: t for t in data["tests"]}


def test_inert_without_green(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys, pytest

        @pytest.mark.green_infer(examples=3)
        def test_marked(green):
            green.metric("accuracy", 0.5)
            green.trial(0.4)
            with green.measure():
                pass
            assert not green.enabled
            heavy = {"torch", "codecarbon", "matplotlib", "pandas", "numpy", "pytest_greennlp.session"}
            assert not heavy & set(sys.modules), heavy & set(sys.modules)
        """
    )
    result = pytester.runpytest_subprocess("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "green-report.json").exists()
    assert "price tags" not in result.stdout.str()


def test_version_matches_the_installed_distribution() -> None:
    # A constant, so that importing the plugin at every pytest start-up does not look the
    # distribution up; pyproject.toml reads it from `pytest_greennlp._version`.
    from importlib.metadata import version

    import pytest_greennlp

    assert pytest_greennlp.__version__ == version("pytest-greennlp")


def test_report_outcomes_and_figures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_METER)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_train(examples=64, tokens=8192)
        def test_train(green):
            green.metric("accuracy", 0.91)
            green.metric("loss", 0.3, higher_is_better=False)

        @pytest.mark.green_infer
        def test_fails():
            assert False

        @pytest.mark.green_infer
        def test_skips():
            pytest.skip("no data")

        @pytest.mark.green_infer
        @pytest.mark.xfail(reason="known")
        def test_xfails():
            assert False

        @pytest.fixture
        def broken():
            raise RuntimeError("setup")

        @pytest.mark.green_infer
        def test_setup_error(broken):
            pass

        def test_unmarked():
            pass
        """
    )
    result = pytester.runpytest("--green", "--green-region", "FRA", "--green-pue", "1.5")
    result.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1, errors=1)
    data = load(pytester)
    assert data["complete"] is True and data["exit_status"] == 1
    tests = by_id(data)
    assert set(tests) == {"test_train", "test_fails", "test_skips", "test_xfails", "test_setup_error"}
    assert {k: t["outcome"] for k, t in tests.items()} == {
        "test_train": "passed", "test_fails": "failed", "test_skips": "skipped",
        "test_xfails": "xfailed", "test_setup_error": "error",
    }
    train = tests["test_train"]
    assert train["kind"] == "train" and train["examples"] == 64 and train["tokens"] == 8192
    assert train["metrics"] == [
        {"name": "accuracy", "value": 0.91, "higher_is_better": True},
        {"name": "loss", "value": 0.3, "higher_is_better": False},
    ]
    assert train["timing"]["wall_s"] >= 0 and len(train["timing"]["wall_samples_s"]) == 1
    energy = train["energy"]
    # The stand-in counter is measured; this machine's CPU and RAM only have estimates.
    assert energy["measured_j"] == pytest.approx(1.5) and energy["estimated_j"] > 0
    assert energy["parts"][0] == {"domain": "fake", "energy_j": 1.5, "method": "fake-counter",
                                  "measured": True, "source": "stand-in counter", "scope": "machine"}
    assert {p["domain"]: p["measured"] for p in energy["parts"][1:]} == {"cpu": False, "ram": False}
    carbon = data["carbon"]
    assert carbon["region"] == "FRA" and carbon["pue"] == 1.5 and carbon["year"] == 2023
    assert train["co2e"]["from_measured_g"] == pytest.approx(1.5 / 3.6e6 * 1.5 * carbon["g_per_kwh"])
    assert train["co2e"]["from_estimated_g"] == pytest.approx(
        energy["estimated_j"] / 3.6e6 * 1.5 * carbon["g_per_kwh"])
    assert train["memory"]["peak_rss_bytes"] > 0
    assert tests["test_setup_error"]["timing"] is None
    assert data["totals"]["tests"] == 5
    assert data["fingerprint"]["cpu_count"] == os.cpu_count()
    out = result.stdout.str()
    assert "greennlp price tags" in out
    result.stdout.fnmatch_lines(["*_train  train*passed*1.5J meas*", "TOTAL * 5 tests*",
                                 "greennlp: report written to *green-report.json"])


def test_recorder_trials_regions_and_counts(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_METER)
    pytester.makepyfile(
        """
        import math, time, pytest

        @pytest.mark.green_train(examples=1)
        def test_trials(green):
            for seed, score in enumerate([0.5, float("nan"), 0.7]):
                time.sleep(0.01)
                green.examples(10)
                green.trial(score, seed=seed, config={"lr": 0.1 * (seed + 1)})
            green.trial(None, status="stopped", cost={"wall_s": 2.0, "flops": 10})
            green.tokens(5)
            green.note("three seeds")
            green.extra("custom", {"a": [1, 2]})

        @pytest.mark.green_infer
        def test_region(green):
            time.sleep(0.2)
            with green.measure():
                time.sleep(0.01)
        """
    )
    result = pytester.runpytest("--green")
    result.assert_outcomes(passed=2)
    tests = by_id(load(pytester))
    trials = tests["test_trials"]["trials"]
    assert [t["score"] for t in trials] == [0.5, None, 0.7, None]
    assert [t["status"] for t in trials] == ["ok", "failed", "ok", "stopped"]
    assert [t["seed"] for t in trials] == [0, 1, 2, None]
    assert {t["group"] for t in trials} == {"test_trials"}
    assert trials[0]["config"] == {"lr": 0.1}
    for trial in trials[:3]:
        assert trial["cost"]["wall_s"] >= 0.01
        assert trial["cost"]["measured_j"] == pytest.approx(1.5)
    assert trials[3]["cost"] == {"wall_s": 2.0, "cpu_s": None, "measured_j": None,
                                 "estimated_j": None, "flops": 10}
    assert tests["test_trials"]["examples"] == 30 and tests["test_trials"]["tokens"] == 5
    assert tests["test_trials"]["notes"] == ["three seeds"]
    assert tests["test_trials"]["extra"] == {"custom": {"a": [1, 2]}}
    region = tests["test_region"]["timing"]
    assert 0.01 <= region["wall_s"] < 0.15
    assert tests["test_region"]["energy"]["attribution"] == "region"


def test_repeats_and_warmup(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_METER)
    pytester.makepyfile(
        """
        import pytest
        CALLS = []

        @pytest.mark.green_infer
        def test_counted(green):
            CALLS.append(1)
            green.metric("calls", len(CALLS))

        def test_after():
            assert len(CALLS) == 2 + 3
        """
    )
    result = pytester.runpytest("--green", "--green-repeats", "3", "--green-warmup", "2")
    result.assert_outcomes(passed=2)
    test = by_id(load(pytester))["test_counted"]
    assert len(test["timing"]["wall_samples_s"]) == 3 and test["timing"]["warmup_runs"] == 2
    assert test["energy"]["samples_measured_j"] == [1.5, 1.5, 1.5]
    assert test["metrics"][0]["value"] == 3  # recorded in the first measured run only


def test_repeats_measure_regions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.green_infer
        def test_region(green):
            time.sleep(0.05)
            with green.measure():
                time.sleep(0.01)
        """
    )
    pytester.runpytest("--green", "--green-repeats", "3", "--green-energy", "none").assert_outcomes(passed=1)
    samples = load(pytester)["tests"][0]["timing"]["wall_samples_s"]
    assert len(samples) == 3 and all(0.01 <= s < 0.05 for s in samples)


@pytest.mark.filterwarnings("ignore::pytest_greennlp.errors.GreenNLPWarning")
def test_failing_meter_degrades_with_one_warning(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        class Flaky:
            domain, method, measured, source, scope = "flaky", "x", True, "flaky", "machine"
            def __init__(self): self.n = 0
            def open(self): pass
            def read_j(self):
                self.n += 1
                if self.n > 2:
                    raise OSError("device lost")
                return float(self.n)
            def close(self): pass

        class Broken(Flaky):
            domain = "broken"
            def open(self): raise PermissionError("denied")

        def pytest_greennlp_energy_readers(config):
            return [Flaky(), Broken()]
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        @pytest.mark.parametrize("i", range(3))
        def test_it(i):
            pass
        """
    )
    # In a subprocess: -W error must meet only this run's warnings.
    result = pytester.runpytest_subprocess("--green", "--green-energy", "none", "-W", "error")
    result.assert_outcomes(passed=3)
    data = load(pytester)
    energies = [t["energy"] for t in data["tests"]]
    assert energies[0]["measured_j"] == 1.0
    assert energies[1] is None and energies[2] is None
    notes = data["notes"]
    assert sum("broken" in n for n in notes) == 1
    assert sum("flaky" in n for n in notes) == 1


@pytest.mark.filterwarnings("ignore::pytest_greennlp.errors.GreenNLPWarning")
def test_read_only_report_dir_falls_back(pytester: pytest.Pytester, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = "/proc/green-report.json"  # not writable even for root
    else:  # pragma: no cover
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = str(ro / "r.json")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        def test_it():
            pass
        """
    )
    with pytest.warns(MeterUnavailableWarning, match="cannot write .*; wrote .* instead"):
        result = pytester.runpytest("--green", "--green-report", target, "--green-energy", "none")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["greennlp: report written to */green-report-*.json"])
    fallback = next(line for line in result.stdout.lines if "report written to" in line).split()[-1]
    assert read_report(fallback).complete
    Path(fallback).unlink()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--green-pue", "0.5"], "*--green-pue must be a number between 1.0 and 10.0, got '0.5'*"),
        (["--green-repeats", "zero"], "*--green-repeats must be an integer, got 'zero'*"),
        (["--green-warmup", "-1"], "*--green-warmup must be an integer >= 0, got '-1'*"),
        (["--green-region", "France"], "*--green-region must be an ISO 3166-1 alpha-3 country code*"),
        (["--green-region", "XYZ"], "*XYZ*"),
        (["--green-energy", "solar"], "*--green-energy: unknown energy source 'solar': expected one of auto*"),
        (["--green-table", "-3"], "*--green-table must be an integer >= 0, got '-3'*"),
    ],
)
def test_bad_option_is_one_line_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest("--green", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-greennlp: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_pyproject_table_and_ini_precedence(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        green_repeats = "2"

        [tool.greennlp]
        report = "out/tagged.json"
        repeats = 5
        pue = 1.2
        region = "fra"
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        def test_it():
            pass
        """
    )
    result = pytester.runpytest("--green", "--green-energy", "none")
    result.assert_outcomes(passed=1)
    data = load(pytester, "out/tagged.json")
    assert data["settings"]["repeats"] == 2  # ini beats [tool.greennlp]
    assert data["carbon"]["pue"] == 1.2 and data["carbon"]["region"] == "FRA"
    result = pytester.runpytest("--green", "--green-energy", "none", "--green-repeats", "1")
    assert load(pytester, "out/tagged.json")["settings"]["repeats"] == 1  # the command line wins


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[tool.greennlp]\nrepeats = 'many'\n", "*repeats must be an integer, got 'many'"),
        ("[tool.greennlp]\ncolour = 'green'\n", "*unknown key 'colour'; expected one of*"),
        ("[tool]\ngreennlp = 3\n", "*tool.greennlp? must be a table"),
    ],
)
def test_malformed_tool_table(pytester: pytest.Pytester, toml: str, message: str) -> None:
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    (pytester.path / "pyproject.toml").write_text(toml)
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest("--green", "--rootdir", str(pytester.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-greennlp: {message}"])


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    from pytest_greennlp.config import load_tool_table
    from pytest_greennlp.errors import ConfigError

    bad = tmp_path / "pyproject.toml"
    bad.write_text("[tool.greennlp\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: not valid TOML \(Expected ']'.*\)$"):
        load_tool_table(bad)
    assert load_tool_table(tmp_path / "missing.toml") == {}


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("green_train(examples=-1)", "*green_train(examples=...) must be an integer >= 0, got -1"),
        ("green_infer(speed=3)", "*got unknown argument 'speed'*"),
        ("green_infer(32)", "*takes keyword arguments only*"),
    ],
)
def test_bad_marker_arguments(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(f"import pytest\n@pytest.mark.{marker}\ndef test_it(): pass\n")
    result = pytester.runpytest("--green")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *{message}"])


def test_both_markers_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n@pytest.mark.green_train\n@pytest.mark.green_infer\ndef test_it(): pass\n"
    )
    result = pytester.runpytest("--green")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *marked both green_train and green_infer*"])


def test_terminal_table_shows_the_most_expensive_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        @pytest.mark.parametrize("n", [10, 300_000, 20])
        def test_work(n):
            sum(i * i for i in range(n))
        """
    )
    result = pytester.runpytest("--green", "--green-table", "1")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_work?300000?*", "... 2 cheaper tests not shown*",
                                 "TOTAL * 3 tests*"])
    assert "test_work[10]" not in result.stdout.str()
    assert len(load(pytester)["tests"]) == 3
    result = pytester.runpytest("--green", "--green-table", "0")
    assert "not shown" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_work?10?*"])


def test_markers_registered_and_options_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.green_train(*", "@pytest.mark.green_infer(*"])
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["price tags for ML tests (pytest-greennlp):", "*--green *",
                                 "*--green-report=PATH*", "*--green-repeats=N*"])


def test_junitxml_properties(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_METER)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        def test_it(green):
            green.metric("f1", 0.8)
        """
    )
    result = pytester.runpytest("--green", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1)
    xml = (pytester.path / "junit.xml").read_text()
    for name in ("green_wall_s", "green_cpu_s", "green_energy_measured_j",
                 "green_co2e_from_measured_g", "green_peak_rss_bytes", "green_metric_f1"):
        assert f'name="{name}"' in xml


def test_hooks_update_fingerprint_and_record(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_greennlp_update_fingerprint(config, fingerprint):
            fingerprint["extra"]["runner"] = "lab-7"

        def pytest_greennlp_update_record(config, item, record):
            record["extra"]["marker_seen"] = item.name
        """
    )
    pytester.makepyfile("import pytest\n@pytest.mark.green_infer\ndef test_it(): pass\n")
    pytester.runpytest("--green", "--green-energy", "none").assert_outcomes(passed=1)
    data = load(pytester)
    assert data["fingerprint"]["extra"] == {"runner": "lab-7"}
    assert data["tests"][0]["extra"] == {"marker_seen": "test_it"}


@pytest.mark.filterwarnings("ignore::pytest_greennlp.errors.GreenNLPWarning")
def test_raising_or_corrupting_record_hook_changes_no_outcome(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_greennlp_update_record(config, item, record):
            if item.name == "test_raises":
                raise KeyError("boom")
            record["timing"] = "fast"
        """
    )
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.green_infer\ndef test_raises(): pass\n"
        "@pytest.mark.green_infer\ndef test_corrupts(): assert False\n"
    )
    result = pytester.runpytest("--green", "--green-energy", "none")
    result.assert_outcomes(passed=1, failed=1)
    tests = {t["nodeid"].split("::")[-1]: t for t in load(pytester)["tests"]}
    assert tests["test_raises"]["timing"]["wall_s"] > 0  # kept unedited
    assert tests["test_corrupts"]["outcome"] == "failed" and tests["test_corrupts"]["timing"]
    notes = load(pytester)["notes"]
    assert any("pytest_greennlp_update_record raised KeyError" in n for n in notes)
    assert any("dropped a malformed record" in n and "::test_corrupts" in n for n in notes)


@pytest.mark.filterwarnings("ignore::pytest_greennlp.errors.GreenNLPWarning")
def test_bad_fingerprint_hook_falls_back(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_greennlp_update_fingerprint(config, fingerprint):
            fingerprint["cpu_count"] = "many"
        """
    )
    pytester.makepyfile("import pytest\n@pytest.mark.green_infer\ndef test_it(): pass\n")
    with pytest.warns(GreenNLPWarning, match="fingerprint hook returned bad data"):
        pytester.runpytest("--green", "--green-energy", "none").assert_outcomes(passed=1)
    data = load(pytester)
    assert data["fingerprint"]["cpu_count"] == os.cpu_count()
    assert any("cpu_count: expected an integer" in n for n in data["notes"])


def test_estimated_energy_on_this_machine(pytester: pytest.Pytester) -> None:
    """With no counters here, `auto` falls back to labelled estimates, never a silent 0."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_train
        def test_busy():
            sum(i * i for i in range(300_000))
        """
    )
    pytester.runpytest("--green").assert_outcomes(passed=1)
    data = load(pytester)
    energy = data["tests"][0]["energy"]
    if energy["measured_j"] is None:
        assert energy["estimated_j"] > 0
        assert all(not p["measured"] and p["method"].startswith("estimate") for p in energy["parts"])
    assert data["tests"][0]["co2e"]["from_estimated_g"] is not None or energy["measured_j"]


def test_interrupted_run_leaves_incomplete_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        def test_first():
            pass

        @pytest.mark.green_infer
        def test_ctrl_c():
            raise KeyboardInterrupt

        @pytest.mark.green_infer
        def test_never():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--green", "--green-energy", "none")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = load(pytester)
    assert data["complete"] is False and data["exit_status"] == 2
    assert set(by_id(data)) >= {"test_first"} and "test_never" not in by_id(data)
    result.stdout.fnmatch_lines(["greennlp: report written to *green-report.json (incomplete)"])


def test_crashed_process_leaves_valid_checkpoint(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.green_infer
        def test_first():
            pass

        @pytest.mark.green_infer
        def test_crash():
            os._exit(3)
        """
    )
    result = pytester.runpytest_subprocess("--green", "--green-energy", "none")
    assert result.ret == 3
    data = load(pytester)
    assert data["complete"] is False and data["exit_status"] is None


def test_xdist_workers_merge_into_one_report(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(FAKE_METER)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        @pytest.mark.parametrize("i", range(6))
        def test_it(green, i):
            green.metric("i", i)

        @pytest.mark.green_train
        def test_fail():
            assert False
        """
    )
    result = pytester.runpytest("--green", "-n", "2", "--green-energy", "estimate", "-p", "no:benchmark")
    result.assert_outcomes(passed=6, failed=1)
    data = load(pytester)
    assert len(data["tests"]) == 7 and data["settings"]["xdist_workers"] == 2
    assert {t["worker"] for t in data["tests"]} <= {"gw0", "gw1"}
    assert by_id(data)["test_fail"]["outcome"] == "failed"
    for test in data["tests"]:
        # Machine-wide counters are not split between concurrent tests: per-process
        # estimates per test, the stand-in machine counter for the whole run.
        assert all(p["scope"] == "process" for p in test["energy"]["parts"])
        assert "xdist workers" in test["energy"]["attribution"]
    assert data["run_energy"]["parts"][0]["domain"] == "fake"
    assert any("xdist with 2 workers" in n for n in data["notes"])


def test_report_round_trip_types(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.green_infer\ndef test_it(): pass\n")
    pytester.runpytest("--green").assert_outcomes(passed=1)
    report = read_report(pytester.path / "green-report.json")
    assert isinstance(report, Report) and report.tests[0].kind == "infer"


def test_schema_file_matches_records() -> None:
    from pytest_greennlp.records import json_schema

    assert SCHEMA == json.loads(json.dumps(json_schema())), (
        "regenerate schema/green-report.schema.json from records.json_schema()"
    )


def test_flops_from_green_model(pytester: pytest.Pytester) -> None:
    require("torch")
    pytester.makepyfile(
        """
        import pytest, torch

        @pytest.mark.green_train(examples=8)
        def test_linear(green):
            model = torch.nn.Linear(16, 4)
            x = torch.randn(8, 16)
            count = green.model(model, x, calls=3)
            assert count.forward == 2 * 8 * 16 * 4
            model(x).sum().backward()
        """
    )
    # In a subprocess: an in-process run would drop torch's modules afterwards, and a later
    # re-import re-registers its kernels (a warning, an error under filterwarnings=error).
    pytester.runpytest_subprocess("--green", "--green-energy", "none").assert_outcomes(passed=1)
    flops = load(pytester)["tests"][0]["flops"]
    assert flops["forward"] == 3 * 2 * 8 * 16 * 4
    assert flops["backward"] > 0 and flops["total"] == flops["forward"] + flops["backward"]
    assert flops["convention"] == "1 multiply-add = 2 FLOPs"


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("the plugin's tests assume Linux /proc")


def test_extra_and_trial_config_must_be_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_greennlp.errors import ConfigError

        @pytest.mark.green_infer
        def test_values(green):
            loop = {}
            loop["self"] = loop
            with pytest.raises(ConfigError, match="green.extra.'obj'.: the value must be JSON"):
                green.extra("obj", object())
            with pytest.raises(ConfigError, match="contains itself"):
                green.extra("loop", loop)
            with pytest.raises(ConfigError, match="green.trial config"):
                green.trial(0.5, config={"model": object()})
            green.extra("fine", {"nan": float("nan"), "list": [1, 2]})
        """
    )
    pytester.runpytest("--green", "--green-energy", "none").assert_outcomes(passed=1)
    assert load(pytester)["tests"][0]["extra"] == {"fine": {"nan": None, "list": [1, 2]}}


def test_checkpoints_back_off_when_writing_is_slow(pytester: pytest.Pytester) -> None:
    # Every teardown may checkpoint (interval 0), but the start's checkpoint took 50 ms to
    # write, which holds the next off for 20 x 50 ms = 1 s, longer than these tests take.
    # Without the back-off each of the 5 teardowns would write one.
    pytester.makeconftest(
        """
        import time
        import pytest_greennlp.report as report
        import pytest_greennlp.session as session

        session._CHECKPOINT_EVERY_S = 0.0
        WRITES = []
        _write = report.write_report

        def slow_write(rep, path, tests=None):
            WRITES.append(rep.complete)
            time.sleep(0.05)
            _write(rep, path, tests)

        report.write_report = slow_write

        def pytest_unconfigure(config):
            print("WRITES", WRITES)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer
        @pytest.mark.parametrize("i", range(5))
        def test_it(i):
            pass
        """
    )
    result = pytester.runpytest_subprocess("--green", "--green-energy", "none", "-s")
    result.assert_outcomes(passed=5)
    # The forced one at the start, then only the final report.
    result.stdout.fnmatch_lines(["WRITES [False, True]"])
