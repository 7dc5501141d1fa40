"""codecarbon's data files, read directly: CPU TDP lookup, grid intensity, RAM model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_greennlp.errors import ConfigError
from pytest_greennlp.measure.codecarbon_data import (
    DEFAULT_W_PER_THREAD,
    DEFAULT_W_PER_THREAD_SOURCE,
    cpu_model_name,
    cpu_tdp,
    grid_intensity,
    ram_power_w,
)

GIB = 1024**3


def test_lookups_never_import_codecarbon() -> None:
    code = (
        "import sys\n"
        "from pytest_greennlp.measure import codecarbon_data as cd\n"
        "cd.cpu_tdp('Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz')\n"
        "cd.grid_intensity('FRA'); cd.grid_intensity(None); cd.ram_power_w(2**34)\n"
        "print(sorted(m for m in ('codecarbon', 'pandas', 'pynvml') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("brand", "matched", "tdp"),
    [
        ("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "Intel Xeon Gold 6130", 125.0),
        # The bare "6140" row (115 W, an Opteron) must not win over the Xeon row.
        ("Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", "Intel Xeon Gold 6140", 140.0),
        # Whole tokens: "6140M" is not "6140".
        ("Intel(R) Xeon(R) Gold 6140M CPU @ 2.30GHz", "Intel Xeon Gold 6140M", 140.0),
        # Longest match: "E5-2680 v4", not "E5-2680".
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "Intel Xeon E5-2680 v4", 120.0),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700", 65.0),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0),
        ("AMD Ryzen 7 5800X 8-Core Processor", "AMD Ryzen 7 5800X", 105.0),
        ("AMD Opteron(tm) Processor 3280", "AMD Opteron 3280", 65.0),
        ("AMD FX(tm)-8350 Eight-Core Processor", "AMD FX-8350", 125.0),
    ],
)
def test_cpu_tdp_matches_the_table(brand: str, matched: str, tdp: float) -> None:
    power = cpu_tdp(brand)
    assert power is not None
    assert (power.matched_name, power.tdp_w) == (matched, tdp)
    assert "cpu_power.csv" in power.source
    assert repr(matched) in power.source


@pytest.mark.parametrize(
    "brand",
    [
        "AMD EPYC",  # this machine's brand string
        "AMD EPYC 7B13",  # a cloud-only part missing from the table
        "Foo Bar 3280",  # a bare table row ("3280") never matches on its own
        "Intel(R) Xeon(R) 13280",  # no substring matches
        "",
    ],
)
def test_cpu_tdp_returns_none_when_not_in_table(brand: str) -> None:
    assert cpu_tdp(brand) is None


def test_default_power_is_codecarbons_four_watts_per_thread() -> None:
    assert DEFAULT_W_PER_THREAD == 4.0
    assert "DEFAULT_POWER_PER_CORE" in DEFAULT_W_PER_THREAD_SOURCE


def test_grid_intensity_for_a_country() -> None:
    fra = grid_intensity("FRA")
    assert (fra.region, fra.g_per_kwh, fra.year) == ("FRA", 56.039, 2023)
    assert "France" in fra.source
    assert grid_intensity("fra") == fra


def test_grid_intensity_world_average() -> None:
    world = grid_intensity(None)
    assert (world.region, world.g_per_kwh, world.year) == (None, 475.0, None)
    assert "world average" in world.source
    assert "iea.org" in world.source


@pytest.mark.parametrize("code", ["XYZ", "FR", ""])
def test_grid_intensity_unknown_code(code: str) -> None:
    with pytest.raises(ConfigError) as info:
        grid_intensity(code)
    message = str(info.value)
    assert "\n" not in message
    assert repr(code) in message
    assert "FRA" in message


@pytest.mark.parametrize(
    ("gib", "watts"),
    # Expected values computed with codecarbon 3.3.2's own RAM._calculate_ram_power.
    [
        (1, 10.0),  # 1 DIMM, x86 floor of 2 DIMMs
        (8, 10.0),
        (16, 10.0),
        (24, 20.0),  # 4 DIMMs
        (32, 20.0),
        (64, 20.0),
        (128, 38.0),  # 8 DIMMs: 4 x 5 + 4 x 4.5
        (384, 54.0),  # 12 x 32 GiB: 38 + 4 x 4
        (1024, 38.0),  # 8 x 128 GiB
        (4096, 126.0),  # 32 DIMMs (cap): 38 + 8 x 4 + 16 x 3.5
    ],
)
def test_ram_power_reproduces_codecarbon_x86(gib: int, watts: float) -> None:
    value, source = ram_power_w(gib * GIB, machine="x86_64")
    assert value == pytest.approx(watts)
    assert "codecarbon/external/ram.py" in source


def test_ram_power_arm() -> None:
    assert ram_power_w(16 * GIB, machine="aarch64")[0] == pytest.approx(3.0)
    assert ram_power_w(128 * GIB, machine="arm64")[0] == pytest.approx(11.4)


def test_cpu_model_name_reads_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\n"
    )
    assert cpu_model_name(cpuinfo) == "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"


def test_cpu_model_name_falls_back_to_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("platform.processor", lambda: "x86_64")
    assert cpu_model_name(tmp_path / "missing") == "x86_64"
    assert isinstance(cpu_model_name(), str)


def test_sources_name_the_installed_codecarbon_version() -> None:
    from importlib.metadata import version

    expected = f"codecarbon {version('codecarbon')}"
    assert grid_intensity("FRA").source.startswith(expected + " ")
    assert ram_power_w(16 * GIB)[1].startswith(expected + " ")
