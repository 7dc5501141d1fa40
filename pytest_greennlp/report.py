"""``green-report.json``: assemble, write atomically, read strictly, render the terminal table."""

from __future__ import annotations

import json
import os
import tempfile
import typing
from json.encoder import encode_basestring_ascii as _encode_string
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pytest_greennlp import __version__
from pytest_greennlp.errors import ReportError
from pytest_greennlp.records import (
    SCHEMA_VERSION,
    CarbonIntensity,
    Energy,
    Fingerprint,
    Gpu,
    Report,
    Settings,
    TestRecord,
    Totals,
    Record,
    from_dict,
    to_dict,
)

if TYPE_CHECKING:
    import pytest

__all__ = [
    "MAX_REPORT_BYTES", "assemble", "cost_key", "cost_of", "figures", "json_values",
    "read_report", "record_text", "render_table", "report_json", "report_text", "totals",
    "totals_of", "write_report",
]

#: A report larger than this is refused when read (a hostile or runaway file).
MAX_REPORT_BYTES = 256 * 1024 * 1024


def _sum(values: Iterable[float | int | None]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


#: What `totals` adds up of one test: wall s, CPU s (both None without timing), FLOPs,
#: measured J, estimated J, CO2e g from measured and from estimated energy.
Figures = tuple[Any, Any, Any, Any, Any, Any, Any]


def figures(test: TestRecord) -> Figures:
    """The `Figures` of ``test``."""
    timing, energy, co2e = test.timing, test.energy, test.co2e
    return (
        timing.wall_s if timing else None, timing.cpu_s if timing else None,
        test.flops.total if test.flops else None,
        energy.measured_j if energy else None, energy.estimated_j if energy else None,
        co2e.from_measured_g if co2e else None, co2e.from_estimated_g if co2e else None,
    )


def totals(tests: Sequence[TestRecord]) -> Totals:
    """Sum the figures of ``tests``; measured and estimated energy stay apart."""
    return totals_of([figures(t) for t in tests])


def totals_of(tests: Sequence[Figures]) -> Totals:
    """`totals` of tests given by their `Figures`, in order."""
    columns = list(zip(*tests)) if tests else [()] * 7
    return Totals(
        tests=len(tests),
        wall_s=sum(v for v in columns[0] if v is not None),
        cpu_s=sum(v for v in columns[1] if v is not None),
        flops=_sum(columns[2]),
        measured_j=_sum(columns[3]),
        estimated_j=_sum(columns[4]),
        co2e_from_measured_g=_sum(columns[5]),
        co2e_from_estimated_g=_sum(columns[6]),
    )


def assemble(
    *,
    fingerprint: Fingerprint,
    tests: Sequence[TestRecord],
    carbon: CarbonIntensity,
    settings: Settings,
    started_at: str,
    finished_at: str | None,
    complete: bool,
    exit_status: int | None,
    run_energy: Energy | None,
    notes: Sequence[str],
) -> Report:
    """Build the `Report` of a run."""
    ordered = tuple(sorted(tests, key=lambda t: t.nodeid))
    return Report(
        tool_version=__version__,
        complete=complete,
        exit_status=exit_status,
        started_at=started_at,
        finished_at=finished_at,
        fingerprint=fingerprint,
        carbon=carbon,
        settings=settings,
        tests=ordered,
        totals=totals(ordered),
        run_energy=run_energy,
        notes=tuple(notes),
    )


def fingerprint_of(config: pytest.Config, cache: dict[str, Any] | None = None) -> Fingerprint:
    """Ask the hooks for the fingerprint (generate, then update in place).

    Asked anew for every checkpoint: the torch version appears once the tests import it.
    With ``cache`` (a dict the caller keeps), hook data equal to the previous call's is
    not validated again: the previous `Fingerprint` is returned.
    """
    data = config.hook.pytest_greennlp_generate_fingerprint(config=config)
    config.hook.pytest_greennlp_update_fingerprint(config=config, fingerprint=data)
    if cache is not None and "data" in cache and cache["data"] == data:
        return typing.cast(Fingerprint, cache["fingerprint"])
    fingerprint = _built_in_fingerprint(data)
    if fingerprint is None:
        try:
            fingerprint = from_dict(Fingerprint, data)
        except ValueError as exc:
            raise ReportError("fingerprint", f"a fingerprint hook returned bad data: {exc}") from exc
    if cache is not None:
        cache["data"], cache["fingerprint"] = data, fingerprint
    return fingerprint


def _built_in_fingerprint(data: dict[str, Any]) -> Fingerprint | None:
    """The `Fingerprint` of ``data`` when no hook changed the built-in one, else None.

    The built-in data needs no checking: this skips `from_dict`, whose first use of the
    class (its type hints, its dataclass fields) costs about 1 ms of every ``--green`` run.
    A test checks both give the same record.
    """
    from pytest_greennlp.measure.fingerprint import default_fingerprint

    if data != default_fingerprint():
        return None
    return Fingerprint._trusted({
        **{name: data[name] for name in Fingerprint._names},
        "gpus": tuple(Gpu._trusted({name: gpu[name] for name in Gpu._names}) for gpu in data["gpus"]),
        "extra": dict(data["extra"]),
    })


def report_json(report: Report) -> str:
    """Return the report's JSON text: compact, one line, the same content as `to_dict`.

    The C encoder walks the records itself (`_record_fields` hands it each record's
    fields); only a report with something it cannot take as is (a non-finite float,
    which JSON lacks) goes through `to_dict`, which writes those as null.
    """
    try:
        # Records hold no cycles, so the encoder's cycle bookkeeping is skipped; a cycle in
        # user data (``extra``) ends in RecursionError like any other unencodable value.
        return json.dumps(report, default=_record_fields, allow_nan=False,
                          check_circular=False) + "\n"
    except (TypeError, ValueError, RecursionError):
        return json.dumps(to_dict(report), allow_nan=False) + "\n"


def _record_fields(value: Any) -> dict[str, Any]:
    if isinstance(value, Record):
        return value.fields_dict()
    raise TypeError(f"not a record: {type(value).__name__}")


def record_text(test: TestRecord) -> str:
    """One test's JSON text, as `report_json` writes it inside a report."""
    try:
        return json.dumps(test, default=_record_fields, allow_nan=False, check_circular=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(to_dict(test), allow_nan=False)


#: How the encoder writes each type of value `json_values` takes.
_WRITERS: dict[type, Any] = {
    float: float.__repr__,
    str: _encode_string,
    int: int.__repr__,
    type(None): {None: "null"}.__getitem__,
    bool: {True: "true", False: "false"}.__getitem__,
}


def json_values(values: Sequence[Any]) -> list[str]:
    """Each value as the encoder writes it: None, bool, int, finite float or str.

    Another type raises TypeError, a float JSON has no number for ValueError (as the
    encoder does with ``allow_nan=False``). A string is always written quoted, so a bare
    ``inf`` or ``nan`` can only come from a float.
    """
    try:
        texts = [_WRITERS[type(value)](value) for value in values]
    except KeyError as exc:
        raise TypeError(f"not a JSON scalar: {exc}") from None
    if "inf" in texts or "-inf" in texts or "nan" in texts:
        raise ValueError("out of range float value")
    return texts


def report_text(report: Report, tests: Sequence[str]) -> str:
    """`report_json` of ``report`` (without its final newline) with ``tests``, each test's
    JSON text (see `record_text`), in place of its own tests: how the session writes."""
    text = report_json(Report._trusted({**report.fields_dict(), "tests": ()}))[:-1]
    # The last such key is the report's own: an earlier one can only be user data in the
    # fingerprint, and inside a JSON string a quote is always escaped.
    head, tail = text.rsplit('"tests": []', 1)
    return f"{head}\"tests\": [{', '.join(tests)}]{tail}"


def write_report(report: Report, path: Path, tests: Sequence[str] | None = None) -> None:
    """Write ``report`` as JSON atomically: a temporary file in the same folder, then rename.

    With ``tests``, those JSON texts are its tests (see `report_text`).
    """
    path = Path(path)
    try:
        text = report_json(report) if tests is None else report_text(report, tests) + "\n"
    except (TypeError, ValueError, RecursionError) as exc:
        raise ReportError(path, f"cannot be written: a value is not JSON ({_one_line(exc)})") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ReportError(path, f"cannot write ({exc.strerror or exc})") from exc


def read_report(path: Path | str) -> Report:
    """Read and validate a report; every problem is one `ReportError` line naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            raise ReportError(path, f"is {size} bytes, larger than the {MAX_REPORT_BYTES} byte limit")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(path, "no such file") from None
    except IsADirectoryError:
        raise ReportError(path, "is a directory, not a report") from None
    except OSError as exc:
        raise ReportError(path, f"cannot read ({exc.strerror or exc})") from exc
    return parse_report(raw, path)


def parse_report(raw: bytes | str, path: Path | str = "<report>") -> Report:
    """Parse report JSON text (see `read_report`)."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ReportError(path, "is nested too deeply to be a report") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ReportError(path, f"is not valid JSON ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ReportError(path, "is not a pytest-greennlp report (top level is not an object)")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReportError(path, "is not a pytest-greennlp report (no integer schema_version)")
    if version > SCHEMA_VERSION:
        raise ReportError(
            path, f"has schema_version {version}, newer than {SCHEMA_VERSION}; upgrade pytest-greennlp"
        )
    if version < SCHEMA_VERSION:
        raise ReportError(path, f"has schema_version {version}, which this version no longer reads")
    try:
        return from_dict(Report, data)
    except RecursionError:
        raise ReportError(path, "is nested too deeply to be a report") from None
    except ValueError as exc:
        raise ReportError(path, f"is not a valid report: {_one_line(exc)}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


# --- terminal table ------------------------------------------------------------------


def _fmt_num(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return f"0{unit}"
    magnitude = abs(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
                           (1e-3, "m"), (1e-6, "u")):
        if magnitude >= factor:
            return f"{value / factor:.3g}{prefix}{unit}"
    return f"{value:.2e}{unit}"


def energy_cell(energy: Energy | None) -> str:
    """``1.2J meas`` / ``3.4J est`` / both, never one number added across bases."""
    if energy is None:
        return "n/a"
    cells = []
    if energy.measured_j is not None:
        cells.append(f"{_fmt_num(energy.measured_j, 'J')} meas")
    if energy.estimated_j is not None:
        cells.append(f"{_fmt_num(energy.estimated_j, 'J')} est")
    return " + ".join(cells) if cells else "n/a"


def _co2_cell(grams_measured: float | None, grams_estimated: float | None) -> str:
    cells = []
    if grams_measured is not None:
        cells.append(f"{_fmt_num(grams_measured, 'g')} meas")
    if grams_estimated is not None:
        cells.append(f"{_fmt_num(grams_estimated, 'g')} est")
    return " + ".join(cells) if cells else "n/a"


def cost_key(test: TestRecord) -> tuple[float, float]:
    """Sort key of the table: most energy first (measured, else estimated), then most time."""
    return cost_of(figures(test))


def cost_of(test: Figures) -> tuple[float, float]:
    """`cost_key` of a test given by its `Figures`."""
    wall, _, _, measured, estimated, _, _ = test
    return (-(measured if measured is not None else (estimated or 0.0)), -(wall or 0.0))


def render_table(
    report: Report, width: int = 120, limit: int | None = None, more: int = 0
) -> list[str]:
    """Return the price-tag table, most expensive test first, with a totals row.

    With ``limit``, only that many of the most expensive tests get a row, followed by a
    line counting the others; the totals row still covers every test. ``more`` counts
    cheaper tests that are in the totals but not in ``report.tests`` (the session hands
    over only the rows it shows).
    """
    header = ("test", "kind", "outcome", "wall", "cpu", "FLOPs", "energy", "CO2e", "peak RSS")
    rows: list[tuple[str, ...]] = []
    ordered = sorted(report.tests, key=cost_key)
    hidden = len(ordered) - limit if limit is not None and 0 <= limit < len(ordered) else 0
    shown = ordered[: len(ordered) - hidden]
    hidden += more
    for test in shown:
        rows.append((
            test.nodeid,
            test.kind,
            test.outcome,
            _fmt_num(test.timing.wall_s, "s") if test.timing else "n/a",
            _fmt_num(test.timing.cpu_s, "s") if test.timing else "n/a",
            _fmt_num(test.flops.total) if test.flops else "n/a",
            energy_cell(test.energy),
            _co2_cell(test.co2e.from_measured_g, test.co2e.from_estimated_g) if test.co2e else "n/a",
            _fmt_num(test.memory.peak_rss_bytes, "B") if test.memory else "n/a",
        ))
    t = report.totals
    rows.append((
        "TOTAL", f"{t.tests} tests", "",
        _fmt_num(t.wall_s, "s"), _fmt_num(t.cpu_s, "s"), _fmt_num(t.flops),
        energy_cell(Energy(parts=(), measured_j=t.measured_j, estimated_j=t.estimated_j)),
        _co2_cell(t.co2e_from_measured_g, t.co2e_from_estimated_g), "",
    ))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fixed = sum(widths[1:]) + 2 * (len(header) - 1)
    widths[0] = max(24, min(widths[0], width - fixed))
    lines = []
    for i, row in enumerate((header, *rows)):
        first = row[0] if len(row[0]) <= widths[0] else "..." + row[0][-(widths[0] - 3):]
        cells = [first.ljust(widths[0])] + [
            c.rjust(w) if j >= 2 else c.ljust(w) for j, (c, w) in enumerate(zip(row[1:], widths[1:]), 1)
        ]
        lines.append("  ".join(cells).rstrip())
        if i == len(rows) - 1 and hidden:
            lines.append(f"... {hidden} cheaper test{'s' if hidden != 1 else ''} not shown "
                         "(every test is in the report)")
        if i == 0 or i == len(rows) - 1:
            lines.append("-" * min(width, len(lines[-1]) + 4))
    lines.append(
        f"CO2e at {report.carbon.g_per_kwh:g} g/kWh ({report.carbon.region}, {report.carbon.source}"
        f"{', ' + str(report.carbon.year) if report.carbon.year else ''}), PUE {report.carbon.pue:g}; "
        "meas = hardware counter, est = model"
    )
    return lines


