"""The report file: strict reading with one-line errors, atomic writing, the terminal table."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from pytest_greennlp.errors import ReportError
from pytest_greennlp.records import (
    SCHEMA_VERSION,
    CarbonIntensity,
    Energy,
    EnergyPart,
    Fingerprint,
    Metric,
    Report,
    Settings,
    TestRecord,
    Timing,
    from_dict,
    to_dict,
)
from pytest_greennlp.report import (
    read_report,
    record_text,
    render_table,
    report_json,
    report_text,
    totals,
    write_report,
)


def make_report(n: int = 2) -> Report:
    tests = tuple(
        TestRecord(
            nodeid=f"tests/test_m.py::test_{i}",
            kind="infer",
            outcome="passed",
            timing=Timing(wall_s=0.5 * (i + 1), cpu_s=0.4, wall_samples_s=(0.5,), cpu_samples_s=(0.4,)),
            energy=Energy(
                parts=(EnergyPart("cpu", 2.0, "rapl", True, "package-0", "machine"),
                       EnergyPart("ram", 1.0, "estimate-ram-model", False, "model", "process")),
                measured_j=2.0, estimated_j=1.0,
            ),
        )
        for i in range(n)
    )
    return Report(
        tool_version="0.1.0", complete=True, exit_status=0, started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:00+00:00",
        fingerprint=Fingerprint(cpu_model="cpu", cpu_count=2, memory_total_bytes=1, platform="linux",
                                python="3.11", device="cpu"),
        carbon=CarbonIntensity(region="FRA", g_per_kwh=56.0, source="codecarbon", year=2023, pue=1.0),
        settings=Settings(repeats=1, warmup=0, energy_sources=("auto",)),
        tests=tests, totals=totals(tests),
    )


def test_round_trip(tmp_path: Path) -> None:
    report = make_report()
    path = tmp_path / "sub" / "r.json"
    write_report(report, path)
    assert read_report(path) == report
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left


def test_report_json_equals_to_dict_even_with_odd_values() -> None:
    """The fast writer and `to_dict` agree, including where the fast one must fall back."""
    report = make_report(3)
    assert report_json(report) == json.dumps(to_dict(report)) + "\n"
    odd = TestRecord(
        nodeid="t", kind="infer", outcome="passed",
        metrics=(Metric("loss", float("nan")),),  # no NaN in JSON: written as null
        extra={True: 1, None: 2, 3: [1.5, float("inf")], "m": MappingProxyType({"k": (1, 2)})},
    )
    text = report_json(replace(report, tests=(odd,)))
    assert text == json.dumps(to_dict(replace(report, tests=(odd,))), allow_nan=False) + "\n"
    test = json.loads(text)["tests"][0]
    assert test["metrics"][0]["value"] is None
    assert test["extra"] == {"true": 1, "null": 2, "3": [1.5, None], "m": {"k": [1, 2]}}


def test_totals_keep_bases_apart() -> None:
    t = make_report(3).totals
    assert (t.measured_j, t.estimated_j, t.tests) == (6.0, 3.0, 3)
    assert t.wall_s == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is not valid JSON"),
        (b'{"schema_version": 1, "tests": [', "is not valid JSON"),
        (b"\xff\xfe\x00garbage", "is not valid JSON"),
        (b"[1, 2]", "top level is not an object"),
        (b'{"tests": []}', "no integer schema_version"),
        (b'{"schema_version": true}', "no integer schema_version"),
        (b'{"schema_version": 99}', f"schema_version 99, newer than {SCHEMA_VERSION}; upgrade"),
        (b'{"schema_version": 0}', "which this version no longer reads"),
        (b'{"schema_version": 1, "x": NaN}', "NaN is not allowed"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_files_get_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "base.json"
    path.write_bytes(content)
    with pytest.raises(ReportError) as info:
        read_report(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "\n" not in message and len(message) < 400


def test_wrong_field_names_the_path(tmp_path: Path) -> None:
    data = to_dict(make_report())
    data["tests"][1]["timing"]["wall_s"] = "fast"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"Report.tests\[1\].timing.wall_s: expected a number, got 'fast'"):
        read_report(path)
    data["tests"][1]["timing"]["wall_s"] = 1.0
    data["tests"][0]["surprise"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"Report.tests\[0\]: unknown key 'surprise'"):
        read_report(path)
    del data["tests"][0]["surprise"]
    data["tests"][0]["kind"] = "<script>"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"expected one of 'train', 'infer', got '<script>'"):
        read_report(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such file"):
        read_report(tmp_path / "nope.json")
    with pytest.raises(ReportError, match="is a directory"):
        read_report(tmp_path)


def test_unwritable_path_is_report_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot write"):
        write_report(make_report(), blocker / "r.json")


def test_from_dict_is_strict() -> None:
    with pytest.raises(ValueError, match="missing key 'cpu_s'"):
        from_dict(Timing, {"wall_s": 1.0, "wall_samples_s": [], "cpu_samples_s": []})
    with pytest.raises(ValueError, match="expected an integer, got True"):
        from_dict(Settings, {"repeats": True, "warmup": 0, "energy_sources": []})


def test_table_sorted_by_cost_with_totals() -> None:
    report = make_report(3)
    lines = render_table(report, width=200)
    body = [line for line in lines if line.startswith("tests/")]
    assert [line.split()[0] for line in body] == [f"tests/test_m.py::test_{i}" for i in (2, 1, 0)]
    assert any(line.startswith("TOTAL") and "6J meas + 3J est" in line for line in lines)
    assert "56 g/kWh (FRA" in lines[-1]


def test_table_limit_keeps_the_most_expensive_rows_and_every_test_in_the_totals() -> None:
    report = make_report(4)
    lines = render_table(report, width=200, limit=2)
    body = [line.split()[0] for line in lines if line.startswith("tests/")]
    assert body == ["tests/test_m.py::test_3", "tests/test_m.py::test_2"]
    assert "... 2 cheaper tests not shown (every test is in the report)" in lines
    assert any(line.startswith("TOTAL") and "4 tests" in line for line in lines)
    assert render_table(report, width=200, limit=4) == render_table(report, width=200)
    assert "... 1 cheaper test not shown" in " ".join(render_table(report, width=200, limit=3))


def test_table_truncates_long_ids_from_the_left() -> None:
    report = make_report(1)
    long = Report(**{**report.__dict__, "tests": (TestRecord(nodeid="x" * 300 + "::test_end",
                                                              kind="train", outcome="failed"),)})
    lines = render_table(long, width=100)
    assert any(line.startswith("...") and "test_end" in line for line in lines)
    assert os.linesep not in "".join(lines)


def test_a_report_json_cannot_hold_is_a_report_error_not_a_crash(tmp_path: Path) -> None:
    bad = replace(make_report(1), notes=("ok",), tests=(
        TestRecord(nodeid="t", kind="infer", outcome="passed", extra={"obj": object()}),))
    with pytest.raises(ReportError, match="cannot be written: a value is not JSON"):
        write_report(bad, tmp_path / "r.json")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_fingerprint_is_validated_again_only_when_the_hooks_change_it() -> None:
    """Checkpoints ask the hooks every time; equal data reuses the validated fingerprint."""
    import types

    from pytest_greennlp.measure.fingerprint import default_fingerprint
    from pytest_greennlp.report import fingerprint_of

    data = default_fingerprint()
    answers = iter([dict(data), dict(data), {**data, "torch": "2.13.0"}, {**data, "cpu_count": "x"}])
    hook = types.SimpleNamespace(
        pytest_greennlp_generate_fingerprint=lambda config: next(answers),
        pytest_greennlp_update_fingerprint=lambda config, fingerprint: None,
    )
    config = types.SimpleNamespace(hook=hook)
    cache: dict[str, object] = {}
    first = fingerprint_of(config, cache)  # type: ignore[arg-type]
    assert fingerprint_of(config, cache) is first  # type: ignore[arg-type]
    later = fingerprint_of(config, cache)  # type: ignore[arg-type]
    assert later is not first and later.torch == "2.13.0"
    with pytest.raises(ReportError, match="cpu_count"):
        fingerprint_of(config, cache)  # type: ignore[arg-type]


def test_report_text_splices_test_texts_where_report_json_writes_tests(tmp_path: Path) -> None:
    # The session hands its tests over as JSON texts. A "tests": [] written earlier, in
    # user data of the fingerprint, or inside a note, must not be taken for the report's.
    report = make_report(3)
    report = replace(
        report,
        fingerprint=replace(report.fingerprint, extra={"tests": [], "x": '"tests": []'}),
        notes=('"tests": []',),
    )
    texts = [record_text(t) for t in report.tests]
    assert report_text(report, texts) + "\n" == report_json(report)
    write_report(replace(report, tests=()), tmp_path / "r.json", texts)
    assert read_report(tmp_path / "r.json") == report


def test_built_in_fingerprint_skips_checking_but_equals_from_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_greennlp.measure import fingerprint as fp
    from pytest_greennlp.records import Fingerprint, from_dict
    from pytest_greennlp.report import _built_in_fingerprint

    data = fp.default_fingerprint()
    gpu = {"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1", "driver": "550.1",
           "memory_total_bytes": 80 * 2**30}
    with_gpu = {**data, "device": "cuda", "gpus": [gpu], "extra": {"k": [1, 2]}}
    for built_in in (data, with_gpu):
        monkeypatch.setattr(fp, "default_fingerprint", lambda built_in=built_in: dict(built_in))
        fast = _built_in_fingerprint(dict(built_in))
        assert fast is not None and fast == from_dict(Fingerprint, built_in)
        assert list(fast.fields_dict()) == list(Fingerprint._names)
    # Changed by a hook: checked by `from_dict` instead.
    assert _built_in_fingerprint({**with_gpu, "cpu_count": "x"}) is None
