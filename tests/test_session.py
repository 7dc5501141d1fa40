"""The session's helpers: energy of measured runs, CO2e, the records it builds."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pytest_greennlp.measure.window import WindowTotals
from pytest_greennlp.records import CarbonIntensity, Record
from pytest_greennlp.report import read_report
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


def _same_as_keyword_built(record: Record) -> None:
    """``record`` has every field of its class, in order, and equals the keyword-built one."""
    assert list(record.fields_dict()) == [f.name for f in dataclasses.fields(record)]
    for value in record.fields_dict().values():
        for inner in value if isinstance(value, tuple) else (value,):
            if isinstance(inner, Record):
                _same_as_keyword_built(inner)
    assert type(record)(**record.fields_dict()) == record


@pytest.mark.parametrize("runs", [[run(2.0, 5.0, 0.5)], [run(2.0, 5.0, 0.5), run(4.0, 5.0, 0.7)]])
def test_fast_built_records_equal_keyword_built_ones(runs: list[WindowTotals]) -> None:
    # build_energy and emissions build their records with `Record._trusted`, unchecked.
    energy, _ = build_energy(runs, READERS, "region")
    assert energy is not None
    _same_as_keyword_built(energy)
    carbon = CarbonIntensity(region="FRA", g_per_kwh=50.0, source="s", year=2023, pue=1.5)
    co2 = emissions(energy, carbon)
    assert co2 is not None
    _same_as_keyword_built(co2)


def test_session_records_have_every_field_in_order(pytester: pytest.Pytester) -> None:
    # `GreenSession._record` builds each test's records with `Record._trusted`.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_train(examples=4, max_energy_j=10)
        def test_one(green):
            green.metric("accuracy", 0.5)
            green.trial(0.4, config={"lr": 0.1})
            green.flops(forward=10, backward=20)
            green.extra("k", [1, 2])
        """
    )
    result = pytester.runpytest("--green", "--green-repeats", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    report = read_report(pytester.path / "green-report.json")
    (test,) = report.tests
    assert test.flops is not None and test.energy is not None and test.trials
    _same_as_keyword_built(test)


# The second source spells a template marker: that shape gets no template, the encoder
# writes its rows.
@pytest.mark.parametrize("source", ['a "q" %s', "\x001\x00"])
def test_rows_write_what_their_records_would(pytester: pytest.Pytester, source: str) -> None:
    # Tests of the common shape are kept as `_Row`s: values filled into a template. For
    # every measured test, the row's record and JSON must equal what `_record` builds.
    pytester.makeconftest(
        """
        import json
        import pytest
        from pytest_greennlp.report import record_text

        class Meter:  # a measured counter beside the built-in estimates
            domain, method, measured, scope = "gpu:fake", "counter", True, "machine"
            source = SOURCE
""".replace("SOURCE", repr(source)) + """
            def open(self): self.j = 0.0
            def read_j(self):
                self.j += 0.1234567891234
                return self.j
            def close(self): pass

        def pytest_greennlp_energy_readers(config):
            return [Meter()]

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(session):
            green = session.config.pluginmanager.get_plugin("greennlp-session")
            out = {}
            for nodeid, m in green.pending.items():
                record = green._record(m.item, m.run, m.samples, m.rss, m.cuda_peak, m.outcome)
                row = green._row(m)
                out[nodeid] = None if row is None else [
                    green._row_record(row.key, row.values) == record,
                    green._row_json(row) == record_text(record),
                ]
            made = [t is not None for t in green._templates._made.values()]
            with open("rows.json", "w") as handle:
                json.dump({"rows": out, "templates": made}, handle)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.green_infer(examples=8)
        def test_plain():
            pass

        @pytest.mark.green_train(tokens=5)
        def test_region_and_counts(green):
            green.examples(3)
            with green.measure():
                sum(range(1000))

        @pytest.mark.green_infer
        def test_fails():
            assert False

        @pytest.mark.green_infer
        @pytest.mark.xfail(reason="known")
        def test_xfails():
            assert False

        @pytest.mark.green_infer
        def test_with_metric(green):
            green.metric("accuracy", 0.5)

        @pytest.mark.green_infer(max_energy_j=1.0)
        def test_with_limit():
            pass
        """
    )
    result = pytester.runpytest("--green", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1, xfailed=1)
    written = json.loads((pytester.path / "rows.json").read_text())
    assert written["templates"] and set(written["templates"]) == {"%" in source}
    by_name = {nodeid.split("::")[-1]: value for nodeid, value in written["rows"].items()}
    assert by_name == {
        "test_plain": [True, True],
        "test_region_and_counts": [True, True],
        "test_fails": [True, True],
        "test_xfails": [True, True],
        "test_with_metric": None,  # not the common shape: a record is built
        "test_with_limit": None,
    }
    report = read_report(pytester.path / "green-report.json")
    assert {t.nodeid.split("::")[-1] for t in report.tests} == set(by_name)
    assert report.tests[0].energy is not None and len(report.tests[0].energy.parts) == 3
    assert report.tests[0].energy.parts[0].source == source
