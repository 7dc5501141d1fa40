"""The GitHub REST calls of the Action, through PyGithub: sticky comment, status, baseline, PR lookup.

This is the only module that imports PyGithub. `connect` builds the PyGithub client;
`GitHubClient` wraps an injected one, so tests point it at a loopback server.

Every call goes through one retry loop:

* 5xx answers, timeouts and dropped connections are retried with exponential backoff
  (``RetryPolicy``); a POST that timed out may have landed, which the sticky-comment
  clean-up below absorbs.
* A rate limit (403 or 429 with ``x-ratelimit-remaining: 0``, a ``retry-after``
  header, or a "rate limit" message) waits for the reset when that is within
  ``RetryPolicy.max_rate_limit_wait_s`` in all, else gives up with the reset time.
* Everything else becomes one `GitHubError` line that says what was being done, the
  status, GitHub's own message and the usual cause (401 token, 403 permission, 404 gone
  or expired, 410 expired, 422 rejected).

The token lives only inside PyGithub's ``Auth.Token``: it is never formatted into a
message or a log record, and the artifact download sends no credentials to the storage
host that GitHub redirects to.

Sticky comment and races
------------------------
`GitHubClient.upsert_comment` lists every comment of the pull request (all pages) and
keeps those that are ours: written by our login (or, when the token cannot tell, by a
bot) and accepted by the ``owns`` predicate (the hidden marker). If there is one, the
oldest is edited in place and any newer ones are deleted. If there is none, it creates
one, lists again and keeps only the oldest of ours: when two runs race, both create,
both see both, the newer comment is deleted (by whichever run gets there first; a 404
on delete is fine) and the run whose comment was deleted writes its body into the
survivor. The oldest marker comment therefore always survives and the last writer's
body wins. If the listing lags behind a create, the duplicate is removed by the next
run, which also deletes extras.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import requests
from github import Auth, Github, GithubException
from github.IssueComment import IssueComment
from github.PullRequest import PullRequest
from github.Repository import Repository

from pytest_greennlp import __version__
from pytest_greennlp.errors import GitHubError, ReportError

__all__ = [
    "ArtifactRef",
    "BaselineLookup",
    "CommentOutcome",
    "GitHubClient",
    "PullInfo",
    "RetryPolicy",
    "StatusState",
    "connect",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The commit-status states GitHub accepts.
StatusState = Literal["error", "failure", "pending", "success"]

#: GitHub truncates nothing: a longer status description is a 422.
_STATUS_DESCRIPTION_CHARS = 140
#: The login that owns comments made with the workflow's ``GITHUB_TOKEN``.
_ACTIONS_BOT = "github-actions[bot]"
_DEFAULT_API_URL = "https://api.github.com"
#: Most rate-limit waits in one call (a server that keeps answering "retry after 0").
_MAX_RATE_WAITS = 5


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per call, backoff, and the longest rate-limit wait.

    ``backoff_s * 2**(attempt - 1)`` seconds pass between attempts, at most
    ``max_backoff_s``. Rate-limit waits add up over the client's life and stop at
    ``max_rate_limit_wait_s``.
    """

    attempts: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_rate_limit_wait_s: float = 300.0

    def __post_init__(self) -> None:
        # Validate the arguments.
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1.")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.max_rate_limit_wait_s < 0:
            raise ValueError("backoff_s, max_backoff_s and max_rate_limit_wait_s must be >= 0.")


@dataclass(frozen=True)
class CommentOutcome:
    """What `GitHubClient.upsert_comment` did: which comment now holds the body."""

    comment_id: int
    url: str
    action: Literal["created", "updated", "unchanged"]
    deleted: tuple[int, ...] = ()


@dataclass(frozen=True)
class PullInfo:
    """The parts of a pull request the Action needs."""

    number: int
    state: str
    head_sha: str
    head_ref: str
    head_repo: str | None
    base_ref: str
    base_sha: str
    base_repo: str
    labels: tuple[str, ...] = ()
    html_url: str = ""

    @property
    def from_fork(self) -> bool:
        """Whether the head branch lives in another repository (or a deleted one)."""
        return self.head_repo is None or self.head_repo != self.base_repo


@dataclass(frozen=True)
class ArtifactRef:
    """A workflow-run artifact: which run and commit produced it."""

    id: int
    name: str
    run_id: int
    head_sha: str
    head_branch: str
    size_in_bytes: int
    expired: bool = False


@dataclass(frozen=True)
class BaselineLookup:
    """The outcome of a baseline search: the artifact found, or why there is none."""

    artifact: ArtifactRef | None
    reason: str
    merge_base: str | None = None
    commits_searched: int = 0


def connect(
    token: str,
    *,
    api_url: str = _DEFAULT_API_URL,
    timeout_s: int = 15,
    per_page: int = 100,
    seconds_between_writes: float | None = 1.0,
) -> Github:
    """Build a PyGithub client for ``api_url`` that does no retrying of its own.

    Retries live in `GitHubClient`, so they can be counted and tested. Objects are lazy:
    a repository or issue is not fetched before it is used. ``seconds_between_writes``
    follows GitHub's advice against secondary rate limits.
    """
    # Validate the arguments.
    if not token:
        raise GitHubError("no GitHub token given; pass the token input (usually github.token)")
    parsed = urllib.parse.urlparse(api_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise GitHubError(f"api url {api_url!r} is not an http(s) URL")
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise GitHubError(f"api url {api_url!r} must use https (plain http only on loopback)")

    return Github(
        auth=Auth.Token(token),
        base_url=api_url.rstrip("/"),
        timeout=timeout_s,
        user_agent=f"pytest-greennlp/{__version__}",
        per_page=per_page,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=seconds_between_writes,
        lazy=True,
    )


# --- helpers ------------------------------------------------------------------------


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _github_message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        message = _one_line(data.get("message") or "", 160)
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            details = []
            for item in errors[:3]:
                if isinstance(item, dict):
                    details.append(str(item.get("message") or item.get("code") or item))
                else:
                    details.append(str(item))
            message = f"{message} ({_one_line('; '.join(details), 160)})" if message else _one_line(
                "; ".join(details), 160)
        return message
    return _one_line(data or "", 160)


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value)
    return None


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S UTC")


_HINTS = {
    401: "the token is invalid or expired; check the token input",
    403: "the token lacks a permission",
    404: "not found: the pull request, run or artifact may be gone or expired, or the token "
         "cannot see the repository",
    410: "gone: the artifact has expired or was deleted",
    422: "GitHub rejected the request as invalid",
}


class GitHubClient:
    """One repository's GitHub calls, with retries and one-line errors.

    Parameters
    ----------
    client : github.Github
        A PyGithub client, e.g. from `connect`; tests build one for a loopback server.
    repository : str
        ``owner/name``.
    retry : RetryPolicy, optional
        Attempts, backoff and the longest rate-limit wait.
    sleep, clock : callables, optional
        ``time.sleep`` and ``time.time`` unless injected (tests skip the waiting).
    download_timeout_s : float, optional
        Timeout of the artifact download from the storage host.
    """

    def __init__(
        self,
        client: Github,
        repository: str,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        download_timeout_s: float = 60.0,
    ) -> None:
        # Validate the arguments.
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
            raise GitHubError(f"repository {repository!r} is not of the form owner/name")

        self._gh = client
        self.repository = repository
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._download_timeout_s = download_timeout_s
        self._rate_waited_s = 0.0
        self._login: str | None = None
        self._login_known = False
        self._repo: Repository | None = None
        self.calls = 0  # API calls attempted, for diagnosis

    # --- the retry loop ---------------------------------------------------------

    @property
    def _repository(self) -> Repository:
        if self._repo is None:
            self._repo = self._gh.get_repo(self.repository)
        return self._repo

    def _call(self, what: str, fn: Callable[[], T], *, permission: str = "") -> T:
        """Run ``fn`` with retries; turn every failure into one `GitHubError` line."""
        policy = self._retry
        attempt = 0
        rate_waits = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                return fn()
            except GithubException as exc:
                wait = self._rate_limit_wait(exc)
                if wait is not None and rate_waits < _MAX_RATE_WAITS:
                    self._wait_for_rate_limit(what, wait)
                    rate_waits += 1
                    attempt -= 1  # a rate-limit wait is not a failed attempt
                    continue
                if wait is not None:
                    raise GitHubError(f"{what}: still rate limited after {rate_waits} waits; "
                                      "re-run the job later") from exc
                status = exc.status
                if status >= 500 and attempt < policy.attempts:
                    self._backoff(what, attempt, f"HTTP {status}")
                    continue
                raise GitHubError(self._explain(what, exc, attempt, permission)) from exc
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                if attempt < policy.attempts:
                    self._backoff(what, attempt, kind)
                    continue
                raise GitHubError(
                    f"{what}: no answer from GitHub after {attempt} attempts ({kind})"
                ) from exc

    def _backoff(self, what: str, attempt: int, why: str) -> None:
        delay = min(self._retry.backoff_s * 2 ** (attempt - 1), self._retry.max_backoff_s)
        logger.warning("%s: %s; retrying in %.1f s (attempt %d of %d)",
                       what, why, delay, attempt + 1, self._retry.attempts)
        self._sleep(delay)

    def _rate_limit_wait(self, exc: GithubException) -> float | None:
        """Seconds to wait if ``exc`` is a rate limit, else None."""
        if exc.status not in (403, 429):
            return None
        headers = exc.headers or {}
        retry_after = _header(headers, "retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        remaining = _header(headers, "x-ratelimit-remaining")
        reset = _header(headers, "x-ratelimit-reset")
        if remaining == "0" and reset is not None:
            try:
                return max(0.0, float(reset) - self._clock()) + 1.0
            except ValueError:
                return 60.0
        message = _github_message(exc).lower()
        if "rate limit" in message:
            return 60.0  # secondary rate limit without a retry-after: GitHub advises a minute
        if exc.status == 429:
            return 60.0
        return None

    def _wait_for_rate_limit(self, what: str, wait: float) -> None:
        cap = self._retry.max_rate_limit_wait_s
        left = cap - self._rate_waited_s
        if wait > left:
            raise GitHubError(
                f"{what}: GitHub API rate limit exceeded; it resets at "
                f"{_utc(self._clock() + wait)} (in {wait:.0f} s), beyond the {cap:.0f} s this "
                "action waits; re-run the job later"
            )
        logger.warning("%s: GitHub API rate limit; waiting %.0f s for the reset", what, wait)
        self._rate_waited_s += wait
        self._sleep(wait)

    def _explain(self, what: str, exc: GithubException, attempt: int, permission: str) -> str:
        status = exc.status
        message = _github_message(exc)
        said = f" ({message})" if message else ""
        if status >= 500:
            return f"{what}: GitHub answered HTTP {status}{said} {attempt} times; giving up"
        hint = _HINTS.get(status, "unexpected answer")
        if status == 403 and permission:
            hint = f"the token lacks the {permission!r} permission (or a fork's pull request " \
                   "has a read-only token; see the fork workflows)"
        return f"{what}: HTTP {status}{said}: {hint}"

    # --- identity ---------------------------------------------------------------

    def login(self) -> str | None:
        """Our login, or None for an installation token (``GITHUB_TOKEN``), which has none."""
        if not self._login_known:
            def fetch() -> str | None:
                try:
                    return str(self._gh.get_user().login)
                except GithubException as exc:
                    if exc.status in (403, 404) and self._rate_limit_wait(exc) is None:
                        return None  # "Resource not accessible by integration"
                    raise

            self._login = self._call("reading the token's user", fetch)
            self._login_known = True
        return self._login

    def _is_mine(self, comment: IssueComment, login: str | None) -> bool:
        user = comment.user
        if user is None:
            return False
        if login is not None:
            return bool(user.login == login)
        return bool(user.type == "Bot" or user.login == _ACTIONS_BOT)

    # --- sticky comment ---------------------------------------------------------

    def _our_comments(self, number: int, owns: Callable[[str], bool],
                      login: str | None) -> list[IssueComment]:
        def fetch() -> list[IssueComment]:
            issue = self._repository.get_issue(number)
            return [c for c in issue.get_comments()
                    if self._is_mine(c, login) and owns(c.body or "")]

        found = self._call(f"listing the comments of pull request #{number}", fetch)
        return sorted(found, key=lambda c: c.id)

    def find_comments(self, number: int, owns: Callable[[str], bool]) -> list[int]:
        """Ids of our comments on ``number`` that ``owns`` accepts, oldest first."""
        return [c.id for c in self._our_comments(number, owns, self.login())]

    def _delete(self, comment: IssueComment) -> bool:
        def delete() -> bool:
            try:
                comment.delete()
            except GithubException as exc:
                if exc.status == 404:  # a racing run deleted it first
                    return False
                raise
            return True

        return self._call(f"deleting duplicate comment {comment.id}", delete,
                          permission="pull-requests: write")

    def _edit(self, comment: IssueComment, body: str) -> None:
        self._call(f"updating comment {comment.id}", lambda: comment.edit(body),
                   permission="pull-requests: write")

    def upsert_comment(self, number: int, body: str, owns: Callable[[str], bool]) -> CommentOutcome:
        """Update our marker comment on pull request ``number`` in place, or create it.

        ``owns(body)`` says whether a comment body carries our marker; ``body`` itself
        must satisfy it. See the module docstring for how races end with one comment.
        """
        # Validate the arguments.
        if not owns(body):
            raise ValueError("body must carry the marker that owns() looks for.")

        login = self.login()
        ours = self._our_comments(number, owns, login)
        if ours:
            keep, extra = ours[0], ours[1:]
            action: Literal["updated", "unchanged"] = "unchanged"
            if (keep.body or "") != body:
                self._edit(keep, body)
                action = "updated"
            deleted = tuple(c.id for c in extra if self._delete(c))
            logger.info("comment %d %s on #%d", keep.id, action, number)
            return CommentOutcome(keep.id, keep.html_url, action, deleted)

        created = self._call(
            f"commenting on pull request #{number}",
            lambda: self._repository.get_issue(number).create_comment(body),
            permission="pull-requests: write",
        )
        if login is None and created.user is not None:
            login = created.user.login  # now we know who we are
        ours = self._our_comments(number, owns, login)
        if not any(c.id == created.id for c in ours):
            ours = sorted([*ours, created], key=lambda c: c.id)  # listing lags behind
        keep = ours[0]
        deleted = tuple(c.id for c in ours[1:] if self._delete(c))
        if keep.id == created.id:
            logger.info("comment %d created on #%d", keep.id, number)
            return CommentOutcome(keep.id, keep.html_url, "created", deleted)
        # Lost a race: an older marker comment exists; ours was deleted, write into it.
        if (keep.body or "") != body:
            self._edit(keep, body)
        logger.info("comment %d updated on #%d after a race (dropped %s)", keep.id, number,
                    deleted)
        return CommentOutcome(keep.id, keep.html_url, "updated", deleted)

    # --- commit status ----------------------------------------------------------

    def set_status(
        self,
        sha: str,
        state: StatusState,
        description: str,
        *,
        context: str = "pytest-greennlp",
        target_url: str | None = None,
    ) -> None:
        """Set a commit status on ``sha``; ``description`` is cut to one line of 140 chars."""
        # Validate the arguments.
        if state not in ("error", "failure", "pending", "success"):
            raise ValueError("state must be 'error', 'failure', 'pending' or 'success'.")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise GitHubError(f"commit {sha!r} is not a 40-character hex SHA")

        text = _one_line(description, _STATUS_DESCRIPTION_CHARS)

        def create() -> None:
            commit = self._repository.get_commit(sha)
            if target_url:
                commit.create_status(state, target_url=target_url, description=text,
                                     context=context[:100])
            else:
                commit.create_status(state, description=text, context=context[:100])

        self._call(f"setting the {context!r} status on {sha[:12]}", create,
                   permission="statuses: write")

    # --- pull requests ----------------------------------------------------------

    def _pull_info(self, pull: PullRequest) -> PullInfo:
        head_repo = pull.head.repo.full_name if pull.head.repo is not None else None
        base_repo = pull.base.repo.full_name if pull.base.repo is not None else self.repository
        return PullInfo(
            number=pull.number,
            state=pull.state,
            head_sha=pull.head.sha,
            head_ref=pull.head.ref,
            head_repo=head_repo,
            base_ref=pull.base.ref,
            base_sha=pull.base.sha,
            base_repo=base_repo,
            labels=tuple(label.name for label in pull.labels),
            html_url=pull.html_url,
        )

    def pull_request(self, number: int) -> PullInfo:
        """Fetch pull request ``number``."""
        return self._call(f"reading pull request #{number}",
                          lambda: self._pull_info(self._repository.get_pull(number)))

    def pull_for_sha(self, sha: str, *, head_owner: str | None = None,
                     head_branch: str | None = None, max_pages: int = 3) -> PullInfo | None:
        """Find the open pull request whose head is ``sha`` (for ``workflow_run``).

        Asks, in turn: the pull requests associated with the commit; the open pull
        requests of ``head_owner:head_branch``; the most recently updated open pull
        requests (``max_pages`` pages). Only a pull request whose head is exactly ``sha``
        counts, so a run for an outdated commit finds nothing to comment on.
        """
        # Validate the arguments.
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise GitHubError(f"commit {sha!r} is not a 40-character hex SHA")

        def match(pulls: Any, limit: int | None = None) -> PullInfo | None:
            for i, pull in enumerate(pulls):
                if limit is not None and i >= limit:
                    break
                if pull.state == "open" and pull.head.sha == sha:
                    return self._pull_info(pull)
            return None

        found = self._call(
            f"finding the pull request of commit {sha[:12]}",
            lambda: match(self._repository.get_commit(sha).get_pulls()),
        )
        if found is None and head_owner and head_branch:
            found = self._call(
                f"finding the pull request of {head_owner}:{_one_line(head_branch, 80)}",
                lambda: match(self._repository.get_pulls(state="open",
                                                         head=f"{head_owner}:{head_branch}")),
            )
        if found is None:
            per_page = self._gh.per_page
            found = self._call(
                f"searching the open pull requests for commit {sha[:12]}",
                lambda: match(self._repository.get_pulls(state="open", sort="updated",
                                                         direction="desc"),
                              limit=max_pages * per_page),
            )
        return found

    # --- baseline ---------------------------------------------------------------

    def merge_base(self, base: str, head: str) -> str:
        """The merge-base commit of ``base`` (branch or SHA) and ``head``."""
        def compare() -> str:
            comparison = self._repository.compare(base, head, comparison_commits_per_page=1)
            return str(comparison.merge_base_commit.sha)

        return self._call(f"finding the merge-base of {_one_line(base, 80)} and {head[:12]}",
                          compare)

    def find_baseline_artifact(
        self,
        name: str,
        *,
        branch: str,
        start: str,
        max_commits: int = 100,
        max_artifacts: int = 1000,
    ) -> BaselineLookup:
        """Find the newest unexpired artifact ``name`` uploaded for ``start`` or its nearest ancestor.

        Only artifacts of runs on ``branch`` of this repository count (never a fork's).
        ``start`` is usually the merge-base of the pull request; up to ``max_commits``
        ancestors are searched, newest first.
        """
        def artifacts() -> dict[str, ArtifactRef]:
            found: dict[str, ArtifactRef] = {}
            for i, art in enumerate(self._repository.get_artifacts(name=name)):
                if i >= max_artifacts:
                    break
                run = art.raw_data.get("workflow_run") or {}
                if art.expired or art.name != name or run.get("head_branch") != branch:
                    continue
                if run.get("head_repository_id") != run.get("repository_id"):
                    continue  # uploaded by a run of a fork's code
                sha = str(run.get("head_sha") or art.raw_data.get("head_sha") or "")
                if sha and sha not in found:
                    found[sha] = ArtifactRef(
                        id=art.id, name=art.name, run_id=int(run.get("id") or 0), head_sha=sha,
                        head_branch=branch, size_in_bytes=art.size_in_bytes,
                        expired=art.expired)
            return found

        candidates = self._call(f"listing the {name!r} artifacts", artifacts,
                                permission="actions: read")
        if not candidates:
            return BaselineLookup(None, f"no unexpired {name!r} artifact from {branch!r}",
                                  merge_base=start)

        def walk() -> tuple[ArtifactRef | None, int]:
            searched = 0
            for commit in self._repository.get_commits(sha=start):
                if searched >= max_commits:
                    break
                searched += 1
                if commit.sha in candidates:
                    return candidates[commit.sha], searched
            return None, searched

        artifact, searched = self._call(f"walking the history from {start[:12]}", walk)
        if artifact is None:
            return BaselineLookup(
                None, f"no {name!r} artifact on {branch!r} within {searched} commits of "
                f"{start[:12]}", merge_base=start, commits_searched=searched)
        return BaselineLookup(artifact, "found", merge_base=start, commits_searched=searched)

    def download_artifact_file(self, artifact: ArtifactRef, member: str, *,
                               max_zip_bytes: int = 64 * 1024 * 1024,
                               max_file_bytes: int = 64 * 1024 * 1024) -> bytes:
        """Download ``artifact`` and return the bytes of the file ``member`` inside it.

        The zip is untrusted: its size and the member's unpacked size are capped, and
        only a top-level file with exactly that name is read. The token goes to the API
        only; the storage host GitHub redirects to gets a plain request.

        Raises
        ------
        GitHubError
            The API or the download failed.
        ReportError
            The zip is corrupt, too large, or lacks ``member``.
        """
        requester = self._gh.requester
        url = f"{self._repository.url}/actions/artifacts/{artifact.id}/zip"
        what = f"downloading artifact {artifact.name!r} ({artifact.id})"

        def locate() -> str:
            status, headers, output = requester.requestJson("GET", url)
            if status >= 400:
                try:
                    data = json.loads(output) if output else {}
                except ValueError:
                    data = {"message": _one_line(output, 160)}
                raise requester.createException(status, headers, data)
            location = _header(headers, "location")
            if status not in (301, 302, 303, 307, 308) or not location:
                raise GitHubError(f"{what}: expected a redirect to the archive, got HTTP {status}")
            return location

        location = self._call(what, locate, permission="actions: read")
        parsed = urllib.parse.urlparse(location)
        api = urllib.parse.urlparse(self._gh.requester.base_url)
        if parsed.scheme != "https" and not (parsed.scheme == "http" and api.scheme == "http"):
            raise GitHubError(f"{what}: refusing a non-https archive location")

        def fetch() -> bytes:
            with requests.get(location, stream=True, timeout=self._download_timeout_s,
                              headers={"User-Agent": f"pytest-greennlp/{__version__}"}) as resp:
                if resp.status_code >= 500:
                    raise GithubException(resp.status_code, {"message": "storage error"}, None)
                if resp.status_code >= 400:
                    raise GitHubError(f"{what}: the archive host answered HTTP {resp.status_code}")
                data = bytearray()
                for chunk in resp.iter_content(chunk_size=65536):
                    data += chunk
                    if len(data) > max_zip_bytes:
                        raise ReportError(artifact.name,
                                          f"artifact is larger than {max_zip_bytes} bytes")
                return bytes(data)

        archive = self._call(what, fetch)
        return _read_member(archive, member, artifact.name, max_file_bytes)


def _read_member(archive: bytes, member: str, where: str, max_bytes: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            infos = [i for i in zf.infolist() if i.filename == member and not i.is_dir()]
            if not infos:
                names = ", ".join(_one_line(i.filename, 60) for i in zf.infolist()[:5])
                raise ReportError(where, f"artifact has no file {member!r} (has: {names or 'nothing'})")
            info = infos[0]
            if info.file_size > max_bytes:
                raise ReportError(where, f"{member} unpacks to {info.file_size} bytes, over "
                                         f"the {max_bytes} byte limit")
            with zf.open(info) as handle:
                data = handle.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ReportError(where, f"{member} unpacks to more than {max_bytes} bytes")
            return data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError) as exc:
        raise ReportError(where, f"artifact is not a readable zip ({_one_line(exc, 120)})") from None

