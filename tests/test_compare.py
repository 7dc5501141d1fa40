"""`compare`: the verdict table, the noise test, like-with-like energy, refusals and EVP."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reportfactory import energy, fingerprint, record, report, trials

from pytest_greennlp import evp
from pytest_greennlp.compare import (
    Comparison,
    compare_reports,
    compare_trials,
    render_comparison,
)
from pytest_greennlp.stats import welch_t_test
from pytest_greennlp.records import from_dict

FIVE_1S = [1.0, 1.01, 0.99, 1.02, 0.98]
FIVE_2S = [2.0, 2.02, 1.98, 2.04, 1.96]


def one(base: Any, head: Any, **kw: Any) -> Any:
    """Compare one test on each side and return its `TestComparison`."""
    comparison = compare_reports(report(base), report(head), **kw)
    (test,) = comparison.tests
    return test


@pytest.mark.parametrize(
    ("base", "head", "verdict"),
    [
        ({"metrics": {"acc": 0.8}, "flops": 100}, {"metrics": {"acc": 0.9}, "flops": 100}, "better"),
        ({"metrics": {"acc": 0.8}, "flops": 100}, {"metrics": {"acc": 0.9}, "flops": 50}, "better"),
        ({"metrics": {"acc": 0.9}, "flops": 100}, {"metrics": {"acc": 0.8}, "flops": 50}, "worse"),
        ({"metrics": {"acc": 0.9}, "flops": 100}, {"metrics": {"acc": 0.9}, "flops": 50},
         "cheaper-at-equal-quality"),
        ({"metrics": {"acc": 0.8}, "flops": 100}, {"metrics": {"acc": 0.9}, "flops": 150},
         "better-but-costlier"),
        ({"flops": 100}, {"flops": 150}, "costlier-at-equal-quality"),
        ({"metrics": {"acc": 0.9}, "flops": 100}, {"metrics": {"acc": 0.9}, "flops": 102}, "unchanged"),
        ({"metrics": {"acc": 0.9}, "wall": 1.0}, {"metrics": {"acc": 0.9}, "wall": 1.5}, "inconclusive"),
        ({"flops": 100, "wall": FIVE_1S}, {"flops": 50, "wall": FIVE_2S}, "inconclusive"),  # mixed
        ({"metrics": {"acc": 0.9}}, {"metrics": {"acc": None}}, "inconclusive"),
        ({"metrics": {"loss": 0.5}, "lower_is_better": ["loss"]},
         {"metrics": {"loss": 0.4}, "lower_is_better": ["loss"]}, "better"),
        ({"metrics": {"loss": 0.4}, "lower_is_better": ["loss"]},
         {"metrics": {"loss": 0.5}, "lower_is_better": ["loss"]}, "worse"),
        ({"metrics": {"acc": 0.9, "f1": 0.8}}, {"metrics": {"acc": 0.95, "f1": 0.7}}, "worse"),
        ({"metrics": {"acc": 0.9}}, {"metrics": {"acc": 0.9005}}, "inconclusive"),  # equal, no cost
        ({"metrics": {"acc": 0.9}, "flops": 10}, {"metrics": {"acc": 0.9005}, "flops": 10}, "unchanged"),
        ({"metrics": {"ppl": 20.0}, "flops": 10}, {"metrics": {"ppl": 20.015}, "flops": 10}, "unchanged"),
    ],
)
def test_verdict_table(base: dict[str, Any], head: dict[str, Any], verdict: str) -> None:
    assert one(record(**base), record(**head)).verdict == verdict


def test_price_of_the_gain() -> None:
    test = one(record(metrics={"acc": 0.5}, flops=100), record(metrics={"acc": 0.9}, flops=112))
    assert test.verdict == "better-but-costlier"
    assert test.price == "+0.4 acc for +12% FLOPs"
    assert test.quality == "better" and test.cost == "costlier"


def test_outcomes_decide_first() -> None:
    assert one(record(flops=1), record(flops=1, outcome="failed")).verdict == "worse"
    assert one(record(flops=1), record(flops=1, outcome="error")).reason == "the test now errors"
    skipped = one(record(flops=1), record(flops=1, outcome="skipped"))
    assert skipped.verdict == "inconclusive" and "skipped in head" in skipped.reason
    assert one(record(flops=1, outcome="failed"), record(flops=1)).verdict == "inconclusive"


def test_added_removed_and_totals() -> None:
    base = report(record("t::a", flops=100, wall=FIVE_1S), record("t::gone", flops=5))
    head = report(record("t::a", flops=300, wall=FIVE_2S), record("t::new", flops=7))
    c = compare_reports(base, head)
    assert c.added == ("t::new",) and c.removed == ("t::gone",)
    assert [t.nodeid for t in c.tests] == ["t::a"]
    assert c.total.flops is not None and c.total.flops.pct == pytest.approx(200.0)
    assert c.total.time is not None and c.total.time.change == "up"
    assert c.total.verdict == "costlier-at-equal-quality"
    assert c.verdict_counts() == {"costlier-at-equal-quality": 1}


# --- noise -------------------------------------------------------------------------------


def test_three_runs_with_a_large_effect_are_a_regression() -> None:
    test = one(record(wall=[1.0, 1.01, 0.99]), record(wall=[2.0, 2.01, 1.99]))
    assert test.time.change == "up" and test.time.significant is True
    assert test.time.p_value < 0.05 and "Welch t-test on log samples" in test.time.test
    assert test.verdict == "costlier-at-equal-quality"


def test_two_runs_are_inconclusive_never_a_regression() -> None:
    test = one(record(wall=[1.0, 1.0]), record(wall=[3.0, 3.0]))
    assert test.time.change == "inconclusive" and test.time.significant is None
    assert "too few runs to test (2 vs 2; need 3 per side)" == test.time.test
    assert test.verdict == "inconclusive"


def test_noise_larger_than_the_change_is_inconclusive() -> None:
    test = one(record(wall=[1.0, 2.0, 0.5, 1.5]), record(wall=[1.4, 0.6, 2.2, 1.3]))
    assert test.time.change == "inconclusive" and test.time.significant is False


def test_significant_but_below_min_effect_is_same() -> None:
    test = one(record(wall=[1.0, 1.0001, 0.9999]), record(wall=[1.02, 1.0201, 1.0199]))
    assert test.time.significant is True and test.time.change == "same"
    assert test.verdict == "unchanged"
    strict = one(record(wall=[1.0, 1.0001, 0.9999]), record(wall=[1.02, 1.0201, 1.0199]), min_effect=0.01)
    assert strict.verdict == "costlier-at-equal-quality"


def test_energy_uses_its_repeat_samples() -> None:
    base = record(energy_=energy(measured=[10.0, 10.1, 9.9]))
    head = record(energy_=energy(measured=[5.0, 5.1, 4.9]))
    test = one(base, head)
    assert test.energy.basis == "measured" and test.energy.change == "down"
    assert test.co2e.change == "down" and test.co2e.pct == pytest.approx(-50.0)
    assert test.verdict == "cheaper-at-equal-quality"
    single = one(record(energy_=energy(measured=10.0)), record(energy_=energy(measured=5.0)))
    assert single.energy.change == "inconclusive" and single.verdict == "inconclusive"


def test_welch_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    for _ in range(30):
        a = [rng.gauss(1.0, rng.uniform(0.01, 1)) for _ in range(rng.randint(2, 12))]
        b = [rng.gauss(1.3, rng.uniform(0.01, 1)) for _ in range(rng.randint(2, 12))]
        t, _, p = welch_t_test(a, b)
        ref = stats.ttest_ind(b, a, equal_var=False)
        assert t == pytest.approx(ref.statistic, rel=1e-9)
        assert p == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-14)


def test_welch_edge_cases() -> None:
    assert welch_t_test([1.0, 1.0], [1.0, 1.0])[2] == 1.0
    assert welch_t_test([1.0, 1.0], [2.0, 2.0])[2] == 0.0
    with pytest.raises(ValueError, match="at least two values each"):
        welch_t_test([1.0], [1.0, 2.0])


# --- like with like, refusals ------------------------------------------------------------


def test_energy_is_compared_like_with_like() -> None:
    base = record(energy_=energy(measured=10.0, estimated=20.0))
    head = record(energy_=energy(estimated=40.0))
    test = one(base, head)
    assert test.energy.basis == "estimated" and test.energy.pct == pytest.approx(100.0)
    assert test.co2e.basis == "estimated"


def test_measured_against_estimated_is_refused() -> None:
    base = record(flops=10, energy_=energy(measured=10.0))
    head = record(flops=20, energy_=energy(estimated=10.0))
    test = one(base, head)
    assert test.verdict == "incomparable"
    assert test.refused == ("energy", "co2e")
    assert "no common energy basis: base has measured, head has estimated" in test.reason
    allowed = one(base, head, allow_method_mismatch=True)
    assert allowed.energy.change == "n/a" and allowed.verdict == "costlier-at-equal-quality"


def test_different_energy_methods_are_refused_unless_allowed() -> None:
    base = record(flops=10, energy_=energy(measured=[10.0, 10.0, 10.0], measured_method="rapl"))
    head = record(flops=10, energy_=energy(measured=[20.0, 20.0, 20.0], measured_method="plug"))
    test = one(base, head)
    assert test.verdict == "incomparable"
    assert test.refused_reason == (
        "measured energy read with different methods: base cpu:rapl, head cpu:plug")
    allowed = one(base, head, allow_method_mismatch=True)
    assert allowed.verdict == "costlier-at-equal-quality"
    assert any("compared anyway" in n for n in allowed.notes)


def test_different_hardware_is_refused_unless_allowed() -> None:
    base = report(record(flops=10, wall=1.0), fp=fingerprint(cpu="AMD EPYC 7763"))
    head = report(record(flops=20, wall=1.0), fp=fingerprint(cpu="Intel Xeon 8370C"))
    c = compare_reports(base, head)
    assert c.refused == ("hardware differs: cpu_model 'AMD EPYC 7763' vs 'Intel Xeon 8370C'; "
                         "use --allow-hardware-mismatch to compare anyway")
    assert [t.verdict for t in c.tests] == ["incomparable"] and c.total.verdict == "incomparable"
    assert c.tests[0].flops.pct == pytest.approx(100.0)  # FLOPs still reported
    gpu = compare_reports(report(record(flops=1), fp=fingerprint(gpus=["A100"])),
                          report(record(flops=1), fp=fingerprint(gpus=["H100"])))
    assert "gpus ['A100'] vs ['H100'], device" not in (gpu.refused or "")
    assert gpu.refused is not None and "gpus ['A100'] vs ['H100']" in gpu.refused
    allowed = compare_reports(base, head, allow_hardware_mismatch=True)
    assert allowed.refused is None and allowed.tests[0].verdict == "costlier-at-equal-quality"
    assert any("compared anyway" in n for n in allowed.notes)


def test_per_test_hardware_of_merged_reports() -> None:
    hw_a = {"cpu_model": "A", "device": "cpu", "gpus": []}
    hw_b = {"cpu_model": "B", "device": "cpu", "gpus": []}
    base = report(record("t::1", flops=1, hardware=hw_a), record("t::2", flops=1, hardware=hw_b))
    head = report(record("t::1", flops=1, hardware=hw_a), record("t::2", flops=1, hardware=hw_a),
                  fp=fingerprint(cpu="somewhere else"))
    c = compare_reports(base, head)
    assert [t.verdict for t in c.tests] == ["unchanged", "incomparable"]
    assert c.refused is None and c.total.tests == 1


# --- trials: expected validation performance at equal budget ------------------------------


def test_trials_compare_expected_best_at_equal_budget_not_max() -> None:
    # Max against max says base (0.95 > 0.9); at the budget both spent, head wins.
    base = trials("lr", [0.5] * 19 + [0.95])
    head = trials("lr", [0.9, 0.9])
    c = compare_trials("lr", base, head)
    assert c.budget == 2.0 and c.unit == "s"
    assert c.base == pytest.approx(evp.expected_max([0.5] * 19 + [0.95], [2])[0])
    assert c.head == pytest.approx(0.9) and c.quality == "better"
    assert c.summary.endswith("head is better at every shared budget")


def test_trials_crossover_is_reported() -> None:
    base = trials("lr", [0.1, 0.5, 0.3, 0.9], cost_s=1.0)
    head = trials("lr", [0.6, 0.7], cost_s=2.0)
    c = compare_trials("lr", base, head)
    assert (c.budget, c.k_base, c.k_head) == (4.0, 4.0, 2.0)
    assert c.base == pytest.approx(0.76015625) and c.head == pytest.approx(0.675)
    assert c.head_overtakes_at is None
    xs, ys = evp.budget_curve([0.1, 0.5, 0.3, 0.9], [1.0] * 4)
    xh, yh = evp.budget_curve([0.6, 0.7], [2.0, 2.0])
    assert c.base_overtakes_at == pytest.approx(evp.crossover(xh, yh, xs, ys))
    assert f"base overtakes head once the budget exceeds {c.base_overtakes_at:.4g} s" in c.summary


def test_trials_in_a_report_decide_the_test_quality() -> None:
    base = report(record("t::tune", trials=trials("tune", [0.5] * 19 + [0.95]), flops=10))
    head = report(record("t::tune", trials=trials("tune", [0.9, 0.9]), flops=10))
    c = compare_reports(base, head)
    assert [t.group for t in c.trials] == ["tune"]
    assert c.tests[0].trial_groups == ("tune",) and c.tests[0].verdict == "better"
    assert c.tests[0].reason.startswith("trials 'tune' +0.3561 expected best at equal budget 2 s (better)")


def test_trials_minimize_failures_and_budget_units() -> None:
    base = trials("loss", [0.5, None, 0.4], higher_is_better=False)
    head = trials("loss", [0.3, 0.35, 0.32], higher_is_better=False)
    c = compare_trials("loss", base, head, budget_unit="trials")
    assert c.minimize and c.unit == "trials" and c.budget == 3.0
    assert c.base == pytest.approx(evp.expected_max([0.5, math.nan, 0.4], [3], minimize=True)[0])
    assert c.quality == "better" and c.gain is not None and c.gain > 0
    mixed = compare_trials("x", trials("x", [0.5]), trials("x", [0.4], higher_is_better=False))
    assert mixed.quality == "unknown" and "higher_is_better" in mixed.summary
    no_cost = compare_trials("x", trials("x", [0.5]), trials("x", [0.4]), budget_unit="flops")
    assert no_cost.quality == "unknown"
    all_failed = compare_trials("x", trials("x", [None, None]), trials("x", [0.4]))
    assert all_failed.quality == "unknown" and all_failed.base is None


def test_trials_extrapolate_a_short_side() -> None:
    c = compare_trials("g", trials("g", [0.5, 0.6], cost_s=10.0), trials("g", [0.4], cost_s=30.0))
    assert c.budget == 30.0 and c.k_base == 3.0
    assert c.notes == ("base: 3 trials extrapolated from 2 (with replacement)",)


# --- output ---------------------------------------------------------------------------------


def test_to_dict_is_json_and_reads_back() -> None:
    base = report(record("t::a", flops=100, metrics={"acc": 0.8}, trials=trials("g", [0.1, 0.2]),
                         wall=FIVE_1S, energy_=energy(measured=[1.0, 1.1, 0.9])))
    head = report(record("t::a", flops=200, metrics={"acc": 0.9}, trials=trials("g", [0.3]),
                         wall=FIVE_2S, energy_=energy(measured=[2.0, 2.1, 1.9])))
    c = compare_reports(base, head)
    data = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert data["schema_version"] == 1 and data["tests"][0]["verdict"] == "better-but-costlier"
    assert from_dict(Comparison, data) == c


def test_render_is_one_line_per_entry_even_for_hostile_names() -> None:
    evil = "t::a\n\x1b[31mFAKE PASS"
    c = compare_reports(report(record(evil, flops=1)), report(record(evil, flops=3)))
    lines = render_comparison(c)
    assert all("\n" not in line and "\x1b" not in line for line in lines)
    assert any(line.startswith("t::a\\n\\x1b[31mFAKE PASS: costlier-at-equal-quality") for line in lines)


def test_bad_options() -> None:
    r = report()
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        compare_reports(r, r, alpha=1.5)
    with pytest.raises(ValueError, match="min_effect must be a finite number >= 0"):
        compare_reports(r, r, min_effect=-1)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=8,
                    max_size=8),
    flops=st.tuples(st.one_of(st.none(), st.integers(-5, 10**400)),
                    st.one_of(st.none(), st.integers(-5, 10**400))),
    runs=st.tuples(st.integers(1, 4), st.integers(1, 4)),
)
def test_compare_never_raises_on_odd_figures(values: list[float | None],
                                             flops: tuple[int | None, int | None],
                                             runs: tuple[int, int]) -> None:
    def side(offset: int, n: int, f: int | None) -> Any:
        wall = [v if v is not None else 1.0 for v in values[offset:offset + 1]] * n
        return record(flops=f, wall=wall, metrics={"m": values[offset + 1]},
                      energy_=energy(measured=[values[offset + 2] or 0.0] * n),
                      trials=trials("g", [values[offset + 3]]))
    c = compare_reports(report(side(0, runs[0], flops[0])), report(side(4, runs[1], flops[1])))
    json.dumps(c.to_dict(), allow_nan=False)
    render_comparison(c)


# --- multi-exit curves ---------------------------------------------------------------------


def _sweep(accuracy: list[float], flops: list[float], measured: float | None = None) -> dict:
    payload: dict = {"full_model": {"accuracy": accuracy[-1], "flops_per_example": flops[-1]},
                     "curve": {"accuracy": accuracy, "flops_per_example": flops}}
    if measured is not None:
        payload["measured"] = [{"batch_size": 1, "measured_speedup": measured}]
    return payload


def test_sweep_speedup_at_equal_accuracy() -> None:
    from pytest_greennlp.compare import compare_sweeps

    base = _sweep([0.80, 0.95, 0.96, 0.97], [1.0, 2.0, 4.0, 8.0], measured=1.5)
    head = _sweep([0.96, 0.97], [1.0, 8.0], measured=3.0)
    delta = compare_sweeps(base, head)
    assert delta is not None
    assert delta.target_accuracy == pytest.approx(0.96)
    assert (delta.base_flops, delta.head_flops, delta.speedup_at_equal_accuracy) == (4.0, 1.0, 4.0)
    assert (delta.base_measured_speedup, delta.head_measured_speedup) == (1.5, 3.0)
    assert "4.00x" in delta.summary and "0.970 -> 0.970" in delta.summary


def test_sweep_head_never_reaches_target() -> None:
    from pytest_greennlp.compare import compare_sweeps

    delta = compare_sweeps(_sweep([0.9, 0.99], [1.0, 2.0]), _sweep([0.5, 0.9], [1.0, 2.0]))
    assert delta is not None and delta.speedup_at_equal_accuracy is None
    assert delta.summary.startswith("head never reaches 0.980")


@pytest.mark.parametrize("bad", [None, "x", {}, {"full_model": {"accuracy": "high"}},
                                 {"full_model": {"accuracy": 0.9}, "curve": {"accuracy": [0.9]}},
                                 {"full_model": {"accuracy": 0.9},
                                  "curve": {"accuracy": ["<b>"], "flops_per_example": [1.0]}}])
def test_malformed_sweeps_are_ignored(bad: object) -> None:
    from pytest_greennlp.compare import compare_sweeps

    good = _sweep([0.9], [1.0])
    assert compare_sweeps(bad, good) is None and compare_sweeps(good, bad) is None


def test_sweep_delta_in_comparison_and_text() -> None:
    from dataclasses import replace

    base = report(replace(record("t::sweep"), extra={"sweep": _sweep([0.9, 0.97], [1.0, 4.0])}))
    head = report(replace(record("t::sweep"), extra={"sweep": _sweep([0.97, 0.97], [1.0, 4.0])}))
    comparison = compare_reports(base, head)
    assert comparison.tests[0].sweep is not None
    assert comparison.tests[0].sweep.speedup_at_equal_accuracy == pytest.approx(4.0)
    assert any("early-exit curve" in line for line in render_comparison(comparison))
    assert from_dict(Comparison, comparison.to_dict()) == comparison
