"""The ``greennlp`` command: subcommands, exit statuses and one-line errors on bad input."""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reportfactory import energy, record, report

from pytest_greennlp import cli
from pytest_greennlp.records import to_dict
from pytest_greennlp.report import read_report, write_report

FIVE = [1.0, 1.01, 0.99, 1.02, 0.98]


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, Path]:
    """base.json; same.json (no change); worse.json (twice the FLOPs, lower accuracy)."""
    def write(name: str, flops: int, acc: float) -> Path:
        path = tmp_path / name
        write_report(report(record("t::a", flops=flops, metrics={"acc": acc}, wall=FIVE,
                                   energy_=energy(estimated=1.0)),
                            record("t::b", flops=10)), path)
        return path
    return {"base": write("base.json", 100, 0.9), "same": write("same.json", 100, 0.9),
            "worse": write("worse.json", 200, 0.8)}


def test_show(capsys: pytest.CaptureFixture[str], reports: dict[str, Path]) -> None:
    code, out, err = run(capsys, "show", reports["base"])
    assert code == cli.EXIT_OK and err == ""
    assert "TOTAL" in out and "t::a" in out and "1J est" in out


def test_compare_pass_and_regression(capsys: pytest.CaptureFixture[str], reports: dict[str, Path]) -> None:
    code, out, err = run(capsys, "compare", reports["base"], reports["same"])
    assert code == cli.EXIT_OK and err == ""
    assert "greennlp compare: 2 paired test(s), 0 added, 0 removed" in out
    assert out.rstrip().endswith("greennlp gate: passed")
    code, out, _ = run(capsys, "compare", reports["base"], reports["worse"])
    assert code == cli.EXIT_REGRESSION
    assert "t::a: worse: acc -0.1 (worse); FLOPs +100.0%" in out
    assert "FAILED t::a: worse:" in out


def test_compare_json(capsys: pytest.CaptureFixture[str], reports: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "compare", reports["base"], reports["worse"], "--json")
    data = json.loads(out)
    assert code == data["exit_code"] == 1 and data["status"] == "regression"
    assert [t["verdict"] for t in data["comparison"]["tests"]] == ["worse", "unchanged"]
    assert data["gate"]["passed"] is False


def test_missing_baseline_is_exit_3_with_a_notice(
    capsys: pytest.CaptureFixture[str], reports: dict[str, Path], tmp_path: Path
) -> None:
    code, _out, err = run(capsys, "compare", tmp_path / "nope.json", reports["base"])
    assert code == cli.EXIT_NO_BASELINE
    assert err == f"greennlp: notice: no baseline ({tmp_path / 'nope.json'} does not exist); nothing compared\n"
    code, _, err = run(capsys, "compare", reports["base"], tmp_path / "nope.json")
    assert code == cli.EXIT_USAGE and err == f"greennlp: error: {tmp_path / 'nope.json'}: no such file\n"


def test_gate_with_limits(capsys: pytest.CaptureFixture[str], reports: dict[str, Path],
                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.greennlp.limits]\nmax_energy_j = 0.5\nfail_on = []\n")
    code, out, err = run(capsys, "gate", reports["base"], "--limits", pyproject)
    assert code == cli.EXIT_REGRESSION and err == ""
    assert "FAILED t::a: energy 1 J (estimated) exceeds max_energy_j = 0.5" in out
    monkeypatch.chdir(tmp_path)  # ./pyproject.toml is the default
    code, _, err = run(capsys, "gate", reports["base"], "--baseline", "nope.json")
    assert code == cli.EXIT_REGRESSION and "notice: no baseline" in err
    pyproject.write_text("[tool.greennlp.limits]\nmax_flops_increase_pct = 10\n")
    assert run(capsys, "gate", reports["same"], "--baseline", reports["base"])[0] == cli.EXIT_OK
    assert run(capsys, "gate", reports["same"])[0] == cli.EXIT_OK
    assert run(capsys, "gate", reports["same"], "--baseline", "nope.json")[0] == cli.EXIT_NO_BASELINE
    code, _, err = run(capsys, "compare", reports["base"], reports["same"], "--limits", "missing.toml")
    assert code == cli.EXIT_USAGE and err == "greennlp: error: missing.toml: no such file (expected a pyproject.toml)\n"
    pyproject.write_text("[tool.greennlp.limits]\nmax_flops = 1\n")
    code, _, err = run(capsys, "gate", reports["same"])
    assert code == cli.EXIT_USAGE and err.count("\n") == 1 and "unknown key 'max_flops'" in err


def test_hardware_override_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from reportfactory import fingerprint

    write_report(report(record("t::a", flops=1), fp=fingerprint(cpu="A")), tmp_path / "a.json")
    write_report(report(record("t::a", flops=1), fp=fingerprint(cpu="B")), tmp_path / "b.json")
    code, out, _ = run(capsys, "compare", tmp_path / "a.json", tmp_path / "b.json")
    assert code == cli.EXIT_OK and "REFUSED: hardware differs: cpu_model 'A' vs 'B'" in out
    code, out, _ = run(capsys, "compare", tmp_path / "a.json", tmp_path / "b.json",
                       "--allow-hardware-mismatch")
    assert "REFUSED" not in out and "t::a: unchanged" in out


def test_merge(capsys: pytest.CaptureFixture[str], reports: dict[str, Path], tmp_path: Path) -> None:
    out_path = tmp_path / "merged" / "all.json"
    code, out, err = run(capsys, "merge", out_path, f"cpu={reports['base']}", f"gpu={reports['worse']}")
    assert code == cli.EXIT_OK and err == ""
    assert out == f"greennlp: merged 2 report(s), 4 tests, into {out_path}\n"
    merged = read_report(out_path)
    assert [t.nodeid for t in merged.tests] == ["t::a @cpu", "t::a @gpu", "t::b @cpu", "t::b @gpu"]
    code, _, err = run(capsys, "merge", out_path, reports["base"], reports["same"])
    assert code == cli.EXIT_USAGE
    assert err == (f"greennlp: error: {reports['same']}: t::a is also in {reports['base']} and ran "
                   "twice; name their matrix cells (NAME=PATH) to keep both\n")


@pytest.mark.parametrize(
    "argv",
    [[], ["nope"], ["compare", "one.json"], ["compare", "a", "b", "--alpha", "2"],
     ["compare", "a", "b", "--min-effect", "x"], ["merge", "out.json"]],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == cli.EXIT_USAGE and out == ""
    assert err.count("\n") == 1 and err.startswith("greennlp") and err.endswith("(see greennlp --help)\n")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in cli.COMMANDS:
        assert name in out
    assert "exit status: 0 pass, 1 regression, 2 usage or input error, 3 no baseline" in out


def test_a_new_subcommand_is_one_dict_entry(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--times", type=int, default=1)

    def hello(args: argparse.Namespace) -> int:
        print("hello" * args.times)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "hello", cli.Command("say hello", add, hello))
    assert run(capsys, "hello", "--times", "2") == (0, "hellohello\n", "")


# --- fuzzed baselines --------------------------------------------------------------------------

VALID = json.dumps(to_dict(report(record("t::a", flops=1, wall=1.0))))
DEEP = '{"schema_version": 1, "tests": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (VALID[: len(VALID) // 2], "is not valid JSON"),
        (VALID.replace('"tests": [', '"tests": "oops", "x": ['), "is not a valid report"),
        (VALID.replace('"complete": true', '"complete": "yes"'),
         "is not a valid report: Report.complete: expected true or false, got 'yes'"),
        (VALID.replace('"wall_s": 1.0', '"wall_s": NaN', 1), "is not valid JSON (NaN is not allowed"),
        (VALID.replace('"schema_version": 1', '"schema_version": 2'), "has schema_version 2, newer than 1"),
        (DEEP, "is nested too deeply to be a report"),
        ("[" * 5000, "is"),
        ("", "is not valid JSON"),
        ("[]", "is not a pytest-greennlp report (top level is not an object)"),
        (b"\xff\xfe\x00garbage\x00\x01", "is not valid JSON"),
        ("\x1b[2J\x1b[31m" * 3, "is not valid JSON"),
        (None, "is a directory, not a report"),
    ],
    ids=["truncated", "wrong-type", "wrong-bool", "nan", "future", "deep", "unclosed", "empty",
         "list", "binary", "escapes", "directory"],
)
def test_fuzzed_baselines_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], reports: dict[str, Path], tmp_path: Path,
    content: str | bytes | None, problem: str,
) -> None:
    bad = tmp_path / "bad.json"
    if content is None:
        bad.mkdir()
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    for argv in (["compare", bad, reports["base"]], ["compare", reports["base"], bad],
                 ["gate", reports["base"], "--baseline", bad], ["show", bad], ["merge", tmp_path / "o.json", bad]):
        code, _out, err = run(capsys, *argv)
        assert code == cli.EXIT_USAGE
        assert err.count("\n") == 1 and err.startswith(f"greennlp: error: {bad}: {problem}"), err
        assert "\x1b" not in err


def _mutate(data: Any, path: list[int], value: Any) -> Any:
    """Replace the value at a pseudo-random position of a JSON tree."""
    node = data
    for step in path:
        if isinstance(node, dict) and node:
            key = sorted(node)[step % len(node)]
            if not isinstance(node[key], (dict, list)) or not node[key]:
                node[key] = value
                return data
            node = node[key]
        elif isinstance(node, list) and node:
            index = step % len(node)
            if not isinstance(node[index], (dict, list)) or not node[index]:
                node[index] = value
                return data
            node = node[index]
        else:
            break
    return data


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=6), value=_json)
def test_mutated_baselines_never_crash(capsys: pytest.CaptureFixture[str], path: list[int], value: Any) -> None:
    base = to_dict(report(record("t::a", flops=100, wall=FIVE, metrics={"acc": 0.5},
                                 energy_=energy(measured=FIVE, estimated=2.0))))
    head = copy.deepcopy(base)
    mutated = _mutate(copy.deepcopy(base), path, value)
    with tempfile.TemporaryDirectory() as folder:
        base_path, head_path = Path(folder) / "base.json", Path(folder) / "head.json"
        base_path.write_text(json.dumps(mutated))
        head_path.write_text(json.dumps(head))
        code, _, err = run(capsys, "compare", base_path, head_path)
    assert code in (cli.EXIT_OK, cli.EXIT_REGRESSION, cli.EXIT_USAGE)
    if code == cli.EXIT_USAGE:
        assert err.count("\n") == 1 and err.startswith(f"greennlp: error: {base_path}: ")


def test_huge_numbers_in_a_valid_baseline(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          reports: dict[str, Path]) -> None:
    text = VALID.replace('"wall_s": 1.0', '"wall_s": 1e400', 1).replace('"total": 1', '"total": ' + "9" * 400)
    (tmp_path / "huge.json").write_text(text)
    code, _out, err = run(capsys, "compare", tmp_path / "huge.json", reports["base"])
    assert code in (cli.EXIT_OK, cli.EXIT_REGRESSION) and err == ""
