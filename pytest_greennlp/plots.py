"""Plots: tuning curves, metric-vs-cost scatters and multi-exit figures (matplotlib, PNG/SVG).

Every function returns a `matplotlib.figure.Figure` drawn on its own Agg canvas (no
pyplot, no global backend switch, nothing left open); `save` writes it as PNG and SVG.
matplotlib is imported when a plot is made, never when the plugin starts
(``pip install pytest-greennlp[evp]``).

Figures
-------
* `tuning_curve`: expected best score of ``k`` trials (Dodge et al. 2019, with
  replacement, `evp.expected_max`) with its one-standard-deviation band clipped to the
  observed scores (`evp.expected_max_band`) and, with ``opda=True``, the
  distribution-free band of the median tuning curve (`evp.tuning_curve_band`), against
  the number of trials or the budget (``k`` times the mean cost per trial,
  `evp.budget_curve`). Several sides (base, head) are overlaid; with two, the budget
  beyond which one stays ahead (`evp.crossover`) is marked.
* `trial_cost`: each trial's score against its cost, with the Pareto front
  (`exits.pareto_front`); failed trials are crosses along the bottom edge.
* `metric_cost`: one metric of the tests against the tests' cost, Pareto front, and
  an arrow from base to head for each test in both.
* `exit_curve`: multi-exit accuracy against FLOPs per example over every threshold,
  with the Pareto front, the full model and each single exit marked (``extra["sweep"]``
  as `multiexit.record_sweep` stores it); `exit_time`: measured and FLOP-predicted time
  per example at the measured thresholds; `reliability`: reliability diagrams of each
  exit before and after temperature scaling.

`plan` lists every figure a report (and a base report) supports, with a note for what
it cannot plot; ``greennlp plot`` saves them all.

Defaults suit a paper and a PR comment: 6.4 x 4 in at 125 dpi (800 px wide), labelled
axes with units, a legend, a title, the Okabe-Ito colour-blind-safe palette, and line
styles that differ as well as colours (base dashed, head solid). SVG files carry no
date, so the same figure gives the same file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from pytest_greennlp import evp, exits
from pytest_greennlp.errors import ConfigError, ReportError
from pytest_greennlp.records import Report, TestRecord, Trial

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

__all__ = [
    "FORMATS",
    "PALETTE",
    "Budget",
    "CostKey",
    "Plot",
    "exit_curve",
    "exit_time",
    "metric_cost",
    "metric_cost_key",
    "plan",
    "reliability",
    "save",
    "sweep_payloads",
    "trial_cost",
    "trial_cost_key",
    "tuning_curve",
]

logger = logging.getLogger(__name__)

#: Okabe and Ito's colour-blind-safe palette: blue, vermillion, bluish green, reddish
#: purple, orange, sky blue, yellow, black. Base is the first colour, head the second.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
)
_LINESTYLES = ("--", "-", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: The file formats `save` writes.
FORMATS = ("png", "svg", "pdf")

CostKey = Literal["flops", "wall_s", "measured_j", "estimated_j", "cpu_s"]
#: A budget axis: the number of trials, a cost, or "auto" (the first cost in `CostKey`
#: order that every trial has).
Budget = Literal["trials", "auto", "flops", "wall_s", "measured_j", "estimated_j", "cpu_s"]
_COST_KEYS: tuple[CostKey, ...] = get_args(CostKey)
#: What each cost is, and its unit.
_COST_NAMES: Mapping[str, tuple[str, str]] = {
    "flops": ("compute", "FLOPs"),
    "wall_s": ("wall time", "s"),
    "cpu_s": ("CPU time", "s"),
    "measured_j": ("energy, measured", "J"),
    "estimated_j": ("energy, estimated", "J"),
}
#: Most trial counts drawn exactly on a tuning curve; beyond that a geometric grid.
_MAX_DENSE_K = 500
#: Points at or below which each test in a scatter is labelled with its name.
_MAX_LABELLED = 12
_SWEEP_KEYS = frozenset({"curve", "single_exits", "full_model"})
_SWEEP_VERSION = 1

_WIDTH_IN = 6.4
_HEIGHT_IN = 4.0
_DPI = 125
_STYLE: Mapping[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.titleweight": "bold",
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5.0,
    "figure.dpi": _DPI,
    "savefig.dpi": _DPI,
    "svg.hashsalt": "pytest-greennlp",
    "svg.fonttype": "path",
}


# helper functions and classes


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(typing.cast(Any, dict(_STYLE))):
        yield


def _figure(nrows: int = 1, ncols: int = 1, *, height: float = _HEIGHT_IN) -> tuple[Figure, Any]:
    """A new figure on its own Agg canvas, and its axes as a 2D array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH_IN, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _eng_axis(ax: Axes, which: Literal["x", "y"] = "x") -> None:
    from matplotlib.ticker import EngFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(EngFormatter(places=None, sep=" "))


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    exponent = math.floor(math.log10(abs(value)) / 3) * 3
    prefixes = {3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E", -3: "m", -6: "µ", -9: "n"}
    prefix = prefixes.get(exponent)
    if prefix is None:
        return f"{value:.3g}"
    return f"{value / 10.0**exponent:.3g} {prefix}"


def _with_unit(value: float, unit: str) -> str:
    text = _fmt(value)
    return f"{text}{unit}" if text.endswith(" ") or text[-1].isalpha() else f"{text} {unit}"


def _side_style(label: str, sides: Sequence[str] | Mapping[str, Any]) -> tuple[str, str, str]:
    """Colour, line style and marker of a side, by its place among ``sides`` (even empty
    ones, so that head keeps its colour when base has nothing to draw; one side: solid)."""
    index, count = list(sides).index(label), len(sides)
    colour = PALETTE[index % len(PALETTE)]
    style = "-" if count == 1 else _LINESTYLES[index % len(_LINESTYLES)]
    return colour, style, _MARKERS[index % len(_MARKERS)]


def _short_name(nodeid: str, limit: int = 28) -> str:
    name = nodeid.rsplit("::", 1)[-1]
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _score(trial: Trial) -> float:
    if trial.status == "failed" or trial.score is None:
        return math.nan
    return float(trial.score)


def _trial_cost(trial: Trial, key: str) -> float | None:
    value = getattr(trial.cost, key)
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _minimize(sides: Mapping[str, Sequence[Trial]]) -> bool:
    directions = {t.higher_is_better for trials in sides.values() for t in trials}
    if len(directions) > 1:
        raise ConfigError("the trials disagree on higher_is_better; plot them apart")
    return not directions.pop() if directions else False


def _ks(n: int) -> NDArray[np.int64]:
    dense = np.arange(1, min(n, _MAX_DENSE_K) + 1, dtype=np.int64)
    if n <= _MAX_DENSE_K:
        return dense
    sparse = np.geomspace(_MAX_DENSE_K, n, 200).round().astype(np.int64)
    return np.unique(np.concatenate([dense, sparse, [n]]))


def _group_name(sides: Mapping[str, Sequence[Trial]]) -> str:
    groups = sorted({t.group for trials in sides.values() for t in trials})
    return ", ".join(groups) if groups else "trials"


def _check_sides(sides: Mapping[str, Sequence[Any]], what: str) -> dict[str, Sequence[Any]]:
    if not isinstance(sides, Mapping):
        raise ConfigError(f"{what}: expected a mapping of label to items, "
                          f"got {type(sides).__name__}")
    kept = {str(label): items for label, items in sides.items() if len(items)}
    if not kept:
        raise ConfigError(f"{what}: nothing to plot")
    return kept


def _legend(fig: Figure, ax: Axes) -> None:
    """A legend inside the axes for up to three entries, else in two columns below them."""
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 3:
        fig.set_figheight(fig.get_figheight() + 0.2 * math.ceil(len(handles) / 2))
        fig.legend(handles, labels, loc="outside lower center", ncols=2)
    elif handles:
        ax.legend(loc="best")


# --- tuning curves --------------------------------------------------------------------------


def trial_cost_key(sides: Mapping[str, Sequence[Trial]], budget: Budget = "auto") -> CostKey | None:
    """Return the cost that every trial of every side has (positive in total per side).

    ``"auto"`` tries FLOPs, wall seconds, measured joules, estimated joules, CPU
    seconds in that order; a named cost is returned if usable. None if none is.
    """
    if budget == "trials":
        return None
    candidates = _COST_KEYS if budget == "auto" else (budget,)
    for key in candidates:
        if key not in _COST_KEYS:
            raise ConfigError(f"budget must be 'trials', 'auto' or one of "
                              f"{', '.join(_COST_KEYS)}, got {key!r}")
        usable = True
        for trials in sides.values():
            costs = [_trial_cost(t, key) for t in trials]
            if not costs:
                continue
            if any(c is None for c in costs) or sum(c or 0.0 for c in costs) <= 0:
                usable = False
                break
        if usable:
            return key
    return None


def tuning_curve(
    sides: Mapping[str, Sequence[Trial]],
    *,
    budget: Budget = "trials",
    band: bool = True,
    opda: bool = False,
    confidence: float = 0.8,
    opda_method: evp.BandMethod = "ld_equal_tailed",
    score_bounds: tuple[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """Return the expected validation performance of each side against trials or budget.

    Parameters
    ----------
    sides : mapping of str to sequence of Trial, required
        A label (``"base"``, ``"head"``) for each set of trials of one group, in
        drawing order. Failed trials count in ``n`` and in the budget, never as best.
    budget : {"trials", "auto", "flops", "wall_s", "measured_j", "estimated_j", "cpu_s"}, optional
        The x axis: the number of trials ``k``, or ``k`` times the mean cost per trial
        in that cost (`trial_cost_key` resolves ``"auto"``).
    band : bool, optional
        Shade the with-replacement estimate plus or minus one standard deviation,
        clipped to the observed scores.
    opda : bool, optional
        Also draw opda's distribution-free band of the median tuning curve
        (Lourie et al. 2024), at ``confidence`` with ``opda_method``.
    confidence : float, optional
        Coverage of the opda band.
    opda_method : {"dkw", "ks", "ld_equal_tailed", "ld_highest_density"}, optional
        opda's CDF band (``"ld_*"`` are tightest and take about a second per side).
    score_bounds : (float, float) or None, optional
        Known bounds on any score, such as ``(0, 1)`` for accuracy: without them the
        upper end of the opda band is unbounded (not drawn) beyond ``k = 1``.
    title : str or None, optional
        Default: ``"Expected validation performance: GROUP"``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a line per side (the estimate), a shaded band per side, dotted opda
        band lines, and a vertical line at the crossover budget when one of two sides
        overtakes the other inside the range both reach.

    Raises
    ------
    ConfigError
        No trials, trials that disagree on ``higher_is_better``, a budget cost that not
        every trial has, or ``opda=True`` without opda installed.
    """
    # Validate the arguments.
    kept: dict[str, Sequence[Trial]] = _check_sides(sides, "tuning_curve")
    order = [str(label) for label in sides]
    minimize = _minimize(kept)
    key = trial_cost_key(kept, budget)
    if budget != "trials" and key is None:
        raise ConfigError(f"tuning_curve: not every trial has a positive {budget} cost")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence!r}")
    lo_score, hi_score = (-math.inf, math.inf) if score_bounds is None else score_bounds
    if not lo_score < hi_score:
        raise ConfigError(f"score_bounds must be (low, high) with low < high, got {score_bounds!r}")
    finite = [_score(t) for v in kept.values() for t in v if not math.isnan(_score(t))]
    if finite and (min(finite) < lo_score or max(finite) > hi_score):
        raise ConfigError(f"score_bounds {score_bounds!r} do not hold every score "
                          f"[{min(finite):g}, {max(finite):g}]")
    if opda:
        try:
            import opda as _opda  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the opda band needs opda: pip install pytest-greennlp[evp]") from None

    with _style():
        fig, axes = _figure()
        ax: Axes = axes[0, 0]
        curves: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]] = []
        for index, (label, trials) in enumerate(kept.items()):
            colour, style, marker = _side_style(label, order)
            scores = np.array([_score(t) for t in trials], dtype=np.float64)
            ks = _ks(len(trials))
            if key is None:
                x = ks.astype(np.float64)
                mean = evp.expected_max(scores, ks, minimize=minimize)
            else:
                costs = np.array([_trial_cost(t, key) for t in trials], dtype=np.float64)
                x, mean = evp.budget_curve(scores, costs, ks, minimize=minimize)
            failed = int(np.count_nonzero(np.isnan(scores)))
            detail = f"n = {len(trials)}" + (f", {failed} failed" if failed else "")
            ax.plot(x, mean, color=colour, linestyle=style,
                    marker=marker if len(x) <= 25 else None, markersize=3.5,
                    label=f"{label}: expected best ({detail})")
            if band:
                lower, upper = evp.expected_max_band(scores, ks, minimize=minimize)
                ax.fill_between(x, lower, upper, color=colour, alpha=0.18, linewidth=0,
                                label=f"{label}: ±1 s.d. (clipped)")
            if opda:
                low, _, high = evp.tuning_curve_band(scores, ks, confidence=confidence,
                                                     minimize=minimize, method=opda_method,
                                                     a=lo_score, b=hi_score)
                ax.plot(x, low, color=colour, linestyle=":", linewidth=1.2,
                        label=f"{label}: {confidence:.0%} band, median curve (opda)")
                ax.plot(x, high, color=colour, linestyle=":", linewidth=1.2, label="_nolegend_")
            if np.all(np.isfinite(mean)):
                curves.append((label, x, mean))

        if key is None:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("Trials, k (random-search draws)")
            unit = "trials"
        else:
            what, unit = _COST_NAMES[key]
            ax.set_xlabel(f"Budget, {what} ({unit})" if key != "flops" else "Budget (FLOPs)")
            if key == "flops":
                _eng_axis(ax)
        direction = "lower is better" if minimize else "higher is better"
        ax.set_ylabel(f"Expected best score of k trials\n({direction})")
        ax.set_title(title or f"Expected validation performance: {_group_name(kept)}")
        if len(curves) == 2:
            _mark_crossover(ax, curves, minimize, unit)
        _legend(fig, ax)
    return fig


def _mark_crossover(ax: Axes, curves: Sequence[tuple[str, Any, Any]], minimize: bool,
                    unit: str) -> None:
    (name_a, xa, ya), (name_b, xb, yb) = curves
    start = max(float(xa[0]), float(xb[0]))
    for (first, x1, y1), (second, x2, y2) in (((name_a, xa, ya), (name_b, xb, yb)),
                                              ((name_b, xb, yb), (name_a, xa, ya))):
        try:
            at = evp.crossover(x1, y1, x2, y2, minimize=minimize)
        except ValueError:  # budget ranges that do not overlap, or a single point
            return
        if at is not None and at > start:
            ax.axvline(at, color="0.25", linestyle=(0, (1, 2)), linewidth=1.3,
                       label=f"{second} overtakes {first} beyond {_with_unit(at, unit)}")
            return


# --- scatters ------------------------------------------------------------------------------


def _front_line(ax: Axes, cost: NDArray[np.float64], quality: NDArray[np.float64],
                minimize: bool, colour: str, label: str) -> None:
    oriented = -quality if minimize else quality
    front = exits.pareto_front(cost, oriented)
    ax.plot(cost[front], quality[front], color=colour, drawstyle="steps-post",
            linewidth=1.4, alpha=0.9, label=label)


def _log_if_wide(ax: Axes, values: Sequence[float], which: Literal["x", "y"] = "x") -> None:
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 100:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")


def trial_cost(
    sides: Mapping[str, Sequence[Trial]],
    *,
    cost: Budget = "auto",
    title: str | None = None,
) -> Figure:
    """Return each trial's score against its cost, with each side's Pareto front.

    Parameters
    ----------
    sides : mapping of str to sequence of Trial, required
        A label for each set of trials, in drawing order.
    cost : {"auto", "flops", "wall_s", "measured_j", "estimated_j", "cpu_s"}, optional
        The x axis (`trial_cost_key` resolves ``"auto"``).
    title : str or None, optional
        Default: ``"Score vs cost per trial: GROUP"``.

    Returns
    -------
    matplotlib.figure.Figure
        Per side: the trials that have a score (a scatter), the Pareto front (a step
        line), and failed trials as crosses on the bottom edge at their cost.

    Raises
    ------
    ConfigError
        No trials, mixed directions, or a cost not every trial has.
    """
    # Validate the arguments.
    kept: dict[str, Sequence[Trial]] = _check_sides(sides, "trial_cost")
    order = [str(label) for label in sides]
    minimize = _minimize(kept)
    key = trial_cost_key(kept, "auto" if cost == "trials" else cost)
    if key is None:
        raise ConfigError(f"trial_cost: not every trial has a positive {cost} cost")

    with _style():
        fig, axes = _figure()
        ax: Axes = axes[0, 0]
        every: list[float] = []
        for index, (label, trials) in enumerate(kept.items()):
            colour, _, marker = _side_style(label, order)
            x = np.array([_trial_cost(t, key) for t in trials], dtype=np.float64)
            y = np.array([_score(t) for t in trials], dtype=np.float64)
            every.extend(x.tolist())
            ok = np.isfinite(y)
            ax.scatter(x[ok], y[ok], color=colour, marker=marker, s=22, alpha=0.85,
                       edgecolors="none", label=f"{label}: trials ({int(ok.sum())})")
            if ok.any():
                _front_line(ax, x[ok], y[ok], minimize, colour, f"{label}: Pareto front")
            if (~ok).any():
                ax.plot(x[~ok], np.full(int((~ok).sum()), 0.02), linestyle="none", marker="x",
                        color=colour, transform=ax.get_xaxis_transform(),
                        label=f"{label}: failed ({int((~ok).sum())})")
        what, unit = _COST_NAMES[key]
        ax.set_xlabel(f"Cost per trial, {what} ({unit})" if key != "flops"
                      else "Cost per trial (FLOPs)")
        _log_if_wide(ax, every)
        if key == "flops":
            _eng_axis(ax)
        direction = "lower is better" if minimize else "higher is better"
        ax.set_ylabel(f"Validation score ({direction})")
        ax.set_title(title or f"Score vs cost per trial: {_group_name(kept)}")
        _legend(fig, ax)
    return fig


def _test_cost(test: TestRecord, key: str) -> float | None:
    value: float | int | None = None
    if key == "flops":
        value = test.flops.total if test.flops is not None else None
    elif key in ("wall_s", "cpu_s"):
        value = getattr(test.timing, key) if test.timing is not None else None
    elif test.energy is not None:
        value = getattr(test.energy, key)
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _metric_of(test: TestRecord, metric: str) -> tuple[float, bool] | None:
    for m in test.metrics:
        if m.name == metric and m.value is not None and math.isfinite(m.value):
            return float(m.value), m.higher_is_better
    return None


def metric_cost_key(sides: Mapping[str, Sequence[TestRecord]], metric: str,
                  cost: Budget = "auto") -> CostKey | None:
    """Return the cost the most tests reporting ``metric`` have (FLOPs first on ties)."""
    candidates = _COST_KEYS if cost in ("auto", "trials") else (cost,)
    best: tuple[int, CostKey | None] = (0, None)
    for key in candidates:
        if key not in _COST_KEYS:
            raise ConfigError(f"cost must be 'auto' or one of {', '.join(_COST_KEYS)}, got {key!r}")
        count = sum(1 for tests in sides.values() for t in tests
                    if _metric_of(t, metric) is not None and _test_cost(t, key) is not None)
        if count > best[0]:
            best = (count, key)
    return best[1]


def metric_cost(
    sides: Mapping[str, Sequence[TestRecord]],
    metric: str,
    *,
    cost: Budget = "auto",
    title: str | None = None,
) -> Figure:
    """Return one metric of the tests against their cost, with the Pareto front.

    Parameters
    ----------
    sides : mapping of str to sequence of TestRecord, required
        A label for each set of tests (``"base"``, ``"head"``), in drawing order.
    metric : str, required
        The metric name (``green.metric``); tests without it are left out.
    cost : {"auto", "flops", "wall_s", "measured_j", "estimated_j", "cpu_s"}, optional
        The x axis; ``"auto"`` is the cost most of these tests have (`metric_cost_key`).
    title : str or None, optional
        Default: ``"METRIC vs cost per test"``.

    Returns
    -------
    matplotlib.figure.Figure
        Per side a scatter and its Pareto front; an arrow from base to head for each
        test in both (by nodeid); test names next to the points when there are few.

    Raises
    ------
    ConfigError
        If no test has both the metric and the cost.
    """
    # Validate the arguments.
    if not isinstance(sides, Mapping):
        raise ConfigError(f"metric_cost: expected a mapping of label to tests, got "
                          f"{type(sides).__name__}")
    key = metric_cost_key(sides, metric, cost)
    if key is None:
        raise ConfigError(f"metric_cost: no test has metric {metric!r} and a {cost} cost")
    points: dict[str, dict[str, tuple[float, float]]] = {}
    directions: set[bool] = set()
    for label, tests in sides.items():
        found = {}
        for test in tests:
            value = _metric_of(test, metric)
            spent = _test_cost(test, key)
            if value is not None and spent is not None:
                found[test.nodeid] = (spent, value[0])
                directions.add(value[1])
        if found:
            points[str(label)] = found
    minimize = directions == {False}
    order = [str(label) for label in sides]

    with _style():
        fig, axes = _figure()
        ax: Axes = axes[0, 0]
        total = sum(len(p) for p in points.values())
        every: list[float] = []
        for index, (label, found) in enumerate(points.items()):
            colour, _, marker = _side_style(label, order)
            x = np.array([c for c, _ in found.values()], dtype=np.float64)
            y = np.array([v for _, v in found.values()], dtype=np.float64)
            every.extend(x.tolist())
            ax.scatter(x, y, color=colour, marker=marker, s=30, alpha=0.9, edgecolors="none",
                       label=f"{label}: tests ({len(found)})")
            if len(found) > 1:
                _front_line(ax, x, y, minimize, colour, f"{label}: Pareto front")
            if total <= _MAX_LABELLED and index == len(points) - 1:
                for nodeid, (cx, cy) in found.items():
                    ax.annotate(_short_name(nodeid), (cx, cy), xytext=(4, 3),
                                textcoords="offset points", fontsize=7.5, color="0.2")
        labels = list(points)
        if len(labels) >= 2:
            before, after = points[labels[0]], points[labels[-1]]
            for nodeid in sorted(set(before) & set(after))[:30]:
                if before[nodeid] != after[nodeid]:
                    ax.annotate("", xy=after[nodeid], xytext=before[nodeid],
                                arrowprops={"arrowstyle": "->", "color": "0.45", "lw": 0.9})
        what, unit = _COST_NAMES[key]
        ax.set_xlabel(f"Cost per test, {what} ({unit})" if key != "flops"
                      else "Cost per test (FLOPs)")
        _log_if_wide(ax, every)
        if key == "flops":
            _eng_axis(ax)
        direction = "lower is better" if minimize else "higher is better"
        ax.set_ylabel(f"{metric} ({direction})")
        ax.set_title(title or f"{metric} vs cost per test")
        _legend(fig, ax)
    return fig


# --- multi-exit sweeps -----------------------------------------------------------------------


def sweep_payloads(test: TestRecord) -> dict[str, Mapping[str, Any]]:
    """Return the multi-exit sweeps in a test's ``extra``, by key (``"sweep"`` by default).

    A sweep is a mapping with ``curve``, ``single_exits`` and ``full_model`` entries,
    as `multiexit.record_sweep` stores it.
    """
    return {key: value for key, value in test.extra.items()
            if isinstance(value, Mapping) and _SWEEP_KEYS <= set(value)}


class _Bad(ValueError):
    """A malformed sweep payload."""


def _get(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise _Bad(f"{where}: missing {key!r}")
    return data[key]


def _floats(value: Any, where: str) -> NDArray[np.float64]:
    if not isinstance(value, list):
        raise _Bad(f"{where}: expected a list of numbers")
    out = []
    for item in value:
        if item is None:
            out.append(math.nan)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(float(item))
        else:
            raise _Bad(f"{where}: expected numbers, got {item!r:.40}")
    return np.array(out, dtype=np.float64)


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(f"{where}: expected a finite number, got {value!r:.40}")
    return float(value)


@dataclass(frozen=True)
class _Sweep:
    """The parts of an ``extra["sweep"]`` payload the plots use."""

    exit_layers: tuple[int, ...]
    curve_cost: NDArray[np.float64]
    curve_accuracy: NDArray[np.float64]
    full_accuracy: float
    full_cost: float
    single: tuple[tuple[int, float, float], ...]  # (layer, cost, accuracy)
    cost_unit: str
    within_1pt: tuple[float, float] | None
    calibration: Mapping[str, Any] | None
    temperatures: tuple[float, ...]
    measured: tuple[Mapping[str, Any], ...]


def _parse_sweep(payload: Mapping[str, Any], where: str) -> _Sweep:
    version = payload.get("version", _SWEEP_VERSION)
    if not isinstance(version, int) or version > _SWEEP_VERSION:
        raise _Bad(f"{where}: payload version {version!r} is newer than this version plots")
    curve = _get(payload, "curve", where)
    cost = _floats(_get(curve, "flops_per_example", f"{where}.curve"), f"{where}.curve")
    accuracy = _floats(_get(curve, "accuracy", f"{where}.curve"), f"{where}.curve")
    if cost.shape != accuracy.shape or cost.size == 0:
        raise _Bad(f"{where}.curve: flops_per_example and accuracy differ in length or are empty")
    full = _get(payload, "full_model", where)
    single = []
    entries = _get(payload, "single_exits", where)
    if not isinstance(entries, list):
        raise _Bad(f"{where}.single_exits: expected a list")
    for i, entry in enumerate(entries):
        at = f"{where}.single_exits[{i}]"
        layer = _get(entry, "layer", at)
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise _Bad(f"{at}.layer: expected an integer")
        single.append((layer, _float(_get(entry, "flops_per_example", at), at),
                       _float(_get(entry, "accuracy", at), at)))
    points = payload.get("operating_points")
    within = None
    if isinstance(points, Mapping) and isinstance(points.get("within_1pt"), Mapping):
        p = points["within_1pt"]
        at = f"{where}.operating_points.within_1pt"
        within = (_float(_get(p, "flops_per_example", at), at), _float(_get(p, "accuracy", at), at))
    calibration = payload.get("calibration")
    temperatures = payload.get("temperatures")
    measured = payload.get("measured") or []
    if not isinstance(measured, list) or not all(isinstance(m, Mapping) for m in measured):
        raise _Bad(f"{where}.measured: expected a list of objects")
    costs = payload.get("costs")
    unit = costs.get("unit") if isinstance(costs, Mapping) else None
    layers = payload.get("exit_layers")
    return _Sweep(
        exit_layers=tuple(int(k) for k in layers) if isinstance(layers, list) else
        tuple(s[0] for s in single),
        curve_cost=cost,
        curve_accuracy=accuracy,
        full_accuracy=_float(_get(full, "accuracy", f"{where}.full_model"), f"{where}.full_model"),
        full_cost=_float(_get(full, "flops_per_example", f"{where}.full_model"),
                         f"{where}.full_model"),
        single=tuple(single),
        cost_unit=unit if isinstance(unit, str) and unit else "FLOPs per example",
        within_1pt=within,
        calibration=calibration if isinstance(calibration, Mapping) else None,
        temperatures=tuple(float(t) for t in temperatures)
        if isinstance(temperatures, list) and all(isinstance(t, (int, float)) for t in temperatures)
        else (),
        measured=tuple(measured),
    )


def _bad_sweep(where: str, exc: _Bad) -> ReportError:
    """``WHERE: PATH: problem`` with the path relative to ``where``."""
    return ReportError(where, str(exc).removeprefix(where).lstrip(".: "))


def _sweep(payload: Mapping[str, Any], where: str) -> _Sweep:
    try:
        return _parse_sweep(payload, where)
    except _Bad as exc:
        raise _bad_sweep(where, exc) from None


def exit_curve(
    sweeps: Mapping[str, Mapping[str, Any]],
    *,
    title: str | None = None,
) -> Figure:
    """Return multi-exit accuracy against FLOPs per example, as in Schwartz et al. (2020).

    Parameters
    ----------
    sweeps : mapping of str to payload, required
        A label for each ``extra["sweep"]`` payload (`multiexit.record_sweep`), e.g.
        ``{"base": ..., "head": ...}``, in drawing order.
    title : str or None, optional
        Default: ``"Early exit: accuracy vs compute"``.

    Returns
    -------
    matplotlib.figure.Figure
        Per side: the curve over every threshold, the full model (a star) and each
        earlier single exit (hollow squares, annotated with its layer); for the last
        side also the Pareto front and the fastest threshold within one point of the
        full model (a diamond).

    Raises
    ------
    ReportError
        If a payload lacks a part the plot needs (one line naming it).
    """
    if not isinstance(sweeps, Mapping) or not sweeps:
        raise ConfigError("exit_curve: expected a non-empty mapping of label to sweep payload")
    parsed = {str(label): _sweep(payload, f"sweep {label!r}") for label, payload in sweeps.items()}

    with _style():
        fig, axes = _figure()
        ax: Axes = axes[0, 0]
        many = len(parsed) > 1
        for index, (label, s) in enumerate(parsed.items()):
            colour, style, _ = _side_style(label, parsed)
            prefix = f"{label}: " if many else ""
            order = np.argsort(s.curve_cost, kind="stable")
            ax.plot(s.curve_cost[order], s.curve_accuracy[order], color=colour, linestyle=style,
                    linewidth=1.1, alpha=0.75, label=f"{prefix}early exit, every threshold")
            last = index == len(parsed) - 1
            if last:
                ok = np.isfinite(s.curve_accuracy)
                _front_line(ax, s.curve_cost[ok], s.curve_accuracy[ok], False, colour,
                            f"{prefix}Pareto front")
            earlier = [e for e in s.single if not s.exit_layers or e[0] != s.exit_layers[-1]]
            if earlier:
                ax.plot([e[1] for e in earlier], [e[2] for e in earlier], linestyle="none",
                        marker="s", markersize=6, markerfacecolor="white", markeredgecolor=colour,
                        markeredgewidth=1.4, label=f"{prefix}single exit (layer shown)")
                for layer, cx, cy in earlier:
                    ax.annotate(f"L{layer}", (cx, cy), xytext=(5, -10), textcoords="offset points",
                                fontsize=7.5, color=colour)
            top = f" (layer {s.exit_layers[-1]})" if s.exit_layers else ""
            ax.plot([s.full_cost], [s.full_accuracy], linestyle="none", marker="*",
                    markersize=13, color=colour, markeredgecolor="black", markeredgewidth=0.6,
                    label=f"{prefix}full model{top}")
            if last and s.within_1pt is not None:
                ax.plot([s.within_1pt[0]], [s.within_1pt[1]], linestyle="none", marker="D",
                        markersize=6, color=PALETTE[2], markeredgecolor="black",
                        markeredgewidth=0.5, label="fastest within 1 pt of full model")
        unit = next(iter(parsed.values())).cost_unit
        ax.set_xlabel(unit if "FLOP" in unit else f"{unit} (FLOPs)")
        _eng_axis(ax)
        ax.set_ylabel("Accuracy (fraction correct)")
        ax.set_title(title or "Early exit: accuracy vs compute")
        _legend(fig, ax)
    return fig


def exit_time(sweep: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Return measured and FLOP-predicted time per example at the measured thresholds.

    Parameters
    ----------
    sweep : payload, required
        One ``extra["sweep"]`` payload with a non-empty ``measured`` list.
    title : str or None, optional
        Default: ``"Early exit: measured vs predicted time"``.

    Returns
    -------
    matplotlib.figure.Figure
        Per batch size: measured early exit (filled circles, annotated with the
        operating point), the time the FLOPs predict (``full model time / predicted
        speedup``, hollow circles) and the full model (a star), accuracy on the timed
        examples against milliseconds per example.

    Raises
    ------
    ReportError
        If the payload has no measurements or a malformed one.
    """
    s = _sweep(sweep, "sweep")
    if not s.measured:
        raise ReportError("sweep", "has no measured thresholds (record_sweep measured_thresholds)")
    rows: dict[int, list[tuple[str, float, float, float, float, float]]] = {}
    for i, row in enumerate(s.measured):
        at = f"sweep.measured[{i}]"
        try:
            size = _get(row, "batch_size", at)
            n = _float(_get(row, "n_examples", at), at)
            if isinstance(size, bool) or not isinstance(size, int) or n <= 0:
                raise _Bad(f"{at}: expected a positive batch_size and n_examples")
            wall = _float(_get(row, "wall_s", at), at) / n * 1e3
            full = _float(_get(row, "full_model_wall_s", at), at) / n * 1e3
            speedup = _float(_get(row, "predicted_speedup", at), at)
            accuracy = _float(_get(row, "accuracy", at), at)
            full_accuracy = _float(_get(row, "full_model_accuracy", at), at)
        except _Bad as exc:
            raise _bad_sweep("sweep", exc) from None
        name = row.get("name")
        rows.setdefault(size, []).append((str(name) if name is not None else "", wall, full,
                                          full / speedup if speedup > 0 else math.nan,
                                          accuracy, full_accuracy))

    with _style():
        fig, axes = _figure()
        ax: Axes = axes[0, 0]
        for index, (size, entries) in enumerate(sorted(rows.items())):
            colour = PALETTE[index % len(PALETTE)]
            ax.plot([e[1] for e in entries], [e[4] for e in entries], linestyle="none",
                    marker="o", color=colour, label=f"measured, batch size {size}")
            ax.plot([e[3] for e in entries], [e[4] for e in entries], linestyle="none",
                    marker="o", markerfacecolor="white", markeredgecolor=colour,
                    markeredgewidth=1.3, label=f"predicted from FLOPs, batch size {size}")
            ax.plot([entries[0][2]], [entries[0][5]], linestyle="none", marker="*",
                    markersize=13, color=colour, markeredgecolor="black", markeredgewidth=0.6,
                    label=f"full model, batch size {size}")
            for name, wall, _, _, accuracy, _ in entries:
                ax.annotate(name, (wall, accuracy), xytext=(5, 3), textcoords="offset points",
                            fontsize=7.5, color="0.2")
        ax.set_xlabel("Time per example (ms)")
        ax.set_ylabel("Accuracy on the timed examples")
        ax.set_title(title or "Early exit: measured vs predicted time")
        _legend(fig, ax)
    return fig


def reliability(sweep: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Return each exit's reliability diagram before and after temperature scaling.

    Parameters
    ----------
    sweep : payload, required
        One ``extra["sweep"]`` payload with ``calibration.reliability``.
    title : str or None, optional
        Default: ``"Reliability before and after temperature scaling"``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per exit (up to three per row): accuracy against mean confidence per
        non-empty bin, before (T = 1) and after scaling, the diagonal of perfect
        calibration, and the ECE before and after in the axes title.

    Raises
    ------
    ReportError
        If the payload has no reliability data or a malformed one.
    """
    s = _sweep(sweep, "sweep")
    calibration = s.calibration or {}
    diagrams = calibration.get("reliability")
    if not isinstance(diagrams, list) or not diagrams:
        raise ReportError("sweep", "has no calibration.reliability diagrams")
    parsed = []
    try:
        for e, diagram in enumerate(diagrams):
            at = f"sweep.calibration.reliability[{e}]"
            sides = []
            for when in ("before", "after"):
                part = _get(diagram, when, at)
                conf = _floats(_get(part, "mean_confidence", f"{at}.{when}"), f"{at}.{when}")
                acc = _floats(_get(part, "accuracy", f"{at}.{when}"), f"{at}.{when}")
                if conf.shape != acc.shape:
                    raise _Bad(f"{at}.{when}: mean_confidence and accuracy differ in length")
                sides.append((conf, acc))
            parsed.append(sides)
        before_ece = _floats(calibration.get("ece_before", []), "sweep.calibration.ece_before")
        after_ece = _floats(calibration.get("ece_after", []), "sweep.calibration.ece_after")
    except _Bad as exc:
        raise _bad_sweep("sweep", exc) from None

    n = len(parsed)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    with _style():
        fig, axes = _figure(nrows, ncols, height=0.6 + 2.4 * nrows)
        for e in range(nrows * ncols):
            ax: Axes = axes[e // ncols, e % ncols]
            if e >= n:
                ax.remove()
                continue
            (conf_b, acc_b), (conf_a, acc_a) = parsed[e]
            ax.plot([0, 1], [0, 1], color="0.55", linestyle=":", linewidth=1.0,
                    label="perfect calibration")
            ok = np.isfinite(conf_b) & np.isfinite(acc_b)
            ax.plot(conf_b[ok], acc_b[ok], color=PALETTE[1], linestyle="--", marker="o",
                    markersize=3.5, linewidth=1.3, label="before (T = 1)")
            ok = np.isfinite(conf_a) & np.isfinite(acc_a)
            ax.plot(conf_a[ok], acc_a[ok], color=PALETTE[0], linestyle="-", marker="s",
                    markersize=3.5, linewidth=1.3, label="after (temperature T)")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal", adjustable="box")
            layer = f"layer {s.exit_layers[e]}" if e < len(s.exit_layers) else f"exit {e + 1}"
            if e < len(s.temperatures):
                layer += f", T = {s.temperatures[e]:.3g}"
            ece = ""
            if e < before_ece.size and e < after_ece.size:
                ece = f"\nECE {before_ece[e]:.3f} → {after_ece[e]:.3f}"
            ax.set_title(f"Exit at {layer}{ece}", fontsize=9.5, fontweight="normal")
            if e // ncols == nrows - 1 or e + ncols >= n:
                ax.set_xlabel("Confidence (max softmax)")
            if e % ncols == 0:
                ax.set_ylabel("Accuracy (fraction)")
        fig.set_figheight(fig.get_figheight() + 0.3)
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
        fig.suptitle(title or "Reliability before and after temperature scaling",
                     fontsize=11, fontweight="bold")
    return fig


# --- saving ----------------------------------------------------------------------------------


def save(
    fig: Figure,
    path_stem: str | os.PathLike[str],
    formats: Sequence[str] = ("png", "svg"),
) -> tuple[Path, ...]:
    """Write ``fig`` as ``PATH_STEM.png``, ``PATH_STEM.svg`` (and ``.pdf``); return the paths.

    The folder is created if needed. SVG and PDF files carry no creation date.

    Raises
    ------
    ConfigError
        For an unknown format.
    ReportError
        If a file cannot be written.
    """
    # Validate the arguments.
    wanted = [str(f).strip().lower().lstrip(".") for f in formats]
    if not wanted:
        raise ConfigError("formats must name at least one of png, svg, pdf")
    for fmt in wanted:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown plot format {fmt!r}; expected png, svg or pdf")
    stem = Path(path_stem)

    metadata: Mapping[str, Mapping[str, Any]] = {
        "png": {"Software": "pytest-greennlp (matplotlib)"},
        "svg": {"Date": None, "Creator": "pytest-greennlp (matplotlib)"},
        "pdf": {"CreationDate": None, "Creator": "pytest-greennlp (matplotlib)"},
    }
    written = []
    with _style():
        for fmt in dict.fromkeys(wanted):
            path = stem.with_name(f"{stem.name}.{fmt}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fig.savefig(path, format=fmt, metadata=dict(metadata[fmt]))
            except OSError as exc:
                raise ReportError(path, f"cannot write ({exc.strerror or exc})") from exc
            written.append(path)
    return tuple(written)


# --- what a report supports -------------------------------------------------------------------


@dataclass(frozen=True)
class Plot:
    """One figure a report supports: its file stem, what it shows, and how to draw it."""

    name: str
    title: str
    make: Callable[[], Figure] = field(repr=False, compare=False)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug[:60].rstrip("-.") or "x"


class _Names:
    def __init__(self) -> None:
        self._used: set[str] = set()

    def __call__(self, stem: str) -> str:
        name, count = stem, 1
        while name in self._used:
            count += 1
            name = f"{stem}-{count}"
        self._used.add(name)
        return name


def _groups(source: Report | Sequence[Trial]) -> dict[str, list[Trial]]:
    trials = ([t for test in source.tests for t in test.trials] if isinstance(source, Report)
              else list(source))
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.group, []).append(trial)
    return groups


def _tests(source: Report | Sequence[Trial]) -> tuple[TestRecord, ...]:
    return source.tests if isinstance(source, Report) else ()


def plan(
    head: Report | Sequence[Trial],
    base: Report | Sequence[Trial] | None = None,
    *,
    budgets: Sequence[Budget] = ("trials", "auto"),
    opda: bool = False,
    opda_method: evp.BandMethod = "ld_equal_tailed",
    score_bounds: tuple[float, float] | None = None,
    labels: tuple[str, str] = ("base", "head"),
    name: str = "the report",
) -> tuple[tuple[Plot, ...], tuple[str, ...]]:
    """Return every figure ``head`` (against ``base``) supports, and notes on the rest.

    Parameters
    ----------
    head : Report or sequence of Trial, required
        A report, or trials (as `trials.read_json` returns them).
    base : Report or sequence of Trial or None, optional
        Overlaid where it has the same trial group, metric or sweep (same nodeid).
    budgets : sequence of Budget, optional
        The tuning-curve x axes per trial group: ``"trials"`` and a cost (``"auto"``:
        the first cost every trial has).
    opda : bool, optional
        Add opda's distribution-free band to the tuning curves.
    opda_method : str, optional
        Its CDF band method (see `tuning_curve`).
    score_bounds : (float, float) or None, optional
        Known bounds on every score, for the opda band (see `tuning_curve`).
    labels : (str, str), optional
        The legend labels of base and head; without ``base`` the head is unlabelled.
    name : str, optional
        What ``head`` is called in the notes (its file name).

    Returns
    -------
    plots : tuple of Plot
        In order: tuning curves and trial scatters per group, metric scatters, then
        multi-exit figures per test. Nothing is drawn until ``plot.make()``.
    notes : tuple of str
        One line for each kind of figure left out and why (no trials, no metric with
        a cost, a malformed sweep, ...).
    """
    for budget in budgets:
        if budget not in get_args(Budget):
            raise ConfigError(
                f"budget must be one of {', '.join(get_args(Budget))}, got {budget!r}")
    plots: list[Plot] = []
    notes: list[str] = []
    unique = _Names()
    base_label, head_label = labels
    solo = base is None

    def sides_of(head_items: Sequence[Any], base_items: Sequence[Any] | None) -> dict[str, Any]:
        if solo:
            return {"this run": head_items}
        return {base_label: base_items or [], head_label: head_items}

    # Trials: tuning curves and trial scatters per group.
    head_groups = _groups(head)
    base_groups = _groups(base) if base is not None else {}
    if not head_groups:
        notes.append(f"no trials in {name}: no expected validation performance plots "
                     "(record trials with green.trial, or greennlp trials import)")
    for group in sorted(head_groups):
        sides = sides_of(head_groups[group], base_groups.get(group))
        if len({t.higher_is_better for v in sides.values() for t in v}) > 1:
            notes.append(f"trial group {group!r}: base and head disagree on higher_is_better; "
                         "not plotted")
            continue
        done: set[str] = set()
        for budget in budgets:
            key = "trials" if budget == "trials" else trial_cost_key(sides, budget)
            if key is None:
                notes.append(f"trial group {group!r}: not every trial has a {budget} cost; "
                             "no tuning curve against budget")
                continue
            if key in done:
                continue
            done.add(key)
            plots.append(Plot(
                unique(f"evp-{key}-{_slug(group)}"),
                f"expected validation performance of {group!r} against "
                f"{'trials' if key == 'trials' else _COST_NAMES[key][0]}",
                _bind(tuning_curve, sides, budget=key, opda=opda, opda_method=opda_method,
                      score_bounds=score_bounds),
            ))
        cost_key = trial_cost_key(sides, "auto")
        if cost_key is None:
            notes.append(f"trial group {group!r}: trials have no common cost; "
                         "no score-vs-cost plot")
        else:
            plots.append(Plot(unique(f"trials-cost-{_slug(group)}"),
                              f"score vs {_COST_NAMES[cost_key][0]} per trial of {group!r}",
                              _bind(trial_cost, sides, cost=cost_key)))

    # Metrics of tests against their cost.
    head_tests, base_tests = _tests(head), _tests(base) if base is not None else ()
    metrics = sorted({m.name for t in head_tests for m in t.metrics if m.value is not None})
    scattered = 0
    for metric in metrics:
        sides = sides_of(head_tests, base_tests)
        key = metric_cost_key(sides, metric)
        count = 0 if key is None else sum(
            1 for tests in sides.values() for t in tests
            if _metric_of(t, metric) is not None and _test_cost(t, key) is not None)
        if key is None or count < 2:
            continue
        scattered += 1
        plots.append(Plot(unique(f"cost-{_slug(metric)}"),
                          f"{metric} vs {_COST_NAMES[key][0]} per test",
                          _bind(metric_cost, sides, metric, cost=key)))
    if isinstance(head, Report) and not scattered:
        notes.append(f"no metric reported by two or more tests with a cost in {name}: "
                     "no metric-vs-cost plots")

    # Multi-exit sweeps.
    base_by_id = {t.nodeid: t for t in base_tests}
    for test in head_tests:
        for extra_key, payload in sweep_payloads(test).items():
            where = f"{test.nodeid} extra[{extra_key!r}]"
            try:
                parsed = _sweep(payload, where)
            except ReportError as exc:
                notes.append(f"skipped a multi-exit sweep: {exc}")
                continue
            stem = _slug(_short_name(test.nodeid, 60))
            if extra_key != "sweep":
                stem += f"-{_slug(extra_key)}"
            overlay: dict[str, Mapping[str, Any]] = {}
            other = base_by_id.get(test.nodeid)
            if other is not None and extra_key in sweep_payloads(other):
                try:
                    _sweep(sweep_payloads(other)[extra_key], f"base {where}")
                    overlay[base_label] = sweep_payloads(other)[extra_key]
                except ReportError as exc:
                    notes.append(f"base sweep not overlaid: {exc}")
            overlay["this run" if solo else head_label] = payload
            short = _short_name(test.nodeid)
            plots.append(Plot(unique(f"exits-flops-{stem}"),
                              f"early exit: accuracy vs FLOPs per example of {short}",
                              _bind(exit_curve, overlay,
                                    title=f"Early exit: accuracy vs compute, {short}")))
            if parsed.measured:
                plots.append(Plot(unique(f"exits-time-{stem}"),
                                  f"early exit: measured vs predicted time of {short}",
                                  _bind(exit_time, payload,
                                        title=f"Early exit: measured vs predicted time, {short}")))
            if parsed.calibration is not None and parsed.calibration.get("reliability"):
                plots.append(Plot(unique(f"reliability-{stem}"),
                                  f"reliability diagrams of {short}",
                                  _bind(reliability, payload)))
    return tuple(plots), tuple(notes)


def _bind(function: Callable[..., Figure], *args: Any, **kwargs: Any) -> Callable[[], Figure]:
    def make() -> Figure:
        return function(*args, **kwargs)

    return make
