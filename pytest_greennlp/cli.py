"""The ``greennlp`` command: show, compare, gate and merge reports.

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
}


def build_parser() -> argparse.ArgumentParser:
    """Return the ``greennlp`` parser with one subparser per entry of `COMMANDS`."""
    parser = _Parser(
        prog="greennlp",
        description="Read, compare, gate and merge pytest-greennlp reports.",
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
