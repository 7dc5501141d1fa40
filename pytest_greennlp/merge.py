"""Shard merging: CI matrix or split-suite reports combined into one, with provenance.

Rules (`merge_reports`):

* **Provenance.** Every test keeps where it came from in its ``extra``: ``"shard"``
  (the shard's name, by default its file), ``"matrix"`` (the matrix cell, if named)
  and ``"hardware"`` (CPU model, GPU names and device of the machine that measured
  it). `compare.hardware_key` reads the latter, so merged reports are compared test by
  test on the hardware each test ran on. A test that already carries a ``"shard"``
  (a merged report merged again) keeps its original provenance.
* **Duplicates.** A nodeid may appear in several shards only if their *matrix names*
  differ (a shard's matrix name is given as ``NAME=PATH`` on the command line, or is
  the string ``fingerprint.extra["matrix"]`` a ``pytest_greennlp_update_fingerprint``
  hook set). The copies are then kept apart as ``"<nodeid> @<matrix>"``. Any other
  duplicate is refused, whether the hardware matches (a test ran twice) or not (the
  figures cannot be told apart): `ReportError` names both shards.
* **The rest.** The merged report is complete only if every shard was; its exit status
  is the largest, its times the earliest start and the latest finish; totals are
  recomputed with `report.totals`. The fingerprint, carbon intensity and settings are
  the first shard's; ``fingerprint.extra["shards"]`` lists every shard's name, matrix,
  hardware and test count, and a note says where shards differ. Per-run energy of the
  shards is not added up (each shard measured its own machine); it stays in the notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pytest_greennlp.errors import ReportError
from pytest_greennlp.records import Report, TestRecord
from pytest_greennlp.report import energy_cell, totals

__all__ = ["Shard", "merge_reports"]


@dataclass(frozen=True)
class Shard:
    """One report to merge: its name (for provenance) and optional matrix cell name."""

    report: Report
    name: str
    matrix: str | None = None


def _hardware(report: Report) -> dict[str, Any]:
    fp = report.fingerprint
    return {"cpu_model": fp.cpu_model.strip(), "device": fp.device,
            "gpus": sorted(g.name for g in fp.gpus)}


def _matrix(shard: Shard) -> str | None:
    if shard.matrix:
        return shard.matrix
    value = shard.report.fingerprint.extra.get("matrix")
    return value if isinstance(value, str) and value else None


def merge_reports(reports: Sequence[Report | Shard]) -> Report:
    """Merge shard reports into one (see the module docstring for the rules).

    Parameters
    ----------
    reports : sequence of Report or Shard, required
        At least one. A bare `Report` is named ``shard-<i>`` (1-based).

    Returns
    -------
    Report

    Raises
    ------
    ReportError
        One line: a nodeid in two shards that do not differ by matrix name.
    ValueError
        If ``reports`` is empty.
    """
    # Validate the arguments.
    if not reports:
        raise ValueError("reports must not be empty.")
    shards = [r if isinstance(r, Shard) else Shard(r, f"shard-{i}") for i, r in enumerate(reports, 1)]
    names = [s.name for s in shards]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ReportError(dup, "is given twice; every shard needs its own name")

    # Find where each nodeid comes from.
    seen: dict[str, list[tuple[Shard, TestRecord]]] = {}
    for shard in shards:
        for test in shard.report.tests:
            seen.setdefault(test.nodeid, []).append((shard, test))
    for nodeid, copies in seen.items():
        if len(copies) < 2:
            continue
        matrices = [_matrix(s) for s, _ in copies]
        if None in matrices or len(set(matrices)) != len(matrices):
            (one, _), (other, _) = copies[:2]
            same = _hardware(one.report) == _hardware(other.report)
            why = "ran twice" if same else "ran on different hardware"
            raise ReportError(
                other.name,
                f"{nodeid} is also in {one.name} and {why}; name their matrix cells "
                "(NAME=PATH) to keep both",
            )

    # Build the merged tests with their provenance.
    tests: list[TestRecord] = []
    for nodeid, copies in seen.items():
        for shard, test in copies:
            extra = dict(test.extra)
            if "shard" not in extra:
                extra["shard"] = shard.name
                matrix = _matrix(shard)
                if matrix is not None:
                    extra["matrix"] = matrix
                extra["hardware"] = _hardware(shard.report)
            new_id = nodeid if len(copies) == 1 else f"{nodeid} @{_matrix(shard)}"
            tests.append(replace(test, nodeid=new_id, extra=extra))
    tests.sort(key=lambda t: t.nodeid)

    first = shards[0].report
    statuses = [s.report.exit_status for s in shards]
    finished = [s.report.finished_at for s in shards]
    shard_info = [
        {"name": s.name, "matrix": _matrix(s), **_hardware(s.report), "tests": len(s.report.tests),
         "complete": s.report.complete, "tool_version": s.report.tool_version}
        for s in shards
    ]
    fingerprint = replace(first.fingerprint, extra={**first.fingerprint.extra, "shards": shard_info})
    return Report(
        tool_version=first.tool_version,
        complete=all(s.report.complete for s in shards),
        exit_status=None if None in statuses else max(s for s in statuses if s is not None),
        started_at=min(s.report.started_at for s in shards),
        finished_at=None if None in finished else max(f for f in finished if f is not None),
        fingerprint=fingerprint,
        carbon=first.carbon,
        settings=first.settings,
        tests=tuple(tests),
        totals=totals(tests),
        run_energy=first.run_energy if len(shards) == 1 else None,
        notes=tuple(_notes(shards)),
    )


def _notes(shards: Sequence[Shard]) -> list[str]:
    first = shards[0].report
    notes = [f"merged from {len(shards)} shard(s): "
             + ", ".join(f"{s.name} ({len(s.report.tests)} tests)" for s in shards)]
    if len({str(_hardware(s.report)) for s in shards}) > 1:
        notes.append("shards ran on different hardware; each test's is in extra['hardware']")
    if any(s.report.carbon != first.carbon for s in shards):
        notes.append("shards used different carbon intensities; the first shard's is shown, "
                     "each test's CO2e keeps its own")
    if any(s.report.settings != first.settings for s in shards):
        notes.append("shards used different settings; the first shard's are shown")
    if any(s.report.tool_version != first.tool_version for s in shards):
        notes.append("shards ran different pytest-greennlp versions")
    for s in shards:
        if len(shards) > 1 and s.report.run_energy is not None:
            notes.append(f"[{s.name}] run energy {energy_cell(s.report.run_energy)}")
        notes.extend(f"[{s.name}] {note}" for note in s.report.notes)
    return notes
