"""Energy readers on stand-ins: a fake powercap tree, fake clocks, failing readers."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_greennlp.errors import ConfigError, MeasurementError
from pytest_greennlp.measure import energy
from pytest_greennlp.measure.base import EnergyReader, Scope
from pytest_greennlp.measure.energy import (
    ENERGY_SOURCES,
    CpuTimeEstimateReader,
    RamModelEstimateReader,
    RaplReader,
    close_all,
    discover_readers,
    parse_sources,
    rapl_domains,
    read_all,
)

GIB = 1024**3
MAX_RANGE = 262_143_328_850


class NoNvml:
    """An NVML whose init fails: no GPUs, whatever machine the tests run on."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self) -> None:
        raise self.NVMLError("NVML Shared Library Not Found")


def make_zone(folder: Path, name: str, energy_uj: int = 0, max_range_uj: int = MAX_RANGE) -> Path:
    folder.mkdir(parents=True)
    (folder / "name").write_text(f"{name}\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return folder


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """The kernel's layout: real zones nested under the device, flat links in the class
    folder, package-0 with core, uncore and dram, plus psys and an MMIO duplicate."""
    root = tmp_path / "powercap"
    device = tmp_path / "devices" / "intel-rapl"
    package = make_zone(device / "intel-rapl:0", "package-0", 1_000_000)
    make_zone(package / "intel-rapl:0:0", "core", 500_000)
    make_zone(package / "intel-rapl:0:1", "uncore", 100_000)
    make_zone(package / "intel-rapl:0:2", "dram", 2_000_000)
    make_zone(device / "intel-rapl:1", "psys", 9_000_000)
    make_zone(tmp_path / "devices" / "intel-rapl-mmio:0", "package-0", 7_000_000)
    root.mkdir()
    for zone in [package, *package.glob("intel-rapl:*"), device / "intel-rapl:1"]:
        (root / zone.name).symlink_to(zone)
    (root / "intel-rapl-mmio:0").symlink_to(tmp_path / "devices" / "intel-rapl-mmio:0")
    return root


@pytest.fixture
def opened() -> Iterator[list[EnergyReader]]:
    readers: list[EnergyReader] = []
    yield readers
    close_all(readers)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- RAPL --------------------------------------------------------------------------


def test_rapl_domains_never_double_count(powercap: Path) -> None:
    domains = rapl_domains(powercap)
    assert [p.name for p in domains["cpu"]] == ["intel-rapl:0"]  # not core, psys, mmio
    assert [p.name for p in domains["ram"]] == ["intel-rapl:0:2"]


def test_rapl_domains_nested_only_and_missing(tmp_path: Path) -> None:
    make_zone(tmp_path / "intel-rapl:1", "package-1")
    make_zone(tmp_path / "intel-rapl:0", "package-0")
    make_zone(tmp_path / "intel-rapl:0" / "intel-rapl:0:0", "dram")
    domains = rapl_domains(tmp_path)
    assert [p.name for p in domains["cpu"]] == ["intel-rapl:0", "intel-rapl:1"]
    assert [p.name for p in domains["ram"]] == ["intel-rapl:0:0"]
    assert rapl_domains(tmp_path / "missing") == {"cpu": [], "ram": []}


def test_rapl_reader_reads_the_package_only(powercap: Path, opened: list[EnergyReader]) -> None:
    reader = RaplReader(powercap / "intel-rapl:0", domain="cpu")
    assert isinstance(reader, EnergyReader)
    assert (reader.method, reader.measured, reader.scope) == ("rapl", True, "machine")
    assert "package-0" in reader.source
    reader.open()
    opened.append(reader)
    assert reader.read_j() == 0.0
    set_energy(powercap / "intel-rapl:0", 3_500_000)
    set_energy(powercap / "intel-rapl:0:0", 900_000)  # core: inside the package, ignored
    assert reader.read_j() == pytest.approx(2.5)


def test_rapl_reader_sums_packages(tmp_path: Path, opened: list[EnergyReader]) -> None:
    zones = [make_zone(tmp_path / f"intel-rapl:{i}", f"package-{i}", 10) for i in (0, 1)]
    reader = RaplReader(zones, domain="cpu")
    reader.open()
    opened.append(reader)
    set_energy(zones[0], 1_000_010)
    set_energy(zones[1], 2_000_010)
    assert reader.read_j() == pytest.approx(3.0)


def test_rapl_reader_handles_one_wrap_between_reads(
    tmp_path: Path, opened: list[EnergyReader]
) -> None:
    zone = make_zone(tmp_path / "intel-rapl:0", "package-0", 9_000_000, max_range_uj=10_000_000)
    reader = RaplReader([zone])
    reader.open()
    opened.append(reader)
    set_energy(zone, 500_000)  # wrapped: 1_000_000 to the top, then 500_000
    assert reader.read_j() == pytest.approx(1.5)
    set_energy(zone, 2_000_000)
    assert reader.read_j() == pytest.approx(3.0)
    set_energy(zone, 1_000_000)  # wrapped again
    assert reader.read_j() == pytest.approx(12.0)


def test_rapl_permission_denied_fails_at_open(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, so chmod 000 would not deny: make the open itself refuse.
    def refuse(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(energy, "_open_counter", refuse)
    reader = RaplReader(powercap / "intel-rapl:0")
    with pytest.raises(MeasurementError, match="permission denied") as info:
        reader.open()
    assert "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, PermissionError)


def test_rapl_reader_must_be_open(powercap: Path) -> None:
    reader = RaplReader(powercap / "intel-rapl:0")
    with pytest.raises(MeasurementError, match="not open"):
        reader.read_j()
    reader.close()
    reader.close()


# -- estimates ---------------------------------------------------------------------


def test_cpu_time_estimate() -> None:
    clock = FakeClock(10.0)
    reader = CpuTimeEstimateReader(4.0, "4 W per thread", clock=clock)
    assert isinstance(reader, EnergyReader)
    scope: Scope = reader.scope
    assert (reader.domain, reader.method, reader.measured, scope) == (
        "cpu",
        "estimate-cpu-time",
        False,
        "process",
    )
    reader.open()
    clock.now = 12.5
    assert reader.read_j() == pytest.approx(10.0)
    clock.now = 13.0
    assert reader.read_j() == pytest.approx(12.0)


def test_cpu_time_estimate_from_the_tdp_table() -> None:
    reader = CpuTimeEstimateReader.for_this_machine(
        cpu_model="Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", threads=64, sockets=2
    )
    assert reader.watts_per_thread == pytest.approx(125 * 2 / 64)
    assert "Intel Xeon Gold 6130" in reader.source


def test_cpu_time_estimate_default_for_unknown_cpu() -> None:
    reader = CpuTimeEstimateReader.for_this_machine(cpu_model="AMD EPYC 7B13", threads=2)
    assert reader.watts_per_thread == 4.0
    assert "DEFAULT_POWER_PER_CORE" in reader.source
    assert "AMD EPYC 7B13" in reader.source


def test_cpu_time_estimate_uses_process_time_by_default() -> None:
    reader = CpuTimeEstimateReader.for_this_machine()
    reader.open()
    sum(i * i for i in range(20_000))
    assert reader.read_j() >= 0.0


def test_ram_model_estimate_integrates_the_rss_share() -> None:
    clock = FakeClock(100.0)
    rss = iter([8 * GIB, 16 * GIB, 16 * GIB])
    reader = RamModelEstimateReader(
        20.0, "20 W", 32 * GIB, rss_bytes=lambda: next(rss), clock=clock
    )
    assert (reader.domain, reader.method, reader.measured, reader.scope) == (
        "ram",
        "estimate-ram-model",
        False,
        "process",
    )
    reader.open()  # share 0.25 at t=100
    clock.now = 110.0  # share 0.5: 20 W * (0.25 + 0.5) / 2 * 10 s
    assert reader.read_j() == pytest.approx(75.0)
    clock.now = 111.0  # + 20 W * 0.5 * 1 s
    assert reader.read_j() == pytest.approx(85.0)


def test_ram_model_estimate_for_this_machine() -> None:
    reader = RamModelEstimateReader.for_this_machine(total_bytes=32 * GIB)
    assert "codecarbon/external/ram.py" in reader.source
    reader.open()
    try:
        first = reader.read_j()
        assert 0.0 <= first <= reader.read_j()
    finally:
        reader.close()
    with pytest.raises(MeasurementError, match="not open"):
        reader.read_j()


def test_estimates_validate_arguments() -> None:
    with pytest.raises(ValueError, match="watts_per_thread"):
        CpuTimeEstimateReader(-1.0, "")
    with pytest.raises(ValueError, match="total_bytes must be positive"):
        RamModelEstimateReader(20.0, "", 0)


# -- sources and discovery ---------------------------------------------------------


def test_parse_sources() -> None:
    assert parse_sources(["auto"]) == frozenset(ENERGY_SOURCES) - {
        "auto",
        "measured",
        "estimate",
        "nvml",
        "none",
    }
    assert parse_sources(["estimate"]) == {"estimate-cpu-time", "estimate-ram-model"}
    assert parse_sources(["rapl", "estimate-ram-model"]) == {"rapl", "estimate-ram-model"}
    assert parse_sources(["none"]) == frozenset()


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (["watts"], "unknown energy source 'watts'"),
        ([], "energy sources are empty"),
        (["none", "auto"], "'none' cannot be combined"),
    ],
)
def test_parse_sources_rejects(sources: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_sources(sources)
    assert "\n" not in str(info.value)


def discover(powercap: Path, warnings: list[str], *sources: str) -> list[EnergyReader]:
    return discover_readers(
        sources=sources or ("auto",), nvml=NoNvml(), powercap_root=powercap, warn=warnings.append
    )


def test_discovery_prefers_rapl(powercap: Path, opened: list[EnergyReader]) -> None:
    warnings: list[str] = []
    opened += discover(powercap, warnings)
    assert [(r.domain, r.method, r.measured) for r in opened] == [
        ("cpu", "rapl", True),
        ("ram", "rapl", True),
    ]
    assert warnings == []


def test_discovery_without_rapl_estimates(tmp_path: Path, opened: list[EnergyReader]) -> None:
    warnings: list[str] = []
    opened += discover(tmp_path, warnings)
    assert [(r.domain, r.method, r.measured) for r in opened] == [
        ("cpu", "estimate-cpu-time", False),
        ("ram", "estimate-ram-model", False),
    ]
    assert warnings == []


def test_discovery_of_estimates_only(powercap: Path, opened: list[EnergyReader]) -> None:
    warnings: list[str] = []
    opened += discover(powercap, warnings, "estimate")
    assert [r.method for r in opened] == ["estimate-cpu-time", "estimate-ram-model"]


def test_discovery_none(powercap: Path) -> None:
    assert discover(powercap, [], "none") == []


def test_discovery_falls_back_when_rapl_is_denied(
    powercap: Path, monkeypatch: pytest.MonkeyPatch, opened: list[EnergyReader]
) -> None:
    def refuse(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(energy, "_open_counter", refuse)
    warnings: list[str] = []
    opened += discover(powercap, warnings, "rapl", "estimate-cpu-time", "estimate-ram-model")
    assert [r.method for r in opened] == ["estimate-cpu-time", "estimate-ram-model"]
    assert len(warnings) == 2  # once for cpu, once for ram
    assert warnings[0].startswith("cpu energy: rapl failed (cannot read ")
    assert warnings[0].endswith("; trying the next source")
    assert all("\n" not in w for w in warnings)


def test_discovery_warns_when_forced_source_is_absent(
    tmp_path: Path, opened: list[EnergyReader]
) -> None:
    warnings: list[str] = []
    opened += discover(tmp_path, warnings, "measured")
    assert opened == []
    assert warnings == [
        "cpu energy: no rapl source on this machine; not recorded",
        "ram energy: no rapl source on this machine; not recorded",
    ]


# -- read_all ----------------------------------------------------------------------


class FlakyReader:
    method = "flaky"
    measured = True
    source = "a test double"
    scope: Scope = "machine"

    def __init__(self, domain: str, values: list[float]) -> None:
        self.domain = domain
        self.values = values
        self.reads = 0

    def open(self) -> None:
        pass

    def read_j(self) -> float:
        self.reads += 1
        if not self.values:
            raise RuntimeError("counter vanished")
        return self.values.pop(0)

    def close(self) -> None:
        raise RuntimeError("close failed")


def test_read_all_marks_failed_readers_and_warns_once() -> None:
    flaky = FlakyReader("gpu:x", [1.0])
    steady = FlakyReader("cpu", [1.0, 2.0, 3.0])
    shadowed = FlakyReader("cpu", [99.0])  # same domain: the first reader wins
    readers: list[EnergyReader] = [flaky, steady, shadowed]
    failed: set[str] = set()
    warnings: list[str] = []
    assert read_all(readers, failed=failed, warn=warnings.append) == {"gpu:x": 1.0, "cpu": 1.0}
    assert read_all(readers, failed=failed, warn=warnings.append) == {"gpu:x": None, "cpu": 2.0}
    assert read_all(readers, failed=failed, warn=warnings.append) == {"gpu:x": None, "cpu": 3.0}
    assert failed == {"gpu:x"}
    assert flaky.reads == 2 and shadowed.reads == 0
    assert warnings == [
        "gpu:x energy: flaky failed mid-run (counter vanished); recorded as null from now on"
    ]
    close_all(readers)  # never raises


def test_read_all_rejects_non_finite_readings() -> None:
    failed: set[str] = set()
    warnings: list[str] = []
    values = read_all([FlakyReader("ram", [math.nan])], failed=failed, warn=warnings.append)
    assert values == {"ram": None}
    assert len(warnings) == 1 and "non-finite" in warnings[0]


# -- cost --------------------------------------------------------------------------


def test_importing_energy_is_cheap() -> None:
    code = (
        "import sys\n"
        "import pytest_greennlp.measure.energy\n"
        "print(sorted(m for m in ('codecarbon', 'pandas', 'pynvml', 'psutil') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
