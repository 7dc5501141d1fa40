"""The session's pure helpers: energy of measured runs, CO2e."""

from __future__ import annotations

import pytest

from pytest_greennlp.measure.window import WindowTotals
from pytest_greennlp.records import CarbonIntensity
from pytest_greennlp.session import build_energy, emissions


class Reader:
    def __init__(self, domain: str, measured: bool) -> None:
        self.domain, self.measured = domain, measured
        self.method = "counter" if measured else "model"
        self.source, self.scope = f"{domain} source", "machine" if measured else "process"


READERS = [Reader("cpu", True), Reader("gpu:0", True), Reader("ram", False)]


def run(cpu: float | None, gpu: float | None, ram: float | None) -> WindowTotals:
    return WindowTotals(energy_j={"cpu": cpu, "gpu:0": gpu, "ram": ram})


def test_one_run_keeps_bases_apart_and_has_no_samples() -> None:
    energy, notes = build_energy([run(2.0, 5.0, 0.5)], READERS, "window")
    assert energy is not None and notes == []
    assert (energy.measured_j, energy.estimated_j) == (7.0, 0.5)
    assert [(p.domain, p.energy_j, p.measured) for p in energy.parts] == [
        ("cpu", 2.0, True), ("gpu:0", 5.0, True), ("ram", 0.5, False)]
    assert energy.samples_measured_j == () and energy.attribution == "window"


def test_repeats_give_medians_and_samples() -> None:
    runs = [run(2.0, 5.0, 0.5), run(4.0, 5.0, 0.7), run(3.0, 6.0, 0.6)]
    energy, _ = build_energy(runs, READERS, "window")
    assert energy is not None
    assert [p.energy_j for p in energy.parts] == [3.0, 5.0, 0.6]
    assert energy.samples_measured_j == (7.0, 9.0, 9.0) and energy.measured_j == 9.0
    assert energy.samples_estimated_j == pytest.approx((0.5, 0.7, 0.6))


@pytest.mark.parametrize("runs", [[run(2.0, None, 0.5)], [run(2.0, 1.0, 0.5), run(2.0, None, 0.5)]])
def test_unavailable_domain_is_left_out_with_a_note_never_zero(runs: list[WindowTotals]) -> None:
    energy, notes = build_energy(runs, READERS, "window")
    assert energy is not None and [p.domain for p in energy.parts] == ["cpu", "ram"]
    assert energy.measured_j == 2.0
    assert notes == ["energy of gpu:0 (counter) unavailable for this test"]


def test_nothing_available_is_none() -> None:
    assert build_energy([run(None, None, None)], READERS, "window")[0] is None
    assert build_energy([run(1.0, 1.0, 1.0)], [], "window") == (None, [])


def test_emissions_per_basis() -> None:
    energy, _ = build_energy([run(3.6e6, 0.0, 3.6e6)], READERS, "window")
    carbon = CarbonIntensity(region="FRA", g_per_kwh=50.0, source="s", year=2023, pue=1.5)
    co2 = emissions(energy, carbon)
    assert co2 is not None and (co2.from_measured_g, co2.from_estimated_g) == (75.0, 75.0)
    assert emissions(None, carbon) is None
