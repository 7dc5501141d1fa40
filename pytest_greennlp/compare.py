"""Budget-aware comparison of two reports: deltas, noise tests and a verdict per test.

`compare_reports` pairs the tests of a base and a head report by nodeid and returns a
`Comparison`: per test and in total, the metric deltas and the time, FLOPs, energy and
CO2e deltas (absolute and relative, with the method behind each figure), and a verdict
that weighs quality against cost. Pure: reports in, frozen dataclasses out, no I/O.

Quality
-------
Each metric both sides report is *better*, *equal* or *worse*: equal when
``abs(head - base) <= quality_tol * max(1, abs(base))`` (an absolute tolerance for
metrics in [0, 1] such as accuracy, relative for larger ones such as perplexity), else
better or worse by its direction (``higher_is_better``). Where both reports have trials
of a group, its expected best score at equal budget (`compare_trials`) replaces the max
against max. A test's quality is *worse* if any of its metrics is worse, *better* if
any is better and none worse, *equal* if all are equal; a test without metrics that
passed on both sides has equal quality (passing is its quality criterion).

Cost and noise
--------------
FLOPs are deterministic: the exact change counts. Wall time and energy are noisy:
with at least `MIN_SAMPLES` measured runs per side (``pytest --green-repeats``) a
Welch t-test on the logarithms of the per-run samples (a test of the ratio of the
geometric means, which suits right-skewed durations) decides whether the change is
beyond the noise at level ``alpha``; with fewer runs the change is *inconclusive*,
never a regression. A change also counts only if it is at least ``min_effect``
relative to the base (default 5 %); smaller changes are *same*. Energy is compared
like with like: measured joules against measured joules, else estimated against
estimated, never one basis against the other. CO2e follows the energy basis and is
reported, but the verdict uses FLOPs, time and energy only (a CO2e change with equal
energy is a change of grid intensity, not of the code). The test's cost is
*costlier* if any of these rose beyond noise and min effect and none fell, *cheaper*
in the mirror case, *mixed* if some rose and some fell, *same* if none changed and at
least one was decidable, *unknown* otherwise.

Verdicts
--------
=================  ======================  ==========================  ==================
quality \\ cost     cheaper / same          costlier / mixed            unknown
=================  ======================  ==========================  ==================
better             better                  better-but-costlier         better
equal              cheaper-at-equal-       costlier-at-equal-quality   inconclusive
                   quality / unchanged     / inconclusive (mixed)
worse              worse                   worse                       worse
unknown            inconclusive            inconclusive                inconclusive
=================  ======================  ==========================  ==================

Before the table: a test run on different hardware (CPU model, GPU names, device) or
whose energy was read with different methods is *incomparable* unless the caller
allows it; a test that passed in base and fails or errors in head is *worse*; any
other pair of outcomes that are not both "passed" is *inconclusive*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pytest_greennlp import evp
from pytest_greennlp.records import Energy, Report, TestRecord, Trial, to_dict
from pytest_greennlp.stats import welch_t_test

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "COMPARISON_VERSION",
    "MIN_SAMPLES",
    "VERDICTS",
    "Change",
    "Comparison",
    "CostChange",
    "Delta",
    "MetricDelta",
    "Quality",
    "SweepDelta",
    "TestComparison",
    "TotalComparison",
    "TrialComparison",
    "Verdict",
    "compare_reports",
    "compare_sweeps",
    "finite_number",
    "compare_trials",
    "hardware_key",
    "printable",
    "render_comparison",
]

#: Bumped on any incompatible change of `Comparison.to_dict`.
COMPARISON_VERSION = 1

#: Fewest measured runs per side before a time or energy change can be called real.
MIN_SAMPLES = 3

Verdict = Literal[
    "better",
    "worse",
    "cheaper-at-equal-quality",
    "better-but-costlier",
    "costlier-at-equal-quality",
    "unchanged",
    "inconclusive",
    "incomparable",
]
#: Every verdict, best news first.
VERDICTS: tuple[Verdict, ...] = (
    "better",
    "cheaper-at-equal-quality",
    "better-but-costlier",
    "unchanged",
    "inconclusive",
    "incomparable",
    "costlier-at-equal-quality",
    "worse",
)
Quality = Literal["better", "equal", "worse", "unknown"]
CostChange = Literal["cheaper", "same", "costlier", "mixed", "unknown"]
#: How one figure changed: ``up``/``down`` beyond noise and min effect, ``same`` below the
#: min effect, ``inconclusive`` within the noise or too few runs, ``n/a`` missing on a side.
Change = Literal["up", "down", "same", "inconclusive", "n/a"]
Quantity = Literal["time", "flops", "energy", "co2e"]
BudgetUnit = Literal["auto", "flops", "wall_s", "measured_j", "estimated_j", "trials"]

_BUDGET_UNITS: dict[str, str] = {
    "flops": "FLOPs",
    "wall_s": "s",
    "measured_j": "J (measured)",
    "estimated_j": "J (estimated)",
    "trials": "trials",
}
#: Most trial counts evaluated exactly on a tuning curve; beyond it a geometric grid.
_MAX_DENSE_K = 1000


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    """One cost figure of a test (or of the total) on both sides.

    ``difference`` is head minus base, ``pct`` the same relative to base in percent
    (None when base is 0). ``significant`` says whether the change is beyond the noise:
    for FLOPs whether it is non-zero, for time and energy the outcome of the Welch test
    (None with fewer than `MIN_SAMPLES` runs on a side). ``change`` also applies the
    minimum effect and is what the verdict uses.
    """

    quantity: Quantity
    unit: str
    basis: str | None
    base: float | None
    head: float | None
    difference: float | None
    pct: float | None
    change: Change
    significant: bool | None
    p_value: float | None
    test: str
    method: str
    base_samples: tuple[float, ...] = ()
    head_samples: tuple[float, ...] = ()


@dataclass(frozen=True)
class MetricDelta:
    """A metric both sides reported; ``gain`` is the difference oriented so that > 0 is better."""

    name: str
    base: float | None
    head: float | None
    difference: float | None
    gain: float | None
    higher_is_better: bool
    quality: Quality


@dataclass(frozen=True)
class TrialComparison:
    """Expected best score of a trial group on both sides at one equal budget.

    ``budget`` is in ``unit``: the smaller of the two sides' total trial budgets (but
    at least one trial of each side). ``k_base`` / ``k_head`` are the (fractional)
    numbers of trials that budget buys on each side. ``head_overtakes_at`` is the
    budget beyond which head's tuning curve stays above base's within the budgets both
    reach (``evp.crossover``), None if it never does; ``base_overtakes_at`` the mirror.
    """

    group: str
    minimize: bool
    unit: str
    n_base: int
    n_head: int
    budget: float | None
    k_base: float | None
    k_head: float | None
    base: float | None
    head: float | None
    gain: float | None
    quality: Quality
    head_overtakes_at: float | None
    base_overtakes_at: float | None
    summary: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepDelta:
    """How a multi-exit speed/accuracy curve moved (``extra["sweep"]`` on both sides).

    ``target_accuracy`` is the base full model's accuracy minus ``drop``; each side's
    ``*_flops`` is the cheapest FLOPs per example at which its curve reaches that accuracy
    (None: it never does). ``speedup_at_equal_accuracy`` = base / head: above 1, head
    reaches the same accuracy with fewer FLOPs.
    """

    target_accuracy: float
    drop: float
    base_flops: float | None
    head_flops: float | None
    speedup_at_equal_accuracy: float | None
    base_full_accuracy: float
    head_full_accuracy: float
    base_measured_speedup: float | None
    head_measured_speedup: float | None
    summary: str


@dataclass(frozen=True)
class TestComparison:
    """One test present in both reports: its deltas and verdict.

    ``refused`` lists the quantities not compared (``time``, ``energy``, ``co2e``) and
    ``refused_reason`` says why; the verdict is then ``incomparable``.
    """

    __test__ = False  # not a pytest test class

    nodeid: str
    base_outcome: str
    head_outcome: str
    verdict: Verdict
    reason: str
    price: str | None
    quality: Quality
    cost: CostChange
    metrics: tuple[MetricDelta, ...]
    trial_groups: tuple[str, ...]
    missing_metrics: tuple[str, ...]
    time: Delta | None
    flops: Delta | None
    energy: Delta | None
    co2e: Delta | None
    refused: tuple[str, ...] = ()
    refused_reason: str | None = None
    notes: tuple[str, ...] = ()
    sweep: SweepDelta | None = None


@dataclass(frozen=True)
class TotalComparison:
    """The sums over the paired, comparable tests, with a verdict of their own."""

    tests: int
    verdict: Verdict
    reason: str
    price: str | None
    quality: Quality
    cost: CostChange
    time: Delta | None
    flops: Delta | None
    energy: Delta | None
    co2e: Delta | None


@dataclass(frozen=True)
class Comparison:
    """Everything `compare_reports` found; ``to_dict`` gives its JSON form."""

    tests: tuple[TestComparison, ...]
    total: TotalComparison
    trials: tuple[TrialComparison, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    refused: str | None
    alpha: float
    min_effect: float
    quality_tol: float
    allow_hardware_mismatch: bool
    allow_method_mismatch: bool
    notes: tuple[str, ...] = ()
    schema_version: int = COMPARISON_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (tuples become lists, non-finite numbers None)."""
        return to_dict(self)

    def verdict_counts(self) -> dict[str, int]:
        """Number of tests per verdict, in `VERDICTS` order, zeros left out."""
        counts = {v: sum(t.verdict == v for t in self.tests) for v in VERDICTS}
        return {v: n for v, n in counts.items() if n}


# --- helper functions --------------------------------------------------------------------


def finite_number(value: object) -> float | None:
    """A finite float, or None (missing, non-finite or too large for a float).

    For numbers read from untrusted report data (also used by `comment`).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _finite(values: Iterable[object]) -> tuple[float, ...]:
    out = []
    for value in values:
        number = finite_number(value)
        if number is not None:
            out.append(number)
    return tuple(out)


def _pct(base: float, head: float) -> float | None:
    if base == 0.0:
        return 0.0 if head == 0.0 else None
    pct = 100.0 * (head - base) / abs(base)
    return pct if math.isfinite(pct) else None


def _large(base: float, head: float, pct: float | None, min_effect: float) -> bool:
    if pct is None:
        return head != base
    return abs(pct) >= 100.0 * min_effect


def _exact_delta(
    quantity: Quantity, unit: str, base: object, head: object, method: str, min_effect: float
) -> Delta:
    b, h = finite_number(base), finite_number(head)
    if b is None or h is None:
        return _missing(quantity, unit, None, b, h, method)
    pct = _pct(b, h)
    change: Change = "same"
    if h != b and _large(b, h, pct, min_effect):
        change = "up" if h > b else "down"
    return Delta(
        quantity=quantity, unit=unit, basis=None, base=b, head=h, difference=h - b, pct=pct,
        change=change, significant=h != b, p_value=None, test="exact (deterministic)",
        method=method,
    )


def _missing(
    quantity: Quantity, unit: str, basis: str | None, b: float | None, h: float | None, method: str,
    test: str | None = None,
) -> Delta:
    if test is None:
        sides = [name for name, v in (("base", b), ("head", h)) if v is None]
        test = f"not on {' and '.join(sides)}"
    return Delta(
        quantity=quantity, unit=unit, basis=basis, base=b, head=h, difference=None, pct=None,
        change="n/a", significant=None, p_value=None, test=test, method=method,
    )


def _noisy_delta(
    quantity: Quantity,
    unit: str,
    basis: str | None,
    method: str,
    base: object,
    head: object,
    base_samples: Sequence[object],
    head_samples: Sequence[object],
    alpha: float,
    min_effect: float,
) -> Delta:
    b, h = finite_number(base), finite_number(head)
    if b is None or h is None:
        return _missing(quantity, unit, basis, b, h, method)
    bs = _finite(base_samples) or (b,)
    hs = _finite(head_samples) or (h,)
    pct = _pct(b, h)
    p_value: float | None = None
    significant: bool | None = None
    if len(bs) >= MIN_SAMPLES and len(hs) >= MIN_SAMPLES:
        logs = all(v > 0 for v in (*bs, *hs))
        a_vals = [math.log(v) for v in bs] if logs else list(bs)
        b_vals = [math.log(v) for v in hs] if logs else list(hs)
        t, _, p_value = welch_t_test(a_vals, b_vals)
        agrees = (t > 0) == (h > b) and t != 0 and h != b
        significant = p_value < alpha and agrees
        scale = "log " if logs else ""
        test = f"Welch t-test on {scale}samples, p={p_value:.2g} ({len(bs)} vs {len(hs)} runs)"
    else:
        test = f"too few runs to test ({len(bs)} vs {len(hs)}; need {MIN_SAMPLES} per side)"
    change: Change
    if h == b or not _large(b, h, pct, min_effect):
        change = "same"
    elif significant:
        change = "up" if h > b else "down"
    else:
        change = "inconclusive"
    return Delta(
        quantity=quantity, unit=unit, basis=basis, base=b, head=h, difference=h - b, pct=pct,
        change=change, significant=significant, p_value=p_value, test=test, method=method,
        base_samples=bs, head_samples=hs,
    )


def _time_delta(base: TestRecord, head: TestRecord, alpha: float, min_effect: float) -> Delta | None:
    if base.timing is None and head.timing is None:
        return None
    bt, ht = base.timing, head.timing
    nb = len(bt.wall_samples_s) if bt else 0
    nh = len(ht.wall_samples_s) if ht else 0
    method = f"wall clock, median of {nb} vs {nh} runs"
    return _noisy_delta(
        "time", "s", None, method,
        bt.wall_s if bt else None, ht.wall_s if ht else None,
        bt.wall_samples_s if bt else (), ht.wall_samples_s if ht else (),
        alpha, min_effect,
    )


def _flops_delta(base: TestRecord, head: TestRecord, min_effect: float) -> tuple[Delta | None, str | None]:
    if base.flops is None and head.flops is None:
        return None, None
    bm = base.flops.method if base.flops else None
    hm = head.flops.method if head.flops else None
    note = None
    if bm is not None and hm is not None and bm != hm:
        method = f"base {bm}; head {hm}"
        note = f"FLOPs counted differently: base {bm!r}, head {hm!r}"
    else:
        method = bm or hm or ""
    delta = _exact_delta(
        "flops", "FLOPs", base.flops.total if base.flops else None,
        head.flops.total if head.flops else None, method, min_effect,
    )
    return delta, note


def _energy_methods(energy: Energy, measured: bool) -> tuple[str, ...]:
    return tuple(sorted({
        f"{part.domain.split(':')[0]}:{part.method}" for part in energy.parts if part.measured == measured
    }))


def _bases(energy: Energy) -> str:
    have = [name for name, v in (("measured", energy.measured_j), ("estimated", energy.estimated_j))
            if finite_number(v) is not None]
    return " and ".join(have) or "none"


def _energy_deltas(
    base: TestRecord, head: TestRecord, alpha: float, min_effect: float
) -> tuple[Delta | None, Delta | None, str | None]:
    """Return the energy and CO2e deltas on a common basis, and a method mismatch if any."""
    be, he = base.energy, head.energy
    if be is None or he is None:
        if be is None and he is None:
            return None, None, None
        side = "base" if be is None else "head"
        return (_missing("energy", "J", None, None, None, "", f"no energy figure on {side}"),
                None, None)
    basis = None
    for name in ("measured", "estimated"):
        if finite_number(getattr(be, f"{name}_j")) is not None and finite_number(getattr(he, f"{name}_j")) is not None:
            basis = name
            break
    if basis is None:
        problem = f"no common energy basis: base has {_bases(be)}, head has {_bases(he)}"
        return _missing("energy", "J", None, None, None, "", problem), None, problem
    measured = basis == "measured"
    bm, hm = _energy_methods(be, measured), _energy_methods(he, measured)
    mismatch = None
    if bm != hm:
        mismatch = (f"{basis} energy read with different methods: base {', '.join(bm) or 'none'}, "
                    f"head {', '.join(hm) or 'none'}")
        method = f"base {', '.join(bm)}; head {', '.join(hm)}"
    else:
        method = ", ".join(bm)
    b_j = getattr(be, f"{basis}_j")
    h_j = getattr(he, f"{basis}_j")
    b_samples = getattr(be, f"samples_{basis}_j")
    h_samples = getattr(he, f"samples_{basis}_j")
    energy = _noisy_delta("energy", "J", basis, method, b_j, h_j, b_samples, h_samples,
                          alpha, min_effect)
    co2e = None
    if base.co2e is not None and head.co2e is not None:
        b_g = getattr(base.co2e, f"from_{basis}_g")
        h_g = getattr(head.co2e, f"from_{basis}_g")
        co2e = _noisy_delta(
            "co2e", "g", basis, f"from {basis} energy", b_g, h_g,
            _scaled(b_samples, b_g, b_j), _scaled(h_samples, h_g, h_j), alpha, min_effect,
        )
    return energy, co2e, mismatch


def _scaled(samples: Sequence[float], grams: object, joules: object) -> tuple[float, ...]:
    g, j = finite_number(grams), finite_number(joules)
    if g is None or j is None or j == 0.0:
        return ()
    return _finite(s * g / j for s in samples)


def _equal_within(difference: float, base: float, tol: float) -> bool:
    return abs(difference) <= tol * max(1.0, abs(base))


def _metric_deltas(
    base: TestRecord, head: TestRecord, tol: float
) -> tuple[tuple[MetricDelta, ...], tuple[str, ...], list[str]]:
    """Return the deltas of shared metrics, base metrics missing in head, and notes."""
    head_metrics = {m.name: m for m in head.metrics}
    base_names = {m.name for m in base.metrics}
    deltas: list[MetricDelta] = []
    missing: list[str] = []
    notes: list[str] = []
    for bm in base.metrics:
        hm = head_metrics.get(bm.name)
        if hm is None:
            missing.append(bm.name)
            notes.append(f"metric {bm.name!r} is missing in head")
            continue
        b, h = finite_number(bm.value), finite_number(hm.value)
        quality: Quality = "unknown"
        difference = gain = None
        if bm.higher_is_better != hm.higher_is_better:
            notes.append(f"metric {bm.name!r} changed direction (higher_is_better); not compared")
        elif b is not None and h is not None:
            difference = h - b
            gain = difference if hm.higher_is_better else -difference
            if _equal_within(difference, b, tol):
                quality = "equal"
            else:
                quality = "better" if gain > 0 else "worse"
        deltas.append(MetricDelta(
            name=bm.name, base=b, head=h, difference=difference, gain=gain,
            higher_is_better=hm.higher_is_better, quality=quality,
        ))
    for name in head_metrics:
        if name not in base_names:
            notes.append(f"new metric {name!r} (not in base)")
    return tuple(deltas), tuple(missing), notes


def _combine_quality(qualities: Sequence[Quality]) -> Quality:
    if "worse" in qualities:
        return "worse"
    if "better" in qualities:
        return "better"
    if "equal" in qualities:
        return "equal"
    return "unknown"


def _combine_cost(deltas: Iterable[Delta | None]) -> CostChange:
    changes = [d.change for d in deltas if d is not None and d.quantity != "co2e"]
    up, down = "up" in changes, "down" in changes
    if up and down:
        return "mixed"
    if up:
        return "costlier"
    if down:
        return "cheaper"
    if "same" in changes:
        return "same"
    return "unknown"


def _verdict(quality: Quality, cost: CostChange) -> Verdict:
    if quality == "worse":
        return "worse"
    if quality == "better":
        return "better-but-costlier" if cost in ("costlier", "mixed") else "better"
    if quality == "equal":
        table: dict[CostChange, Verdict] = {
            "cheaper": "cheaper-at-equal-quality",
            "same": "unchanged",
            "costlier": "costlier-at-equal-quality",
            "mixed": "inconclusive",
            "unknown": "inconclusive",
        }
        return table[cost]
    return "inconclusive"


_LABELS: dict[str, str] = {"time": "time", "flops": "FLOPs", "energy": "energy", "co2e": "CO2e"}


def _delta_phrase(delta: Delta) -> str:
    label = _LABELS[delta.quantity]
    if delta.basis is not None:
        label = f"{label} ({delta.basis})"
    if delta.change == "n/a":
        return f"{label} n/a ({delta.test})"
    if delta.pct is None:
        size = f"{_fmt(delta.base)} -> {_fmt(delta.head)} {delta.unit}"
    else:
        size = f"{delta.pct:+.1f}%"
    if delta.change in ("up", "down"):
        return f"{label} {size}"
    if delta.change == "same":
        return f"{label} {size} (below min effect)"
    if delta.significant is None:
        return f"{label} {size} (inconclusive: {delta.test})"
    return f"{label} {size} (inconclusive: within noise, p={delta.p_value:.2g})"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _price(
    metrics: Sequence[MetricDelta], trials: Sequence[TrialComparison], costs: Sequence[Delta | None]
) -> str | None:
    gains = [f"{m.difference:+.3g} {m.name}" for m in metrics
             if m.quality == "better" and m.difference is not None]
    gains += [f"{(t.head or 0.0) - (t.base or 0.0):+.3g} {t.group} (expected best)"
              for t in trials if t.quality == "better" and t.gain is not None]
    rises = []
    for d in costs:
        if d is None or d.change != "up" or d.quantity == "co2e":
            continue
        label = _LABELS[d.quantity]
        rises.append(f"{d.pct:+.0f}% {label}" if d.pct is not None else f"{label} from 0")
    if not gains or not rises:
        return None
    return f"{', '.join(gains)} for {', '.join(rises)}"


def _reason(
    quality: Quality,
    metrics: Sequence[MetricDelta],
    trials: Sequence[TrialComparison],
    costs: Sequence[Delta | None],
    no_metrics: bool,
) -> str:
    parts = []
    for m in metrics:
        if m.difference is None:
            parts.append(f"{m.name} n/a")
        else:
            parts.append(f"{m.name} {m.difference:+.4g} ({m.quality})")
    for t in trials:
        if t.base is None or t.head is None or t.budget is None:
            parts.append(f"trials {t.group!r} {t.summary}")
        else:
            parts.append(f"trials {t.group!r} {t.head - t.base:+.4g} expected best at equal budget "
                         f"{t.budget:.4g} {t.unit} ({t.quality})")
    if no_metrics:
        parts.append("no metric; passed on both sides")
    elif quality == "unknown" and not parts:
        parts.append("quality unknown")
    for d in costs:
        if d is not None:
            parts.append(_delta_phrase(d))
    return "; ".join(parts)


def hardware_key(report: Report, test: TestRecord | None = None) -> dict[str, Any]:
    """Return what must match for time and energy to be comparable: CPU, GPUs, device.

    A merged report (`merge.merge_reports`) keeps each test's hardware in
    ``extra["hardware"]``; that wins over the report's fingerprint.
    """
    if test is not None:
        stored = test.extra.get("hardware")
        if (
            isinstance(stored, Mapping)
            and isinstance(stored.get("cpu_model"), str)
            and isinstance(stored.get("device"), str)
            and isinstance(stored.get("gpus"), list)
            and all(isinstance(g, str) for g in stored["gpus"])
        ):
            return {"cpu_model": stored["cpu_model"].strip(), "device": stored["device"],
                    "gpus": sorted(stored["gpus"])}
    fp = report.fingerprint
    return {"cpu_model": fp.cpu_model.strip(), "device": fp.device,
            "gpus": sorted(g.name for g in fp.gpus)}


def _short(value: object, limit: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hardware_difference(base: Mapping[str, Any], head: Mapping[str, Any]) -> str | None:
    diffs = [f"{key} {_short(base[key])} vs {_short(head[key])}"
             for key in ("cpu_model", "gpus", "device") if base[key] != head[key]]
    return f"hardware differs: {', '.join(diffs)}" if diffs else None


# --- trials ------------------------------------------------------------------------------


def _trial_score(trial: Trial) -> float:
    if trial.status == "failed":
        return math.nan
    score = finite_number(trial.score)
    return math.nan if score is None else score


def _trial_cost(trial: Trial, unit: str) -> float | None:
    if unit == "trials":
        return 1.0
    value = finite_number(getattr(trial.cost, unit))
    return value if value is not None and value >= 0.0 else None


def _pick_unit(base: Sequence[Trial], head: Sequence[Trial], unit: BudgetUnit) -> str | None:
    candidates = ("flops", "wall_s", "measured_j", "estimated_j", "trials") if unit == "auto" else (unit,)
    for name in candidates:
        ok = True
        for side in (base, head):
            costs = [_trial_cost(t, name) for t in side]
            if any(c is None for c in costs) or sum(c or 0.0 for c in costs) <= 0.0:
                ok = False
                break
        if ok:
            return name
    return None


def _ks_upto(k_max: int) -> list[int]:
    dense = list(range(1, min(k_max, _MAX_DENSE_K) + 1))
    if k_max <= _MAX_DENSE_K:
        return dense
    sparse = np.unique(np.geomspace(_MAX_DENSE_K, k_max, 200).round().astype(np.int64)).tolist()
    return sorted(set(dense) | {int(k) for k in sparse} | {k_max})


def _unknown_trials(group: str, minimize: bool, n_base: int, n_head: int, why: str,
                    unit: str = "") -> TrialComparison:
    return TrialComparison(
        group=group, minimize=minimize, unit=unit, n_base=n_base, n_head=n_head, budget=None,
        k_base=None, k_head=None, base=None, head=None, gain=None, quality="unknown",
        head_overtakes_at=None, base_overtakes_at=None, summary=f"not compared: {why}",
    )


def compare_trials(
    group: str,
    base: Sequence[Trial],
    head: Sequence[Trial],
    *,
    budget_unit: BudgetUnit = "auto",
    quality_tol: float = 1e-3,
) -> TrialComparison:
    """Compare two sets of trials by their expected best score at equal budget.

    Each side's tuning curve is `evp.budget_curve` (Dodge et al. 2019, with
    replacement): the expected best score of ``k`` trials against ``k`` times its mean
    cost per trial, failed trials counted in the budget (NaN scores, ``"worst"``
    policy). Both are read, linearly interpolated in ``k``, at the same budget ``B``:
    the smaller of the two total budgets, but at least one trial of either side (then
    the cheaper side is extrapolated with replacement beyond its ``n``). The head is
    better, equal or worse by the same tolerance as metrics.

    Parameters
    ----------
    group : str, required
        The trial group name, for the summary.
    base, head : sequences of `records.Trial`, required
        The trials of the group on each side.
    budget_unit : {"auto", "flops", "wall_s", "measured_j", "estimated_j", "trials"}, optional
        What a budget counts. ``"auto"`` takes the first of FLOPs, wall seconds,
        measured joules, estimated joules that every trial on both sides has, else the
        number of trials.
    quality_tol : float, optional
        Tolerance of "equal" (see the module docstring).

    Returns
    -------
    TrialComparison

    Examples
    --------
    >>> from pytest_greennlp.records import Trial, TrialCost
    >>> base = [Trial("lr", s, cost=TrialCost(wall_s=1.0)) for s in (0.1, 0.5, 0.3, 0.9)]
    >>> head = [Trial("lr", s, cost=TrialCost(wall_s=2.0)) for s in (0.6, 0.7)]
    >>> c = compare_trials("lr", base, head)
    >>> c.budget, c.base, round(c.head, 4), c.quality
    (4.0, 0.76015625, 0.675, 'worse')
    """
    n_base, n_head = len(base), len(head)
    directions = {t.higher_is_better for t in (*base, *head)}
    if len(directions) != 1:
        return _unknown_trials(group, False, n_base, n_head, "trials disagree on higher_is_better")
    minimize = not directions.pop()
    unit = _pick_unit(base, head, budget_unit)
    if unit is None:
        return _unknown_trials(group, minimize, n_base, n_head,
                               f"not every trial has a positive {budget_unit} cost")
    label = _BUDGET_UNITS[unit]
    scores = [np.array([_trial_score(t) for t in side], dtype=np.float64) for side in (base, head)]
    costs = [np.array([_trial_cost(t, unit) for t in side], dtype=np.float64) for side in (base, head)]
    per = [float(c.sum()) / c.size for c in costs]
    totals = [float(c.sum()) for c in costs]
    budget = max(min(totals), *per)
    notes = []
    curves: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    values: list[float | None] = []
    ks_at: list[float] = []
    for side, s, c, p, n in zip(("base", "head"), scores, costs, per, (n_base, n_head)):
        k_exact = budget / p
        k_max = max(1, math.ceil(k_exact - 1e-9))
        if k_max > n:
            notes.append(f"{side}: {k_exact:.3g} trials extrapolated from {n} (with replacement)")
        try:
            xs, ys = evp.budget_curve(s, c, _ks_upto(k_max), minimize=minimize)
        except ValueError as exc:
            return _unknown_trials(group, minimize, n_base, n_head, str(exc), label)
        curves.append((xs, ys))
        ks_at.append(k_exact)
        value = float(np.interp(budget, xs, ys)) if np.all(np.isfinite(ys)) else math.nan
        values.append(value if math.isfinite(value) else None)
    b_val, h_val = values
    gain: float | None = None
    quality: Quality = "unknown"
    if b_val is not None and h_val is not None:
        gain = (b_val - h_val) if minimize else (h_val - b_val)
        if _equal_within(h_val - b_val, b_val, quality_tol):
            quality = "equal"
        else:
            quality = "better" if gain > 0 else "worse"
    head_at = base_at = None
    (xb, yb), (xh, yh) = curves
    if np.all(np.isfinite(yb)) and np.all(np.isfinite(yh)):
        head_at = evp.crossover(xb, yb, xh, yh, minimize=minimize)
        base_at = evp.crossover(xh, yh, xb, yb, minimize=minimize)
    start = max(per)
    if head_at is not None and head_at <= start:
        lead = "head is better at every shared budget"
    elif head_at is not None:
        lead = f"head overtakes base once the budget exceeds {head_at:.4g} {label}"
    elif base_at is not None and base_at <= start:
        lead = "base is better at every shared budget"
    elif base_at is not None:
        lead = f"base overtakes head once the budget exceeds {base_at:.4g} {label}"
    else:
        lead = "neither stays ahead"
    summary = (
        f"expected best at {budget:.4g} {label}: base {_fmt(b_val)} ({ks_at[0]:.3g} of {n_base} "
        f"trials), head {_fmt(h_val)} ({ks_at[1]:.3g} of {n_head} trials); {lead}"
    )
    return TrialComparison(
        group=group, minimize=minimize, unit=label, n_base=n_base, n_head=n_head, budget=budget,
        k_base=ks_at[0], k_head=ks_at[1], base=b_val, head=h_val, gain=gain, quality=quality,
        head_overtakes_at=head_at, base_overtakes_at=base_at, summary=summary, notes=tuple(notes),
    )


def _groups(report: Report) -> dict[str, list[Trial]]:
    groups: dict[str, list[Trial]] = {}
    for test in report.tests:
        for trial in test.trials:
            groups.setdefault(trial.group, []).append(trial)
    return groups


# --- totals ------------------------------------------------------------------------------


def _sum_samples(deltas: Sequence[Delta], side: str) -> tuple[float, ...]:
    """Per-run sums over tests: run j of the total is the sum of every test's run j."""
    runs = [d.base_samples if side == "base" else d.head_samples for d in deltas]
    if not runs:
        return ()
    width = min(len(r) for r in runs)
    return tuple(math.fsum(r[j] for r in runs) for j in range(width))


def _total_delta(
    quantity: Quantity, unit: str, deltas: Sequence[Delta], alpha: float, min_effect: float
) -> Delta | None:
    usable = [d for d in deltas if d.change != "n/a" and d.base is not None and d.head is not None]
    if not usable:
        return None
    if quantity in ("energy", "co2e"):
        measured = [d for d in usable if d.basis == "measured"]
        usable = measured or [d for d in usable if d.basis == "estimated"]
    base = math.fsum(d.base or 0.0 for d in usable)
    head = math.fsum(d.head or 0.0 for d in usable)
    basis = usable[0].basis
    method = f"sum over {len(usable)} test{'s' if len(usable) != 1 else ''}"
    if quantity == "flops":
        return _exact_delta(quantity, unit, base, head, method, min_effect)
    return _noisy_delta(quantity, unit, basis, method, base, head, _sum_samples(usable, "base"),
                        _sum_samples(usable, "head"), alpha, min_effect)


# --- the comparison ------------------------------------------------------------------------


def _check_options(alpha: float, min_effect: float, quality_tol: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be between 0 and 1, exclusive, not {alpha!r}.")
    if not (isinstance(min_effect, (int, float)) and 0.0 <= min_effect < math.inf):
        raise ValueError(f"min_effect must be a finite number >= 0, not {min_effect!r}.")
    if not (isinstance(quality_tol, (int, float)) and 0.0 <= quality_tol < math.inf):
        raise ValueError(f"quality_tol must be a finite number >= 0, not {quality_tol!r}.")


def _compare_test(
    base_report: Report,
    head_report: Report,
    base: TestRecord,
    head: TestRecord,
    trial_comparisons: Mapping[str, TrialComparison],
    *,
    allow_hardware_mismatch: bool,
    allow_method_mismatch: bool,
    alpha: float,
    min_effect: float,
    quality_tol: float,
) -> TestComparison:
    notes: list[str] = []
    time = _time_delta(base, head, alpha, min_effect)
    flops, flops_note = _flops_delta(base, head, min_effect)
    if flops_note:
        notes.append(flops_note)
    energy, co2e, energy_problem = _energy_deltas(base, head, alpha, min_effect)
    metrics, missing, metric_notes = _metric_deltas(base, head, quality_tol)
    notes += metric_notes
    base_groups = {t.group for t in base.trials}
    groups = tuple(sorted(base_groups & {t.group for t in head.trials}))
    trials = [trial_comparisons[g] for g in groups if g in trial_comparisons]

    refused: tuple[str, ...] = ()
    refused_reason = None
    hardware = _hardware_difference(hardware_key(base_report, base), hardware_key(head_report, head))
    if hardware is not None:
        if allow_hardware_mismatch:
            notes.append(f"{hardware}; compared anyway")
        else:
            refused, refused_reason = ("time", "energy", "co2e"), hardware
    if energy_problem is not None and not refused:
        if allow_method_mismatch:
            notes.append(f"{energy_problem}; compared anyway")
        else:
            refused = ("energy", "co2e")
            refused_reason = energy_problem

    costs = (flops, time, energy, co2e)
    qualities: list[Quality] = [m.quality for m in metrics] + [t.quality for t in trials]
    no_metrics = not metrics and not trials and not missing
    quality = _combine_quality(qualities) if not no_metrics else "equal"
    cost = _combine_cost(costs)
    reason = _reason(quality, metrics, trials, costs, no_metrics)
    price = None
    verdict: Verdict
    if refused:
        verdict = "incomparable"
        reason = f"{refused_reason} (override to compare)"
    elif base.outcome == "passed" and head.outcome in ("failed", "error"):
        verdict, quality = "worse", "worse"
        reason = f"the test now {'fails' if head.outcome == 'failed' else 'errors'}"
    elif base.outcome != "passed" or head.outcome != "passed":
        verdict = "inconclusive"
        reason = f"outcome {base.outcome} in base, {head.outcome} in head"
    else:
        verdict = _verdict(quality, cost)
        if verdict == "better-but-costlier":
            price = _price(metrics, trials, costs)
    return TestComparison(
        nodeid=head.nodeid, base_outcome=base.outcome, head_outcome=head.outcome, verdict=verdict,
        reason=reason, price=price, quality=quality, cost=cost, metrics=metrics,
        trial_groups=groups, missing_metrics=missing, time=time, flops=flops, energy=energy,
        co2e=co2e, refused=refused, refused_reason=refused_reason, notes=tuple(notes),
        sweep=compare_sweeps(base.extra.get("sweep"), head.extra.get("sweep")),
    )


def _curve_points(payload: Mapping[str, Any]) -> list[tuple[float, float]]:
    """(accuracy, FLOPs per example) of a sweep payload's curve and Pareto points."""
    points = []
    curve = payload.get("curve")
    if isinstance(curve, Mapping):
        accuracy, flops = curve.get("accuracy"), curve.get("flops_per_example")
        if isinstance(accuracy, list) and isinstance(flops, list):
            points += list(zip(accuracy, flops))
    pareto = payload.get("pareto")
    if isinstance(pareto, list):
        points += [(p.get("accuracy"), p.get("flops_per_example"))
                   for p in pareto if isinstance(p, Mapping)]
    return [(float(a), float(f)) for a, f in points
            if finite_number(a) is not None and finite_number(f) is not None and float(f) > 0]


def _cheapest_at(points: Sequence[tuple[float, float]], target: float) -> float | None:
    costs = [flops for accuracy, flops in points if accuracy >= target - 1e-12]
    return min(costs) if costs else None


def _measured_speedup(payload: Mapping[str, Any]) -> float | None:
    measured = payload.get("measured")
    for run in measured if isinstance(measured, list) else []:
        if isinstance(run, Mapping) and run.get("batch_size") == 1:
            return finite_number(run.get("measured_speedup"))
    return None


def compare_sweeps(base: object, head: object, *, drop: float = 0.01) -> SweepDelta | None:
    """Compare two multi-exit sweep payloads at equal accuracy; None unless both are usable.

    The payloads are untrusted report data: anything malformed yields None, never an error.

    Examples
    --------
    >>> side = lambda acc, flops: {"full_model": {"accuracy": acc[-1]},
    ...                            "curve": {"accuracy": acc, "flops_per_example": flops}}
    >>> delta = compare_sweeps(side([0.90, 0.97, 0.98], [1e9, 2e9, 6e9]),
    ...                        side([0.97, 0.98], [1e9, 6e9]))
    >>> round(delta.target_accuracy, 2), delta.speedup_at_equal_accuracy
    (0.97, 2.0)
    """
    if not isinstance(base, Mapping) or not isinstance(head, Mapping):
        return None
    full_b, full_h = base.get("full_model"), head.get("full_model")
    acc_b = finite_number(full_b.get("accuracy")) if isinstance(full_b, Mapping) else None
    acc_h = finite_number(full_h.get("accuracy")) if isinstance(full_h, Mapping) else None
    points_b, points_h = _curve_points(base), _curve_points(head)
    if acc_b is None or acc_h is None or not points_b or not points_h:
        return None
    target = acc_b - drop
    flops_b, flops_h = _cheapest_at(points_b, target), _cheapest_at(points_h, target)
    speedup = flops_b / flops_h if flops_b is not None and flops_h is not None else None
    if speedup is not None:
        summary = (f"at {target:.3f} accuracy (base full model - {drop * 100:g} pt) head needs "
                   f"{_fmt(flops_h)} FLOPs/example vs {_fmt(flops_b)}: {speedup:.2f}x")
    elif flops_h is None:
        summary = f"head never reaches {target:.3f} accuracy (base full model - {drop * 100:g} pt)"
    else:
        summary = f"base never reaches {target:.3f} accuracy"
    summary += f"; full model accuracy {acc_b:.3f} -> {acc_h:.3f}"
    return SweepDelta(
        target_accuracy=target, drop=drop, base_flops=flops_b, head_flops=flops_h,
        speedup_at_equal_accuracy=speedup, base_full_accuracy=acc_b, head_full_accuracy=acc_h,
        base_measured_speedup=_measured_speedup(base),
        head_measured_speedup=_measured_speedup(head), summary=summary,
    )


def compare_reports(
    base: Report,
    head: Report,
    *,
    allow_hardware_mismatch: bool = False,
    allow_method_mismatch: bool = False,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    quality_tol: float = 1e-3,
    budget_unit: BudgetUnit = "auto",
) -> Comparison:
    """Compare a head report against a base report, test by test and in total.

    Tests are paired by nodeid; tests only in head are ``added``, only in base
    ``removed``. See the module docstring for the verdict table, the noise test and
    the like-with-like energy rule.

    Parameters
    ----------
    base, head : Report, required
        The reports, e.g. from `report.read_report`.
    allow_hardware_mismatch : bool, optional
        Compare time and energy even when the CPU model, GPU names or device differ.
        Without it such tests are ``incomparable`` and `Comparison.refused` says why
        when every paired test is.
    allow_method_mismatch : bool, optional
        Compare energy read with different methods (on the same basis; measured and
        estimated joules are never compared).
    alpha : float, optional
        Level of the Welch t-test on time and energy samples.
    min_effect : float, optional
        Smallest relative change of a cost (0.05 = 5 %) that counts.
    quality_tol : float, optional
        Metric changes within ``quality_tol * max(1, abs(base))`` are "equal".
    budget_unit : {"auto", "flops", "wall_s", "measured_j", "estimated_j", "trials"}, optional
        The budget axis of trial comparisons (see `compare_trials`).

    Returns
    -------
    Comparison
    """
    # Validate the arguments.
    _check_options(alpha, min_effect, quality_tol)

    # Compare the trial groups both sides have, pooled over their tests.
    base_groups, head_groups = _groups(base), _groups(head)
    trials = {
        name: compare_trials(name, base_groups[name], head_groups[name],
                             budget_unit=budget_unit, quality_tol=quality_tol)
        for name in sorted(set(base_groups) & set(head_groups))
    }

    # Compare the tests.
    base_tests = {t.nodeid: t for t in base.tests}
    head_tests = {t.nodeid: t for t in head.tests}
    paired = [n for n in head_tests if n in base_tests]
    tests = tuple(
        _compare_test(
            base, head, base_tests[n], head_tests[n], trials,
            allow_hardware_mismatch=allow_hardware_mismatch,
            allow_method_mismatch=allow_method_mismatch,
            alpha=alpha, min_effect=min_effect, quality_tol=quality_tol,
        )
        for n in sorted(paired)
    )
    added = tuple(sorted(n for n in head_tests if n not in base_tests))
    removed = tuple(sorted(n for n in base_tests if n not in head_tests))

    # Refuse the whole comparison when the machines differ.
    refused = None
    machine = _hardware_difference(hardware_key(base), hardware_key(head))
    hardware_refusals = [t for t in tests if "time" in t.refused]
    if hardware_refusals and len(hardware_refusals) == len(tests):
        refused = f"{hardware_refusals[0].refused_reason}; use --allow-hardware-mismatch to compare anyway"
    elif not tests and machine is not None and not allow_hardware_mismatch:
        refused = f"{machine}; use --allow-hardware-mismatch to compare anyway"

    notes = _report_notes(base, head, machine, allow_hardware_mismatch)
    total = _total(tests, refused, alpha, min_effect)
    return Comparison(
        tests=tests, total=total, trials=tuple(trials.values()), added=added, removed=removed,
        refused=refused, alpha=alpha, min_effect=min_effect, quality_tol=quality_tol,
        allow_hardware_mismatch=allow_hardware_mismatch,
        allow_method_mismatch=allow_method_mismatch, notes=tuple(notes),
    )


def _report_notes(base: Report, head: Report, machine: str | None, allowed: bool) -> list[str]:
    notes = []
    if machine is not None and allowed:
        notes.append(f"{machine}; compared anyway (--allow-hardware-mismatch)")
    if not base.complete:
        notes.append("the base report is incomplete (its run was interrupted)")
    if not head.complete:
        notes.append("the head report is incomplete (its run was interrupted)")
    bc, hc = base.carbon, head.carbon
    if (bc.g_per_kwh, bc.pue) != (hc.g_per_kwh, hc.pue):
        notes.append(
            f"CO2e uses {bc.g_per_kwh:g} g/kWh, PUE {bc.pue:g} ({bc.region}) in base and "
            f"{hc.g_per_kwh:g} g/kWh, PUE {hc.pue:g} ({hc.region}) in head"
        )
    if base.settings.repeats != head.settings.repeats:
        notes.append(f"repeats differ: {base.settings.repeats} in base, {head.settings.repeats} in head")
    return notes


def _total(tests: Sequence[TestComparison], refused: str | None, alpha: float,
           min_effect: float) -> TotalComparison:
    comparable = [t for t in tests if t.verdict != "incomparable"]

    def collect(name: str) -> list[Delta]:
        return [d for t in comparable if (d := getattr(t, name)) is not None]

    time = _total_delta("time", "s", collect("time"), alpha, min_effect)
    flops = _total_delta("flops", "FLOPs", collect("flops"), alpha, min_effect)
    energy = _total_delta("energy", "J", collect("energy"), alpha, min_effect)
    co2e = _total_delta("co2e", "g", collect("co2e"), alpha, min_effect)
    costs = (flops, time, energy, co2e)
    quality = _combine_quality([t.quality for t in comparable])
    cost = _combine_cost(costs)
    verdicts = {t.verdict for t in comparable}
    if refused is not None or not comparable:
        verdict: Verdict = "incomparable" if tests else "inconclusive"
        reason = refused or ("no test in common" if not tests else "no comparable test")
        price = None
    else:
        verdict = _verdict(quality, cost)
        if "worse" in verdicts:
            verdict = "worse"
        excluded = len(tests) - len(comparable)
        counts = ", ".join(f"{sum(t.verdict == v for t in comparable)} {v}"
                           for v in VERDICTS if v in verdicts)
        reason = "; ".join(
            [counts] + [_delta_phrase(d) for d in costs if d is not None]
            + ([f"{excluded} incomparable test(s) left out"] if excluded else [])
        )
        price = None
        if verdict == "better-but-costlier":
            better = [m for t in comparable for m in t.metrics if m.quality == "better"]
            price = _price(better, [], costs)
    return TotalComparison(
        tests=len(comparable), verdict=verdict, reason=reason, price=price, quality=quality,
        cost=cost, time=time, flops=flops, energy=energy, co2e=co2e,
    )


# --- rendering -----------------------------------------------------------------------------


def printable(text: str) -> str:
    """One printable line: control characters (newlines, escapes) shown escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _cell(delta: Delta | None) -> str:
    if delta is None:
        return "-"
    if delta.change == "n/a":
        return "n/a"
    size = f"{delta.pct:+.1f}%" if delta.pct is not None else f"{_fmt(delta.difference)}{delta.unit}"
    marks: dict[Change, str] = {"up": " !", "down": " !", "same": " =", "inconclusive": " ?", "n/a": ""}
    return size + marks[delta.change]


def render_comparison(comparison: Comparison, width: int = 120) -> list[str]:
    """Return the comparison as terminal lines: a table, then one line per verdict reason."""
    c = comparison
    lines = [
        (f"greennlp compare: {len(c.tests)} paired test(s), {len(c.added)} added, "
         f"{len(c.removed)} removed")
    ]
    if c.refused:
        lines.append(f"REFUSED: {printable(c.refused)}")
    header = ("test", "verdict", "FLOPs", "time", "energy", "CO2e", "quality")
    rows: list[tuple[str, ...]] = []
    for t in c.tests:
        quality = ", ".join(
            f"{m.name} {m.difference:+.3g}" if m.difference is not None else f"{m.name} n/a"
            for m in t.metrics
        ) or ("trials" if t.trial_groups else "-")
        rows.append((printable(t.nodeid), t.verdict, _cell(t.flops), _cell(t.time), _cell(t.energy),
                     _cell(t.co2e), printable(quality)))
    tot = c.total
    rows.append((f"TOTAL ({tot.tests} tests)", tot.verdict, _cell(tot.flops), _cell(tot.time),
                 _cell(tot.energy), _cell(tot.co2e), ""))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fixed = sum(widths[1:]) + 2 * (len(header) - 1)
    widths[0] = max(24, min(widths[0], width - fixed))
    for i, row in enumerate((header, *rows)):
        first = row[0] if len(row[0]) <= widths[0] else "..." + row[0][-(widths[0] - 3):]
        cells = [first.ljust(widths[0])] + [
            cell.rjust(w) if 2 <= j <= 5 else cell.ljust(w)
            for j, (cell, w) in enumerate(zip(row[1:], widths[1:]), 1)
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0 or i == len(rows) - 1:
            lines.append("-" * min(width, len(lines[-1])))
    lines.append("! beyond noise and min effect   = below min effect   ? inconclusive (noise or "
                 f"< {MIN_SAMPLES} runs)   n/a not on both sides")
    for t in c.tests:
        why = t.price if t.price else t.reason
        lines.append(printable(f"{t.nodeid}: {t.verdict}: {why}"))
        if t.sweep is not None:
            lines.append(printable(f"{t.nodeid}: early-exit curve: {t.sweep.summary}"))
    lines.append(printable(f"TOTAL: {tot.verdict}: {tot.price or tot.reason}"))
    for trial in c.trials:
        lines.append(printable(f"trials {trial.group!r}: {trial.summary}"))
    if c.added:
        lines.append(printable(f"added: {', '.join(c.added)}"))
    if c.removed:
        lines.append(printable(f"removed: {', '.join(c.removed)}"))
    for note in c.notes:
        lines.append(printable(f"note: {note}"))
    for t in c.tests:
        for note in t.notes:
            lines.append(printable(f"note: {t.nodeid}: {note}"))
    return lines
