"""Measurement windows: read every clock and energy reader at both edges, sum the segments."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from pytest_greennlp.measure.base import EnergyReader
from pytest_greennlp.measure.clocks import cuda_synchronize, now

__all__ = ["Window", "WindowTotals"]

#: Reads every reader once; a failed reader reads as None (see `energy.read_all`).
ReadAll = Callable[[Sequence[EnergyReader]], Mapping[str, "float | None"]]


class WindowTotals:
    """What one window measured: seconds and joules per energy domain (None: unavailable).

    A plain class with slots: one is made per measured run of every test.
    """

    __slots__ = ("wall_s", "cpu_s", "energy_j", "synchronized")

    def __init__(
        self,
        wall_s: float = 0.0,
        cpu_s: float = 0.0,
        energy_j: dict[str, float | None] | None = None,
        synchronized: tuple[str, ...] = (),
    ) -> None:
        self.wall_s = wall_s
        self.cpu_s = cpu_s
        self.energy_j: dict[str, float | None] = {} if energy_j is None else energy_j
        self.synchronized = synchronized

    def __repr__(self) -> str:
        return (f"WindowTotals(wall_s={self.wall_s!r}, cpu_s={self.cpu_s!r}, "
                f"energy_j={self.energy_j!r}, synchronized={self.synchronized!r})")


class Window:
    """A window that can be paused and resumed; only the running segments count.

    Pausing is how a FLOP-counting pass or a warm-up is kept out of a test's figures.
    """

    def __init__(self, readers: Sequence[EnergyReader], read_all: ReadAll) -> None:
        self._readers = readers
        self._read_all = read_all
        self._edge: tuple[float, float, Mapping[str, float | None]] | None = None
        self.totals = WindowTotals(energy_j={r.domain: 0.0 for r in readers})

    @property
    def running(self) -> bool:
        return self._edge is not None

    def start(self) -> None:
        if self._edge is not None:
            return
        synced = cuda_synchronize()
        if synced and not set(synced) <= set(self.totals.synchronized):
            self.totals.synchronized = tuple(sorted(set(self.totals.synchronized) | set(synced)))
        energy = self._read_all(self._readers) if self._readers else {}
        wall, cpu = now()
        self._edge = (wall, cpu, energy)

    def stop(self) -> None:
        if self._edge is None:
            return
        cuda_synchronize()
        wall, cpu = now()
        energy = self._read_all(self._readers) if self._readers else {}
        wall0, cpu0, energy0 = self._edge
        self._edge = None
        self.totals.wall_s += wall - wall0
        self.totals.cpu_s += cpu - cpu0
        for domain, total in self.totals.energy_j.items():
            before, after = energy0.get(domain), energy.get(domain)
            if total is None or before is None or after is None:
                self.totals.energy_j[domain] = None
            else:
                self.totals.energy_j[domain] = total + max(0.0, after - before)
