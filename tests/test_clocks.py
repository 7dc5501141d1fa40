"""Clocks, CUDA synchronisation and peak memory, with a stand-in for torch.cuda (no GPU here)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from pytest_greennlp.measure.clocks import MemoryProbe, cuda_synchronize, torch_cuda
from pytest_greennlp.measure.window import Meters, Window


class FakeCuda:
    def __init__(self, initialized: bool = True) -> None:
        self.calls: list[str] = []
        self.initialized = initialized
        self.peak = 0

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return self.initialized

    def synchronize(self) -> None:
        self.calls.append("synchronize")

    def reset_peak_memory_stats(self) -> None:
        self.calls.append("reset")
        self.peak = 0

    def max_memory_allocated(self) -> int:
        return self.peak


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    return cuda


def test_no_torch_means_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert torch_cuda() is None and cuda_synchronize() == ()


def test_uninitialised_cuda_is_not_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda(initialized=False)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert cuda_synchronize() == () and cuda.calls == []


def test_window_synchronises_cuda_at_both_edges(fake_cuda: FakeCuda) -> None:
    window = Window(Meters([], lambda readers: {}))
    window.start()
    window.stop()
    assert fake_cuda.calls == ["synchronize", "synchronize"]
    assert window.totals.synchronized == ("cuda",)


def test_cuda_peak_memory_is_per_window(fake_cuda: FakeCuda) -> None:
    probe = MemoryProbe()
    fake_cuda.peak = 10
    probe.reset()
    assert fake_cuda.calls == ["reset"]
    fake_cuda.peak = 4096
    assert probe.peak()[1] == 4096


def test_peak_rss_is_the_windows_own() -> None:
    probe = MemoryProbe()
    if not probe.per_test:  # pragma: no cover - kernels without clear_refs
        pytest.skip("no /proc/self/clear_refs here")
    probe.reset()
    block = bytearray(64 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
    big, _ = probe.peak()
    del block
    probe.reset()
    small, _ = probe.peak()
    assert big is not None and small is not None and big - small > 48 * 2**20
    assert probe.method.startswith("VmHWM")


def test_window_pauses_and_sums_segments() -> None:
    readings = iter([0.0, 1.0, 5.0, 7.0])

    class Reader:
        domain, method, measured, source, scope = "x", "m", True, "s", "machine"

    def read_all(readers: Any) -> dict[str, float | None]:
        return {"x": next(readings)}

    window = Window(Meters([Reader()], read_all))  # type: ignore[list-item]
    window.start()
    window.stop()
    window.start()
    window.stop()
    assert window.totals.energy_j == {"x": 3.0}  # (1 - 0) + (7 - 5): the pause is excluded


def test_window_failed_reading_is_none_not_zero() -> None:
    readings = iter([{"x": 0.0}, {"x": None}])

    class Reader:
        domain, method, measured, source, scope = "x", "m", True, "s", "machine"

    window = Window(Meters([Reader()], lambda readers: next(readings)))  # type: ignore[list-item]
    window.start()
    window.stop()
    assert window.totals.energy_j == {"x": None}


def test_peak_falls_back_to_vmhwm_when_ru_maxrss_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exited thread can leave ru_maxrss above this window's peak: VmHWM is read then."""
    import resource

    from pytest_greennlp.measure import clocks

    probe = MemoryProbe()
    if not probe.per_test:  # pragma: no cover - kernels without clear_refs
        pytest.skip("no /proc/self/clear_refs here")
    real = resource.getrusage

    class Stale:
        def __init__(self, who: int) -> None:
            self.ru_maxrss = real(who).ru_maxrss + 10**9  # 1 TB (in KiB) "from a dead thread"

    monkeypatch.setattr(clocks.resource, "getrusage", Stale)
    probe.reset()
    peak, _ = probe.peak()
    assert peak is not None and peak < 10**12
    hwm = probe._read_hwm()
    assert hwm is not None and abs(peak - hwm) < 16 * 2**20


class DerivedReader:
    """A reader whose joules a window derives from its own clocks and RSS."""

    domain, method, measured, source, scope = "d", "m", False, "s", "process"
    window_derived = True

    def __init__(self, rss: Any) -> None:
        self.window_rss = rss
        self.calls: list[tuple[float, float, int | None, int | None]] = []

    def joules_between(self, wall_s: float, cpu_s: float, rss_start: int | None,
                       rss_end: int | None) -> float:
        self.calls.append((wall_s, cpu_s, rss_start, rss_end))
        if rss_start is None or rss_end is None:
            raise ValueError("no RSS")
        return 10.0 * cpu_s + (rss_start + rss_end)

    def read_j(self) -> float:  # pragma: no cover - a window never reads it
        raise AssertionError("a derived reader is not read at the edges")


def test_window_derives_estimates_from_its_own_clocks_and_rss() -> None:
    rss = iter([100, 200, 300, 400])
    reader = DerivedReader(lambda: next(rss))
    seen: list[Any] = []
    meters = Meters([reader], lambda readers: seen.append(list(readers)) or {})  # type: ignore[list-item]
    assert meters.derived == (reader,) and meters.counted == ()
    window = Window(meters)
    window.start()
    sum(range(20000))
    window.stop()
    window.start()
    window.stop()
    assert seen == []  # no reader is read at the edges
    (_, cpu1, a1, b1), (_, cpu2, a2, b2) = reader.calls
    assert (a1, b1, a2, b2) == (100, 200, 300, 400)
    assert window.totals.cpu_s == pytest.approx(cpu1 + cpu2)
    assert window.totals.energy_j["d"] == pytest.approx(10.0 * (cpu1 + cpu2) + 1000)


def test_window_derived_reader_without_rss_is_none_and_reported_once() -> None:
    def broken() -> int:
        raise OSError("statm gone")

    reader = DerivedReader(broken)
    errors: list[tuple[Any, Exception]] = []
    window = Window(Meters([reader], lambda readers: {}, lambda r, exc: errors.append((r, exc))))  # type: ignore[list-item]
    window.start()
    window.stop()
    assert window.totals.energy_j == {"d": None}
    assert [(r, str(e)) for r, e in errors] == [(reader, "statm gone"), (reader, "statm gone")]  # each edge


def test_stock_estimates_are_derived_and_match_their_own_readings() -> None:
    """The CPU-time and RAM-model readers give a window the joules their `read_j` gives."""
    from pytest_greennlp.measure.energy import CpuTimeEstimateReader, RamModelEstimateReader

    cpu = CpuTimeEstimateReader(4.0, "test")
    ram = RamModelEstimateReader(20.0, "test", 2**34)
    cpu.open()
    ram.open()
    try:
        if not ram.window_derived:  # pragma: no cover - no /proc/self/statm
            pytest.skip("no /proc/self/statm here")
        assert cpu.window_derived
        meters = Meters([cpu, ram], lambda readers: {})  # type: ignore[list-item]
        assert meters.counted == () and meters.rss is not None
        window = Window(meters)
        cpu0, ram0 = cpu.read_j(), ram.read_j()
        window.start()
        sum(range(200000))
        window.stop()
        cpu1, ram1 = cpu.read_j(), ram.read_j()
        assert window.totals.energy_j["cpu"] == pytest.approx(4.0 * window.totals.cpu_s)
        assert 0 < window.totals.energy_j["cpu"] <= cpu1 - cpu0
        assert 0 < window.totals.energy_j["ram"] <= ram1 - ram0
        # A reader on another clock is read at the edges instead.
        other = CpuTimeEstimateReader(4.0, "test", clock=lambda: 1.0)
        assert not other.window_derived and Meters([other], lambda r: {}).counted == (other,)  # type: ignore[list-item]
    finally:
        cpu.close()
        ram.close()
    assert not ram.window_derived and ram.window_rss is None
