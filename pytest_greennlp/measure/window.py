"""Measurement windows: read every clock and energy reader at both edges, sum the segments."""

from __future__ import annotations

from time import perf_counter_ns, process_time_ns
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from pytest_greennlp.measure.clocks import cuda_synchronize

if TYPE_CHECKING:  # imported at every ``--green`` start: no typing work at run time
    from pytest_greennlp.measure.base import EnergyReader

    #: Reads every reader once; a failed reader reads as None (see `energy.read_all`).
    ReadAll = Callable[[Sequence[EnergyReader]], Mapping[str, "float | None"]]

__all__ = ["WINDOW_DERIVED", "Meters", "Window", "WindowTotals"]

#: Optional for a reader (re-exported by `measure.base`, with the protocol): an estimate
#: whose joules follow from a window's own clocks need not be read at the window's edges.
#: Such a reader sets ``window_derived = True`` and implements ``joules_between(wall_s,
#: cpu_s, rss_start, rss_end) -> float``: the joules of a window segment of ``wall_s``
#: seconds and ``cpu_s`` process CPU seconds, with this process's RSS in bytes at its
#: edges (None unless its ``window_rss``, a callable returning the RSS in bytes, is set).
#: Defined here, where windows use it: this module does not import the protocol module
#: at run time (its `typing.Protocol` class costs about 0.3 ms to create).
WINDOW_DERIVED = "window_derived"


class WindowTotals:
    """What one window measured: seconds and joules per energy domain (None: unavailable).

    Time is kept in whole nanoseconds, as the clocks give it (``wall_ns``, ``cpu_ns``):
    sums of segments stay exact, and ``wall_s`` / ``cpu_s`` carry no rounding noise
    from subtracting two large float clock readings. A plain class with slots: one is
    made per measured run of every test.
    """

    __slots__ = ("wall_ns", "cpu_ns", "energy_j", "synchronized")

    def __init__(
        self,
        wall_s: float = 0.0,
        cpu_s: float = 0.0,
        energy_j: dict[str, float | None] | None = None,
        synchronized: tuple[str, ...] = (),
    ) -> None:
        self.wall_ns = round(wall_s * 1e9) if wall_s else 0
        self.cpu_ns = round(cpu_s * 1e9) if cpu_s else 0
        self.energy_j: dict[str, float | None] = {} if energy_j is None else energy_j
        self.synchronized = synchronized

    @property
    def wall_s(self) -> float:
        return self.wall_ns / 1e9

    @property
    def cpu_s(self) -> float:
        return self.cpu_ns / 1e9

    def __repr__(self) -> str:
        return (f"WindowTotals(wall_s={self.wall_s!r}, cpu_s={self.cpu_s!r}, "
                f"energy_j={self.energy_j!r}, synchronized={self.synchronized!r})")


class Meters:
    """The energy readers a session's windows read, sorted once for every window.

    Readers whose joules follow from a window's own clocks (``window_derived``, see
    `measure.base.WINDOW_DERIVED`: the CPU-time and RAM-model estimates) are computed
    from each segment's CPU time, wall time and the RSS read at its edges; every other
    reader is read at both edges through ``read_all``. ``on_error(reader, exc)`` hears
    of a derived reader that cannot be computed (its RSS could not be read); its domain
    is then None, like a failed reading.
    """

    __slots__ = ("counted", "derived", "on_error", "read_all", "readers", "rss", "zeros")

    def __init__(
        self,
        readers: Sequence[EnergyReader],
        read_all: ReadAll,
        on_error: Callable[[EnergyReader, Exception], None] | None = None,
    ) -> None:
        self.readers = readers
        self.read_all = read_all
        self.on_error = on_error
        counted: list[EnergyReader] = []
        derived: list[EnergyReader] = []
        seen: set[str] = set()
        #: Returns this process's RSS in bytes, read at the edges for derived readers.
        self.rss: Callable[[], int] | None = None
        for reader in readers:
            if reader.domain in seen:  # as `read_all`: the first reader of a domain wins
                continue
            seen.add(reader.domain)
            if getattr(reader, WINDOW_DERIVED, False) is True:
                derived.append(reader)
                if self.rss is None:
                    self.rss = getattr(reader, "window_rss", None)
            else:
                counted.append(reader)
        self.counted: Sequence[EnergyReader] = tuple(counted)
        self.derived: Sequence[EnergyReader] = tuple(derived)
        #: A new window's joules per domain; each window takes a copy.
        self.zeros: dict[str, float | None] = dict.fromkeys([r.domain for r in readers], 0.0)


class Window:
    """A window that can be paused and resumed; only the running segments count.

    Pausing is how a FLOP-counting pass or a warm-up is kept out of a test's figures.
    At each edge it reads the wall and process CPU clocks and the readers of its
    `Meters`: an edge costs a clock read plus one read per counted reader.
    """

    def __init__(self, meters: Meters) -> None:
        self._meters = meters
        self._edge: tuple[int, int, Mapping[str, float | None], int | None] | None = None
        self.totals = WindowTotals(energy_j=meters.zeros.copy())

    @property
    def running(self) -> bool:
        return self._edge is not None

    def _read(self) -> tuple[Mapping[str, float | None], int | None]:
        """Read the counted readers and, for the derived ones, this process's RSS."""
        meters = self._meters
        energy = meters.read_all(meters.counted) if meters.counted else _NO_READINGS
        if meters.rss is None:
            return energy, None
        try:
            return energy, meters.rss()
        except Exception as exc:  # noqa: BLE001 - a meter never breaks the test
            if meters.on_error is not None:
                for reader in meters.derived:
                    meters.on_error(reader, exc)
            return energy, None

    def start(self) -> None:
        if self._edge is not None:
            return
        synced = cuda_synchronize()
        if synced and not set(synced) <= set(self.totals.synchronized):
            self.totals.synchronized = tuple(sorted(set(self.totals.synchronized) | set(synced)))
        energy, rss = self._read()
        self._edge = (perf_counter_ns(), process_time_ns(), energy, rss)

    def stop(self) -> None:
        if self._edge is None:
            return
        cuda_synchronize()
        wall, cpu = perf_counter_ns(), process_time_ns()
        energy, rss = self._read()
        wall0, cpu0, energy0, rss0 = self._edge
        self._edge = None
        totals = self.totals
        totals.wall_ns += wall - wall0
        totals.cpu_ns += cpu - cpu0
        wall_s, cpu_s = (wall - wall0) / 1e9, (cpu - cpu0) / 1e9
        energy_j = totals.energy_j
        for reader in self._meters.counted:
            domain = reader.domain
            total, before, after = energy_j[domain], energy0.get(domain), energy.get(domain)
            if total is None or before is None or after is None:
                energy_j[domain] = None
            else:
                energy_j[domain] = total + max(0.0, after - before)
        for reader in self._meters.derived:
            domain = reader.domain
            total = energy_j[domain]
            if total is None:
                continue
            try:
                joules = reader.joules_between(wall_s, cpu_s, rss0, rss)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - no RSS at an edge, or a broken estimate
                on_error = self._meters.on_error
                if on_error is not None and rss0 is not None and rss is not None:
                    on_error(reader, exc)
                energy_j[domain] = None
            else:
                energy_j[domain] = total + max(0.0, joules)


_NO_READINGS: Mapping[str, float | None] = {}
