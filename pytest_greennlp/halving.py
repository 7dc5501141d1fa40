"""Early stopping of seeds and trials: one round ("start many, stop early, continue some") or successive halving.

Dodge et al. (2020) start many random seeds, evaluate them after a fraction of the
training budget, and continue only the most promising; successive halving (Jamieson and
Talwalkar 2016) repeats that step in rounds. This module has two halves:

* **the schedule math, pure** (numpy and the standard library, no I/O): `Rung`,
  `Schedule`, `one_round`, `successive_halving`, `select_top` and
  `expected_best_early_stopped`, the expected best score of an early-stopped search
  estimated by resampling trials, as Dodge et al. (2020) do;
* **the runner** `run_search`, which calls a user's ``step(trial, units) -> score``
  rung by rung, measures each call, records *every* trial through ``green.trial``
  (stopped ones with ``status="stopped"`` and their partial cost) and a summary under
  ``green.extra("early_stopping", ...)``: compute spent, compute the full search would
  have cost, and the expected validation performance of both.

Budgets are in *units* the caller chooses (epochs, steps, examples): a rung's ``units``
is the cumulative budget per trial at its end, so ``step`` is asked for the difference.

References
----------
.. [1] Dodge et al. "Fine-Tuning Pretrained Language Models: Weight Initializations, Data
   Orders, and Early Stopping." arXiv:2002.06305 (2020).
.. [2] Jamieson and Talwalkar. "Non-stochastic Best Arm Identification and
   Hyperparameter Optimization." AISTATS (2016).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from pytest_greennlp.evp import expected_max

if TYPE_CHECKING:
    from pytest_greennlp.recorder import Recorder
    from pytest_greennlp.records import TrialCost
    from pytest_greennlp.session import Snapshot, TestRun

__all__ = [
    "Rung",
    "Schedule",
    "SearchResult",
    "TrialState",
    "expected_best_early_stopped",
    "one_round",
    "run_search",
    "select_top",
    "successive_halving",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
TrialStatus = Literal["running", "finished", "stopped", "failed"]

_COST_FIELDS = ("wall_s", "cpu_s", "measured_j", "estimated_j", "flops")


# -- private helpers -------------------------------------------------------------------


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}.")
    return int(value)


def _check_units(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}.")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}.")
    return number


def _ranking_keys(scores: FloatArray, higher_is_better: bool) -> FloatArray:
    """Keys that sort best first under an ascending sort; failures (NaN) come last."""
    keys = -scores if higher_is_better else scores.copy()
    keys[np.isnan(keys)] = np.inf
    return keys


def _stand_in_scores(rung_scores: FloatArray, reached: npt.NDArray[np.int64]) -> FloatArray:
    """Each trial's score at every rung; past the last rung it reached, its last score."""
    filled = rung_scores.copy()
    for i, last in enumerate(reached):
        if 0 < last < filled.shape[1]:
            filled[i, last:] = rung_scores[i, last - 1]
        elif last == 0:
            filled[i, :] = np.nan
    return filled


# -- the schedule ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rung:
    """One evaluation point of a search.

    Attributes
    ----------
    trials : int
        How many trials train up to this rung.
    units : float
        The cumulative budget of each of those trials at the end of the rung.
    """

    trials: int
    units: float


@dataclass(frozen=True)
class Schedule:
    """Which trials train how far: rungs with fewer trials and more units each.

    Every trial trains to the first rung and is evaluated; the best ``rungs[i + 1].trials``
    of rung ``i`` continue to rung ``i + 1``; the last rung's trials get the full budget.

    Parameters
    ----------
    rungs : tuple of Rung, required
        At least one rung; trial counts positive and non-increasing, units strictly
        increasing. The first rung's trials are the search's trials and the last rung's
        units the full budget per trial.
    kind : str, optional
        A label for the report (``"one-round"``, ``"successive-halving"``, ``"full"``).

    Examples
    --------
    >>> s = one_round(20, 3.0, fraction=0.25, keep=5)
    >>> s.cost_units(), s.full_cost_units()
    (26.25, 60.0)
    """

    rungs: tuple[Rung, ...]
    kind: str = "custom"

    def __post_init__(self) -> None:
        # Validate the arguments.
        if not self.rungs:
            raise ValueError("rungs must hold at least one Rung.")
        previous_trials, previous_units = math.inf, 0.0
        for rung in self.rungs:
            _check_positive_int(rung.trials, "a rung's trials")
            _check_units(rung.units, "a rung's units")
            if rung.trials > previous_trials:
                raise ValueError("rung trial counts must be non-increasing.")
            if rung.units <= previous_units:
                raise ValueError("rung units must be strictly increasing.")
            previous_trials, previous_units = rung.trials, rung.units

    @property
    def n_trials(self) -> int:
        """How many trials the search starts."""
        return self.rungs[0].trials

    @property
    def units(self) -> float:
        """The full budget of one trial."""
        return self.rungs[-1].units

    def cost_units(self) -> float:
        """Units the search spends: each rung's trials times the units it adds."""
        total, previous = 0.0, 0.0
        for rung in self.rungs:
            total += rung.trials * (rung.units - previous)
            previous = rung.units
        return total

    def full_cost_units(self) -> float:
        """Units of the full search: every trial trained to the full budget."""
        return self.n_trials * self.units

    def as_dict(self) -> dict[str, Any]:
        """The schedule as JSON data for the report."""
        return {
            "kind": self.kind,
            "rungs": [{"trials": r.trials, "units": r.units} for r in self.rungs],
        }


def one_round(n_trials: int, units: float, *, fraction: float, keep: int) -> Schedule:
    """Start ``n_trials``, evaluate after ``fraction`` of the budget, continue ``keep``.

    The "start many, stop early, continue some" schedule of Dodge et al. (2020).

    Parameters
    ----------
    n_trials : positive int, required
        Trials started (seeds or configurations).
    units : positive float, required
        The full budget of one trial (epochs, steps...).
    fraction : float, required
        The share of ``units`` every trial gets before the evaluation, in (0, 1).
    keep : positive int, required
        Trials continued to the full budget, at most ``n_trials``.

    Returns
    -------
    Schedule
        Two rungs: ``(n_trials, fraction * units)`` and ``(keep, units)``.

    Examples
    --------
    >>> schedule = one_round(20, 3.0, fraction=0.25, keep=5)
    >>> [(r.trials, r.units) for r in schedule.rungs]
    [(20, 0.75), (5, 3.0)]
    >>> schedule.cost_units()  # 20 * 0.75 + 5 * 2.25 epochs, instead of 60
    26.25
    """
    # Validate the arguments.
    n = _check_positive_int(n_trials, "n_trials")
    full = _check_units(units, "units")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, exclusive, not {fraction!r}.")
    k = _check_positive_int(keep, "keep")
    if k > n:
        raise ValueError(f"keep must be at most n_trials ({n}), not {k}.")

    return Schedule((Rung(n, fraction * full), Rung(k, full)), kind="one-round")


def successive_halving(
    n_trials: int, units: float, *, eta: int = 2, min_units: float | None = None
) -> Schedule:
    """Successive halving: keep the best ``1/eta`` at each rung, ``eta`` times the budget.

    With ``s`` the number of halvings, rung ``i`` (``0..s``) trains
    ``n_trials // eta**i`` trials to ``units / eta**(s - i)`` units each; ``s`` is the
    largest count that leaves at least one trial and, if given, at least ``min_units``
    at the first rung (one bracket of Hyperband).

    Parameters
    ----------
    n_trials : positive int, required
        Trials started.
    units : positive float, required
        The full budget of one trial.
    eta : int, optional
        The reduction factor, at least 2.
    min_units : positive float or None, optional
        The least budget a trial may be evaluated at.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> schedule = successive_halving(20, 3.0, eta=2)
    >>> [(r.trials, r.units) for r in schedule.rungs]
    [(20, 0.1875), (10, 0.375), (5, 0.75), (2, 1.5), (1, 3.0)]
    >>> schedule.cost_units()
    10.5
    >>> [(r.trials, r.units) for r in successive_halving(27, 9.0, eta=3, min_units=1.0).rungs]
    [(27, 1.0), (9, 3.0), (3, 9.0)]
    """
    # Validate the arguments.
    n = _check_positive_int(n_trials, "n_trials")
    full = _check_units(units, "units")
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta must be an integer of at least 2, not {eta!r}.")
    floor = None if min_units is None else _check_units(min_units, "min_units")
    if floor is not None and floor > full:
        raise ValueError(f"min_units must be at most units ({full}), not {floor}.")

    # Count the halvings, then lay out the rungs.
    s = 0
    while n // eta ** (s + 1) >= 1 and (floor is None or full / eta ** (s + 1) >= floor):
        s += 1
    rungs = tuple(Rung(n // eta**i, full / eta ** (s - i)) for i in range(s + 1))
    return Schedule(rungs, kind="successive-halving")


def select_top(scores: Sequence[float | None], keep: int, *, higher_is_better: bool = True) -> list[int]:
    """Return the indices of the ``keep`` best scores, best first.

    Failed trials (None or NaN) are never selected, so fewer than ``keep`` indices come
    back when fewer trials succeeded. Ties go to the lower index.

    Examples
    --------
    >>> select_top([0.5, 0.9, None, 0.7, 0.9], 3)
    [1, 4, 3]
    >>> select_top([2.0, 1.0, 3.0], 1, higher_is_better=False)
    [1]
    """
    # Validate the arguments.
    k = _check_positive_int(keep, "keep")

    values = np.array([np.nan if s is None else float(s) for s in scores], dtype=np.float64)
    order = np.argsort(_ranking_keys(values, higher_is_better), kind="stable")
    return [int(i) for i in order if not np.isnan(values[i])][:k]


def expected_best_early_stopped(
    rung_scores: npt.ArrayLike,
    trials_per_rung: Sequence[int],
    *,
    reached: npt.ArrayLike | None = None,
    minimize: bool = False,
    draws: int = 4000,
    seed: int = 0,
) -> float:
    """Return the expected best final score of an early-stopped search, by resampling.

    Each draw picks ``trials_per_rung[0]`` trials with replacement from the pool,
    keeps the best ``trials_per_rung[i + 1]`` by their score at rung ``i``, and takes
    the best final score among the last rung's trials, as in Dodge et al. (2020). With
    a single rung this estimates `evp.expected_max` at ``k = trials_per_rung[0]``.

    Parameters
    ----------
    rung_scores : 2D array of floats, required
        ``rung_scores[t, i]``: trial ``t``'s validation score at rung ``i``. NaN marks a
        failure (never selected) or a rung the trial did not reach.
    trials_per_rung : sequence of positive ints, required
        Trials at each rung (a `Schedule`'s ``rung.trials``), non-increasing.
    reached : 1D array of ints or None, optional
        How many rungs each trial ran. A trial stopped early has no score at later
        rungs; its last score stands in for them (a lower bound when scores only improve
        with training). None: every trial ran every rung (complete data).
    minimize : bool, optional
        Whether lower is better.
    draws : positive int, optional
        Resampled searches to average.
    seed : int, optional
        Seed of the resampling, so the estimate is reproducible.

    Returns
    -------
    float
        The mean over draws of each draw's best final score; NaN if every draw ended
        with failed trials only.

    Examples
    --------
    Complete data: every trial has a score after one epoch and after three.

    >>> scores = [[0.60, 0.80], [0.70, 0.90], [0.50, 0.95], [0.65, 0.85]]
    >>> round(expected_best_early_stopped(scores, [4, 4]), 2)  # no stopping: best of 4
    0.93
    >>> round(float(expected_max([0.80, 0.90, 0.95, 0.85], ks=4)[0]), 2)  # the same, exactly
    0.93
    >>> round(expected_best_early_stopped(scores, [4, 1]), 2)  # continue the best one
    0.88
    """
    # Validate the arguments.
    table = np.asarray(rung_scores, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError("rung_scores must be a non-empty 2D array of trials by rungs.")
    counts = [_check_positive_int(c, "trials_per_rung entries") for c in trials_per_rung]
    if len(counts) != table.shape[1]:
        raise ValueError(
            f"trials_per_rung must have one entry per rung ({table.shape[1]}), not {len(counts)}."
        )
    if any(b > a for a, b in itertools.pairwise(counts)):
        raise ValueError("trials_per_rung must be non-increasing.")
    if reached is None:
        ran = np.full(table.shape[0], table.shape[1], dtype=np.int64)
    else:
        ran = np.asarray(reached, dtype=np.int64)
        if ran.shape != (table.shape[0],) or np.any(ran < 0) or np.any(ran > table.shape[1]):
            raise ValueError("reached must hold one count between 0 and the number of rungs per trial.")
    n_draws = _check_positive_int(draws, "draws")

    # Resample searches and run the schedule on each.
    filled = _stand_in_scores(table, ran)
    keys = _ranking_keys(filled, not minimize)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, table.shape[0], size=(n_draws, counts[0]))
    for rung, survivors in enumerate(counts[1:]):
        order = np.argsort(keys[picked, rung], axis=1, kind="stable")[:, :survivors]
        picked = np.take_along_axis(picked, order, axis=1)
    final = keys[picked, -1].min(axis=1)
    final[~np.isfinite(final)] = np.nan
    if np.all(np.isnan(final)):
        return math.nan
    best = float(np.nanmean(final))
    return best if minimize else -best


# -- the runner ------------------------------------------------------------------------


@dataclass
class TrialState:
    """One trial of a search as the step function sees it.

    Attributes
    ----------
    index : int
        Position in the search's list of trials.
    seed : int or None
        The trial's seed (the trial itself when trials are seeds, else ``config["seed"]``).
    config : dict
        The trial's configuration (``{"seed": seed}`` when trials are seeds).
    units_done : float
        Budget spent so far; ``step`` is called with the units to add.
    scores : list of float or None
        The score after each rung it ran.
    state : dict
        Free room for the step function: the model, optimizer, data order.
    status : str
        ``"running"``, then ``"finished"`` (full budget), ``"stopped"`` or ``"failed"``.
    """

    index: int
    seed: int | None
    config: dict[str, Any]
    units_done: float = 0.0
    scores: list[float | None] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    status: TrialStatus = "running"
    cost: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The latest score (None before the first rung or after a failure)."""
        return self.scores[-1] if self.scores else None


@dataclass(frozen=True)
class SearchResult:
    """What `run_search` returns: every trial, the best one, and the report's summary."""

    trials: tuple[TrialState, ...]
    best: TrialState | None
    summary: Mapping[str, Any]


class _Meter:
    """Measures each step call: the test's window when recording, else this process's clocks."""

    def __init__(self, run: TestRun | None) -> None:
        self.run = run

    def start(self) -> Snapshot | tuple[float, float]:
        if self.run is not None:
            return self.run.snapshot()
        return time.perf_counter(), time.process_time()

    def stop(self, started: Snapshot | tuple[float, float]) -> dict[str, float]:
        if self.run is not None and not isinstance(started, tuple):
            cost: TrialCost = self.run.cost_between(started, self.run.snapshot())
            return {k: float(getattr(cost, k)) for k in _COST_FIELDS if getattr(cost, k) is not None}
        assert isinstance(started, tuple)
        return {"wall_s": time.perf_counter() - started[0], "cpu_s": time.process_time() - started[1]}


def _as_trials(trials: int | Sequence[int] | Sequence[Mapping[str, Any]]) -> list[TrialState]:
    if isinstance(trials, bool):
        raise ValueError(f"trials must be a count, a list of seeds or a list of configs, not {trials!r}.")
    if isinstance(trials, int):
        return [TrialState(i, i, {"seed": i}) for i in range(_check_positive_int(trials, "trials"))]
    out = []
    for i, item in enumerate(trials):
        if isinstance(item, Mapping):
            seed = item.get("seed")
            out.append(TrialState(i, seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                                  dict(item)))
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(TrialState(i, item, {"seed": item}))
        else:
            raise ValueError(f"trials must hold ints (seeds) or mappings (configs), not {item!r}.")
    if not out:
        raise ValueError("trials must not be empty.")
    return out


def _score(value: object, index: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"step must return a number or None, not {value!r} (trial {index}).")
    number = float(value)
    return None if math.isnan(number) else number


def _add_cost(total: dict[str, float], part: Mapping[str, float]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value


def _summary(
    trials: Sequence[TrialState], schedule: Schedule, unit: str, higher_is_better: bool,
    draws: int, seed: int,
) -> dict[str, Any]:
    spent_units = sum(t.units_done for t in trials)
    full_units = schedule.full_cost_units()
    spent: dict[str, float] = {}
    full_estimate: dict[str, float] = {}
    for trial in trials:
        _add_cost(spent, trial.cost)
        if trial.units_done > 0:
            scale = schedule.units / trial.units_done
            _add_cost(full_estimate, {k: v * scale for k, v in trial.cost.items()})
    for d in (spent, full_estimate):
        if "flops" in d:
            d["flops"] = round(d["flops"])

    n_rungs = len(schedule.rungs)
    table = np.full((len(trials), n_rungs), np.nan)
    reached = np.zeros(len(trials), dtype=np.int64)
    for t in trials:
        for i, s in enumerate(t.scores):
            table[t.index, i] = np.nan if s is None else s
        reached[t.index] = len(t.scores)
    stand_ins = int(sum(1 for t in trials if 0 < len(t.scores) < n_rungs))
    minimize = not higher_is_better
    final = _stand_in_scores(table, reached)[:, -1]
    n = len(trials)
    per_trial = schedule.units
    same_budget_k = max(1, int(spent_units // per_trial))
    full_curve = expected_max(final, ks=[n, same_budget_k], minimize=minimize)
    search = expected_best_early_stopped(
        table, [r.trials for r in schedule.rungs], reached=reached, minimize=minimize,
        draws=draws, seed=seed,
    )
    finished = [t.score for t in trials if t.status == "finished" and t.score is not None]
    best = (max if higher_is_better else min)(finished) if finished else None

    def clean(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    return {
        "schedule": schedule.as_dict(),
        "unit": unit,
        "trials": n,
        "units_per_trial": schedule.units,
        "compute": {
            "spent_units": spent_units,
            "full_units": full_units,
            "saved_fraction": 1.0 - spent_units / full_units,
            "spent": spent,
            "full_estimate": full_estimate,
            "full_estimate_method": (
                "each trial's measured cost per unit x the full budget per trial"
            ),
        },
        "evp": {
            "higher_is_better": higher_is_better,
            "search": {
                "budget_units": spent_units,
                "expected_best": clean(search),
                "lower_bound": stand_ins > 0,
            },
            "full": {
                "budget_units": full_units,
                "expected_best": clean(float(full_curve[0])),
                "lower_bound": stand_ins > 0,
            },
            "full_same_budget": {
                "budget_units": same_budget_k * per_trial,
                "trials": same_budget_k,
                "expected_best": clean(float(full_curve[1])),
                "lower_bound": stand_ins > 0,
            },
            "best_found": best,
            "stand_ins": stand_ins,
            "method": (
                "search: resampling of trials through the schedule (Dodge et al. 2020), "
                f"{draws} draws, seed {seed}; full: evp.expected_max of final scores"
                + (
                    f"; {stand_ins} stopped trials never reached the full budget: in both "
                    "estimates their last score stands in for the final one, so both are lower "
                    "bounds when scores only improve with training (run every trial to the end, "
                    "as benchmarks/seed_early_stopping.py does, for exact figures)"
                    if stand_ins else ""
                )
            ),
        },
    }


def run_search(
    step: Callable[[TrialState, float], float | None],
    trials: int | Sequence[int] | Sequence[Mapping[str, Any]],
    schedule: Schedule,
    *,
    green: Recorder | None = None,
    higher_is_better: bool = True,
    unit: str = "epoch",
    group: str | None = None,
    extra_key: str = "early_stopping",
    draws: int = 4000,
    seed: int = 0,
) -> SearchResult:
    """Run a search with early stopping and record every trial in the test's price tag.

    Rung by rung, ``step(trial, units)`` trains each live trial for ``units`` more
    budget units and returns its validation score (None or NaN: the trial failed and
    is not continued). After each rung but the last, the best trials continue as the
    schedule says and the others stop. Each call is measured (the test's window under
    ``pytest --green``: time, energy, counted FLOPs; otherwise this process's clocks).

    At the end every trial is recorded with ``green.trial``: its last score, its own
    cost, ``status="stopped"`` for trials stopped early (a stopped trial is a cost, not
    a missing row), and the summary goes to ``green.extra(extra_key, ...)``. If ``step``
    raises, the trials run so far are recorded (the raising one as failed) first.

    Parameters
    ----------
    step : callable, required
        ``step(trial, units) -> score``; keep the model in ``trial.state``.
    trials : int or sequence, required
        A count (seeds ``0..n-1``), a list of seeds, or a list of configuration dicts.
    schedule : Schedule, required
        From `one_round` or `successive_halving`; its first rung must have as many
        trials as given here.
    green : Recorder or None, optional
        The test's ``green`` fixture; default: the running test's recorder.
    higher_is_better : bool, optional
        Whether a higher score is better.
    unit : str, optional
        The name of a budget unit, for the report.
    group : str or None, optional
        The trials' group in the report (default: the test's name).
    extra_key : str, optional
        Key of the summary in the test's ``extra``.
    draws, seed : int, optional
        Resampling of `expected_best_early_stopped`.

    Returns
    -------
    SearchResult
        Every trial's state, the best finished trial, and the summary.

    Examples
    --------
    >>> def step(trial, units):  # a stand-in: trial i's score grows with training
    ...     trial.state["x"] = trial.state.get("x", 0.0) + units
    ...     return trial.index / 10 + trial.state["x"]
    >>> result = run_search(step, 4, one_round(4, 2.0, fraction=0.5, keep=2))
    >>> [(t.index, t.status, t.units_done) for t in result.trials]
    [(0, 'stopped', 1.0), (1, 'stopped', 1.0), (2, 'finished', 2.0), (3, 'finished', 2.0)]
    >>> result.summary["compute"]["spent_units"], result.summary["compute"]["full_units"]
    (6.0, 8.0)
    """
    # Validate the arguments.
    if not callable(step):
        raise ValueError(f"step must be callable, not {type(step).__name__}.")
    states = _as_trials(trials)
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, not {type(schedule).__name__}.")
    if schedule.n_trials != len(states):
        raise ValueError(
            f"schedule starts {schedule.n_trials} trials but {len(states)} were given."
        )
    if green is None:
        from pytest_greennlp.recorder import running_recorder

        green = running_recorder()
    meter = _Meter(green.test_run)

    # Run the rungs.
    live = list(states)
    try:
        for r, rung in enumerate(schedule.rungs):
            for trial in live:
                started = meter.start()
                try:
                    value = step(trial, rung.units - trial.units_done)
                except BaseException:
                    trial.status = "failed"
                    trial.scores.append(None)
                    raise
                finally:
                    _add_cost(trial.cost, meter.stop(started))
                    trial.units_done = rung.units
                score = _score(value, trial.index)
                trial.scores.append(score)
                if score is None:
                    trial.status = "failed"
            live = [t for t in live if t.status == "running"]
            if r + 1 < len(schedule.rungs):
                chosen = set(select_top([t.score for t in live], schedule.rungs[r + 1].trials,
                                        higher_is_better=higher_is_better)) if live else set()
                for i, trial in enumerate(live):
                    if i not in chosen:
                        trial.status = "stopped"
                live = [t for i, t in enumerate(live) if i in chosen]
        for trial in live:
            trial.status = "finished"
    finally:
        for trial in states:
            if trial.status == "running":  # interrupted before its rung ended
                trial.status = "stopped"
            if trial.units_done == 0 and not trial.scores:
                continue  # never started: no cost, no row
            green.trial(
                trial.score,
                cost=trial.cost,
                config=trial.config,
                seed=trial.seed,
                group=group,
                status="ok" if trial.status == "finished" else trial.status,
                higher_is_better=higher_is_better,
            )

    summary = _summary(states, schedule, unit, higher_is_better, draws, seed)
    green.extra(extra_key, summary)
    finished = [t for t in states if t.status == "finished" and t.score is not None]
    best = None
    if finished:
        pick = max if higher_is_better else min
        best = pick(finished, key=lambda t: (t.score if t.score is not None else math.nan))
    log.debug("search: %s units spent of %s", summary["compute"]["spent_units"], summary["compute"]["full_units"])
    return SearchResult(trials=tuple(states), best=best, summary=summary)
