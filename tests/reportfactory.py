"""Build `Report`s and `TestRecord`s directly, for the compare, gate, merge and CLI tests."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pytest_greennlp.records import (
    CarbonIntensity,
    Emissions,
    Energy,
    EnergyPart,
    Fingerprint,
    Flops,
    Gpu,
    Metric,
    Report,
    Settings,
    TestRecord,
    Timing,
    Trial,
    TrialCost,
)
from pytest_greennlp.report import totals

CARBON = CarbonIntensity(region="FRA", g_per_kwh=36.0, source="test", year=2023, pue=1.0)
G_PER_J = CARBON.g_per_kwh / 3.6e6


def fingerprint(cpu: str = "Test CPU 3000", gpus: Sequence[str] = (), **extra: Any) -> Fingerprint:
    return Fingerprint(
        cpu_model=cpu, cpu_count=2, memory_total_bytes=2**33, platform="Linux", python="3.11.7",
        device="cuda" if gpus else "cpu",
        gpus=tuple(Gpu(index=i, name=n, uuid=f"GPU-{i}-{n}", driver="550") for i, n in enumerate(gpus)),
        extra=dict(extra),
    )


def energy(
    measured: Sequence[float] | float | None = None,
    estimated: Sequence[float] | float | None = None,
    *,
    measured_method: str = "rapl",
    estimated_method: str = "estimate-tdp",
) -> Energy:
    """Energy from per-run samples (a sequence) or one run (a number)."""
    parts = []
    values: dict[str, Any] = {}
    for basis, given, method in (("measured", measured, measured_method),
                                 ("estimated", estimated, estimated_method)):
        if given is None:
            values[basis] = (None, ())
            continue
        runs = (given,) if isinstance(given, (int, float)) else tuple(given)
        value = statistics.median(runs)
        parts.append(EnergyPart(domain="cpu", energy_j=value, method=method,
                                measured=basis == "measured", source="test", scope="machine"))
        values[basis] = (value, runs if len(runs) > 1 else ())
    return Energy(
        parts=tuple(parts), measured_j=values["measured"][0], estimated_j=values["estimated"][0],
        samples_measured_j=values["measured"][1], samples_estimated_j=values["estimated"][1],
    )


def record(
    nodeid: str = "tests/test_model.py::test_a",
    *,
    flops: int | None = None,
    wall: Sequence[float] | float | None = None,
    energy_: Energy | None = None,
    metrics: Mapping[str, float | None] | None = None,
    lower_is_better: Sequence[str] = (),
    trials: Sequence[Trial] = (),
    outcome: str = "passed",
    limits: Mapping[str, float] | None = None,
    **extra: Any,
) -> TestRecord:
    timing = None
    if wall is not None:
        runs = (wall,) if isinstance(wall, (int, float)) else tuple(wall)
        timing = Timing(wall_s=statistics.median(runs), cpu_s=statistics.median(runs),
                        wall_samples_s=runs, cpu_samples_s=runs)
    co2e = None
    if energy_ is not None:
        co2e = Emissions(
            from_measured_g=None if energy_.measured_j is None else energy_.measured_j * G_PER_J,
            from_estimated_g=None if energy_.estimated_j is None else energy_.estimated_j * G_PER_J,
        )
    return TestRecord(
        nodeid=nodeid, kind="infer", outcome=outcome,  # type: ignore[arg-type]
        timing=timing,
        flops=None if flops is None else Flops(forward=flops, backward=0, total=flops, method="manual"),
        energy=energy_, co2e=co2e,
        metrics=tuple(Metric(name=k, value=v, higher_is_better=k not in lower_is_better)
                      for k, v in (metrics or {}).items()),
        trials=tuple(trials), limits=dict(limits or {}), extra=dict(extra),
    )


def trials(group: str, scores: Sequence[float | None], cost_s: float = 1.0, **kw: Any) -> list[Trial]:
    return [Trial(group=group, score=s, status="ok" if s is not None else "failed",
                  cost=TrialCost(wall_s=cost_s), **kw) for s in scores]


def report(*tests: TestRecord, fp: Fingerprint | None = None, repeats: int = 1,
           complete: bool = True, **changes: Any) -> Report:
    made = Report(
        tool_version="0.1.0", complete=complete, exit_status=0 if complete else None,
        started_at="2024-05-01T10:00:00+00:00",
        finished_at="2024-05-01T10:01:00+00:00" if complete else None,
        fingerprint=fp or fingerprint(), carbon=CARBON,
        settings=Settings(repeats=repeats, warmup=0, energy_sources=("auto",)),
        tests=tuple(tests), totals=totals(tests),
    )
    return replace(made, **changes) if changes else made
