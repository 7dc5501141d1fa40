"""The `EnergyReader` protocol that every energy source implements, built in or third-party."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

# Optional for a reader: ``window_derived = True`` and ``joules_between(...)`` let a window
# derive the reader's joules from its own clocks (see `measure.window.WINDOW_DERIVED`).
from pytest_greennlp.measure.window import WINDOW_DERIVED

__all__ = ["WINDOW_DERIVED", "EnergyReader", "Scope"]

#: ``"machine"``: the reading includes every process on the device (RAPL, NVML);
#: ``"process"``: it covers this process only (an estimate from its CPU time).
Scope = Literal["machine", "process"]


@runtime_checkable
class EnergyReader(Protocol):
    """A cumulative energy source for one domain, opened once per session.

    The session reads every reader at the edges of each measurement window and
    attributes the difference to the test. A reader never starts a tracker per test.

    Attributes
    ----------
    domain
        What it covers: ``"cpu"``, ``"ram"``, ``"gpu:<uuid>"`` or a plugin's own name.
        Two readers with the same domain are never summed; the first one wins.
    method
        Short machine name of the technique: ``"rapl"``, ``"nvml-counter"``,
        ``"nvml-power-sampling"``, ``"estimate-cpu-time"``, ``"estimate-ram-model"``.
    measured
        True for a hardware counter or power sensor, False for a model (an estimate).
    source
        One human-readable line: which counter, or which table row and constants.
    scope
        ``"machine"`` or ``"process"`` (see `Scope`).
    """

    domain: str
    method: str
    measured: bool
    source: str
    scope: Scope

    def open(self) -> None:
        """Acquire the counter; raise `MeasurementError` if it cannot be read."""

    def read_j(self) -> float:
        """Return joules consumed since `open`, monotonic non-decreasing."""

    def close(self) -> None:
        """Release the counter (stop sampling threads). Never raises."""

