"""The ``greennlp`` command: show, compare, gate, merge, ab, comment, plot, trials.

Subcommands live in `COMMANDS`, a dict of name -> `Command` (its help line, a function
that adds its arguments to an argparse parser, and a function that runs it and returns
the exit status); add one entry to add a subcommand.

Exit statuses (the same for every subcommand):

=====  ==================  ==============================================================
code   constant            meaning
=====  ==================  ==============================================================
0      `EXIT_OK`           passed: no regression, no failed limit
1      `EXIT_REGRESSION`   a verdict in ``fail_on`` or a limit failed
2      `EXIT_USAGE`        bad arguments or an unreadable / invalid report or pyproject
3      `EXIT_NO_BASELINE`  the baseline file named does not exist: nothing compared (a
                           notice; absolute budgets were still checked). CI treats it as
                           a pass. ``greennlp gate`` without ``--baseline`` exits 0.
=====  ==================  ==============================================================

Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pytest_greennlp.errors import ConfigError, GreenNLPError

__all__ = [
    "COMMANDS",
    "EXIT_NO_BASELINE",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "Command",
    "main",
]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_NO_BASELINE = 3


@dataclass(frozen=True)
class Command:
    """A subcommand: one help line, its arguments, and what it does."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class _UsageError(Exception):
    """argparse found bad arguments; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(" ".join(line.split()) + "\n")


# --- show ------------------------------------------------------------------------------------


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="REPORT", help="a green-report.json")
    parser.add_argument("--width", type=int, default=120, help="table width (default: 120)")


def _show(args: argparse.Namespace) -> int:
    from pytest_greennlp.compare import printable
    from pytest_greennlp.report import read_report, render_table

    report = read_report(args.report)
    for line in render_table(report, width=args.width):
        _out(printable(line))
    for note in report.notes:
        _out(printable(f"note: {note}"))
    if not report.complete:
        _out("note: the report is incomplete (its run did not finish)")
    return EXIT_OK


# --- compare / gate ------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _alpha(text: str) -> float:
    value = _fraction(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _comparison_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the comparison and gate result as one JSON object")
    parser.add_argument("--limits", type=Path, metavar="PYPROJECT",
                        help="check the [tool.greennlp.limits] of this pyproject.toml")
    parser.add_argument("--allow-hardware-mismatch", action="store_true",
                        help="compare time and energy measured on different hardware")
    parser.add_argument("--allow-method-mismatch", action="store_true",
                        help="compare energy read with different methods (same basis only)")
    parser.add_argument("--alpha", type=_alpha,
                        help="level of the Welch t-test on time and energy runs (default: 0.05)")
    parser.add_argument("--min-effect", type=_fraction,
                        help="smallest relative cost change that counts (default: 0.05 = 5%%)")
    parser.add_argument("--quality-tol", type=_fraction,
                        help="metric changes within tol * max(1, |base|) are equal (default: 0.001)")


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, metavar="BASE", help="the baseline report")
    parser.add_argument("head", type=Path, metavar="HEAD", help="the report to judge")
    _comparison_arguments(parser)


def _gate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("head", type=Path, metavar="HEAD", help="the report to gate")
    parser.add_argument("--baseline", type=Path, metavar="BASE",
                        help="the baseline report (without it only absolute budgets are checked)")
    _comparison_arguments(parser)
    parser.set_defaults(limits_default=Path("pyproject.toml"))


def _compare(args: argparse.Namespace) -> int:
    return _judge(args, args.base, args.head)


def _gate(args: argparse.Namespace) -> int:
    return _judge(args, args.baseline, args.head)


def _judge(args: argparse.Namespace, base_path: Path | None, head_path: Path) -> int:
    from pytest_greennlp.compare import compare_reports, printable, render_comparison
    from pytest_greennlp.gate import Limits, evaluate_gates, load_limits, render_gate
    from pytest_greennlp.report import read_report

    limits = Limits()
    if args.limits is not None:
        if not args.limits.is_file():
            raise ConfigError(f"{args.limits}: no such file (expected a pyproject.toml)")
        limits = load_limits(args.limits)
    elif getattr(args, "limits_default", None) is not None and args.limits_default.is_file():
        limits = load_limits(args.limits_default)
    head = read_report(head_path)
    missing = base_path is None or not (base_path.exists() or base_path.is_symlink())
    base = None if base_path is None or missing else read_report(base_path)
    comparison = None
    if base is not None:
        settings = limits.compare  # flags override [tool.greennlp.limits]
        comparison = compare_reports(
            base, head,
            allow_hardware_mismatch=args.allow_hardware_mismatch or settings.allow_hardware_mismatch,
            allow_method_mismatch=args.allow_method_mismatch or settings.allow_method_mismatch,
            alpha=settings.alpha if args.alpha is None else args.alpha,
            min_effect=settings.min_effect if args.min_effect is None else args.min_effect,
            quality_tol=settings.quality_tol if args.quality_tol is None else args.quality_tol,
        )
    gate = evaluate_gates(comparison, head, limits)
    if not gate.passed:
        status, code = "regression", EXIT_REGRESSION
    elif comparison is None and base_path is not None:
        status, code = "no-baseline", EXIT_NO_BASELINE
    else:
        status, code = "pass", EXIT_OK
    if args.json:
        _out(json.dumps({
            "status": status,
            "exit_code": code,
            "baseline": None if base_path is None else str(base_path),
            "head": str(head_path),
            "comparison": None if comparison is None else comparison.to_dict(),
            "gate": gate.to_dict(),
        }, indent=1, allow_nan=False))
    else:
        if comparison is not None:
            for line in render_comparison(comparison):
                _out(line)
        for line in render_gate(gate):
            _out(line)
    if comparison is None and base_path is not None:
        _err(printable(f"greennlp: notice: no baseline ({base_path} does not exist); "
                       "nothing compared"))
    return code


# --- merge -----------------------------------------------------------------------------------


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT", help="where to write the merged report")
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="a shard report: PATH, or MATRIX=PATH to name its matrix cell")


def _merge(args: argparse.Namespace) -> int:
    from pytest_greennlp.compare import printable
    from pytest_greennlp.merge import Shard, merge_reports
    from pytest_greennlp.report import read_report, write_report

    shards = []
    for spec in args.inputs:
        matrix, path = None, Path(spec)
        if "=" in spec and not path.exists():
            matrix, _, rest = spec.partition("=")
            path = Path(rest)
            if not matrix:
                raise _UsageError(f"greennlp merge: empty matrix name in {spec!r}")
        shards.append(Shard(read_report(path), name=matrix or str(path), matrix=matrix))
    merged = merge_reports(shards)
    write_report(merged, args.out)
    state = "" if merged.complete else " (incomplete: a shard was)"
    _out(printable(f"greennlp: merged {len(shards)} report(s), {len(merged.tests)} tests, "
                   f"into {args.out}{state}"))
    return EXIT_OK


def _comment_arguments(parser: argparse.ArgumentParser) -> None:
    from pytest_greennlp import action  # imported only when the subcommand is built

    action.add_arguments(parser)


def _comment(args: argparse.Namespace) -> int:
    from pytest_greennlp import action

    return action.run(args)


# --- plot ------------------------------------------------------------------------------------


def _comma_list(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip().lower() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}s")
        for item in items:
            if item not in allowed:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {item!r}; expected {', '.join(allowed)}")
        return list(dict.fromkeys(items))
    return parse


def _score_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(",")
    try:
        bounds = (float(low), float(high))
    except ValueError:
        bounds = (float("nan"), float("nan"))
    if not sep or not bounds[0] < bounds[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW < HIGH, got {text!r}")
    return bounds


_PLOT_FORMATS = ("png", "svg", "pdf")
_PLOT_BUDGETS = ("trials", "auto", "flops", "wall_s", "measured_j", "estimated_j", "cpu_s")
_OPDA_METHODS = ("dkw", "ks", "ld_equal_tailed", "ld_highest_density")


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, metavar="REPORT",
                        help="a green-report.json, or a trials file from 'greennlp trials import'")
    parser.add_argument("--base", type=Path, metavar="BASE",
                        help="a baseline report (or trials file) to overlay")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True,
                        help="the folder for the plot files (created if needed)")
    parser.add_argument("--format", dest="formats", type=_comma_list(_PLOT_FORMATS, "format"),
                        default=["png", "svg"], metavar="FORMATS",
                        help="comma-separated: png, svg, pdf (default: png,svg)")
    parser.add_argument("--budget", dest="budgets", type=_comma_list(_PLOT_BUDGETS, "budget"),
                        default=["trials", "auto"], metavar="AXES",
                        help="tuning-curve x axes, comma-separated: trials, auto, flops, wall_s, "
                             "measured_j, estimated_j, cpu_s (default: trials,auto)")
    parser.add_argument("--opda", action="store_true",
                        help="add opda's distribution-free band to the tuning curves")
    parser.add_argument("--opda-method", choices=_OPDA_METHODS, default="ld_equal_tailed",
                        help="opda's CDF band (default: ld_equal_tailed)")
    parser.add_argument("--score-range", type=_score_range, metavar="LOW,HIGH",
                        help="known bounds on every trial score, e.g. 0,1 for accuracy (opda band)")


def _plot_source(path: Path) -> Any:
    """A report, or the trials of a file 'greennlp trials import' wrote."""
    from pytest_greennlp.report import read_report
    from pytest_greennlp.trials import TRIALS_FORMAT, read_json

    try:
        with path.open("rb") as handle:
            start = handle.read(512)
    except OSError:
        start = b""
    if TRIALS_FORMAT.encode() in start:
        return read_json(path)
    return read_report(path)


def _plot(args: argparse.Namespace) -> int:
    from pytest_greennlp.compare import printable
    from pytest_greennlp.plots import plan, save

    head = _plot_source(args.report)
    base = None
    if args.base is not None:
        if args.base.exists() or args.base.is_symlink():
            base = _plot_source(args.base)
        else:
            _err(printable(f"greennlp: notice: no baseline ({args.base} does not exist); "
                           f"plotting {args.report} alone"))
    if args.opda:
        try:
            import opda  # noqa: F401
        except ImportError:
            raise ConfigError("--opda needs opda: pip install pytest-greennlp[evp]") from None
    plots, notes = plan(head, base, budgets=args.budgets, opda=args.opda,
                        opda_method=args.opda_method, score_bounds=args.score_range,
                        name=str(args.report))
    for plot in plots:
        try:
            figure = plot.make()
        except ImportError as exc:
            raise ConfigError(f"greennlp plot needs {exc.name or 'matplotlib'}: "
                              "pip install pytest-greennlp[evp]") from None
        for path in save(figure, args.out / plot.name, args.formats):
            _out(printable(str(path)))
    for note in notes:
        _err(printable(f"greennlp: note: {note}"))
    if not plots:
        _err(printable(f"greennlp: nothing to plot in {args.report}"))
    return EXIT_OK


# --- trials ----------------------------------------------------------------------------------


def _trials_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    help_line = ("read trials from a CSV/JSON file, an Optuna storage or a Ray Tune folder "
                 "and write them as a trials file")
    imp = sub.add_parser("import", help=help_line, description=help_line)
    imp.add_argument("source", metavar="SOURCE",
                     help="FILE.csv, FILE.json or .jsonl, an Optuna storage (sqlite:///x.db or "
                          "x.db) or a Ray Tune experiment folder")
    imp.add_argument("--out", required=True, metavar="FILE",
                     help="where to write the trials (JSON; '-' for standard output)")
    imp.add_argument("--format", dest="source_format",
                     choices=("auto", "csv", "json", "optuna", "ray"), default="auto",
                     help="the source's format (default: from its name)")
    imp.add_argument("--group", metavar="NAME",
                     help="the trial group (default: a group column, the study or folder name)")
    imp.add_argument("--mode", choices=("max", "min"),
                     help="whether higher (max) or lower (min) scores are better (default: max, "
                          "or the Optuna study's direction)")
    imp.add_argument("--cost-unit", choices=("wall_s", "cpu_s", "measured_j", "estimated_j",
                                             "flops"), default="wall_s",
                     help="what a CSV/JSON 'cost' column counts (default: wall_s)")
    imp.add_argument("--metric", metavar="NAME",
                     help="Ray Tune: the reported metric that is the score")
    imp.add_argument("--scope", choices=("last", "all"), default="last",
                     help="Ray Tune: the metric's last value (default) or its best over iterations")
    imp.add_argument("--study", metavar="NAME", help="Optuna: which study of the storage")


def _trials(args: argparse.Namespace) -> int:
    from pytest_greennlp.compare import printable
    from pytest_greennlp.trials import read_trials, trials_to_dict, write_trials

    trials = read_trials(
        args.source, format=args.source_format, group=args.group,
        higher_is_better=None if args.mode is None else args.mode == "max",
        cost_unit=args.cost_unit, metric=args.metric, study_name=args.study, scope=args.scope,
    )
    counts = {status: sum(1 for t in trials if t.status == status)
              for status in ("ok", "failed", "stopped")}
    groups = ", ".join(repr(g) for g in dict.fromkeys(t.group for t in trials)) or "none"
    summary = (f"greennlp: imported {len(trials)} trial(s) ({counts['ok']} ok, "
               f"{counts['failed']} failed, {counts['stopped']} stopped) of group {groups} "
               f"from {args.source}")
    if args.out == "-":
        _out(json.dumps(trials_to_dict(trials), indent=1, allow_nan=False))
        _err(printable(summary))
    else:
        write_trials(trials, args.out)
        _out(printable(f"{summary} into {args.out}"))
    return EXIT_OK


# --- ab --------------------------------------------------------------------------------------


def _ab_arguments(parser: argparse.ArgumentParser) -> None:
    def rounds(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
        return value

    def words(text: str) -> list[str]:
        import shlex

        try:
            return shlex.split(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"cannot split {text!r} ({exc})") from None

    parser.add_argument("--base", type=Path, required=True, metavar="DIR",
                        help="the base checkout (e.g. the pull request's base commit)")
    parser.add_argument("--head", type=Path, required=True, metavar="DIR",
                        help="the head checkout")
    parser.add_argument("--rounds", type=rounds, default=3, metavar="N",
                        help="rounds of one base and one head run each (default: 3, the fewest "
                             "the noise test of greennlp compare needs)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="randomise which side runs first in each round with this seed "
                             "(recorded in the reports); default: base first in every round")
    parser.add_argument("--pytest-args", dest="pytest_args", type=words, action="append",
                        default=[], metavar="ARGS",
                        help="more pytest arguments for every run, split like a shell does; "
                             "use = when they start with a dash: --pytest-args='-k encode'. "
                             "Every run already has -m 'green_train or green_infer' (a later "
                             "-m wins)")
    parser.add_argument("--python", default=sys.executable, metavar="EXE",
                        help="the Python that runs pytest; the project must be installed in it "
                             "(default: this one)")
    parser.add_argument("--out-base", type=Path, required=True, metavar="BASE.json",
                        help="where to write the base side's combined report")
    parser.add_argument("--out-head", type=Path, required=True, metavar="HEAD.json",
                        help="where to write the head side's combined report")


def _ab(args: argparse.Namespace) -> int:
    from pytest_greennlp.ab import RunSpec, run_ab
    from pytest_greennlp.compare import MIN_SAMPLES, printable
    from pytest_greennlp.report import write_report

    if args.out_base.resolve() == args.out_head.resolve():
        raise _UsageError(
            f"greennlp ab: --out-base and --out-head are the same file {args.out_base}")
    if args.rounds < MIN_SAMPLES:
        _err(f"greennlp: notice: {args.rounds} round(s) give too few samples for the noise test "
             f"of greennlp compare (it needs {MIN_SAMPLES}); time and energy changes will be "
             "inconclusive")

    def announce(spec: RunSpec) -> None:
        _out(printable(f"greennlp ab: {spec.describe()}: pytest in {spec.cwd}"))
        sys.stdout.flush()  # before the run's own output

    result = run_ab(args.base, args.head, rounds=args.rounds, seed=args.seed, python=args.python,
                    pytest_args=[word for group in args.pytest_args for word in group],
                    on_run=announce)
    write_report(result.base, args.out_base)
    write_report(result.head, args.out_head)
    _out(printable(f"greennlp ab: {len(result.plan.rounds)} round(s), order "
                   f"{result.plan.describe()}; wrote {args.out_base} ({len(result.base.tests)} "
                   f"tests) and {args.out_head} ({len(result.head.tests)} tests)"))
    return EXIT_OK


#: The subcommands, in the order ``greennlp --help`` lists them.
COMMANDS: dict[str, Command] = {
    "show": Command("print the price-tag table of a report", _show_arguments, _show),
    "compare": Command("compare HEAD with BASE: deltas, verdicts, optional limits",
                       _compare_arguments, _compare),
    "gate": Command("check HEAD's limits ([tool.greennlp.limits] of ./pyproject.toml by "
                    "default), against --baseline if given", _gate_arguments, _gate),
    "merge": Command("merge shard reports into one, keeping provenance", _merge_arguments, _merge),
    "comment": Command("render the pull-request comment; --dry-run prints the Markdown",
                       _comment_arguments, _comment),
    "plot": Command("write every plot REPORT (against --base) supports as PNG/SVG into --out",
                    _plot_arguments, _plot),
    "trials": Command("import trials other tools wrote (CSV, JSON, Optuna, Ray Tune)",
                      _trials_arguments, _trials),
    "ab": Command("measure the marked tests of --base and --head in interleaved rounds on this "
                  "machine; write one report per side for compare", _ab_arguments, _ab),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the ``greennlp`` parser with one subparser per entry of `COMMANDS`."""
    parser = _Parser(
        prog="greennlp",
        description="Read, compare, gate, merge, comment on and plot pytest-greennlp reports; import trials.",
        epilog="exit status: 0 pass, 1 regression, 2 usage or input error, 3 no baseline",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, command in COMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``greennlp`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        result: Any = args.run(args)
        return int(result)
    except _UsageError as exc:
        _err(f"{exc} (see greennlp --help)")
        return EXIT_USAGE
    except GreenNLPError as exc:
        _err(f"greennlp: error: {exc}")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:  # piped into head
        return EXIT_OK
    except KeyboardInterrupt:
        _err("greennlp: interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
