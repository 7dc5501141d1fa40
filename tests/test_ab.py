"""ab.py: run order, combining rounds (pure), the run loop (fake runner), the CLI, the Action."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from reportfactory import energy, record, report

from pytest_greennlp import ab, cli
from pytest_greennlp.ab import ABPlan, RunSpec, combine_rounds, plan_rounds, run_ab
from pytest_greennlp.compare import compare_reports
from pytest_greennlp.errors import ConfigError, MeasurementError
from pytest_greennlp.records import Memory, Report, TestRecord
from pytest_greennlp.report import read_report, write_report

ROOT = Path(__file__).resolve().parents[1]
ACTION_YML = ROOT / "action" / "action.yml"
SAME_REPO = ROOT / "examples" / "workflows" / "green-same-repo.yml"


# --- the order of the runs -------------------------------------------------------------------


def test_plan_without_seed_runs_base_first_in_every_round() -> None:
    plan = plan_rounds(3)
    assert plan == ABPlan(rounds=(("base", "head"),) * 3, seed=None)
    assert plan.describe() == "1 base-head, 2 base-head, 3 base-head (base first)"


def test_plan_with_seed_is_random_reproducible_and_recorded() -> None:
    plans = {seed: plan_rounds(12, seed) for seed in range(5)}
    assert all(plan_rounds(12, seed) == plan for seed, plan in plans.items())
    assert all(plan.seed == seed and f"(random, seed {seed})" in plan.describe()
               for seed, plan in plans.items())
    firsts = {a for plan in plans.values() for a, _ in plan.rounds}
    assert firsts == {"base", "head"}
    assert all(sorted(pair) == ["base", "head"] for plan in plans.values() for pair in plan.rounds)


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True])
def test_plan_refuses_bad_rounds(rounds: object) -> None:
    with pytest.raises(ValueError, match=r"^rounds must be an integer >= 1\.$"):
        plan_rounds(rounds)  # type: ignore[arg-type]


# --- combining one side's rounds ---------------------------------------------------------------


def rounds_of(*walls: float, nodeid: str = "t::a") -> list[Report]:
    """One report per round with one test whose wall time (and estimated joules) is given."""
    return [report(record(nodeid, wall=w, flops=100, energy_=energy(estimated=10 * w),
                          metrics={"acc": 0.9})) for w in walls]


def test_combine_keeps_one_sample_per_round_and_medians() -> None:
    plan = plan_rounds(3, seed=4)
    combined = combine_rounds(rounds_of(1.0, 3.0, 2.0), plan=plan, side="head")
    (test,) = combined.tests
    assert test.timing is not None and test.energy is not None and test.co2e is not None
    assert test.timing.wall_samples_s == test.timing.cpu_samples_s == (1.0, 3.0, 2.0)
    assert test.timing.wall_s == test.timing.cpu_s == 2.0
    assert test.energy.samples_estimated_j == (10.0, 30.0, 20.0)
    assert test.energy.estimated_j == 20.0 and test.energy.measured_j is None
    assert [(p.domain, p.energy_j) for p in test.energy.parts] == [("cpu", 20.0)]
    assert test.co2e.from_estimated_g == pytest.approx(20.0 * 36.0 / 3.6e6)
    assert test.flops is not None and test.flops.total == 100 and test.notes == ()
    assert combined.settings.repeats == 3
    assert combined.totals.wall_s == 2.0 and combined.totals.estimated_j == 20.0
    assert combined.notes[0] == (
        f"interleaved A/B on one machine (head side, 3 round(s), run order {plan.describe()}); "
        "each figure is the median over the rounds, one sample per round")


def test_repeats_within_a_run_collapse_to_the_rounds_median() -> None:
    rounds = [report(record("t::a", wall=walls), repeats=3)
              for walls in ([1.0, 5.0, 2.0], [3.0, 3.0, 9.0], [2.5, 0.1, 2.5])]
    combined = combine_rounds(rounds)
    timing = combined.tests[0].timing
    assert timing is not None and timing.wall_samples_s == (2.0, 3.0, 2.5)
    assert combined.settings.repeats == 3
    assert "each run measured 3 repeats; its median is the round's sample" in combined.notes
    assert combined.notes[0].startswith("combined from 3 round(s) (order not recorded)")


def test_combined_sides_pass_the_noise_test_of_compare() -> None:
    base = combine_rounds(rounds_of(1.0, 1.02, 0.99), side="base")
    head = combine_rounds(rounds_of(1.5, 1.52, 1.49), side="head")
    (test,) = compare_reports(base, head).tests
    assert test.time is not None and test.time.change == "up" and test.time.significant
    assert test.energy is not None and test.energy.change == "up"
    assert test.verdict == "costlier-at-equal-quality"
    one = combine_rounds(rounds_of(1.0), side="base")
    (test,) = compare_reports(one, combine_rounds(rounds_of(1.5), side="head")).tests
    assert test.time is not None and test.time.change == "inconclusive"


def test_a_failed_round_is_recorded_and_kept_out_of_the_samples() -> None:
    rounds = rounds_of(1.0, 9.0, 2.0)
    failing = replace(rounds[1].tests[0], outcome="failed")
    rounds[1] = replace(rounds[1], tests=(failing,), exit_status=1)
    combined = combine_rounds(rounds)
    (test,) = combined.tests
    assert test.outcome == "failed"
    assert test.timing is not None and test.timing.wall_samples_s == (1.0, 2.0)
    assert test.notes == (("A/B: outcome per round: 1 passed, 2 failed, 3 passed; time and energy "
                           "from the 2 passed round(s)"),)
    assert combined.exit_status == 1
    assert "round 2: pytest exited with 1 (tests failed)" in combined.notes


def test_tests_in_some_rounds_or_one_side_only() -> None:
    rounds = rounds_of(1.0, 2.0, 3.0)
    rounds[2] = replace(rounds[2], tests=rounds[2].tests + rounds_of(7.0, nodeid="t::new")[0].tests)
    combined = combine_rounds(rounds)
    new = {t.nodeid: t for t in combined.tests}["t::new"]
    assert new.timing is not None and new.timing.wall_samples_s == (7.0,)
    assert new.notes == ("A/B: in 1 of 3 rounds (round 3)",)
    base = combine_rounds(rounds_of(1.0, 1.0, 1.0))
    comparison = compare_reports(base, combined)
    assert comparison.added == ("t::new",) and comparison.removed == ()


def test_metrics_flops_memory_and_report_fields() -> None:
    rounds = rounds_of(1.0, 1.0, 1.0)
    tests: list[TestRecord] = []
    for i, (rep, acc) in enumerate(zip(rounds, (0.8, 0.9, 0.85))):
        t = rep.tests[0]
        tests.append(replace(t, metrics=(replace(t.metrics[0], value=acc),),
                             flops=replace(t.flops, total=100 + (i == 2)) if t.flops else None,
                             memory=Memory(peak_rss_bytes=10 * (i + 1), rss_method="VmHWM"),
                             notes=("same note",)))
    rounds = [replace(rep, tests=(t,), started_at=f"2024-05-01T10:0{i}:00+00:00",
                      finished_at=f"2024-05-01T10:0{i}:30+00:00",
                      notes=("no energy counter; time only",))
              for i, (rep, t) in enumerate(zip(rounds, tests))]
    rounds[1] = replace(rounds[1], complete=False, finished_at=None, exit_status=None)
    combined = combine_rounds(rounds)
    (test,) = combined.tests
    assert test.metrics[0].value == 0.85 and test.flops is not None and test.flops.total == 100
    assert test.memory == Memory(peak_rss_bytes=30, rss_method="VmHWM")
    assert test.notes == (
        "same note",
        "A/B: FLOPs differ between rounds (100 to 101); round 1's are kept",
        "A/B: metric 'acc' varied over the rounds (0.8 to 0.9); the median is kept",
    )
    assert not combined.complete and combined.exit_status is None and combined.finished_at is None
    assert combined.started_at == "2024-05-01T10:00:00+00:00"
    assert combined.notes[1:] == ("round 2: the run did not finish (its report is incomplete)",
                                  "no energy counter; time only")


def test_combine_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"^reports must not be empty\.$"):
        combine_rounds([])
    with pytest.raises(ValueError, match=r"^plan has 2 rounds but 3 reports were given\.$"):
        combine_rounds(rounds_of(1.0, 2.0, 3.0), plan=plan_rounds(2))
    with pytest.raises(ValueError, match=r"^side must be 'base', 'head' or None\.$"):
        combine_rounds(rounds_of(1.0), side="left")  # type: ignore[arg-type]
    twice = report(record("t::a", wall=1.0), record("t::a", wall=2.0))
    with pytest.raises(ValueError, match=r"^'t::a' appears twice in round 1\.$"):
        combine_rounds([twice])


# --- the run loop, with a fake runner ------------------------------------------------------------


class FakeRunner:
    """Writes the report ``make(spec)`` returns (None: none) and returns ``status(spec)``."""

    def __init__(self, make: Callable[[RunSpec], Report | None],
                 status: Callable[[RunSpec], int] = lambda spec: 0) -> None:
        self.make, self.status = make, status
        self.specs: list[RunSpec] = []

    def __call__(self, spec: RunSpec) -> int:
        self.specs.append(spec)
        made = self.make(spec)
        if made is not None:
            write_report(made, spec.report)
        return self.status(spec)


def by_side(spec: RunSpec) -> Report:
    wall = (1.0 if spec.side == "base" else 2.0) + spec.round / 100
    tests = [record("t::a", wall=wall)]
    if spec.side == "head":
        tests.append(record("t::only_in_head", wall=0.5))
    return report(*tests)


@pytest.fixture
def checkouts(tmp_path: Path) -> tuple[Path, Path]:
    head = tmp_path / "head"
    base = head / ".greennlp-base"
    (base / "src").mkdir(parents=True)
    return base, head


def test_runs_are_interleaved_and_each_side_combined(checkouts: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    base, head = checkouts
    fake = FakeRunner(by_side)
    result = run_ab(base, head, rounds=3, pytest_args=["-k", "a or b"], python="py",
                    runner=fake, workdir=tmp_path / "work")
    assert [(s.side, s.round) for s in fake.specs] == [
        ("base", 1), ("head", 1), ("base", 2), ("head", 2), ("base", 3), ("head", 3)]
    spec = fake.specs[0]
    assert spec.cwd == base and spec.report == tmp_path / "work" / "base-round1.json"
    assert spec.argv == ("py", "-m", "pytest", "--green", f"--rootdir={base}",
                         f"--confcutdir={base}", "-m", "green_train or green_infer", "-k",
                         "a or b", f"--green-report={spec.report}")
    assert spec.env["PYTHONPATH"].split(os.pathsep)[:2] == [str(base / "src"), str(base)]
    assert f"--ignore={base}" in fake.specs[1].argv  # base lies inside head
    assert fake.specs[1].env["PYTHONPATH"].split(os.pathsep)[0] == str(head)
    assert [t.nodeid for t in result.base.tests] == ["t::a"]
    assert [t.nodeid for t in result.head.tests] == ["t::a", "t::only_in_head"]
    timing = result.head.tests[0].timing
    assert timing is not None and timing.wall_samples_s == (2.01, 2.02, 2.03)
    assert result.base.settings.repeats == result.head.settings.repeats == 3
    assert result.base.notes[0].startswith("interleaved A/B on one machine (base side, 3 round(s)")


def test_a_seed_changes_the_order_and_is_recorded(checkouts: tuple[Path, Path]) -> None:
    base, head = checkouts
    fake = FakeRunner(by_side)
    seed = next(s for s in range(100) if ("head", "base") in plan_rounds(3, s).rounds)
    result = run_ab(base, head, rounds=3, seed=seed, runner=fake)
    order = [spec.side for spec in fake.specs]
    assert order == [side for pair in plan_rounds(3, seed).rounds for side in pair]
    assert f"(random, seed {seed})" in result.head.notes[0]


def test_failing_tests_are_not_fatal(checkouts: tuple[Path, Path]) -> None:
    base, head = checkouts

    def make(spec: RunSpec) -> Report:
        made = by_side(spec)
        if spec.side == "head" and spec.round == 2:
            made = replace(made, tests=(replace(made.tests[0], outcome="failed"), *made.tests[1:]),
                           exit_status=1)
        return made

    result = run_ab(base, head, runner=FakeRunner(make, lambda s: 1 if s.round == 2 else 0))
    assert result.head.tests[0].outcome == "failed" and result.base.tests[0].outcome == "passed"
    assert "round 2: pytest exited with 1 (tests failed)" in result.head.notes


@pytest.mark.parametrize("status,why", [(4, "usage error"), (2, "interrupted"),
                                        (-9, "killed by a signal")])
def test_a_failing_run_is_one_line_naming_side_and_round(
    checkouts: tuple[Path, Path], status: int, why: str
) -> None:
    base, head = checkouts
    fake = FakeRunner(by_side, lambda s: status if (s.side, s.round) == ("head", 2) else 0)
    with pytest.raises(MeasurementError) as info:
        run_ab(base, head, runner=fake)
    assert str(info.value) == (f"head run of round 2 of 3 failed: pytest exited with {status} "
                               f"({why}) in {head}")
    assert len(fake.specs) == 4


def test_a_run_without_a_report_is_one_line(checkouts: tuple[Path, Path]) -> None:
    base, head = checkouts
    with pytest.raises(MeasurementError, match=r"^base run of round 1 of 3 \(pytest exited with "
                       r"0\) left no readable report: .*base-round1\.json: no such file$"):
        run_ab(base, head, runner=FakeRunner(lambda spec: None))


def test_no_marked_tests_on_one_side_is_an_empty_report(checkouts: tuple[Path, Path]) -> None:
    base, head = checkouts
    fake = FakeRunner(lambda s: report(exit_status=5) if s.side == "base" else by_side(s),
                      lambda s: 5 if s.side == "base" else 0)
    result = run_ab(base, head, runner=fake)
    assert result.base.tests == () and result.base.exit_status == 5
    assert len(result.head.tests) == 2


def test_bad_folders_and_rounds(tmp_path: Path) -> None:
    fake = FakeRunner(by_side)
    with pytest.raises(ConfigError, match="not a folder \\(expected the base checkout\\)$"):
        run_ab(tmp_path / "nope", tmp_path, runner=fake)
    with pytest.raises(ConfigError, match="base and head are the same folder$"):
        run_ab(tmp_path, tmp_path / ".", runner=fake)
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match=r"^rounds must be an integer >= 1, got 0$"):
        run_ab(tmp_path / "b", tmp_path, rounds=0, runner=fake)
    assert fake.specs == []


def test_run_subprocess_cannot_start_is_one_line(tmp_path: Path) -> None:
    spec = RunSpec(side="base", round=1, rounds=3, argv=(str(tmp_path / "no-python"), "-V"),
                   cwd=tmp_path, report=tmp_path / "r.json")
    with pytest.raises(MeasurementError, match=r"^base run of round 1 of 3: cannot start "
                       r"'.*no-python' \(No such file or directory\)$"):
        ab.run_subprocess(spec)


# --- the CLI --------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_both_reports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    checkouts: tuple[Path, Path], tmp_path: Path,
) -> None:
    base, head = checkouts
    fake = FakeRunner(by_side)
    monkeypatch.setattr(ab, "run_subprocess", fake)
    code, out, err = run_cli(capsys, "ab", "--base", base, "--head", head, "--seed", "3",
                             "--pytest-args=-k 'a or b'", "--pytest-args", "-x tests",
                             "--out-base", tmp_path / "b.json", "--out-head", tmp_path / "h.json")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("greennlp ab: ") and ": pytest in " in lines[0]
    plan = plan_rounds(3, 3)
    assert lines[-1] == (f"greennlp ab: 3 round(s), order {plan.describe()}; wrote "
                         f"{tmp_path / 'b.json'} (1 tests) and {tmp_path / 'h.json'} (2 tests)")
    assert fake.specs[0].argv[-5:-1] == ("-k", "a or b", "-x", "tests")
    assert fake.specs[0].argv[0] == sys.executable
    assert read_report(tmp_path / "h.json").settings.repeats == 3


def test_cli_failing_run_and_bad_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    checkouts: tuple[Path, Path], tmp_path: Path,
) -> None:
    base, head = checkouts
    monkeypatch.setattr(ab, "run_subprocess", FakeRunner(by_side, lambda s: 3))
    outs = ["--out-base", tmp_path / "b.json", "--out-head", tmp_path / "h.json"]
    code, _, err = run_cli(capsys, "ab", "--base", base, "--head", head, *outs)
    assert code == cli.EXIT_USAGE
    assert err == (f"greennlp: error: base run of round 1 of 3 failed: pytest exited with 3 "
                   f"(internal error) in {base}\n")
    assert not (tmp_path / "b.json").exists()
    for bad in (["--rounds", "0"], ["--pytest-args", "'unclosed"], ["--seed", "x"]):
        code, out, err = run_cli(capsys, "ab", "--base", base, "--head", head, *outs, *bad)
        assert code == cli.EXIT_USAGE and out == "" and err.count("\n") == 1, bad
        assert err.startswith("greennlp ab: argument") and err.endswith("(see greennlp --help)\n")
    code, _, err = run_cli(capsys, "ab", "--base", base, "--head", head, "--out-base",
                           tmp_path / "x.json", "--out-head", tmp_path / "x.json")
    assert code == cli.EXIT_USAGE and "are the same file" in err


def test_cli_warns_that_fewer_than_3_rounds_cannot_test_noise(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    checkouts: tuple[Path, Path], tmp_path: Path,
) -> None:
    base, head = checkouts
    monkeypatch.setattr(ab, "run_subprocess", FakeRunner(by_side))
    code, _, err = run_cli(capsys, "ab", "--base", base, "--head", head, "--rounds", "2",
                           "--out-base", tmp_path / "b.json", "--out-head", tmp_path / "h.json")
    assert code == 0
    assert err == ("greennlp: notice: 2 round(s) give too few samples for the noise test of "
                   "greennlp compare (it needs 3); time and energy changes will be inconclusive\n")


# --- end to end: real pytest runs in two tiny projects -------------------------------------------


def project(folder: Path, sleep_s: float) -> Path:
    folder.mkdir()
    (folder / "test_model.py").write_text(textwrap.dedent(f"""
        import time

        import pytest


        @pytest.mark.green_infer
        def test_encode():
            time.sleep({sleep_s})


        def test_unmarked_is_not_run():
            raise AssertionError("-m selects the marked tests only")
    """))
    return folder


def test_end_to_end_head_that_sleeps_longer_is_costlier(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # faster runs: only our plugin
    base, head = project(tmp_path / "base", 0.01), project(tmp_path / "head", 0.08)
    out_base, out_head = tmp_path / "base.json", tmp_path / "head.json"
    args = "-p pytest_greennlp.plugin -p no:cacheprovider -q --green-energy none"
    code = cli.main(["ab", "--base", str(base), "--head", str(head), "--rounds", "3",
                     f"--pytest-args={args}", "--out-base", str(out_base),
                     "--out-head", str(out_head)])
    out, err = capfd.readouterr()
    assert code == 0, out + err
    assert out.count("1 passed, 1 deselected") == 6
    for path in (out_base, out_head):
        made = read_report(path)
        (test,) = made.tests
        assert test.nodeid == "test_model.py::test_encode" and test.outcome == "passed"
        assert test.timing is not None and len(test.timing.wall_samples_s) == 3
        assert made.settings.repeats == 3 and made.notes[0].startswith("interleaved A/B")
    code = cli.main(["compare", str(out_base), str(out_head), "--json"])
    data = json.loads(capfd.readouterr().out)
    (test,) = data["comparison"]["tests"]
    assert test["time"]["change"] == "up" and test["time"]["significant"] is True
    assert test["verdict"] == "costlier-at-equal-quality" and code == cli.EXIT_REGRESSION


# --- the Action and the example workflow ---------------------------------------------------------


def test_action_ab_mode_checks_out_the_base_and_runs_greennlp_ab() -> None:
    meta = yaml.safe_load(ACTION_YML.read_text())
    description = " ".join(meta["inputs"]["baseline"]["description"].split())
    assert "doubles the measuring time" in description
    for name in ("ab-rounds", "ab-seed", "ab-pytest-args", "ab-python"):
        assert meta["inputs"][name]["description"], name
    steps = meta["runs"]["steps"]
    ab_steps = [s for s in steps if "inputs.baseline == 'ab'" in str(s.get("if", ""))]
    assert len(ab_steps) == 3
    guard, checkout, measure = ab_steps
    assert "pull_request" in guard["run"] and "::error" in guard["run"]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert checkout["with"]["path"] == ".greennlp-base"
    assert checkout["with"]["persist-credentials"] is False
    assert " ab " in measure["run"] and "--out-head" in measure["run"]
    assert measure["id"] == "ab" and '"base-report=' in measure["run"]
    names = [s.get("id") or s.get("name") for s in steps]
    assert names.index("ab") < names.index("greennlp")
    compare_env = next(s for s in steps if s.get("id") == "greennlp")["env"]
    assert "steps.ab.outputs.base-report" in compare_env["GREENNLP_BASELINE"]
    assert "inputs.report" in str(measure["env"])


def test_same_repo_example_has_an_optional_ab_job() -> None:
    flow = yaml.safe_load(SAME_REPO.read_text())
    job = flow["jobs"]["green-ab"]
    assert "'greennlp-ab'" in job["if"] and "github.event_name == 'pull_request'" in job["if"]
    action_step = next(s for s in job["steps"] if "/action@" in str(s.get("uses", "")))
    assert action_step["with"]["baseline"] == "ab"
    assert action_step["with"]["comment-key"] == "ab"
