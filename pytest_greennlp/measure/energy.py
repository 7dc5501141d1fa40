"""Energy readers (RAPL, NVML counter or power sampling, CPU-time and RAM-model estimates) and their discovery.

The session opens the readers once, reads them at the edges of each test's window with
`read_all` (cumulative joules; the difference is the test's) and closes them at the
end. The two estimates need no reading of their own: a window derives them from the
CPU time, wall time and RSS it reads at its edges anyway (``joules_between``). Best
source first, per domain:

- ``gpu:<uuid>``: NVML's total-energy counter (Volta and later), else a thread that
  samples NVML's power reading and integrates it;
- ``cpu``: the RAPL package counters, else an estimate from this process's CPU time and
  the CPU's TDP (codecarbon's table);
- ``ram``: the RAPL DRAM counters, else codecarbon's RAM power model scaled by this
  process's share of memory.

RAPL and NVML are *measured* and cover the whole machine (``scope="machine"``); the
estimates cover this process only (``scope="process"``) and say so in ``measured``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_greennlp.errors import ConfigError, MeasurementError
from pytest_greennlp.measure import codecarbon_data
from pytest_greennlp.measure.clocks import StatmRss
from pytest_greennlp.measure.nvml import GpuInfo, device_handle, load_nvml, nvml_devices

if TYPE_CHECKING:  # the protocol module is for type checkers and third-party readers
    from pytest_greennlp.measure.base import EnergyReader, Scope

__all__ = [
    "ENERGY_SOURCES",
    "CpuTimeEstimateReader",
    "NvmlEnergyCounterReader",
    "NvmlPowerSamplingReader",
    "RamModelEstimateReader",
    "RaplReader",
    "close_all",
    "discover_readers",
    "parse_sources",
    "rapl_domains",
    "read_all",
]

logger = logging.getLogger(__name__)

_METHODS = (
    "nvml-counter",
    "nvml-power-sampling",
    "rapl",
    "estimate-cpu-time",
    "estimate-ram-model",
)
_GROUPS: dict[str, tuple[str, ...]] = {
    "auto": _METHODS,
    "measured": ("nvml-counter", "nvml-power-sampling", "rapl"),
    "estimate": ("estimate-cpu-time", "estimate-ram-model"),
    "nvml": ("nvml-counter", "nvml-power-sampling"),
}
#: Every name `discover_readers` accepts in ``sources``.
ENERGY_SOURCES: tuple[str, ...] = ("auto", "measured", "estimate", "nvml", *_METHODS, "none")

_TOP_ZONE = r"^intel-rapl:(\d+)$"  # compiled on first use (re caches it): few machines have RAPL
_SUB_ZONE = r"^intel-rapl:(\d+):(\d+)$"


# -- private helpers ---------------------------------------------------------------


def _open_counter(path: Path) -> int:
    """Open a counter file for repeated `os.pread` at offset 0 (sysfs and procfs
    regenerate the value on each read from offset 0)."""
    return os.open(path, os.O_RDONLY)


def _read_int(fd: int) -> int:
    return int(os.pread(fd, 64, 0))


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        logger.debug("closing fd %d failed", fd, exc_info=True)


def _zone_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.name.split(":")[1:])


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _cpu_sockets() -> int:
    """Distinct ``physical id`` values in /proc/cpuinfo (1 if unknown)."""
    ids: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "physical id":
                    ids.add(value.strip())
    except OSError:
        pass
    return max(1, len(ids))


def _total_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError) as exc:
        raise MeasurementError(f"total memory unknown: {exc}") from exc


class _Zone:
    """One open RAPL zone: its energy file, wrap-around range and running total."""

    __slots__ = ("fd", "last_uj", "max_range_uj", "path", "total_uj")

    def __init__(self, path: Path, fd: int, max_range_uj: int, last_uj: int, total_uj: int = 0) -> None:
        self.path, self.fd, self.max_range_uj = path, fd, max_range_uj
        self.last_uj, self.total_uj = last_uj, total_uj

    def __repr__(self) -> str:
        return (f"_Zone(path={self.path!r}, fd={self.fd!r}, max_range_uj={self.max_range_uj!r}, "
                f"last_uj={self.last_uj!r}, total_uj={self.total_uj!r})")


def _peak_rss_bytes() -> int:
    """Peak RSS from getrusage, where /proc is missing (macOS reports bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# -- readers -----------------------------------------------------------------------


class RaplReader:
    """Cumulative energy of one or more RAPL zones (Linux powercap), in joules.

    Parameters
    ----------
    zone_dirs
        Zone folders such as ``/sys/class/powercap/intel-rapl:0``; their counters are
        summed (several CPU packages make one ``"cpu"`` reader). Never pass a package
        together with its own subzones: ``core`` and ``uncore`` are inside ``package``.
        `rapl_domains` picks the right ones.
    domain
        ``"cpu"`` for packages, ``"ram"`` for DRAM zones.

    Notes
    -----
    ``energy_uj`` wraps to 0 after ``max_energy_range_uj`` (typically 2^32 to 2^38 uJ).
    Each read adds the delta since the previous read to a running total; a negative
    delta is taken as exactly one wrap and ``max_energy_range_uj`` is added. A window
    that spans two wraps is undercounted, so the counter must be read at least once
    per wrap period: ``max_energy_range_uj / power``, e.g. about 17 minutes for the
    common 262 143 328 850 uJ range at 250 W. The session reads at every test edge;
    a single test longer than that may be undercounted.
    """

    method = "rapl"
    measured = True
    scope: Scope = "machine"

    def __init__(self, zone_dirs: Path | Sequence[Path], *, domain: str = "cpu") -> None:
        self._dirs = [Path(zone_dirs)] if isinstance(zone_dirs, (str, Path)) else list(zone_dirs)
        if not self._dirs:
            raise ValueError("zone_dirs must name at least one RAPL zone.")
        self.domain = domain
        names = ", ".join(f"{_zone_name(d) or '?'} ({d})" for d in self._dirs)
        self.source = f"RAPL powercap energy_uj: {names}"
        self._zones: list[_Zone] = []

    def open(self) -> None:
        """Open every zone's counter; raise `MeasurementError` if one is unreadable."""
        self.close()
        zones: list[_Zone] = []
        try:
            for zone_dir in self._dirs:
                counter = zone_dir / "energy_uj"
                try:
                    fd = _open_counter(counter)
                except PermissionError as exc:
                    raise MeasurementError(
                        f"cannot read {counter}: permission denied (root-only on kernels "
                        "patched for CVE-2020-8694; grant read access to use RAPL)"
                    ) from exc
                except OSError as exc:
                    raise MeasurementError(f"cannot read {counter}: {exc}") from exc
                try:
                    first = _read_int(fd)
                    range_file = zone_dir / "max_energy_range_uj"
                    max_range = int(range_file.read_text()) if range_file.exists() else 0
                except (OSError, ValueError) as exc:
                    _close_fd(fd)
                    raise MeasurementError(f"cannot read {counter}: {exc}") from exc
                zones.append(_Zone(zone_dir, fd, max_range, first))
        except MeasurementError:
            for zone in zones:
                _close_fd(zone.fd)
            raise
        self._zones = zones

    def read_j(self) -> float:
        """Return joules since `open` (all zones summed)."""
        if not self._zones:
            raise MeasurementError(f"RAPL reader for {self.domain!r} is not open")
        total = 0
        for zone in self._zones:
            try:
                raw = _read_int(zone.fd)
            except (OSError, ValueError) as exc:
                raise MeasurementError(f"cannot read {zone.path / 'energy_uj'}: {exc}") from exc
            delta = raw - zone.last_uj
            if delta < 0:  # one wrap-around since the previous read
                delta += zone.max_range_uj
            zone.total_uj += max(delta, 0)
            zone.last_uj = raw
            total += zone.total_uj
        return total / 1e6

    def close(self) -> None:
        """Close the counter files."""
        for zone in self._zones:
            _close_fd(zone.fd)
        self._zones = []


class NvmlEnergyCounterReader:
    """A GPU's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ).

    Available on Volta and later; `open` raises `MeasurementError` (caused by
    ``NVMLError_NotSupported``) on older GPUs.

    Parameters
    ----------
    gpu
        The device, from `nvml_devices`.
    nvml
        A stand-in NVML module; default: ``pynvml``.
    """

    method = "nvml-counter"
    measured = True
    scope: Scope = "machine"

    def __init__(self, gpu: GpuInfo, *, nvml: Any = None) -> None:
        self.gpu = gpu
        self.domain = f"gpu:{gpu.uuid}"
        self.source = f"NVML total energy counter of GPU {gpu.index} ({gpu.name}, {gpu.uuid})"
        self._nvml = nvml
        self._module: Any = None
        self._handle: Any = None
        self._start_mj = 0
        self._last_j = 0.0

    def open(self) -> None:
        """Read the counter's starting value."""
        module = load_nvml(self._nvml)
        if module is None:
            raise MeasurementError("NVML unavailable: no pynvml or nvmlInit failed")
        try:
            handle = device_handle(self.gpu, module)
            start = int(module.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception as exc:
            raise MeasurementError(
                f"NVML energy counter of GPU {self.gpu.index} unreadable: {exc}"
            ) from exc
        self._module, self._handle, self._start_mj, self._last_j = module, handle, start, 0.0

    def read_j(self) -> float:
        """Return joules since `open`."""
        if self._module is None:
            raise MeasurementError(f"NVML counter reader for {self.domain!r} is not open")
        try:
            now = int(self._module.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception as exc:
            raise MeasurementError(
                f"NVML energy counter of GPU {self.gpu.index} unreadable: {exc}"
            ) from exc
        self._last_j = max(self._last_j, (now - self._start_mj) / 1000.0)
        return self._last_j

    def close(self) -> None:
        """Forget the handle (NVML stays initialised for the process)."""
        self._module = self._handle = None


class NvmlPowerSamplingReader:
    """A GPU's energy integrated from sampled power, for GPUs without an energy counter.

    A daemon thread calls ``nvmlDeviceGetPowerUsage`` (mW) every ``interval_s`` and
    integrates with the trapezoid rule. `read_j` adds the partial interval since the
    last sample at the last sampled power, and never returns less than it returned
    before (a later sample can lower the extrapolated part). Note that on many GPUs the
    power reading is itself averaged over about a second.

    Parameters
    ----------
    gpu
        The device, from `nvml_devices`.
    interval_s
        Seconds between samples; must be positive.
    nvml
        A stand-in NVML module; default: ``pynvml``.
    clock
        Monotonic clock in seconds; default: `time.monotonic`.
    """

    method = "nvml-power-sampling"
    measured = True
    scope: Scope = "machine"

    def __init__(
        self,
        gpu: GpuInfo,
        interval_s: float = 0.1,
        *,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be positive.")
        self.gpu = gpu
        self.interval_s = interval_s
        self.domain = f"gpu:{gpu.uuid}"
        self.source = (
            f"NVML power sampled every {interval_s:g} s, trapezoid-integrated, "
            f"GPU {gpu.index} ({gpu.name}, {gpu.uuid})"
        )
        self._nvml = nvml
        self._clock = clock
        self._module: Any = None
        self._handle: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._energy_j = 0.0
        self._last_w = 0.0
        self._last_t = 0.0
        self._returned_j = 0.0

    def _power_w(self) -> float:
        return float(self._module.nvmlDeviceGetPowerUsage(self._handle)) / 1000.0

    def _sample_once(self) -> None:
        """Take one power sample and add the trapezoid since the previous one."""
        watts = self._power_w()
        now = self._clock()
        with self._lock:
            self._energy_j += (self._last_w + watts) / 2.0 * max(now - self._last_t, 0.0)
            self._last_w, self._last_t = watts, now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample_once()
            except Exception as exc:  # noqa: BLE001 - re-raised by the next read_j
                self._error = exc
                return

    def open(self) -> None:
        """Take the first sample and start the sampling thread."""
        self.close()
        module = load_nvml(self._nvml)
        if module is None:
            raise MeasurementError("NVML unavailable: no pynvml or nvmlInit failed")
        self._module = module
        try:
            self._handle = device_handle(self.gpu, module)
            self._last_w, self._last_t = self._power_w(), self._clock()
        except Exception as exc:
            self._module = None
            raise MeasurementError(
                f"NVML power reading of GPU {self.gpu.index} unavailable: {exc}"
            ) from exc
        self._energy_j = self._returned_j = 0.0
        self._error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"greennlp-nvml-power-{self.gpu.index}", daemon=True
        )
        self._thread.start()

    def read_j(self) -> float:
        """Return joules since `open`, extrapolating the last power to now."""
        if self._error is not None:
            raise MeasurementError(
                f"NVML power sampling of GPU {self.gpu.index} failed: {self._error}"
            ) from self._error
        if self._module is None:
            raise MeasurementError(f"NVML sampling reader for {self.domain!r} is not open")
        now = self._clock()
        with self._lock:
            value = self._energy_j + self._last_w * max(now - self._last_t, 0.0)
            self._returned_j = max(self._returned_j, value)
            return self._returned_j

    def close(self) -> None:
        """Stop the sampling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 2 * self.interval_s))
            self._thread = None
        self._module = None


class CpuTimeEstimateReader:
    """Estimated CPU energy: this process's CPU time times watts per thread.

    ``joules = (process_time() - process_time_at_open) * watts_per_thread``. One busy
    thread for one second costs ``TDP / threads`` joules. `time.process_time` counts
    every thread of this process (user + system) but not child processes (e.g.
    DataLoader workers), which are therefore not counted.

    Parameters
    ----------
    watts_per_thread
        Power of one fully busy logical thread.
    source
        One line stating where the figure comes from.
    clock
        CPU-time clock in seconds; default: `time.process_time`.
    """

    method = "estimate-cpu-time"
    measured = False
    scope: Scope = "process"
    domain = "cpu"

    def __init__(
        self,
        watts_per_thread: float,
        source: str,
        *,
        clock: Callable[[], float] = time.process_time,
    ) -> None:
        if not (watts_per_thread >= 0 and math.isfinite(watts_per_thread)):
            raise ValueError("watts_per_thread must be a non-negative finite number.")
        self.watts_per_thread = watts_per_thread
        self.source = source
        self._clock = clock
        self._start: float | None = None
        #: A window's joules follow from its own CPU clock (`joules_between`) when this
        #: reader reads the same clock, `time.process_time`.
        self.window_derived = clock is time.process_time
        self.window_rss: Callable[[], int] | None = None

    @classmethod
    def for_this_machine(
        cls,
        *,
        cpu_model: str | None = None,
        threads: int | None = None,
        sockets: int | None = None,
        clock: Callable[[], float] = time.process_time,
    ) -> CpuTimeEstimateReader:
        """Build the reader from this machine's CPU and codecarbon's TDP table.

        Watts per thread are ``TDP * sockets / threads`` when the CPU is in the table
        (TDP is per package), else codecarbon's default of 4 W per thread.
        """
        model = codecarbon_data.cpu_model_name() if cpu_model is None else cpu_model
        n_threads = (os.cpu_count() or 1) if threads is None else threads
        n_sockets = _cpu_sockets() if sockets is None else sockets
        power = codecarbon_data.cpu_tdp(model)
        if power is None:
            return cls(
                codecarbon_data.DEFAULT_W_PER_THREAD,
                f"{model or 'unknown CPU'}: {codecarbon_data.DEFAULT_W_PER_THREAD_SOURCE}",
                clock=clock,
            )
        watts = power.tdp_w * n_sockets / n_threads
        source = (
            f"{power.source} x {n_sockets} socket(s) / {n_threads} threads "
            f"= {watts:.3g} W per thread"
        )
        return cls(watts, source, clock=clock)

    def open(self) -> None:
        """Note the CPU time at the start."""
        self._start = self._clock()

    def read_j(self) -> float:
        """Return estimated joules since `open`."""
        if self._start is None:
            raise MeasurementError("CPU-time estimate reader is not open")
        return max(self._clock() - self._start, 0.0) * self.watts_per_thread

    def joules_between(self, wall_s: float, cpu_s: float, rss_start: int | None,
                       rss_end: int | None) -> float:
        """Estimated joules of a window segment that used ``cpu_s`` process CPU seconds."""
        return max(cpu_s, 0.0) * self.watts_per_thread

    def close(self) -> None:
        """Nothing to release."""


class RamModelEstimateReader:
    """Estimated RAM energy: codecarbon's RAM power for this machine, times this
    process's share of memory, over wall time.

    ``power(t) = ram_power_w(total) * rss(t) / total`` with the *current* RSS (resident
    set size, from ``/proc/self/statm``), integrated with the trapezoid rule between
    consecutive reads (the RSS at both edges). Peaks between two reads are not seen.
    Where ``/proc`` is missing, the peak RSS from ``getrusage`` is used instead.

    Parameters
    ----------
    watts
        Power of all of the machine's RAM.
    source
        One line stating where the figure comes from.
    total_bytes
        The machine's total memory; must be positive.
    rss_bytes
        Returns this process's RSS in bytes; default: ``/proc/self/statm``.
    clock
        Monotonic clock in seconds; default: `time.monotonic`.
    """

    method = "estimate-ram-model"
    measured = False
    scope: Scope = "process"
    domain = "ram"

    def __init__(
        self,
        watts: float,
        source: str,
        total_bytes: int,
        *,
        rss_bytes: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total_bytes <= 0:
            raise ValueError("total_bytes must be positive.")
        self.watts = watts
        self.total_bytes = total_bytes
        self.source = f"{source}; x current RSS / {total_bytes} B total, x wall time"
        self._rss_arg = rss_bytes
        self._rss: Callable[[], int] | None = None
        self._statm: StatmRss | None = None
        self._clock = clock
        self._energy_j = 0.0
        self._last_t = 0.0
        self._last_share = 0.0
        #: Set by `open` when a window can derive this reader's joules from its own wall
        #: clock and RSS readings (``/proc/self/statm``, default clock): see `joules_between`.
        self.window_derived = False
        self.window_rss: Callable[[], int] | None = None

    @classmethod
    def for_this_machine(
        cls,
        *,
        total_bytes: int | None = None,
        rss_bytes: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RamModelEstimateReader:
        """Build the reader from this machine's total memory and codecarbon's model."""
        total = _total_memory_bytes() if total_bytes is None else total_bytes
        watts, source = codecarbon_data.ram_power_w(total)
        return cls(watts, source, total, rss_bytes=rss_bytes, clock=clock)

    def _share(self, rss: int | None = None) -> float:
        """This process's share of the machine's memory, at ``rss`` bytes (default: now)."""
        if rss is None:
            assert self._rss is not None
            rss = self._rss()
        return min(max(rss / self.total_bytes, 0.0), 1.0)

    def open(self) -> None:
        """Take the first RSS reading."""
        self.close()
        if self._rss_arg is not None:
            self._rss = self._rss_arg
        elif os.path.exists("/proc/self/statm"):
            self._statm = StatmRss()
            self._rss = self._statm
        else:
            self._rss = _peak_rss_bytes
        try:
            self._last_share, self._last_t = self._share(), self._clock()
        except Exception as exc:
            self.close()
            raise MeasurementError(f"cannot read this process's memory use: {exc}") from exc
        self._energy_j = 0.0
        self.window_derived = self._statm is not None and self._clock is time.monotonic
        self.window_rss = self._statm if self.window_derived else None

    def read_j(self) -> float:
        """Return estimated joules since `open`."""
        if self._rss is None:
            raise MeasurementError("RAM-model estimate reader is not open")
        share, now = self._share(), self._clock()
        self._energy_j += (
            self.watts * (self._last_share + share) / 2.0 * max(now - self._last_t, 0.0)
        )
        self._last_share, self._last_t = share, now
        return self._energy_j

    def joules_between(self, wall_s: float, cpu_s: float, rss_start: int | None,
                       rss_end: int | None) -> float:
        """Estimated joules of a window segment of ``wall_s`` seconds whose edges had
        ``rss_start`` and ``rss_end`` bytes resident (the trapezoid rule, as `read_j`)."""
        if rss_start is None or rss_end is None:
            raise MeasurementError("the window read no RSS at its edges")
        return self.watts * (self._share(rss_start) + self._share(rss_end)) / 2.0 * max(wall_s, 0.0)

    def close(self) -> None:
        """Close ``/proc/self/statm``."""
        self.window_derived = False
        self.window_rss = None
        if self._statm is not None:
            self._statm.close()
            self._statm = None
        self._rss = None


# -- discovery and reading ---------------------------------------------------------


def rapl_domains(powercap_root: Path = Path("/sys/class/powercap")) -> dict[str, list[Path]]:
    """Find the RAPL zones to read, without double counting.

    Parameters
    ----------
    powercap_root
        The powercap class folder.

    Returns
    -------
    dict
        ``{"cpu": [...], "ram": [...]}``: the top-level ``intel-rapl:N`` zones named
        ``package-N`` (one per socket; ``core``/``uncore`` are inside them and ``psys``
        contains them, so neither is used), and the zones named ``dram`` (subzones
        ``intel-rapl:N:M``, or top-level on some platforms). ``intel-rapl-mmio:*``
        zones duplicate the MSR packages and are ignored. Empty lists without RAPL.
    """
    found: dict[str, list[Path]] = {"cpu": [], "ram": []}
    try:
        entries = list(powercap_root.iterdir())
    except OSError:
        return found
    nested = [sub for top in entries if re.match(_TOP_ZONE, top.name) for sub in _iterdir(top)]
    seen: set[Path] = set()
    for zone in sorted(entries + nested, key=lambda p: (len(p.name), p.name)):
        top, sub = re.match(_TOP_ZONE, zone.name), re.match(_SUB_ZONE, zone.name)
        if not (top or sub):
            continue
        real = zone.resolve()
        if real in seen:
            continue
        name = _zone_name(zone)
        if top and name.startswith("package"):
            found["cpu"].append(zone)
        elif name == "dram":
            found["ram"].append(zone)
        else:
            continue
        seen.add(real)
    for zones in found.values():
        zones.sort(key=_zone_key)
    return found


def _iterdir(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


def parse_sources(sources: Iterable[str]) -> frozenset[str]:
    """Turn user-facing source names into the set of allowed reader methods.

    Parameters
    ----------
    sources
        Names from `ENERGY_SOURCES`: ``"auto"`` (every method, best first),
        ``"measured"`` (hardware counters and sensors only), ``"estimate"`` (estimates
        only), ``"nvml"``, a method name, or ``"none"`` alone.

    Returns
    -------
    frozenset of str
        Allowed methods; empty for ``"none"``.

    Raises
    ------
    ConfigError
        For an unknown name, an empty list, or ``"none"`` mixed with others.
    """
    names = [s.strip().lower() for s in sources]
    if not names:
        raise ConfigError("energy sources are empty: expected e.g. 'auto' or 'none'")
    unknown = [n for n in names if n not in ENERGY_SOURCES]
    if unknown:
        raise ConfigError(
            f"unknown energy source {unknown[0]!r}: expected one of {', '.join(ENERGY_SOURCES)}"
        )
    if "none" in names:
        if len(set(names)) > 1:
            raise ConfigError(f"energy source 'none' cannot be combined with others: {names}")
        return frozenset()
    return frozenset(m for n in names for m in _GROUPS.get(n, (n,)))


def _first_that_opens(
    domain: str,
    candidates: Sequence[tuple[str, Callable[[], EnergyReader | None]]],
    allowed: frozenset[str],
    warn: Callable[[str], None],
    quiet: Callable[[BaseException], bool] = lambda exc: False,
) -> EnergyReader | None:
    """Open the best allowed candidate; warn once per candidate that fails."""
    tried = [(m, make) for m, make in candidates if m in allowed]
    present = False
    for position, (method, make) in enumerate(tried):
        reader: EnergyReader | None = None
        try:
            reader = make()
            if reader is None:
                logger.debug("%s energy: no %s source on this machine", domain, method)
                continue
            present = True
            reader.open()
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next source
            present = True
            if reader is not None:
                close_all([reader])
            if quiet(exc):
                logger.debug("%s energy: %s unsupported: %s", domain, method, exc)
                continue
            then = (
                "trying the next source"
                if position + 1 < len(tried)
                else f"{domain} energy is not recorded"
            )
            warn(f"{domain} energy: {method} failed ({exc}); {then}")
            continue
        logger.debug("%s energy: using %s (%s)", domain, method, reader.source)
        return reader
    if tried and not present and not domain.startswith("gpu:"):
        methods = ", ".join(m for m, _ in tried)
        warn(f"{domain} energy: no {methods} source on this machine; not recorded")
    return None


def discover_readers(
    *,
    sources: Sequence[str] = ("auto",),
    nvml: Any = None,
    powercap_root: Path = Path("/sys/class/powercap"),
    warn: Callable[[str], None],
) -> list[EnergyReader]:
    """Open the best available reader for each domain (cpu, ram, each visible GPU).

    Parameters
    ----------
    sources
        Allowed sources (see `parse_sources`); ``("none",)`` returns [].
    nvml
        A stand-in NVML module; default: ``pynvml``.
    powercap_root
        Where to look for RAPL zones.
    warn
        Called with one line for each source that is present but fails to open (the
        next-best source is then tried), and when a restricted ``sources`` leaves the
        cpu or ram domain with no source present.

    Returns
    -------
    list of EnergyReader
        Opened readers, one per domain: ``cpu``, ``ram``, then ``gpu:<uuid>`` in CUDA
        order. Close them with `close_all`.

    Raises
    ------
    ConfigError
        If ``sources`` is invalid.
    """
    allowed = parse_sources(sources)
    if not allowed:
        return []
    readers: list[EnergyReader] = []
    rapl = rapl_domains(powercap_root) if "rapl" in allowed else {"cpu": [], "ram": []}

    def rapl_reader(domain: str) -> Callable[[], EnergyReader | None]:
        return lambda: RaplReader(rapl[domain], domain=domain) if rapl[domain] else None

    cpu = _first_that_opens(
        "cpu",
        [
            ("rapl", rapl_reader("cpu")),
            ("estimate-cpu-time", CpuTimeEstimateReader.for_this_machine),
        ],
        allowed,
        warn,
    )
    ram = _first_that_opens(
        "ram",
        [
            ("rapl", rapl_reader("ram")),
            ("estimate-ram-model", RamModelEstimateReader.for_this_machine),
        ],
        allowed,
        warn,
    )
    readers += [r for r in (cpu, ram) if r is not None]
    if allowed & set(_GROUPS["nvml"]):
        module = load_nvml(nvml)
        not_supported = getattr(module, "NVMLError_NotSupported", None)

        def unsupported(exc: BaseException) -> bool:
            cause = exc.__cause__
            return isinstance(not_supported, type) and isinstance(cause, not_supported)

        for gpu in nvml_devices(module) if module is not None else []:
            reader = _first_that_opens(
                f"gpu:{gpu.uuid}",
                [
                    ("nvml-counter", functools.partial(NvmlEnergyCounterReader, gpu, nvml=module)),
                    (
                        "nvml-power-sampling",
                        functools.partial(NvmlPowerSamplingReader, gpu, nvml=module),
                    ),
                ],
                allowed,
                warn,
                quiet=unsupported,
            )
            if reader is not None:
                readers.append(reader)
    return readers


def read_all(
    readers: Iterable[EnergyReader],
    *,
    failed: set[str],
    warn: Callable[[str], None],
) -> dict[str, float | None]:
    """Read every reader once; never raises.

    Parameters
    ----------
    readers
        Opened readers. When two share a domain, the first wins.
    failed
        Domains whose reader has failed; owned by the caller (the session) and
        updated here. A reader that raises, or returns a non-finite value, is added
        and reads as None from then on.
    warn
        Called with one line the first time a reader fails.

    Returns
    -------
    dict
        Cumulative joules per domain, or None for a failed reader.
    """
    values: dict[str, float | None] = {}
    for reader in readers:
        domain = reader.domain
        if domain in values:
            continue
        if domain in failed:
            values[domain] = None
            continue
        try:
            value = float(reader.read_j())
            if not math.isfinite(value):
                raise MeasurementError(f"non-finite reading {value!r}")
        except Exception as exc:
            logger.debug("%s energy reader failed", domain, exc_info=True)
            failed.add(domain)
            warn(
                f"{domain} energy: {reader.method} failed mid-run ({exc}); recorded as null from now on"
            )
            values[domain] = None
            continue
        values[domain] = value
    return values


def close_all(readers: Iterable[EnergyReader]) -> None:
    """Close every reader; never raises (failures are logged at debug)."""
    for reader in readers:
        try:
            reader.close()
        except Exception:
            logger.debug("closing %s energy reader failed", reader.domain, exc_info=True)
