"""The measuring session: per-test windows, repeats, xdist transport and the report's lifecycle.

`GreenSession` is registered only under ``--green``. Each xdist worker (or the single
process) measures its tests and attaches the record to the call-phase report; the
controller (or the single process) collects records from the reports it logs, writes
checkpoints while the run goes on and the final report at the end.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import statistics
import sys
import time
import typing
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Mapping, Sequence

import pytest

from pytest_greennlp.errors import GreenNLPWarning, MeterUnavailableWarning, ReportError
from pytest_greennlp.measure.clocks import MemoryProbe
from pytest_greennlp.measure.window import Meters, Window, WindowTotals
from pytest_greennlp.records import (
    CarbonIntensity,
    Emissions,
    Energy,
    EnergyPart,
    Fingerprint,
    Flops,
    Memory,
    Metric,
    Report,
    Settings,
    TestRecord,
    Timing,
    Trial,
    TrialCost,
    from_dict,
    to_dict,
)

if TYPE_CHECKING:
    from pytest_greennlp.config import GreenConfig
    from pytest_greennlp.measure.base import EnergyReader
    from pytest_greennlp.measure.flops import FlopCount
    from pytest_greennlp.report import Figures

__all__ = ["GreenSession", "Snapshot", "TestRun", "WorkerReports", "run_key", "running_test"]

log = logging.getLogger(__name__)

#: Where the running `TestRun` of an item lives while its call phase runs.
run_key: pytest.StashKey[TestRun] = pytest.StashKey()  # typed by annotation (cheaper)

#: Name of the attribute that carries a record on a call-phase report (survives xdist).
REPORT_ATTR = "greennlp"

_CHECKPOINT_EVERY_S = 5.0
#: A checkpoint waits at least this many times as long as the previous one took to write.
_CHECKPOINT_SHARE = 20.0


class TestRun:
    """Measurement state of one marked test while its call phase runs."""

    __test__ = False

    def __init__(
        self,
        *,
        nodeid: str,
        kind: str,
        default_group: str,
        meters: Meters,
    ) -> None:
        self.nodeid = nodeid
        self.kind = kind
        self.default_group = default_group
        self._meters = meters
        #: True in the first measured run: metrics, trials and FLOPs are recorded.
        self.recording = False
        #: True in every measured run (the first and the repeats): windows run.
        self.measuring = False
        self.window: Window | None = None
        self.region: Window | None = None
        self._region_depth = 0
        self.forward_flops = 0
        self.backward_flops = 0
        self.flops_methods: list[str] = []
        self.counts: dict[str, int] = {}
        self.metrics: dict[str, Metric] = {}
        self.trials: list[Trial] = []
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}
        self._trial_mark: Snapshot | None = None  # None: the start of the test

    def new_window(self) -> Window:
        return Window(self._meters)

    # -- called by the Recorder --------------------------------------------------

    def count_model(
        self, model: Any, inputs: Any, *, backward: bool | None, calls: int, loss_fn: Any
    ) -> FlopCount:
        from pytest_greennlp.measure.flops import count_flops

        with self.paused():
            count = count_flops(
                model, inputs, backward=self.kind == "train" if backward is None else backward,
                loss_fn=loss_fn,
            )
        self.add_flops(count.forward * calls, count.backward * calls, method=count.method)
        return count

    def add_flops(self, forward: int, backward: int, *, method: str) -> None:
        self.forward_flops += forward
        self.backward_flops += backward
        if method not in self.flops_methods:
            self.flops_methods.append(method)

    def add_count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def enter_region(self) -> None:
        if self._region_depth == 0:
            if self.region is None:
                self.region = self.new_window()
            if self.measuring:
                self.region.start()
        self._region_depth += 1

    def exit_region(self) -> None:
        self._region_depth -= 1
        if self._region_depth == 0 and self.region is not None:
            self.region.stop()

    def trial_boundary(self) -> TrialCost:
        """Return the cost since the previous boundary and start a new one."""
        now = self.snapshot()
        before, self._trial_mark = self._trial_mark or Snapshot(0.0, 0.0, {}, 0), now
        return self.cost_between(before, now)

    # -- snapshots, pauses and other processes' work (hf, halving, distributed) --------

    @property
    def readers(self) -> Sequence[EnergyReader]:
        """The session's energy readers this test's windows read."""
        return self._meters.readers

    def active_window(self) -> Window | None:
        """The window the test's figures come from: its regions if any, else the whole call."""
        return self.region if self.region is not None else self.window

    def snapshot(self) -> Snapshot:
        """Totals of the active window so far (the running segment folded in) and FLOPs so far.

        Unlike `trial_boundary` it moves no mark, so callers can difference snapshots of
        their own (per epoch, per trial) without disturbing ``green.trial``'s costs.
        """
        flops = self.forward_flops + self.backward_flops
        active = self.active_window()
        if active is None:
            return Snapshot(0.0, 0.0, {}, flops)
        if active.running:
            active.stop()
            active.start()
        totals = active.totals
        return Snapshot(totals.wall_s, totals.cpu_s, dict(totals.energy_j), flops)

    def cost_between(self, before: Snapshot, after: Snapshot) -> TrialCost:
        """The cost between two snapshots, energy split into measured and estimated joules."""
        delta: dict[str, float | None] = {}
        for domain, value in after.energy_j.items():
            start = before.energy_j.get(domain, 0.0)
            delta[domain] = None if value is None or start is None else max(0.0, value - start)
        measured, estimated = _split_by_basis(delta, self._meters.readers)
        return TrialCost(
            wall_s=max(0.0, after.wall_s - before.wall_s),
            cpu_s=max(0.0, after.cpu_s - before.cpu_s),
            measured_j=measured,
            estimated_j=estimated,
            flops=(after.flops - before.flops) if self.flops_methods else None,
        )

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Keep a block (a FLOP-counting pass) out of the test's time and energy."""
        stopped = [w for w in (self.window, self.region) if w is not None and w.running]
        for w in stopped:
            w.stop()
        try:
            yield
        finally:
            for w in stopped:
                w.start()

    def add_external(self, *, cpu_s: float, energy_j: Mapping[str, float]) -> bool:
        """Add CPU seconds and per-domain joules spent in other processes (DDP ranks).

        They go to the active window's totals, so the test's figures and later trial
        costs include them. Returns False (nothing added) when there is no window.
        """
        active = self.active_window()
        if active is None:
            return False
        totals = active.totals
        totals.cpu_ns += round(cpu_s * 1e9)
        for domain, joules in energy_j.items():
            current = totals.energy_j.get(domain)
            if current is not None:
                totals.energy_j[domain] = current + joules
        return True


class _Measured:
    """What a test's call left for its record (see `GreenSession._build_pending`)."""

    __slots__ = ("item", "run", "samples", "rss", "cuda_peak", "outcome")

    def __init__(self, item: pytest.Item, run: TestRun, samples: list[WindowTotals],
                 rss: int | None, cuda_peak: int | None, outcome: str) -> None:
        self.item, self.run, self.samples = item, run, samples
        self.rss, self.cuda_peak, self.outcome = rss, cuda_peak, outcome


class _Row:
    """The record of a test in the common shape, as the values it writes (see `GreenSession._row`).

    The report writes those values into a template; a `TestRecord` is made of them only
    where one is needed: the rows the terminal table shows, a gate, a late report.
    """

    __slots__ = ("figures", "key", "values")

    def __init__(self, key: tuple[Any, ...], values: list[Any], figures: Figures) -> None:
        self.key, self.values, self.figures = key, values, figures

    @property
    def nodeid(self) -> str:
        return typing.cast(str, self.values[0])


#: A `_Row` value that marks its place in a template's prototype (see `_Templates`).
_MARKER = "\x00{}\x00"
_MARKED = r'"\\u0000(\d+)\\u0000"'  # as the encoder writes a marker (compiled on first use)


class _Templates:
    """Per row key, the JSON text around a `_Row`'s values (`GreenSession._row_json`).

    A template is the encoder's own text for a record of that key whose values are
    markers, split at the markers: a row is then written by filling its values in,
    without building its records or walking them. It is checked once: filled with other
    markers, it must give the encoder's text for them. It is None (the encoder writes
    such rows) where that fails, which takes a fixed text of the record, such as a
    reader's description, holding a marker (NUL characters).
    """

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], tuple[list[str], list[int]] | None] = {}

    def get(self, key: tuple[Any, ...], prototype: Callable[[list[Any]], TestRecord],
            count: int) -> tuple[list[str], list[int]] | None:
        try:
            return self._made[key]
        except KeyError:
            pass
        from pytest_greennlp.report import json_values, record_text

        split = re.split(_MARKED, record_text(prototype([_MARKER.format(i) for i in range(count)])))
        template = (split[0::2], [int(i) for i in split[1::2]])
        others = [_MARKER.format(i) for i in range(count, 2 * count)]
        made = template if (
            all(i < count for i in template[1])
            and _fill(template, json_values(others)) == record_text(prototype(others))
        ) else None
        self._made[key] = made
        return made


def _fill(template: tuple[list[str], list[int]], texts: Sequence[str]) -> str:
    """A `_Templates` template with each value's JSON text in its places."""
    pieces, slots = template
    filled = [texts[i] for i in slots]
    filled.append("")
    return "".join(chain.from_iterable(zip(pieces, filled)))


class Snapshot:
    """Cumulative figures of a test's active window at one moment (see `TestRun.snapshot`).

    Immutable. A slotted class rather than a frozen dataclass, whose generated methods
    are compiled at import, at every ``pytest --green`` start-up.
    """

    __slots__ = ("cpu_s", "energy_j", "flops", "wall_s")
    _FIELDS = ("wall_s", "cpu_s", "energy_j", "flops")
    wall_s: float
    cpu_s: float
    energy_j: Mapping[str, float | None]
    flops: int

    def __init__(self, wall_s: float, cpu_s: float, energy_j: Mapping[str, float | None],
                 flops: int) -> None:
        for name, value in zip(self._FIELDS, (wall_s, cpu_s, energy_j, flops)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Snapshot is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]  # energy_j is a dict

    def __repr__(self) -> str:
        return (f"Snapshot(wall_s={self.wall_s!r}, cpu_s={self.cpu_s!r}, "
                f"energy_j={self.energy_j!r}, flops={self.flops!r})")


#: The tests whose call phase is running in this process (innermost last); see `running_test`.
_running: list[TestRun] = []


def running_test() -> TestRun | None:
    """Return the `TestRun` whose call phase is running in this process, or None.

    For code that cannot reach the ``green`` fixture, such as a ``transformers``
    callback (`hf.GreenCallback`). Set by `GreenSession` around each marked test's call.
    """
    return _running[-1] if _running else None



def _split_by_basis(
    energy: Mapping[str, float | None], readers: Sequence[EnergyReader]
) -> tuple[float | None, float | None]:
    measured: float | None = None
    estimated: float | None = None
    for reader in readers:
        value = energy.get(reader.domain)
        if value is None:
            continue
        if reader.measured:
            measured = (measured or 0.0) + value
        else:
            estimated = (estimated or 0.0) + value
    return measured, estimated


def build_energy(
    runs: Sequence[WindowTotals], readers: Sequence[EnergyReader], attribution: str
) -> tuple[Energy | None, list[str]]:
    """Turn the windows of the measured runs into an `Energy` (medians over runs).

    Runs once per test when a report is written, so it makes each list once and builds
    its records with `Record._trusted`.
    """
    if not readers or not runs:
        return None, []
    notes = []
    parts = []
    #: Per basis (measured: True / estimated: False), each run's joules over the parts.
    per_run: dict[bool, list[float]] = {}
    one = runs[0].energy_j if len(runs) == 1 else None
    for reader in readers:
        domain = reader.domain
        read = [one.get(domain)] if one is not None else [run.energy_j.get(domain) for run in runs]
        if None in read:
            notes.append(f"energy of {domain} ({reader.method}) unavailable for this test")
            continue
        values = typing.cast("list[float]", read)
        measured = bool(reader.measured)
        parts.append(EnergyPart._trusted({
            "domain": domain,
            "energy_j": _nano(_median(values)),
            "method": reader.method,
            "measured": measured,
            "source": reader.source,
            "scope": reader.scope,
        }))
        sums = per_run.get(measured)
        per_run[measured] = values if sums is None else [a + b for a, b in zip(sums, values)]
    if not parts:
        return None, notes
    measured_runs, estimated_runs = per_run.get(True), per_run.get(False)
    several = len(runs) > 1
    energy = Energy._trusted({
        "parts": tuple(parts),
        "measured_j": None if measured_runs is None else _nano(_median(measured_runs)),
        "estimated_j": None if estimated_runs is None else _nano(_median(estimated_runs)),
        "samples_measured_j": tuple(map(_nano, measured_runs)) if several and measured_runs else (),
        "samples_estimated_j": tuple(map(_nano, estimated_runs)) if several and estimated_runs else (),
        "attribution": attribution,
    })
    return energy, notes


def _median(values: Sequence[float]) -> float:
    return values[0] if len(values) == 1 else statistics.median(values)


def _nano(value: float, steps: float = 1e9) -> float:
    """Round to 1/``steps`` (nanojoules by default): far below any meter's resolution
    or an estimate's accuracy, and it keeps the report free of 17-digit noise (which
    also takes twice as long to write). A value of 1e15 steps or more is kept as it is."""
    return round(value * steps) / steps if -1e15 < value * steps < 1e15 else value


def emissions(energy: Energy | None, carbon: CarbonIntensity) -> Emissions | None:
    """CO2e grams = joules / 3.6e6 x PUE x g/kWh, for each energy basis separately."""
    if energy is None:
        return None
    return Emissions._trusted({
        "from_measured_g": _grams(energy.measured_j, carbon),
        "from_estimated_g": _grams(energy.estimated_j, carbon),
    })


def _grams(joules: float | None, carbon: CarbonIntensity) -> float | None:
    """CO2e grams of ``joules`` (None stays None), rounded to the femtogram (see `_nano`)."""
    if joules is None:
        return None
    return _nano(joules * (carbon.pue * carbon.g_per_kwh / 3.6e6), 1e15)


class GreenSession:
    """The plugin object registered under ``--green``; one per pytest process."""

    def __init__(
        self,
        config: pytest.Config,
        settings: GreenConfig,
        carbon: CarbonIntensity,
    ) -> None:
        self.config = config
        self.settings = settings
        self.carbon = carbon
        self.is_worker = hasattr(config, "workerinput")
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        self.worker_id: str | None = workerinput.get("workerid")
        self.concurrent_workers = int(workerinput.get("workercount", 1)) if self.is_worker else _xdist_workers(config)
        self.readers: list[EnergyReader] = []
        #: What every window reads (set when the readers open).
        self.meters = Meters([], _no_readings)
        self.memory = MemoryProbe()
        #: Each test's record, or its `_Row` (kept as values; see `_build_pending`).
        self.records: dict[str, TestRecord | _Row] = {}
        #: Tests measured in this process whose records are built at the next report.
        self.pending: dict[str, _Measured] = {}
        self._record_hook = config.hook.pytest_greennlp_update_record
        self.notes: list[str] = []
        self._warned: set[str] = set()
        self._failed: set[str] = set()
        self.started_at = _now_iso()
        self._last_checkpoint = 0.0
        self._checkpoint_every = _CHECKPOINT_EVERY_S
        self.run_window: Window | None = None
        self.report_path: Path = settings.report
        self.written_to: Path | None = None
        #: The last report written: its run-level part (no tests) and its tests in order.
        self._written: tuple[Report, list[TestRecord | _Row]] | None = None
        self._report: Report | None = None
        self._templates = _Templates()
        self._fingerprint_cache: dict[str, Any] = {}
        #: Attach figures as junitxml properties (only when a junit XML file is written).
        self.junit = bool(getattr(config.option, "xmlpath", None))
        #: A record's energy attribution: [whole call window, regions] (see `_record`).
        concurrent = (f" (process estimate: {self.concurrent_workers} xdist workers)"
                      if self.concurrent_workers > 1 else "")
        self._attribution = (f"window{concurrent}", f"region{concurrent}")

    # -- warnings ----------------------------------------------------------------

    def warn(self, message: str, category: type[GreenNLPWarning] = MeterUnavailableWarning) -> None:
        """Tell the user once; never escalated to an error by warning filters."""
        if message in self._warned:
            return
        self._warned.add(message)
        self.notes.append(message)
        log.info("%s", message)
        with warnings.catch_warnings():
            warnings.simplefilter("always", category)
            warnings.warn(f"greennlp: {message}", category, stacklevel=2)

    # -- session -------------------------------------------------------------------

    @property
    def is_controller(self) -> bool:
        return not self.is_worker

    @property
    def measures_tests(self) -> bool:
        """False on an xdist controller: its workers measure the tests."""
        return self.is_worker or self.concurrent_workers == 0

    def _open_readers(self) -> None:
        from pytest_greennlp.measure import energy

        hook = self.config.hook
        try:
            readers = energy.discover_readers(sources=self.settings.energy, warn=self.warn)
            extra = [r for group in hook.pytest_greennlp_energy_readers(config=self.config) for r in group]
        except Exception as exc:  # a broken meter never breaks the run
            self.warn(f"energy meters failed to start ({exc}); energy unavailable")
            return
        for reader in extra:
            try:
                reader.open()
            except Exception as exc:
                self.warn(f"energy reader {getattr(reader, 'domain', reader)!r} failed to open ({exc})")
                continue
            readers.insert(0, reader)
        seen: set[str] = set()
        chosen = []
        for reader in readers:  # third-party readers first: they replace ours per domain
            if reader.domain in seen:
                reader.close()
                continue
            seen.add(reader.domain)
            chosen.append(reader)
        if self.concurrent_workers > 1:
            # Tests run at once in several processes: a machine-wide counter cannot be split
            # between them, so tests get per-process estimates and the controller keeps the
            # machine-wide counters for the run total.
            keep = "machine" if self.is_controller else "process"
            dropped = [r for r in chosen if r.scope != keep]
            chosen = [r for r in chosen if r.scope == keep]
            for reader in dropped:
                reader.close()
            if self.is_controller and dropped:
                self.notes.append(
                    f"xdist with {self.concurrent_workers} workers: per-test energy comes from "
                    "per-process estimates; machine-wide counters are reported for the whole run only"
                )
        self.readers = chosen
        self.meters = Meters(
            chosen, functools.partial(energy.read_all, failed=self._failed, warn=self.warn),
            self._reader_failed,
        )

    def _reader_failed(self, reader: EnergyReader, exc: Exception) -> None:
        """A window could not derive a reader's joules (see `Window`): warn once."""
        self.warn(f"{reader.domain} energy: {reader.method} failed mid-run ({exc}); "
                  f"recorded as null for this test")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._open_readers()
        if self.is_controller:
            if self.concurrent_workers > 0 and self.readers:
                self.run_window = Window(self.meters)
                self.run_window.start()
            self.checkpoint(force=True)

    def run_for(self, item: pytest.Item) -> TestRun | None:
        """The `TestRun` of a marked test, made on first use (by the ``green`` fixture at
        setup, else by the call wrapper); None for an unmarked test or on an xdist controller."""
        # `in` first: `Stash.get` of a missing key raises and catches a KeyError, which
        # costs more than the rest of this method (it runs once per test).
        stash = item.stash
        if run_key in stash:
            return stash[run_key]
        if kind_key not in stash or not self.measures_tests:
            return None
        run = stash[run_key] = TestRun(
            nodeid=item.nodeid,
            kind=stash[kind_key],
            default_group=getattr(item, "originalname", item.name),
            meters=self.meters,
        )
        return run

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        run = self.run_for(item)
        if run is None:
            return (yield)
        # Published for code without the fixture; the Trainer callback added in train tests.
        _running.append(run)
        try:
            with _hf_auto_callback(run):
                for i in range(self.settings.warmup):
                    try:
                        item.runtest()
                    except Exception as exc:
                        run.notes.append(f"warm-up run {i + 1} raised {type(exc).__name__}; "
                                         f"warm-up stopped")
                        break
                run.recording = run.measuring = True
                run.window = run.new_window()
                self.memory.reset()
                run.window.start()
                failed = True
                try:
                    result = yield
                    failed = False
                    return result
                finally:
                    run.window.stop()
                    run.recording = run.measuring = False
                    rss, cuda_peak = self.memory.peak()
                    samples = [self._chosen(run)]
                    for _ in range(self.settings.repeats - 1 if not failed else 0):
                        samples.append(self._repeat(item, run))
                    if self.is_worker or self.junit or self._record_hook.get_hookimpls():
                        self._keep(item, self._record(item, run, samples, rss, cuda_peak))
                    else:
                        # Built with the others when a report is written: in one loop the code
                        # is warm, where once per test, between pytest's own work, it runs cold.
                        self.pending[item.nodeid] = _Measured(item, run, samples, rss, cuda_peak,
                                                              "passed")
        finally:
            _running.pop()
            # Off the item: what the record needs is kept (or built) by the block above.
            del item.stash[run_key]

    @staticmethod
    def _chosen(run: TestRun) -> WindowTotals:
        window = run.region if run.region is not None else run.window
        assert window is not None
        return window.totals

    def _repeat(self, item: pytest.Item, run: TestRun) -> WindowTotals:
        run.window = run.new_window()
        run.region = None
        run.measuring = True
        run.window.start()
        try:
            item.runtest()
        except Exception as exc:
            run.notes.append(f"a repeat raised {type(exc).__name__}; its figures are kept")
        finally:
            run.window.stop()
            run.measuring = False
        return self._chosen(run)

    def _record(
        self,
        item: pytest.Item,
        run: TestRun,
        samples: Sequence[WindowTotals],
        rss: int | None,
        cuda_peak: int | None,
        outcome: str = "passed",
    ) -> TestRecord:
        stash = item.stash
        # Not `stash.get`: for a missing key it raises and catches a KeyError (see `run_for`).
        marker_kwargs: Mapping[str, Any] = stash[marker_key] if marker_key in stash else {}  # noqa: SIM401
        walls: tuple[float, ...]
        cpus: tuple[float, ...]
        if len(samples) == 1:  # no repeats: the common case
            only = samples[0]
            walls, cpus, synced = (only.wall_s,), (only.cpu_s,), only.synchronized
        else:
            walls = tuple(s.wall_s for s in samples)
            cpus = tuple(s.cpu_s for s in samples)
            synced = tuple(sorted({x for s in samples for x in s.synchronized}))
        timing = Timing._trusted({
            "wall_s": _median(walls),
            "cpu_s": _median(cpus),
            "wall_samples_s": walls,
            "cpu_samples_s": cpus,
            "warmup_runs": self.settings.warmup,
            "synchronized": synced,
        })
        energy, notes = build_energy(
            samples, self.readers, self._attribution[run.region is not None]
        )
        flops = None
        if run.flops_methods:
            flops = Flops(
                forward=run.forward_flops,
                backward=run.backward_flops,
                total=run.forward_flops + run.backward_flops,
                method="; ".join(run.flops_methods),
            )
        counts = run.counts
        return TestRecord._trusted({
            "nodeid": item.nodeid,
            "kind": run.kind,
            "outcome": outcome,
            "worker": self.worker_id,
            "examples": counts["examples"] if "examples" in counts else marker_kwargs.get("examples"),
            "tokens": counts["tokens"] if "tokens" in counts else marker_kwargs.get("tokens"),
            "timing": timing,
            "flops": flops,
            "energy": energy,
            "co2e": emissions(energy, self.carbon),
            "memory": Memory._trusted({
                "peak_rss_bytes": rss,
                "rss_method": self.memory.method,
                "cuda_peak_allocated_bytes": cuda_peak,
            }),
            "metrics": tuple(run.metrics.values()),
            "trials": tuple(run.trials),
            "limits": {k: v for k, v in marker_kwargs.items() if k not in ("examples", "tokens")}
            if marker_kwargs else {},
            "extra": dict(run.extra),
            "notes": tuple(run.notes + notes),
        })

    def _build_pending(self) -> None:
        """Turn the measured tests not yet built into records (before a report is written).

        A test of the common shape becomes a `_Row`, the values its record writes: for
        the small tests of a large suite, building and walking seven records per test
        was most of what ``--green`` cost.
        """
        pending, self.pending = self.pending, {}
        for nodeid, m in pending.items():
            row = self._row(m)
            self.records[nodeid] = row if row is not None else self._record(
                m.item, m.run, m.samples, m.rss, m.cuda_peak, m.outcome)

    def _row(self, m: _Measured) -> _Row | None:
        """The `_Row` of a test whose record has the common shape, else None.

        That shape: one measured run; every energy reader read; no FLOPs, metrics,
        trials, limits, extra data or notes. The values are what `_record` would write,
        computed the same way (a test checks both records, and their JSON, are equal):
        nodeid, examples, tokens, wall s, CPU s, peak RSS, CUDA peak, measured J,
        estimated J, CO2e g from each, then each reader's joules. `_row_record` reads
        them in that order.
        """
        run, item = m.run, m.item
        readers = self.readers
        if (len(m.samples) != 1 or not readers or run.flops_methods or run.metrics or run.trials
                or run.extra or run.notes):
            return None
        stash = item.stash
        marker_kwargs: Mapping[str, Any] = stash[marker_key] if marker_key in stash else {}  # noqa: SIM401
        if any(k != "examples" and k != "tokens" for k in marker_kwargs):
            return None
        only = m.samples[0]
        energy = only.energy_j
        parts = []
        measured = estimated = None  # summed as `build_energy` does, in reader order
        for reader in readers:
            joules = energy.get(reader.domain)
            if joules is None:
                return None
            parts.append(_nano(joules))
            if reader.measured:
                measured = joules if measured is None else measured + joules
            else:
                estimated = joules if estimated is None else estimated + joules
        measured_j = None if measured is None else _nano(measured)
        estimated_j = None if estimated is None else _nano(estimated)
        co2e_measured = _grams(measured_j, self.carbon)
        co2e_estimated = _grams(estimated_j, self.carbon)
        wall, cpu = only.wall_s, only.cpu_s
        counts = run.counts
        values = [
            item.nodeid,
            counts["examples"] if "examples" in counts else marker_kwargs.get("examples"),
            counts["tokens"] if "tokens" in counts else marker_kwargs.get("tokens"),
            wall, cpu, m.rss, m.cuda_peak,
            measured_j, estimated_j, co2e_measured, co2e_estimated,
            *parts,
        ]
        key = (run.kind, m.outcome, only.synchronized, self._attribution[run.region is not None])
        return _Row(key, values, (wall, cpu, None, measured_j, estimated_j, co2e_measured, co2e_estimated))

    def _row_record(self, key: tuple[Any, ...], values: Sequence[Any]) -> TestRecord:
        """The `TestRecord` of a `_Row`'s key and values (see `_row` for their order)."""
        kind, outcome, synchronized, attribution = key
        (nodeid, examples, tokens, wall, cpu, rss, cuda_peak,
         measured_j, estimated_j, co2e_measured, co2e_estimated) = values[:11]
        parts = tuple(
            EnergyPart._trusted({
                "domain": reader.domain, "energy_j": joules, "method": reader.method,
                "measured": bool(reader.measured), "source": reader.source, "scope": reader.scope,
            })
            for reader, joules in zip(self.readers, values[11:])
        )
        return TestRecord._trusted({
            "nodeid": nodeid,
            "kind": kind,
            "outcome": outcome,
            "worker": self.worker_id,
            "examples": examples,
            "tokens": tokens,
            "timing": Timing._trusted({
                "wall_s": wall, "cpu_s": cpu, "wall_samples_s": (wall,), "cpu_samples_s": (cpu,),
                "warmup_runs": self.settings.warmup, "synchronized": synchronized,
            }),
            "flops": None,
            "energy": Energy._trusted({
                "parts": parts, "measured_j": measured_j, "estimated_j": estimated_j,
                "samples_measured_j": (), "samples_estimated_j": (), "attribution": attribution,
            }),
            "co2e": Emissions._trusted({
                "from_measured_g": co2e_measured, "from_estimated_g": co2e_estimated,
            }),
            "memory": Memory._trusted({
                "peak_rss_bytes": rss, "rss_method": self.memory.method,
                "cuda_peak_allocated_bytes": cuda_peak,
            }),
            "metrics": (),
            "trials": (),
            "limits": {},
            "extra": {},
            "notes": (),
        })

    def _as_record(self, entry: TestRecord | _Row) -> TestRecord:
        return self._row_record(entry.key, entry.values) if isinstance(entry, _Row) else entry

    def _row_json(self, row: _Row) -> str:
        """A row's JSON text: its values filled into its key's template."""
        from pytest_greennlp.report import json_values, record_text

        values = row.values
        template = self._templates.get(
            row.key, functools.partial(self._row_record, row.key), len(values))
        if template is not None:
            try:
                texts = json_values(values)
            except (TypeError, ValueError):  # e.g. a non-finite float: JSON has none
                pass
            else:
                return _fill(template, texts)
        return record_text(self._row_record(row.key, values))

    def _keep(self, item: pytest.Item, record: TestRecord) -> None:
        """Let hooks edit the record, then keep it (on a worker: for its call-phase report)."""
        hook = self._record_hook
        if hook.get_hookimpls():
            data = to_dict(record)
            try:
                hook(config=self.config, item=item, record=data)
            except Exception as exc:  # a broken conftest hook never fails the test
                self.warn(f"pytest_greennlp_update_record raised {type(exc).__name__}: {exc}; "
                          f"kept the record of {item.nodeid} unedited", GreenNLPWarning)
            else:
                record = self._parse_record(data, item.nodeid) or record
        if self.is_worker:
            item.stash[record_key] = record  # `WorkerReports` puts it on the call-phase report
        else:
            self.records[item.nodeid] = record
        if self.junit:  # before the call-phase report is made, which carries them to junitxml
            item.user_properties.extend(_junit_properties(record))

    def _parse_record(self, data: Any, nodeid: str) -> TestRecord | None:
        try:
            return from_dict(TestRecord, data)
        except ValueError as exc:
            self.warn(f"dropped a malformed record for {nodeid}: {exc}", GreenNLPWarning)
            return None

    # -- collection on the controller -----------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        when = report.when
        if (when == "setup" and report.outcome == "passed") or self.is_worker:
            return  # a passed setup changes nothing: the call phase brings the record
        measured = self.pending.get(report.nodeid)
        if measured is not None:  # measured here, record not built yet: note the outcome
            if when == "call" or report.outcome != "passed":  # a passed teardown changes none
                measured.outcome = _outcome(report, measured.outcome)
            if when == "teardown":
                self.checkpoint()
            return
        data = getattr(report, REPORT_ATTR, None)
        current = self.records.get(report.nodeid)
        if isinstance(current, _Row):
            current = self._as_record(current)
        if data is not None:
            current = self._parse_record(data, report.nodeid)
            if current is None:
                return
        if current is None:
            kind = _report_kind(report)
            if kind is None:
                return
            current = TestRecord(nodeid=report.nodeid, kind=kind, outcome="passed")  # type: ignore[arg-type]
        outcome = _outcome(report, current.outcome)
        self.records[report.nodeid] = current if outcome == current.outcome else replace(current, outcome=outcome)
        if report.when == "teardown":
            self.checkpoint()

    # -- the report ---------------------------------------------------------------

    def build_report(self, *, complete: bool, exit_status: int | None) -> tuple[Report, list[TestRecord | _Row]]:
        """The report's run-level part (its ``tests`` empty, its totals of every test) and
        its tests, by node id: records, or `_Row`s the report writes from their values."""
        from pytest_greennlp.report import assemble, figures, fingerprint_of, totals_of

        self._build_pending()
        run_energy = None
        if self.run_window is not None:
            self.run_window.stop()
            run_energy, _ = build_energy([self.run_window.totals], self.readers, "whole run")
            self.run_window.start()
        try:
            fingerprint = fingerprint_of(self.config, self._fingerprint_cache)
        except ReportError as exc:
            from pytest_greennlp.measure.fingerprint import default_fingerprint

            self.warn(f"{exc.problem}; using the built-in fingerprint", GreenNLPWarning)
            fingerprint = from_dict(Fingerprint, default_fingerprint())
        tests = sorted(self.records.values(), key=_nodeid)
        header = assemble(
            fingerprint=fingerprint,
            tests=[],
            carbon=self.carbon,
            settings=Settings(
                repeats=self.settings.repeats,
                warmup=self.settings.warmup,
                energy_sources=self.settings.energy,
                xdist_workers=self.concurrent_workers,
            ),
            started_at=self.started_at,
            finished_at=_now_iso() if exit_status is not None else None,
            complete=complete,
            exit_status=exit_status,
            run_energy=run_energy,
            notes=list(self.notes),
        )
        every = totals_of([t.figures if isinstance(t, _Row) else figures(t) for t in tests])
        return replace(header, totals=every), tests

    @property
    def report(self) -> Report | None:
        """The last report written (or meant to be), every test a `TestRecord`; None before."""
        if self._report is None and self._written is not None:
            header, tests = self._written
            self._report = replace(header, tests=tuple(self._as_record(t) for t in tests))
        return self._report

    def checkpoint(self, *, force: bool = False) -> None:
        """Write an incomplete report now and then, so a crash leaves a valid file.

        At most every `_CHECKPOINT_EVERY_S` seconds, and never more often than keeps the
        writing under 1/`_CHECKPOINT_SHARE` of the run: a report of many thousand tests
        takes a while to write, and rewriting it every few seconds would grow with the run.
        """
        now = time.monotonic()
        if not force and now - self._last_checkpoint < self._checkpoint_every:
            return
        self._write(*self.build_report(complete=False, exit_status=None))
        self._last_checkpoint = done = time.monotonic()
        self._checkpoint_every = max(_CHECKPOINT_EVERY_S, _CHECKPOINT_SHARE * (done - now))

    def _write(self, header: Report, tests: list[TestRecord | _Row]) -> None:
        from pytest_greennlp.report import record_text, write_report

        self._written, self._report = (header, tests), None
        try:
            texts = [self._row_json(t) if isinstance(t, _Row) else record_text(t) for t in tests]
        except (TypeError, ValueError, RecursionError) as exc:
            self.warn(f"cannot write the report (a value is not JSON: {exc}); "
                      "figures are in the terminal summary only")
            self.written_to = None
            return
        try:
            write_report(header, self.report_path, texts)
            self.written_to = self.report_path
        except ReportError as exc:
            fallback = Path(os.environ.get("TMPDIR", "/tmp")) / f"green-report-{os.getpid()}.json"
            try:
                write_report(header, fallback, texts)
            except ReportError:
                self.warn(f"cannot write the report ({exc.problem}); figures are in the terminal summary only")
                self.written_to = None
                return
            self.warn(f"cannot write {self.report_path} ({exc.problem}); wrote {fallback} instead")
            self.report_path = fallback
            self.written_to = fallback

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            if self.is_controller:
                complete = int(exitstatus) not in (
                    pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR
                )
                self._write(*self.build_report(complete=complete, exit_status=int(exitstatus)))
        finally:
            self.close()

    def close(self) -> None:
        self.memory.close()
        for reader in self.readers:
            try:
                reader.close()
            except Exception:  # pragma: no cover - close must never raise
                log.debug("closing %r failed", reader, exc_info=True)
        self.readers = []

    def release(self) -> None:
        """Drop the records once everything is reported (at unconfigure).

        They then go by reference counting before pytest's final garbage collections,
        which would otherwise walk every record of the run several times.
        """
        self.close()
        self.records = {}
        self.pending = {}
        self._written = self._report = None
        self.meters = Meters([], _no_readings)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_greennlp.report import cost_of, figures, render_table

        if self._written is None:
            return
        header, tests = self._written
        terminalreporter.write_sep("-", "greennlp price tags")
        limit = self.settings.table or None
        # Records only for the rows shown, most expensive first.
        ordered = sorted(tests, key=lambda t: cost_of(t.figures if isinstance(t, _Row) else figures(t)))
        shown = ordered[:limit] if limit is not None else ordered
        table = replace(header, tests=tuple(self._as_record(t) for t in shown))
        for line in render_table(table, width=terminalreporter._tw.fullwidth,
                                 more=len(ordered) - len(shown)):
            terminalreporter.write_line(line)
        for note in header.notes:
            terminalreporter.write_line(f"note: {note}")
        if self.written_to is not None:
            state = "" if header.complete else " (incomplete)"
            terminalreporter.write_line(f"greennlp: report written to {self.written_to}{state}")


class WorkerReports:
    """Registered on xdist workers only: puts each test's record on its call-phase report.

    A plain attribute survives xdist's report serialisation, so the controller receives
    the record together with the outcome. Elsewhere no makereport wrapper runs at all.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "call":
            record = item.stash.get(record_key, None)
            if record is not None:
                setattr(report, REPORT_ATTR, to_dict(record))
                del item.stash[record_key]
        return report


# -- stash keys and small report helpers -------------------------------------------

# Typed by annotation: a subscripted ``StashKey[...]()`` costs typing machinery at import.
kind_key: pytest.StashKey[str] = pytest.StashKey()
marker_key: pytest.StashKey[Mapping[str, Any]] = pytest.StashKey()
record_key: pytest.StashKey[TestRecord] = pytest.StashKey()


def _xdist_workers(config: pytest.Config) -> int:
    """Number of xdist workers this controller starts (0: no xdist)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return 0
    if getattr(config.option, "dist", "no") == "no":
        return 0
    n = getattr(config.option, "numprocesses", None)
    if isinstance(n, int):
        return n
    tx = getattr(config.option, "tx", None) or []
    return len(tx)


def _nodeid(test: TestRecord | _Row) -> str:
    return test.nodeid


def _report_kind(report: pytest.TestReport) -> str | None:
    keywords = report.keywords
    if "green_train" in keywords:
        return "train"
    if "green_infer" in keywords:
        return "infer"
    return None


def _outcome(report: pytest.TestReport, previous: str) -> Any:
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if xfail:
            return "xfailed" if report.skipped else "xpassed"
        return report.outcome
    if report.when == "setup":
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "error" if report.failed else previous
    # teardown
    return "error" if report.failed and previous == "passed" else previous


def _junit_properties(record: TestRecord) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = []
    if record.timing is not None:
        props += [("green_wall_s", round(record.timing.wall_s, 6)),
                  ("green_cpu_s", round(record.timing.cpu_s, 6))]
    if record.flops is not None:
        props.append(("green_flops", record.flops.total))
    if record.energy is not None:
        if record.energy.measured_j is not None:
            props.append(("green_energy_measured_j", round(record.energy.measured_j, 6)))
        if record.energy.estimated_j is not None:
            props.append(("green_energy_estimated_j", round(record.energy.estimated_j, 6)))
    if record.co2e is not None:
        if record.co2e.from_measured_g is not None:
            props.append(("green_co2e_from_measured_g", round(record.co2e.from_measured_g, 9)))
        if record.co2e.from_estimated_g is not None:
            props.append(("green_co2e_from_estimated_g", round(record.co2e.from_estimated_g, 9)))
    if record.memory is not None and record.memory.peak_rss_bytes is not None:
        props.append(("green_peak_rss_bytes", record.memory.peak_rss_bytes))
    for metric in record.metrics:
        props.append((f"green_metric_{metric.name}", metric.value))
    return props


def _hf_auto_callback(run: TestRun) -> contextlib.AbstractContextManager[object]:
    """`hf.auto_callback` in a green_train test whose ``transformers.trainer`` is loaded."""
    if run.kind != "train" or "transformers.trainer" not in sys.modules:
        return contextlib.nullcontext()
    try:
        from pytest_greennlp.hf import auto_callback
    except Exception:  # an unusual transformers: pass GreenCallback explicitly instead
        log.debug("hf.auto_callback unavailable", exc_info=True)
        return contextlib.nullcontext()
    return auto_callback()


def _no_readings(readers: Sequence[EnergyReader]) -> Mapping[str, float | None]:
    return {}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
