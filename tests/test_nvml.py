"""NVML discovery and the NVML energy readers, against a stand-in NVML module (no GPU)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_greennlp.errors import MeasurementError
from pytest_greennlp.measure.base import EnergyReader
from pytest_greennlp.measure.energy import (
    NvmlEnergyCounterReader,
    NvmlPowerSamplingReader,
    close_all,
    discover_readers,
    read_all,
)
from pytest_greennlp.measure.nvml import GpuInfo, load_nvml, nvml_devices

# -- a stand-in for the pynvml module ---------------------------------------------


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


@dataclass
class FakeMemory:
    total: int


@dataclass
class FakeMig:
    uuid: str


@dataclass
class FakeGpu:
    uuid: str
    name: str = "Fake GPU"
    memory_bytes: int = 80 * 1024**3
    energy_mj: int | None = 0  # None: the counter is not supported (pre-Volta)
    power_mw: int = 100_000
    mig_uuids: list[str] = field(default_factory=list)
    lost: bool = False  # every call on the GPU raises NVMLError_GpuIsLost
    counter_error: bool = False  # the counter alone raises NVMLError_GpuIsLost

    def check(self) -> None:
        if self.lost:
            raise NVMLError_GpuIsLost("GPU is lost")


class FakeNvml:
    """The subset of pynvml the plugin uses; handles are the `FakeGpu` objects."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound

    def __init__(self, gpus: list[FakeGpu], *, init_error: bool = False) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.init_calls = 0
        self.power_calls = 0

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error:
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"  # old pynvml returned bytes

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, handle: FakeGpu | FakeMig) -> str:
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        handle.check()
        return handle.name

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> FakeMemory:
        return FakeMemory(handle.memory_bytes)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        handle.check()
        if handle.counter_error:
            raise NVMLError_GpuIsLost("GPU is lost")
        if handle.energy_mj is None:
            raise NVMLError_NotSupported("Not Supported")
        return handle.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        handle.check()
        self.power_calls += 1
        return handle.power_mw

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        if not handle.mig_uuids:
            raise NVMLError_NotSupported("Not Supported")
        return len(handle.mig_uuids) + 1  # one empty slot

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, slot: int) -> FakeMig:
        if slot >= len(handle.mig_uuids):
            raise NVMLError("Not Found")
        return FakeMig(handle.mig_uuids[slot])


UUIDS = [
    "GPU-aaaaaaaa-0000-0000-0000-000000000000",
    "GPU-bbbbbbbb-0000-0000-0000-000000000000",
    "GPU-bbbbcccc-0000-0000-0000-000000000000",
]


def three_gpus() -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(UUIDS[0], name="A100", energy_mj=1_000_000),
            FakeGpu(UUIDS[1], name="T4", energy_mj=None, mig_uuids=["MIG-1111", "MIG-2222"]),
            FakeGpu(UUIDS[2], name="V100"),
        ]
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


# -- nvml_devices ------------------------------------------------------------------


def test_lists_every_gpu_without_cuda_visible_devices() -> None:
    gpus = nvml_devices(three_gpus(), environ={})
    assert [g.uuid for g in gpus] == UUIDS
    assert gpus[0] == GpuInfo(0, UUIDS[0], "A100", "550.54.15", 80 * 1024**3)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("2,0", [2, 0]),  # indices, in the listed order
        (UUIDS[2] + "," + UUIDS[0], [2, 0]),  # full UUIDs
        ("GPU-aaaa", [0]),  # a unique UUID prefix
        ("GPU-bbbb,0", []),  # an ambiguous prefix names nothing: it and the rest hidden
        ("0,7,1", [0]),  # an invalid entry hides every later one, as in CUDA
        ("", []),
        ("-1", []),
        ("MIG-GPU-bbbbbbbb-0000-0000-0000-000000000000/1/0", [1]),  # legacy MIG form
        ("MIG-2222,MIG-1111,0", [1, 0]),  # MIG UUIDs name their parent, listed once
        (" 1 , 2 ", [1, 2]),
    ],
)
def test_respects_cuda_visible_devices(visible: str, expected: list[int]) -> None:
    gpus = nvml_devices(three_gpus(), environ={"CUDA_VISIBLE_DEVICES": visible})
    assert [g.index for g in gpus] == expected


def test_reads_cuda_visible_devices_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [g.index for g in nvml_devices(three_gpus())] == [1]


def test_init_once_per_process() -> None:
    nvml = three_gpus()
    nvml_devices(nvml, environ={})
    nvml_devices(nvml, environ={})
    NvmlEnergyCounterReader(GpuInfo(0, UUIDS[0], "A100", "", 0), nvml=nvml).open()
    assert nvml.init_calls == 1


def test_init_failure_means_no_gpus(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pytest_greennlp.measure.nvml")
    assert nvml_devices(FakeNvml([FakeGpu(UUIDS[0])], init_error=True), environ={}) == []
    assert "nvmlInit failed" in caplog.text


def test_missing_pynvml_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    assert load_nvml() is None
    assert nvml_devices(environ={}) == []


def test_a_failing_device_is_skipped() -> None:
    nvml = three_gpus()
    nvml.gpus[1].lost = True
    assert [g.index for g in nvml_devices(nvml, environ={})] == [0, 2]


# -- readers -----------------------------------------------------------------------


def gpu_info(nvml: FakeNvml, index: int) -> GpuInfo:
    return nvml_devices(nvml, environ={})[index]


def test_counter_reader() -> None:
    nvml = three_gpus()
    reader = NvmlEnergyCounterReader(gpu_info(nvml, 0), nvml=nvml)
    assert isinstance(reader, EnergyReader)
    assert (reader.domain, reader.method) == (f"gpu:{UUIDS[0]}", "nvml-counter")
    assert (reader.measured, reader.scope) == (True, "machine")
    reader.open()
    assert reader.read_j() == 0.0
    nvml.gpus[0].energy_mj = 1_250_500
    assert reader.read_j() == pytest.approx(250.5)
    reader.close()


def test_counter_reader_unsupported() -> None:
    nvml = three_gpus()
    reader = NvmlEnergyCounterReader(gpu_info(nvml, 1), nvml=nvml)
    with pytest.raises(MeasurementError) as info:
        reader.open()
    assert isinstance(info.value.__cause__, NVMLError_NotSupported)


def test_sampling_reader_integrates_with_trapezoids() -> None:
    nvml, clock = three_gpus(), FakeClock()
    reader = NvmlPowerSamplingReader(gpu_info(nvml, 1), interval_s=3600, nvml=nvml, clock=clock)
    assert (reader.method, reader.measured, reader.scope) == (
        "nvml-power-sampling",
        True,
        "machine",
    )
    reader.open()  # 100 W at t=0; the thread sleeps for an hour
    try:
        clock.now = 1.0
        assert reader.read_j() == pytest.approx(100.0)  # extrapolates the last power
        nvml.gpus[1].power_mw = 200_000
        clock.now = 2.0
        reader._sample_once()  # (100 + 200) / 2 * 2 s
        assert reader.read_j() == pytest.approx(300.0)
        clock.now = 3.0
        assert reader.read_j() == pytest.approx(500.0)  # + 200 W * 1 s
        nvml.gpus[1].power_mw = 0
        clock.now = 3.5
        reader._sample_once()  # 300 + (200 + 0) / 2 * 1.5 = 450 < 500 already returned
        assert reader.read_j() == pytest.approx(500.0)  # never decreases
        clock.now = 10.0
        assert reader.read_j() == pytest.approx(500.0)
        nvml.gpus[1].power_mw = 400_000
        reader._sample_once()  # 450 + 200 * 6.5 = 1750
        assert reader.read_j() == pytest.approx(1750.0)
    finally:
        reader.close()


def test_sampling_thread_samples_and_stops() -> None:
    nvml = three_gpus()
    reader = NvmlPowerSamplingReader(gpu_info(nvml, 1), interval_s=0.001, nvml=nvml)
    reader.open()
    wait_for(lambda: nvml.power_calls >= 3)
    thread = reader._thread
    reader.close()
    assert thread is not None and not thread.is_alive()
    calls = nvml.power_calls
    time.sleep(0.01)
    assert nvml.power_calls == calls


def test_sampling_error_surfaces_on_read() -> None:
    nvml = three_gpus()
    reader = NvmlPowerSamplingReader(gpu_info(nvml, 1), interval_s=0.001, nvml=nvml)
    reader.open()
    nvml.gpus[1].lost = True
    wait_for(lambda: reader._error is not None)
    with pytest.raises(MeasurementError, match="GPU is lost"):
        reader.read_j()
    reader.close()


def test_sampling_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"):
        NvmlPowerSamplingReader(GpuInfo(0, UUIDS[0], "A100", "", 0), interval_s=0)


# -- discovery and read_all with GPUs ----------------------------------------------


def discover(nvml: FakeNvml, warnings: list[str], *sources: str) -> list[EnergyReader]:
    return discover_readers(
        sources=sources or ("auto",),
        nvml=nvml,
        powercap_root=Path("/nonexistent"),
        warn=warnings.append,
    )


def test_discovery_prefers_the_counter_then_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    warnings: list[str] = []
    readers = discover(three_gpus(), warnings, "nvml")
    try:
        assert [(r.domain, r.method) for r in readers] == [
            (f"gpu:{UUIDS[0]}", "nvml-counter"),
            (f"gpu:{UUIDS[1]}", "nvml-power-sampling"),  # NotSupported: quietly sampled
            (f"gpu:{UUIDS[2]}", "nvml-counter"),
        ]
        assert warnings == []
    finally:
        close_all(readers)


def test_discovery_warns_once_when_a_counter_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    nvml = three_gpus()
    nvml.gpus[0].counter_error = True
    warnings: list[str] = []
    readers = discover(nvml, warnings, "auto")
    try:
        assert [r.method for r in readers if r.domain.startswith("gpu:")] == ["nvml-power-sampling"]
        assert len(warnings) == 1
        assert "nvml-counter failed" in warnings[0]
        assert "trying the next source" in warnings[0]
        assert "\n" not in warnings[0]
    finally:
        close_all(readers)


def test_discovery_of_estimates_skips_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    warnings: list[str] = []
    readers = discover(three_gpus(), warnings, "estimate")
    try:
        assert [r.domain for r in readers] == ["cpu", "ram"]
    finally:
        close_all(readers)


def test_read_all_marks_a_gpu_that_fails_mid_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    nvml = three_gpus()
    warnings: list[str] = []
    readers = discover(nvml, warnings, "auto")
    failed: set[str] = set()
    gpu = f"gpu:{UUIDS[0]}"
    try:
        first = read_all(readers, failed=failed, warn=warnings.append)
        assert set(first) == {"cpu", "ram", gpu}
        nvml.gpus[0].energy_mj = 1_000_500
        assert read_all(readers, failed=failed, warn=warnings.append)[gpu] == pytest.approx(0.5)
        nvml.gpus[0].lost = True
        second = read_all(readers, failed=failed, warn=warnings.append)
        third = read_all(readers, failed=failed, warn=warnings.append)
        assert second[gpu] is None and third[gpu] is None
        assert third["cpu"] is not None and third["ram"] is not None
        assert failed == {gpu}
        assert len(warnings) == 1
        assert warnings[0].startswith(f"{gpu} energy: nvml-counter failed mid-run")
    finally:
        close_all(readers)
