"""Clocks, CUDA synchronisation and peak memory, with a stand-in for torch.cuda (no GPU here)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from pytest_greennlp.measure.clocks import MemoryProbe, cuda_synchronize, torch_cuda
from pytest_greennlp.measure.window import Window


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
    window = Window([], lambda readers: {})
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

    window = Window([Reader()], read_all)  # type: ignore[list-item]
    window.start()
    window.stop()
    window.start()
    window.stop()
    assert window.totals.energy_j == {"x": 3.0}  # (1 - 0) + (7 - 5): the pause is excluded


def test_window_failed_reading_is_none_not_zero() -> None:
    readings = iter([{"x": 0.0}, {"x": None}])

    class Reader:
        domain, method, measured, source, scope = "x", "m", True, "s", "machine"

    window = Window([Reader()], lambda readers: next(readings))  # type: ignore[list-item]
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
