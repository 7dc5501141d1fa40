"""`merge`: shard reports combined with provenance, duplicates refused or kept apart."""

from __future__ import annotations

from dataclasses import replace

import pytest
from reportfactory import energy, fingerprint, record, report

from pytest_greennlp.compare import compare_reports
from pytest_greennlp.errors import ReportError
from pytest_greennlp.merge import Shard, merge_reports
from pytest_greennlp.report import totals


def test_provenance_totals_and_completeness() -> None:
    one = report(record("t::a", flops=10, energy_=energy(measured=2.0)), fp=fingerprint(cpu="A"),
                 notes=("no RAPL",))
    two = report(record("t::b", flops=5, energy_=energy(estimated=1.0)), fp=fingerprint(cpu="B"),
                 complete=False)
    merged = merge_reports([Shard(one, "one.json"), Shard(two, "two.json")])
    a, b = merged.tests
    assert a.extra == {"shard": "one.json", "hardware": {"cpu_model": "A", "device": "cpu", "gpus": []}}
    assert b.extra["shard"] == "two.json" and b.extra["hardware"]["cpu_model"] == "B"
    assert merged.totals == totals(merged.tests)
    assert merged.totals.flops == 15 and merged.totals.measured_j == 2.0 and merged.totals.estimated_j == 1.0
    assert merged.complete is False and merged.exit_status is None and merged.finished_at is None
    assert merged.notes[0] == "merged from 2 shard(s): one.json (1 tests), two.json (1 tests)"
    assert "shards ran on different hardware; each test's is in extra['hardware']" in merged.notes
    assert "[one.json] no RAPL" in merged.notes
    shards = merged.fingerprint.extra["shards"]
    assert [(s["name"], s["cpu_model"], s["tests"]) for s in shards] == [("one.json", "A", 1), ("two.json", "B", 1)]


def test_complete_only_if_every_shard_was() -> None:
    merged = merge_reports([report(record("t::a")), report(record("t::b"), exit_status=1)])
    assert merged.complete and merged.exit_status == 1
    assert [t.extra["shard"] for t in merged.tests] == ["shard-1", "shard-2"]


@pytest.mark.parametrize(("cpu", "why"), [("A", "ran twice"), ("B", "ran on different hardware")])
def test_duplicates_without_matrix_names_are_refused(cpu: str, why: str) -> None:
    one = report(record("t::a"), fp=fingerprint(cpu="A"))
    two = report(record("t::a"), fp=fingerprint(cpu=cpu))
    with pytest.raises(ReportError) as info:
        merge_reports([Shard(one, "one.json"), Shard(two, "two.json")])
    assert str(info.value) == (f"two.json: t::a is also in one.json and {why}; name their matrix "
                               "cells (NAME=PATH) to keep both")


def test_duplicates_in_different_matrix_cells_are_kept_apart() -> None:
    cpu = report(record("t::a", flops=1), record("t::only_cpu"), fp=fingerprint(cpu="A"))
    gpu = report(record("t::a", flops=2), fp=fingerprint(cpu="A", gpus=["H100"], matrix="gpu"))
    merged = merge_reports([Shard(cpu, "cpu.json", matrix="cpu"), Shard(gpu, "gpu.json")])
    assert [t.nodeid for t in merged.tests] == ["t::a @cpu", "t::a @gpu", "t::only_cpu"]
    assert merged.tests[1].extra["matrix"] == "gpu"
    assert merged.tests[1].extra["hardware"]["gpus"] == ["H100"]
    # The same matrix layout merged again pairs test by test on each cell's own hardware.
    c = compare_reports(merged, merged)
    assert [t.verdict for t in c.tests] == ["unchanged", "unchanged", "inconclusive"]


def test_remerging_keeps_the_original_provenance_and_refuses_same_names() -> None:
    inner = merge_reports([Shard(report(record("t::a")), "inner.json")])
    outer = merge_reports([Shard(inner, "merged.json"), Shard(report(record("t::b")), "b.json")])
    assert [t.extra["shard"] for t in outer.tests] == ["inner.json", "b.json"]
    with pytest.raises(ReportError, match="x.json: is given twice"):
        merge_reports([Shard(report(), "x.json"), Shard(report(), "x.json")])
    with pytest.raises(ValueError, match="reports must not be empty"):
        merge_reports([])


def test_one_shard_keeps_its_run_energy() -> None:
    shard = replace(report(record("t::a")), run_energy=energy(measured=3.0))
    assert merge_reports([shard]).run_energy == shard.run_energy
    assert merge_reports([shard, report(record("t::b"))]).run_energy is None
