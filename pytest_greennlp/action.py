"""The GitHub Action's comment step: settings from the environment, baseline, gate, comment, status.

``python -m pytest_greennlp.action`` (run by ``action/action.yml``) calls `main`, which
reads `ActionSettings` from the environment, builds the GitHub client and calls
`action`. `action` returns the exit status and takes the client as an argument, so
tests pass one pointed at a loopback server.

What `action` does, in order:

1. Refuses the unsafe setup (see `unsafe_reason`) unless ``allow-unsafe`` is set.
2. Works out the pull request: from the event for ``pull_request``; for
   ``workflow_run`` from the head SHA through the API, never from the artifact.
3. Reads the head report (untrusted data), the limits and the baseline: the base
   branch's report at the merge-base or its nearest ancestor that has one, from the
   artifacts of pushes to the base branch (or a file; or none).
4. Compares, gates, renders the Markdown, and writes it to the job summary first, so
   the summary survives whatever follows.
5. Updates the sticky comment in place (or creates it); on failure the job summary is
   the fallback and says why. Sets a commit status with a one-line reason.
6. Returns 1 when the gate failed and no accepting label is on the pull request, 2 on
   a setup error, else 0. A missing baseline is a notice, never a failure.

The token is a ``repr=False`` field and is only handed to `github.connect`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pytest_greennlp.comment import CommentContext, is_sticky, render_comment
from pytest_greennlp.compare import Comparison, compare_reports
from pytest_greennlp.errors import ConfigError, GitHubError, GreenNLPError, ReportError
from pytest_greennlp.gate import GateResult, Limits, evaluate_gates, load_limits
from pytest_greennlp.records import Report
from pytest_greennlp.report import parse_report, read_report

if TYPE_CHECKING:  # PyGithub is imported by `main` only, through github.py
    from pytest_greennlp.github import GitHubClient

__all__ = [
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_SETUP",
    "ActionSettings",
    "Outcome",
    "Target",
    "action",
    "add_arguments",
    "main",
    "prepare",
    "run",
    "unsafe_reason",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_SETUP = 2

CommentMode = Literal["sticky", "off"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: Largest event payload read (GitHub's are far smaller).
_MAX_EVENT_BYTES = 25 * 1024 * 1024


# --- settings ---------------------------------------------------------------------------


def _clean_bool(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def _clean_comment(value: str) -> CommentMode:
    text = value.strip().lower() or "sticky"
    if text not in ("sticky", "off"):
        raise ValueError("expected sticky or off")
    return text  # type: ignore[return-value]


def _clean_repository(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value.strip()):
        raise ValueError("expected owner/name")
    return value.strip()


def _clean_url(value: str) -> str:
    text = value.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", text):
        raise ValueError("expected an http(s) URL")
    return text


def _clean_optional_path(value: str) -> Path | None:
    return Path(value.strip()) if value.strip() else None


def _clean_optional(value: str) -> str | None:
    return value.strip() or None


@dataclass(frozen=True)
class ActionSettings:
    """The Action's inputs and the workflow's context, read from the environment.

    Inputs arrive as ``GREENNLP_*`` variables (``action.yml`` maps every input to one);
    the context as GitHub's own ``GITHUB_*`` variables. The token is not in the repr,
    so logging the settings is safe.
    """

    repository: str
    event_name: str
    event_path: Path
    token: str = field(default="", repr=False)
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    run_id: str | None = None
    sha: str | None = None
    workspace: Path | None = None
    step_summary: Path | None = None
    output: Path | None = None
    report: Path = Path("green-report.json")
    baseline: str = "artifact"
    baseline_artifact: str = "green-report"
    limits: Path | None = Path("pyproject.toml")
    comment: CommentMode = "sticky"
    comment_key: str | None = None
    status: bool = True
    status_context: str = "pytest-greennlp"
    accept_label: str | None = "greennlp-accept-regression"
    fail_on_regression: bool = True
    allow_unsafe: bool = False
    allow_hardware_mismatch: bool = False
    plots_artifact: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ActionSettings:
        """Build the settings; one `ConfigError` lists every missing or invalid variable."""
        converters: dict[str, tuple[str, Callable[[str], Any]]] = {
            "GITHUB_REPOSITORY": ("repository", _clean_repository),
            "GITHUB_EVENT_NAME": ("event_name", str.strip),
            "GITHUB_EVENT_PATH": ("event_path", lambda v: Path(v.strip())),
            "GREENNLP_TOKEN": ("token", str.strip),
            "GITHUB_API_URL": ("api_url", _clean_url),
            "GITHUB_SERVER_URL": ("server_url", _clean_url),
            "GITHUB_RUN_ID": ("run_id", _clean_optional),
            "GITHUB_SHA": ("sha", _clean_optional),
            "GITHUB_WORKSPACE": ("workspace", _clean_optional_path),
            "GITHUB_STEP_SUMMARY": ("step_summary", _clean_optional_path),
            "GITHUB_OUTPUT": ("output", _clean_optional_path),
            "GREENNLP_REPORT": ("report", lambda v: Path(v.strip() or "green-report.json")),
            "GREENNLP_BASELINE": ("baseline", lambda v: v.strip() or "artifact"),
            "GREENNLP_BASELINE_ARTIFACT": ("baseline_artifact",
                                           lambda v: v.strip() or "green-report"),
            "GREENNLP_LIMITS": ("limits", _clean_optional_path),
            "GREENNLP_COMMENT": ("comment", _clean_comment),
            "GREENNLP_COMMENT_KEY": ("comment_key", _clean_optional),
            "GREENNLP_STATUS": ("status", _clean_bool),
            "GREENNLP_STATUS_CONTEXT": ("status_context", lambda v: v.strip() or "pytest-greennlp"),
            "GREENNLP_ACCEPT_LABEL": ("accept_label", _clean_optional),
            "GREENNLP_FAIL_ON_REGRESSION": ("fail_on_regression", _clean_bool),
            "GREENNLP_ALLOW_UNSAFE": ("allow_unsafe", _clean_bool),
            "GREENNLP_ALLOW_HARDWARE_MISMATCH": ("allow_hardware_mismatch", _clean_bool),
            "GREENNLP_PLOTS_ARTIFACT": ("plots_artifact", _clean_optional),
        }
        required = ["GITHUB_REPOSITORY", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH"]
        values: dict[str, Any] = {}
        invalid: list[str] = []
        for name, (attr, convert) in converters.items():
            if name not in environ:
                continue
            try:
                values[attr] = convert(environ[name])
            except ValueError as exc:
                shown = "***" if name == "GREENNLP_TOKEN" else repr(environ[name][:60])
                invalid.append(f"{name}={shown} ({exc})")
        missing = [name for name in required if not environ.get(name, "").strip()]
        needs_api = (values.get("comment", "sticky") != "off" or values.get("status", True)
                     or values.get("baseline", "artifact") == "artifact")
        if needs_api and not values.get("token"):
            missing.append("GREENNLP_TOKEN")
        problems = []
        if missing:
            problems.append(f"missing environment variable(s): {', '.join(missing)}")
        if invalid:
            problems.append(f"invalid: {'; '.join(invalid)}")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**values)


# --- the event ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What this run reports on: the pull request (if any) and the head commit."""

    pr_number: int | None
    head_sha: str | None
    base_ref: str | None = None
    base_sha: str | None = None
    labels: tuple[str, ...] = ()
    from_fork: bool = False
    run_url: str | None = None
    note: str = ""


def _load_event(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_EVENT_BYTES:
            raise ConfigError(f"{path}: the event payload is larger than {_MAX_EVENT_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"GITHUB_EVENT_PATH {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GITHUB_EVENT_PATH {path}: not a readable JSON event ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"GITHUB_EVENT_PATH {path}: the event is not a JSON object")
    return data


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value) else None


def _workspace_head(workspace: Path | None) -> str | None:
    """The commit checked out in ``workspace`` (read from .git, without running git)."""
    if workspace is None:
        return None
    git = workspace / ".git"
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return _sha(head)
        ref = head[5:].strip()
        ref_file = git / ref
        if ref_file.is_file():
            return _sha(ref_file.read_text(encoding="utf-8").strip())
        packed = (git / "packed-refs").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in packed.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref:
            return _sha(parts[0])
    return None


def unsafe_reason(settings: ActionSettings, event: Mapping[str, Any]) -> str | None:
    """Why this setup is unsafe, or None.

    ``pull_request_target`` gives a write token and secrets to a job started by a pull
    request; a report there can only come from running the pull request's code (its
    tests and ``conftest.py``), which could then steal the token. A ``workflow_run``
    job that has a fork's head commit checked out is the same mistake.
    """
    head_sha = None
    if settings.event_name == "pull_request_target":
        return ("refusing to run on pull_request_target: that event gives a write token to a "
                "job started by a pull request, and a report there means the pull request's "
                "code ran (pytest runs its tests and conftest.py). Measure in an unprivileged "
                "pull_request workflow and comment from a workflow_run workflow (see "
                "examples/workflows/green-fork-*.yml), or set allow-unsafe: true if this job "
                "runs no pull request code")
    if settings.event_name == "workflow_run":
        head_sha = _sha(_get(event, "workflow_run", "head_sha"))
        head_repo = _get(event, "workflow_run", "head_repository", "full_name")
        fork = isinstance(head_repo, str) and head_repo != settings.repository
        if fork and head_sha and _workspace_head(settings.workspace) == head_sha:
            return ("refusing to run: this workflow_run job has the fork's head commit "
                    f"{head_sha[:12]} checked out, so a privileged job is running untrusted code. "
                    "Check out the default branch (or nothing) and read the report from the "
                    "artifact; set allow-unsafe: true to override")
    return None


def _target_from_event(settings: ActionSettings, event: Mapping[str, Any],
                       client: GitHubClient | None) -> Target:
    name = settings.event_name
    if name in ("pull_request", "pull_request_target"):
        pr = _get(event, "pull_request")
        number = _get(pr, "number")
        head_repo = _get(pr, "head", "repo", "full_name")
        base_repo = _get(pr, "base", "repo", "full_name")
        target = Target(
            pr_number=number if isinstance(number, int) else None,
            head_sha=_sha(_get(pr, "head", "sha")),
            base_ref=_get(pr, "base", "ref") if isinstance(_get(pr, "base", "ref"), str) else None,
            base_sha=_sha(_get(pr, "base", "sha")),
            labels=tuple(str(_get(label, "name")) for label in (_get(pr, "labels") or [])
                         if isinstance(_get(label, "name"), str)),
            from_fork=head_repo != base_repo,
            run_url=_run_url(settings),
        )
        if client is not None and target.pr_number is not None:
            try:  # labels may have changed since the event (a re-run keeps the old payload)
                info = client.pull_request(target.pr_number)
                target = dataclasses.replace(target, labels=info.labels)
            except GitHubError as exc:
                logger.warning("using the event's labels: %s", exc)
        return target
    if name == "workflow_run":
        run = _get(event, "workflow_run")
        head_sha = _sha(_get(run, "head_sha"))
        html_url = _get(run, "html_url")
        run_url = html_url if isinstance(html_url, str) else None
        if _get(run, "event") != "pull_request" or head_sha is None:
            return Target(None, head_sha, run_url=run_url,
                          note="the measuring run was not for a pull request")
        if client is None:
            return Target(None, head_sha, run_url=run_url, note="no token to find the pull request")
        number = None
        for pr in _get(run, "pull_requests") or []:  # empty for forks
            if _get(pr, "head", "sha") == head_sha and isinstance(_get(pr, "number"), int):
                number = _get(pr, "number")
                break
        if number is not None:
            info = client.pull_request(number)
        else:
            owner = _get(run, "head_repository", "owner", "login")
            branch = _get(run, "head_branch")
            found = client.pull_for_sha(head_sha,
                                        head_owner=owner if isinstance(owner, str) else None,
                                        head_branch=branch if isinstance(branch, str) else None)
            if found is None:
                return Target(None, head_sha, run_url=run_url,
                              note=f"no open pull request has head {head_sha[:12]} (closed, or "
                                   "pushed to since; nothing to comment on)")
            info = found
        if info.head_sha != head_sha:
            return Target(None, head_sha, run_url=run_url,
                          note=f"pull request #{info.number} has moved on to "
                               f"{info.head_sha[:12]}; not commenting for {head_sha[:12]}")
        return Target(info.number, head_sha, info.base_ref, info.base_sha, info.labels,
                      info.from_fork, run_url)
    return Target(None, _sha(settings.sha), run_url=_run_url(settings),
                  note=f"event {name!r} has no pull request")


def _run_url(settings: ActionSettings) -> str | None:
    if not settings.run_id or not settings.run_id.isdigit():
        return None
    return f"{settings.server_url}/{settings.repository}/actions/runs/{settings.run_id}"


# --- baseline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Baseline:
    report: Report | None
    sha: str | None
    note: str


def _baseline(settings: ActionSettings, target: Target, client: GitHubClient | None) -> _Baseline:
    source = settings.baseline
    if source == "none":
        return _Baseline(None, None, "no baseline configured")
    if source != "artifact":
        path = Path(source)
        if not (path.exists() or path.is_symlink()):
            return _Baseline(None, None, f"no baseline file at {source}")
        return _Baseline(read_report(path), None, f"file {source}")
    if client is None:
        return _Baseline(None, None, "no token to look up the baseline artifact")
    if target.head_sha is None:
        return _Baseline(None, None, "no head commit to find a baseline for")
    name = settings.baseline_artifact
    try:
        if target.pr_number is not None and target.base_ref:
            start = client.merge_base(target.base_sha or target.base_ref, target.head_sha)
            branch = target.base_ref
            lookup = client.find_baseline_artifact(name, branch=branch, start=start)
            where = f"merge-base {start[:12]}"
        else:
            return _Baseline(None, None, "not a pull request: nothing to compare against")
        if lookup.artifact is None:
            return _Baseline(None, None, lookup.reason)
        art = lookup.artifact
        raw = client.download_artifact_file(art, settings.report.name)
        report = parse_report(raw, f"artifact {name!r} of {art.head_sha[:12]}")
    except (GitHubError, ReportError) as exc:
        return _Baseline(None, None, f"baseline unavailable: {exc}")
    distance = ("at the " + where if art.head_sha == start else
                f"nearest ancestor of the {where} with a report")
    return _Baseline(report, art.head_sha,
                     f"artifact {name!r} from {branch}, {distance}")


# --- the step ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What `prepare` computed: the Markdown and the verdicts behind it."""

    markdown: str
    comparison: Comparison | None
    gate: GateResult
    accepted_by: str | None

    @property
    def gate_state(self) -> str:
        if self.gate.passed:
            return "passed"
        return "accepted" if self.accepted_by else "failed"

    def reason(self) -> str:
        """The one-line reason for the commit status."""
        if not self.gate.passed:
            first = self.gate.failures[0].message
            more = f" (+{len(self.gate.failures) - 1} more)" if len(self.gate.failures) > 1 else ""
            prefix = f"accepted by label {self.accepted_by}: " if self.accepted_by else ""
            return prefix + first + more
        if self.comparison is None:
            return "no baseline; absolute limits passed"
        return f"{self.comparison.total.verdict}: every limit passed"


def prepare(head: Report, baseline: Report | None, limits: Limits, context: CommentContext,
            *, labels: Sequence[str] = (), accept_label: str | None = None,
            allow_hardware_mismatch: bool = False) -> Outcome:
    """Compare, gate and render: the pure middle of the step, shared with ``--dry-run``."""
    comparison = None
    if baseline is not None:
        comparison = compare_reports(baseline, head,
                                     allow_hardware_mismatch=allow_hardware_mismatch)
    gate = evaluate_gates(comparison, head, limits)
    accepted_by = accept_label if (not gate.passed and accept_label and accept_label in labels) \
        else None
    context = dataclasses.replace(context, accepted_by=accepted_by)
    markdown = render_comment(head, comparison, gate, context)
    return Outcome(markdown, comparison, gate, accepted_by)


def _command(out: TextIO, kind: str, message: str) -> None:
    """A workflow command (``::error::``), escaped so report text cannot inject another."""
    text = " ".join(message.split())
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    out.write(f"::{kind} title=pytest-greennlp::{text}\n")


def _append(path: Path | None, text: str) -> bool:
    if path is None:
        return False
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
        return True
    except OSError as exc:
        logger.warning("cannot write %s: %s", path, exc.strerror or exc)
        return False


def _set_outputs(settings: ActionSettings, values: Mapping[str, str]) -> None:
    lines = "".join(f"{k}={' '.join(str(v).split())}\n" for k, v in values.items())
    _append(settings.output, lines)


def action(settings: ActionSettings, client: GitHubClient | None, *,
           out: TextIO | None = None) -> int:
    """Run the comment step; return the exit status (see the module docstring).

    Parameters
    ----------
    settings : ActionSettings
        From `ActionSettings.from_environ`.
    client : GitHubClient or None
        The GitHub client (None: no API calls; summary only).
    out : text stream, optional
        Where workflow commands (``::error::``, ``::notice::``) go; stdout by default.
    """
    out = out or sys.stdout
    try:
        event = _load_event(settings.event_path)
    except ConfigError as exc:
        _command(out, "error", str(exc))
        return EXIT_SETUP
    refusal = unsafe_reason(settings, event)
    if refusal is not None and not settings.allow_unsafe:
        _command(out, "error", refusal)
        _append(settings.step_summary, f"### 🌱 pytest-greennlp\n\n❌ {refusal}\n")
        _set_outputs(settings, {"gate": "refused"})
        return EXIT_SETUP
    if refusal is not None:
        _command(out, "warning", f"allow-unsafe is set; going on although {refusal}")

    try:
        target = _target_from_event(settings, event, client)
    except GitHubError as exc:
        _command(out, "warning", f"cannot find the pull request: {exc}")
        target = Target(None, _sha(settings.sha), run_url=_run_url(settings), note=str(exc))
    if target.note:
        _command(out, "notice", target.note)

    try:
        head = read_report(settings.report)
        limits = Limits()
        if settings.limits is not None and settings.limits.is_file():
            limits = load_limits(settings.limits)
        elif settings.limits is not None and settings.limits != Path("pyproject.toml"):
            raise ConfigError(f"limits file {settings.limits}: no such file")
    except GreenNLPError as exc:
        _command(out, "error", str(exc))
        _append(settings.step_summary, "### 🌱 pytest-greennlp\n\n❌ "
                + " ".join(str(exc).split()) + "\n")
        _set_outputs(settings, {"gate": "error"})
        return EXIT_SETUP

    try:
        base = _baseline(settings, target, client)
    except ReportError as exc:
        base = _Baseline(None, None, f"baseline unreadable: {exc}")
    if base.report is None:
        _command(out, "notice", f"no baseline: {base.note}; the check passes on absolute limits")

    plots_url = None
    if settings.plots_artifact and target.run_url:
        plots_url = target.run_url + "#artifacts"
    context = CommentContext(key=settings.comment_key, head_sha=target.head_sha,
                             base_report=base.report, baseline_sha=base.sha,
                             baseline_note=base.note, run_url=target.run_url,
                             plots_url=plots_url)
    outcome = prepare(head, base.report, limits, context, labels=target.labels,
                      accept_label=settings.accept_label,
                      allow_hardware_mismatch=settings.allow_hardware_mismatch)

    # The summary first: it must survive anything the API does next.
    summary_ok = _append(settings.step_summary, outcome.markdown)

    comment_url = ""
    if settings.comment == "sticky" and target.pr_number is not None and client is not None:
        key = settings.comment_key
        try:
            result = client.upsert_comment(target.pr_number, outcome.markdown,
                                           lambda body: is_sticky(body, key))
            comment_url = result.url
            logger.info("comment %s (%s)", result.action, result.url)
        except GitHubError as exc:
            hint = (" (a pull request from a fork gets a read-only token under pull_request; "
                    "use the workflow_run split)" if target.from_fork else "")
            _command(out, "warning", f"could not comment: {exc}{hint}; the job summary has "
                                     "the same content")
            _append(settings.step_summary,
                    f"\n> [!WARNING]\n> Could not post the pull request comment: "
                    f"{' '.join(str(exc).split())}{hint}. This summary is the same report.\n")
    elif settings.comment == "sticky" and target.pr_number is None and not summary_ok:
        _command(out, "notice", "no pull request and no job summary: the report is only in the log")

    if settings.status and client is not None and target.head_sha is not None:
        state: Literal["success", "failure"] = (
            "failure" if outcome.gate_state == "failed" else "success")
        context_name = settings.status_context + (
            f" ({settings.comment_key})" if settings.comment_key else "")
        try:
            client.set_status(target.head_sha, state, outcome.reason(), context=context_name,
                              target_url=target.run_url if target.run_url and
                              target.run_url.startswith("https://") else None)
        except GitHubError as exc:
            _command(out, "warning", f"could not set the commit status: {exc}")

    verdict = outcome.comparison.total.verdict if outcome.comparison else "no-baseline"
    _set_outputs(settings, {"gate": outcome.gate_state, "verdict": verdict,
                            "comment-url": comment_url, "baseline-sha": base.sha or ""})
    if outcome.gate_state == "failed":
        _command(out, "error", f"efficiency gate failed: {outcome.reason()}")
        return EXIT_REGRESSION if settings.fail_on_regression else EXIT_OK
    if outcome.gate_state == "accepted":
        _command(out, "warning", outcome.reason())
    return EXIT_OK


def _client_for(settings: ActionSettings) -> GitHubClient | None:
    if not settings.token:
        return None
    from pytest_greennlp.github import GitHubClient, connect

    return GitHubClient(connect(settings.token, api_url=settings.api_url), settings.repository)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``action/action.yml``: settings from the environment, then `action`."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_greennlp.action",
        description="The pytest-greennlp GitHub Action's comment step; configured through "
                    "GREENNLP_* and GITHUB_* environment variables (see action/action.yml).")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        settings = ActionSettings.from_environ(os.environ)
        client = _client_for(settings)
    except GreenNLPError as exc:
        _command(sys.stdout, "error", str(exc))
        return EXIT_SETUP
    logger.info("settings: %s", settings)
    return action(settings, client)


# --- ``greennlp comment`` -----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``greennlp comment``."""
    parser.add_argument("report", type=Path, metavar="HEAD", help="the report to comment on")
    parser.add_argument("--baseline", type=Path, metavar="BASE",
                        help="the baseline report (none: the comment says so)")
    parser.add_argument("--limits", type=Path, metavar="PYPROJECT",
                        help="[tool.greennlp.limits] from this pyproject.toml "
                             "(default: ./pyproject.toml if present)")
    parser.add_argument("--key", metavar="KEY", help="the sticky-comment key (matrix cell)")
    parser.add_argument("--label", action="append", default=[], metavar="LABEL",
                        help="a pull request label to assume (repeatable)")
    parser.add_argument("--accept-label", default="greennlp-accept-regression", metavar="LABEL",
                        help="the label that accepts a regression")
    parser.add_argument("--allow-hardware-mismatch", action="store_true",
                        help="compare time and energy measured on different hardware")
    parser.add_argument("--dry-run", action="store_true", required=True,
                        help="print exactly the Markdown the bot would post; touch nothing "
                             "(required: posting happens in the Action)")


def run(args: argparse.Namespace) -> int:
    """``greennlp comment --dry-run``: print the Markdown; exit 1 if the gate fails."""
    head = read_report(args.report)
    baseline = None
    note = "no baseline given"
    if args.baseline is not None:
        if args.baseline.exists() or args.baseline.is_symlink():
            baseline = read_report(args.baseline)
            note = f"file {args.baseline}"
        else:
            note = f"no baseline file at {args.baseline}"
    limits = Limits()
    if args.limits is not None:
        if not args.limits.is_file():
            raise ConfigError(f"{args.limits}: no such file (expected a pyproject.toml)")
        limits = load_limits(args.limits)
    elif Path("pyproject.toml").is_file():
        limits = load_limits(Path("pyproject.toml"))
    context = CommentContext(key=args.key, base_report=baseline, baseline_note=note)
    outcome = prepare(head, baseline, limits, context, labels=args.label,
                      accept_label=args.accept_label,
                      allow_hardware_mismatch=args.allow_hardware_mismatch)
    sys.stdout.write(outcome.markdown)
    return EXIT_REGRESSION if outcome.gate_state == "failed" else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
