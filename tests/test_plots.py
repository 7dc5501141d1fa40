"""Plots, checked structurally: axes labels and units, legends, series, titles, files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reportfactory import record, report, trials

pytest.importorskip("matplotlib")

from pytest_greennlp import cli, evp, exits, plots
from pytest_greennlp.errors import ConfigError, ReportError
from pytest_greennlp.records import Trial, TrialCost
from pytest_greennlp.report import write_report
from pytest_greennlp.trials import write_trials

VECTOR = [0.1, 0.5, 0.3, 0.9]  # issue 3: E = [0.45, 0.6125, 0.703125, 0.76015625]


def legend_texts(fig: Any) -> list[str]:
    """Every legend entry of the figure: axes legends and figure legends."""
    found = []
    for legend in [ax.get_legend() for ax in fig.axes] + list(fig.legends):
        if legend is not None:
            found.extend(t.get_text() for t in legend.get_texts())
    return found


def labelled_lines(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def costed(group: str, scores: list[float | None], **cost: float) -> list[Trial]:
    return [Trial(group, s, "ok" if s is not None else "failed", TrialCost(**cost))  # type: ignore[arg-type]
            for s in scores]


# --- tuning curves ------------------------------------------------------------------------


def test_tuning_curve_against_trials_base_and_head() -> None:
    fig = plots.tuning_curve({"base": costed("lr", VECTOR, wall_s=1.0),
                              "head": costed("lr", [0.6, 0.7, None], wall_s=2.0)})
    (ax,) = fig.axes
    assert ax.get_title() == "Expected validation performance: lr"
    assert ax.get_xlabel() == "Trials, k (random-search draws)"
    assert ax.get_ylabel() == "Expected best score of k trials\n(higher is better)"
    lines = [line for line in ax.get_lines() if "expected best" in line.get_label()]
    assert len(lines) == 2 and len(ax.collections) == 2  # a curve and a band per side
    np.testing.assert_allclose(lines[0].get_ydata(), [0.45, 0.6125, 0.703125, 0.76015625])
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3, 4])
    assert lines[0].get_linestyle() == "--" and lines[1].get_linestyle() == "-"
    assert lines[0].get_color() != lines[1].get_color()
    # Head leads at first; base's curve crosses it between k = 2 and 3.
    assert legend_texts(fig) == [
        "base: expected best (n = 4)", "base: ±1 s.d. (clipped)",
        "head: expected best (n = 3, 1 failed)", "head: ±1 s.d. (clipped)",
        "base overtakes head beyond 2.57 trials"]
    lower, upper = evp.expected_max_band(VECTOR)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(lower.min()) and band.max() == pytest.approx(upper.max())


def test_tuning_curve_marks_the_crossover() -> None:
    # Base is 0.6 whatever k; head's best of k is 0.9 - 0.8 / 2**k: ahead from k = 1.5.
    fig = plots.tuning_curve({"base": costed("lr", [0.6] * 4), "head": costed("lr", [0.1, 0.9])},
                             band=False)
    (ax,) = fig.axes
    assert len(ax.collections) == 0
    (marker,) = (line for line in ax.get_lines() if "overtakes" in line.get_label())
    assert marker.get_xdata()[0] == pytest.approx(1.5)
    assert "head overtakes base beyond 1.5 trials" in legend_texts(fig)


def test_no_crossover_line_when_one_side_leads_throughout() -> None:
    fig = plots.tuning_curve({"base": costed("lr", [0.1, 0.2]), "head": costed("lr", [0.8, 0.9])})
    assert not any("overtakes" in text for text in legend_texts(fig))


def test_tuning_curve_against_budget() -> None:
    sides = {"base": costed("lr", VECTOR, wall_s=10.0, flops=4e12),
             "head": costed("lr", [0.2, 0.95], wall_s=30.0, flops=1e12)}
    fig = plots.tuning_curve(sides, budget="wall_s")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Budget, wall time (s)"
    base_line, head_line = labelled_lines(ax)[:2]
    np.testing.assert_allclose(base_line.get_xdata(), [10, 20, 30, 40])
    np.testing.assert_allclose(head_line.get_xdata(), [30, 60])
    fig = plots.tuning_curve(sides, budget="auto")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Budget (FLOPs)"
    assert type(ax.xaxis.get_major_formatter()).__name__ == "EngFormatter"


def test_tuning_curve_minimize_single_side_and_one_trial() -> None:
    losses = [Trial("ppl", v, higher_is_better=False) for v in (30.0, 20.0, 25.0)]
    fig = plots.tuning_curve({"this run": losses})
    (ax,) = fig.axes
    assert ax.get_ylabel().endswith("(lower is better)")
    (line,) = labelled_lines(ax)
    assert line.get_ydata()[-1] < line.get_ydata()[0]
    assert line.get_linestyle() == "-"
    fig = plots.tuning_curve({"this run": [Trial("one", 0.5)]})
    (line,) = labelled_lines(fig.axes[0])
    assert list(line.get_ydata()) == [0.5] and line.get_marker() == "o"


def test_tuning_curve_bad_input() -> None:
    with pytest.raises(ConfigError, match="nothing to plot"):
        plots.tuning_curve({"base": [], "head": []})
    with pytest.raises(ConfigError, match="disagree on higher_is_better"):
        plots.tuning_curve({"a": [Trial("g", 1.0)], "b": [Trial("g", 1.0, higher_is_better=False)]})
    with pytest.raises(ConfigError, match="not every trial has a positive flops cost"):
        plots.tuning_curve({"a": costed("g", [0.5], wall_s=1.0)}, budget="flops")
    with pytest.raises(ConfigError, match="score_bounds"):
        plots.tuning_curve({"a": costed("g", [0.5, 2.0])}, score_bounds=(0.0, 1.0))


def test_opda_band_needs_opda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opda", None)
    with pytest.raises(ConfigError,
                       match=r"opda band needs opda: pip install pytest-greennlp\[evp\]"):
        plots.tuning_curve({"a": costed("g", VECTOR)}, opda=True)


def test_opda_band() -> None:
    pytest.importorskip("opda")
    scores = [0.62, 0.71, 0.55, 0.80, 0.68, 0.74, 0.59, 0.77]
    fig = plots.tuning_curve({"this run": costed("g", scores)}, opda=True, opda_method="dkw",
                             score_bounds=(0.0, 1.0))
    (ax,) = fig.axes
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 2
    lower, _, upper = evp.tuning_curve_band(scores, np.arange(1, 9), method="dkw", a=0.0, b=1.0)
    np.testing.assert_allclose(dotted[0].get_ydata(), lower)
    np.testing.assert_allclose(dotted[1].get_ydata(), upper)
    assert "this run: 80% band, median curve (opda)" in legend_texts(fig)


# --- scatters ------------------------------------------------------------------------------


def test_trial_cost_scatter_with_front_and_failed_trials() -> None:
    base = [Trial("lr", s, cost=TrialCost(wall_s=c))
            for s, c in ((0.5, 1.0), (0.7, 2.0), (0.6, 3.0))]
    head = [*costed("lr", [0.8, 0.75], wall_s=1.5),
            Trial("lr", None, "failed", TrialCost(wall_s=0.5))]
    fig = plots.trial_cost({"base": base, "head": head})
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Cost per trial, wall time (s)"
    assert ax.get_ylabel() == "Validation score (higher is better)"
    assert ax.get_title() == "Score vs cost per trial: lr"
    assert len(ax.collections) == 2  # one scatter per side
    fronts = [line for line in ax.get_lines() if line.get_label().endswith("Pareto front")]
    assert len(fronts) == 2
    np.testing.assert_allclose(fronts[0].get_xdata(), [1.0, 2.0])  # (3, 0.6) is dominated
    np.testing.assert_allclose(fronts[0].get_ydata(), [0.5, 0.7])
    assert fronts[0].get_drawstyle() == "steps-post"
    assert legend_texts(fig) == ["base: trials (3)", "base: Pareto front", "head: trials (2)",
                                 "head: Pareto front", "head: failed (1)"]


def metric_report(shift: float = 0.0, flops: float = 1.0) -> Any:
    return report(
        record("tests/test_m.py::test_small", flops=int(1e9 * flops),
               metrics={"accuracy": 0.80 + shift}),
        record("tests/test_m.py::test_large", flops=int(8e9 * flops),
               metrics={"accuracy": 0.90 + shift}),
        record("tests/test_m.py::test_bloated", flops=int(9e9 * flops), metrics={"accuracy": 0.85}),
        record("tests/test_m.py::test_no_metric", flops=10),
    )


def test_metric_cost_scatter_with_arrows_from_base_to_head() -> None:
    fig = plots.metric_cost({"base": metric_report().tests,
                             "head": metric_report(0.02, 0.5).tests}, "accuracy")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Cost per test (FLOPs)"
    assert ax.get_ylabel() == "accuracy (higher is better)"
    assert ax.get_title() == "accuracy vs cost per test"
    assert [len(c.get_offsets()) for c in ax.collections] == [3, 3]
    front = next(line for line in ax.get_lines() if line.get_label() == "head: Pareto front")
    np.testing.assert_allclose(front.get_xdata(), [0.5e9, 4e9])
    arrows = [t for t in ax.texts if t.arrow_patch is not None]
    assert len(arrows) == 3
    names = {t.get_text() for t in ax.texts if t.arrow_patch is None}
    assert names == {"test_small", "test_large", "test_bloated"}
    assert legend_texts(fig)[0] == "base: tests (3)"


def test_metric_cost_needs_metric_and_cost() -> None:
    with pytest.raises(ConfigError, match="no test has metric 'bleu'"):
        plots.metric_cost({"this run": metric_report().tests}, "bleu")


# --- multi-exit sweeps -----------------------------------------------------------------------


def _json(values: Any) -> list[Any]:
    return [None if isinstance(v, float) and math.isnan(v) else v
            for v in np.asarray(values).tolist()]


def sweep_payload(measured: bool = True, accuracy_shift: float = 0.0) -> dict[str, Any]:
    """A payload laid out as multiexit.record_sweep stores it, from issue 4's test vector."""
    confidence = np.array([[.95, .97, .99], [.60, .85, .90], [.70, .65, .80], [.55, .75, .60],
                           [.92, .60, .95]])
    prediction = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 0]])
    labels = np.array([0, 0, 1, 0, 0])
    cumulative = [1e6, 2e6, 4e6]
    single = [1e6, 1.9e6, 3.8e6]
    result = exits.sweep(confidence, prediction, labels, cumulative)
    accuracy = result.accuracy - accuracy_shift
    front = exits.pareto_front(result.mean_cost, accuracy)

    def point(i: int) -> dict[str, Any]:
        return {"threshold": float(result.thresholds[i]), "accuracy": float(accuracy[i]),
                "flops_per_example": float(result.mean_cost[i]),
                "speedup": float(result.speedup[i]), "exit_counts": result.exit_counts[i].tolist()}

    def diagram(conf: Any, hit: Any) -> dict[str, Any]:
        d = exits.reliability_diagram(conf, hit, 5)
        return {"count": d.count.tolist(), "mean_confidence": _json(d.mean_confidence),
                "accuracy": _json(d.accuracy)}

    within = exits.operating_point(result, max_accuracy_drop=0.01)
    return {
        "version": 1, "rule": "confidence", "n_examples": 5, "num_layers": 6,
        "exit_layers": [2, 4, 6], "num_labels": 2, "label_names": None,
        "temperatures": [1.8, 1.2, 1.1],
        "costs": {"unit": "FLOPs per example (forward)", "seq_len": 8, "cumulative": cumulative,
                  "single_exit": single, "full_model": single[-1], "method": "test"},
        "full_model": {"accuracy": float(result.full_model_accuracy) - accuracy_shift,
                       "flops_per_example": single[-1]},
        "single_exits": [
            {"exit": e, "layer": layer, "accuracy": float(np.mean(prediction[:, e] == labels)),
             "flops_per_example": single[e], "speedup": single[-1] / single[e]}
            for e, layer in enumerate([2, 4, 6])],
        "calibration": {
            "n_bins": 5, "fitted_on": "dev", "ece_before": [0.2, 0.15, 0.1],
            "ece_after": [0.05, 0.04, 0.03], "dev_ece_before": None, "dev_ece_after": None,
            "reliability": [{"before": diagram(confidence[:, e], prediction[:, e] == labels),
                             "after": diagram(confidence[:, e] ** 2, prediction[:, e] == labels)}
                            for e in range(3)]},
        "curve": {"n_thresholds": len(result.thresholds), "threshold": _json(result.thresholds),
                  "accuracy": _json(accuracy), "flops_per_example": _json(result.mean_cost),
                  "speedup": _json(result.speedup), "exit_counts": result.exit_counts.tolist()},
        "pareto": [point(int(i)) for i in front],
        "operating_points": {"within_1pt": point(within), "best_accuracy": point(within)},
        "measured": [
            {"name": "within_1pt", "threshold": 0.93, "batch_size": size, "n_examples": 5,
             "rounds": 1, "wall_s": 0.05 / size, "full_model_wall_s": 0.17 / size,
             "measured_speedup": 3.4, "predicted_speedup": 3.8 / 3.4, "accuracy": 1.0,
             "full_model_accuracy": 1.0, "exit_counts": [1, 2, 2], "exit_agreement": 1.0}
            for size in (1, 4)] if measured else [],
        "timing": {"all_exits_pass_s": 0.1, "sweep_s": 0.001, "sweep_over_pass": 1.01},
    }


def test_exit_curve_marks_full_model_and_single_exits() -> None:
    payload = sweep_payload()
    fig = plots.exit_curve({"this run": payload})
    (ax,) = fig.axes
    assert ax.get_xlabel() == "FLOPs per example (forward)"
    assert ax.get_ylabel() == "Accuracy (fraction correct)"
    assert ax.get_title() == "Early exit: accuracy vs compute"
    assert type(ax.xaxis.get_major_formatter()).__name__ == "EngFormatter"
    assert legend_texts(fig) == ["early exit, every threshold", "Pareto front",
                                 "single exit (layer shown)", "full model (layer 6)",
                                 "fastest within 1 pt of full model"]
    by_label = {line.get_label(): line for line in ax.get_lines()}
    star = by_label["full model (layer 6)"]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (3.8e6, 1.0) and star.get_marker() == "*"
    singles = by_label["single exit (layer shown)"]
    np.testing.assert_allclose(singles.get_xdata(), [1e6, 1.9e6])  # the last exit is the star
    assert {t.get_text() for t in ax.texts} == {"L2", "L4"}
    curve = by_label["early exit, every threshold"]
    assert sorted(curve.get_xdata()) == list(curve.get_xdata())


def test_exit_curve_overlays_base_and_head() -> None:
    fig = plots.exit_curve({"base": sweep_payload(accuracy_shift=0.1), "head": sweep_payload()})
    texts = legend_texts(fig)
    assert "base: early exit, every threshold" in texts and "head: Pareto front" in texts
    assert "base: Pareto front" not in texts
    assert sum(1 for t in texts if t.endswith("full model (layer 6)")) == 2


def test_exit_time_measured_and_predicted_per_batch_size() -> None:
    fig = plots.exit_time(sweep_payload())
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Time per example (ms)"
    assert ax.get_ylabel() == "Accuracy on the timed examples"
    assert len(ax.get_lines()) == 6  # measured, predicted, full model per batch size
    measured = next(line for line in ax.get_lines() if line.get_label() == "measured, batch size 1")
    assert measured.get_xdata()[0] == pytest.approx(10.0)  # 0.05 s / 5 examples
    predicted = next(line for line in ax.get_lines()
                     if line.get_label() == "predicted from FLOPs, batch size 1")
    assert predicted.get_xdata()[0] == pytest.approx(34.0 / (3.8 / 3.4))
    with pytest.raises(ReportError, match="has no measured thresholds"):
        plots.exit_time(sweep_payload(measured=False))


def test_reliability_diagrams_before_and_after() -> None:
    fig = plots.reliability(sweep_payload())
    assert len(fig.axes) == 3
    for ax, layer, temperature in zip(fig.axes, (2, 4, 6), ("1.8", "1.2", "1.1")):
        assert ax.get_title().startswith(f"Exit at layer {layer}, T = {temperature}\nECE 0.")
        assert len(ax.get_lines()) == 3
        assert ax.get_xlabel() == "Confidence (max softmax)"
        assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)
    assert fig.axes[0].get_ylabel() == "Accuracy (fraction)"
    assert "ECE 0.200 → 0.050" in fig.axes[0].get_title()
    assert legend_texts(fig) == ["perfect calibration", "before (T = 1)", "after (temperature T)"]
    assert fig.get_suptitle() == "Reliability before and after temperature scaling"


def test_malformed_sweeps_are_one_line_errors() -> None:
    payload = sweep_payload()
    del payload["curve"]["accuracy"]
    with pytest.raises(ReportError) as exc:
        plots.exit_curve({"x": payload})
    assert str(exc.value) == "sweep 'x': curve: missing 'accuracy'"
    payload = {**sweep_payload(), "version": 9}
    with pytest.raises(ReportError, match="payload version 9 is newer"):
        plots.reliability(payload)
    payload = sweep_payload()
    payload["calibration"]["reliability"][1]["after"]["accuracy"] = "high"
    with pytest.raises(ReportError,
                       match=r"^sweep: calibration\.reliability\[1\]\.after: expected a"):
        plots.reliability(payload)


# --- saving, planning, the CLI -----------------------------------------------------------


def test_save_writes_png_and_svg(tmp_path: Path) -> None:
    fig = plots.tuning_curve({"this run": costed("lr", VECTOR)})
    paths = plots.save(fig, tmp_path / "out" / "evp.trials-lr")
    assert [p.name for p in paths] == ["evp.trials-lr.png", "evp.trials-lr.svg"]
    png, svg = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(png[16:20], "big")
    assert width == 800  # readable at PR-comment width
    assert b"<svg" in svg and b"<dc:date>" not in svg
    with pytest.raises(ConfigError, match="unknown plot format 'gif'"):
        plots.save(fig, tmp_path / "x", ["gif"])
    assert plots.FORMATS == cli._PLOT_FORMATS
    assert set(cli._PLOT_BUDGETS) == set(plots.Budget.__args__)  # type: ignore[attr-defined]


def full_report(shift: float = 0.0) -> Any:
    sweep = record("tests/test_exits.py::test_sweep[minilm]", flops=100, sweep=sweep_payload())
    tuned = record("tests/test_tune.py::test_lr", wall=5.0,
                   trials=trials("lr", [0.5 + shift, None, 0.7 + shift], cost_s=2.0))
    return report(sweep, tuned, *metric_report(shift).tests)


def test_plan_lists_every_supported_plot() -> None:
    found, notes = plots.plan(full_report(0.05), full_report())
    assert [p.name for p in found] == [
        "evp-trials-lr", "evp-wall_s-lr", "trials-cost-lr", "cost-accuracy",
        "exits-flops-test_sweep-minilm", "exits-time-test_sweep-minilm",
        "reliability-test_sweep-minilm"]
    assert notes == ()
    fig = found[0].make()
    assert legend_texts(fig)[0].startswith("base: expected best (n = 3, 1 failed)")


def test_head_keeps_its_colour_when_base_lacks_the_group() -> None:
    head = report(record("t::tune", trials=trials("new", [0.5, 0.6])))
    (first, *_), _ = plots.plan(head, metric_report())
    fig = first.make()
    (line,) = labelled_lines(fig.axes[0])
    assert line.get_label() == "head: expected best (n = 2)"
    assert line.get_color() == plots.PALETTE[1] and line.get_linestyle() == "-"


def test_a_report_without_trials_gets_no_tuning_curve() -> None:
    found, notes = plots.plan(metric_report(), name="head.json")
    assert [p.name for p in found] == ["cost-accuracy"]
    assert notes == (("no trials in head.json: no expected validation performance plots "
                      "(record trials with green.trial, or greennlp trials import)"),)
    found, notes = plots.plan(report(record("t::a", flops=10)), name="empty.json")
    assert found == () and len(notes) == 2


def test_cli_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head, base = tmp_path / "head.json", tmp_path / "base.json"
    write_report(report(record("t::tune", trials=trials("lr", [0.6, 0.8], cost_s=1.0))), head)
    write_report(report(record("t::tune", trials=trials("lr", [0.5, 0.7, 0.6], cost_s=1.0))), base)
    out = tmp_path / "plots"
    code = cli.main(["plot", str(head), "--base", str(base), "--out", str(out), "--format", "png",
                     "--budget", "wall_s"])
    stdout, stderr = capsys.readouterr()
    assert code == cli.EXIT_OK, stderr
    assert stdout.splitlines() == [str(out / "evp-wall_s-lr.png"), str(out / "trials-cost-lr.png")]
    assert all(Path(line).stat().st_size > 0 for line in stdout.splitlines())
    assert "no metric reported by two or more tests" in stderr


def test_cli_plot_without_trials_says_so(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "head.json"
    write_report(report(record("t::a", flops=10)), path)
    code = cli.main(["plot", str(path), "--base", str(tmp_path / "missing.json"),
                     "--out", str(tmp_path / "plots")])
    stdout, stderr = capsys.readouterr()
    assert code == cli.EXIT_OK and stdout == ""
    assert stderr.splitlines() == [
        (f"greennlp: notice: no baseline ({tmp_path / 'missing.json'} does not exist); "
         f"plotting {path} alone"),
        (f"greennlp: note: no trials in {path}: no expected validation performance plots "
         "(record trials with green.trial, or greennlp trials import)"),
        (f"greennlp: note: no metric reported by two or more tests with a cost in {path}: "
         "no metric-vs-cost plots"),
        f"greennlp: nothing to plot in {path}",
    ]


def test_cli_plot_a_trials_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_trials(costed("lr", VECTOR, flops=10**9), tmp_path / "trials.json")
    code = cli.main(["plot", str(source), "--out", str(tmp_path), "--budget", "trials",
                     "--format", "svg"])
    stdout, stderr = capsys.readouterr()
    assert code == cli.EXIT_OK, stderr
    names = [Path(p).name for p in stdout.splitlines()]
    assert names == ["evp-trials-lr.svg", "trials-cost-lr.svg"]


@pytest.mark.parametrize("argv", [
    ["--format", "gif"], ["--budget", "hours"], ["--score-range", "1,0"], [],
])
def test_cli_plot_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               argv: list[str]) -> None:
    path = tmp_path / "head.json"
    write_report(report(record("t::a", flops=10)), path)
    out = [] if not argv else ["--out", str(tmp_path)]
    code = cli.main(["plot", str(path), *out, *argv])
    _, stderr = capsys.readouterr()
    assert code == cli.EXIT_USAGE and stderr.count("\n") == 1


def test_cli_plot_bad_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "head.json"
    path.write_text("{not json")
    code = cli.main(["plot", str(path), "--out", str(tmp_path)])
    _, stderr = capsys.readouterr()
    assert code == cli.EXIT_USAGE
    assert stderr.startswith(f"greennlp: error: {path}: is not valid JSON")


def test_plots_and_trials_do_not_import_matplotlib() -> None:
    code = ("import sys, pytest_greennlp.plugin, pytest_greennlp.plots, pytest_greennlp.trials, "
            "pytest_greennlp.cli; pytest_greennlp.cli.build_parser(); "
            "bad = [m for m in ('matplotlib', 'optuna', 'ray', 'opda') if m in sys.modules]; "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    json.loads(done.stdout.replace("'", '"'))
