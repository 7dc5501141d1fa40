"""github.py against the stateful loopback server, every exchange checked against GitHub's description."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from github_server import TOKEN, GitHubServer, client_for, serve
from jstools import requires_node_modules

from pytest_greennlp.errors import GitHubError, ReportError
from pytest_greennlp.github import ArtifactRef, connect

pytestmark = requires_node_modules

MARK = "<!-- pytest-greennlp -->"
COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
COMMENT = "/repos/{owner}/{repo}/issues/comments/{comment_id}"


def owns(body: str) -> bool:
    return body.startswith(MARK + "\n")


def body(text: str) -> str:
    return f"{MARK}\n{text}"


@pytest.fixture
def github_server() -> Iterator[GitHubServer]:
    yield from serve()


@pytest.fixture
def pr(github_server: GitHubServer) -> int:
    main = github_server.add_commits("main", 3)
    feature = github_server.add_commits("feature", 2, parent=main[1])
    github_server.add_pull(7, head_sha=feature[-1])
    return 7


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and TOKEN not in text
    return text


# --- the sticky comment ----------------------------------------------------------------------


def test_sticky_comment_is_found_across_pages_and_updated_in_place(github_server, pr):
    github_server.max_per_page = 5
    for i in range(12):
        github_server.add_comment(pr, f"human comment {i}", "reviewer")
    client = client_for(github_server)

    first = client.upsert_comment(pr, body("v1"), owns)
    for i in range(4):  # pushes the marker comment onto the last page
        github_server.add_comment(pr, f"later {i}", "reviewer")
    second = client.upsert_comment(pr, body("v2"), owns)
    third = client.upsert_comment(pr, body("v2"), owns)

    assert (first.action, second.action, third.action) == ("created", "updated", "unchanged")
    assert first.comment_id == second.comment_id == third.comment_id
    ours = [c for c in github_server.comments_on(pr) if owns(c.body)]
    assert [c.body for c in ours] == [body("v2")]
    pages = {tuple(r.query.get("page", ["1"])) for r in github_server.requests_to("GET", COMMENTS)}
    assert ("4",) in pages  # 17 comments, 5 per page: the listing followed the Link headers


def test_rerun_with_a_new_client_updates_the_same_comment(github_server, pr):
    first = client_for(github_server).upsert_comment(pr, body("run 1"), owns)
    again = client_for(github_server).upsert_comment(pr, body("run 1, attempt 2"), owns)
    assert again.comment_id == first.comment_id and again.action == "updated"
    assert len(github_server.comments_on(pr)) == 1


def test_duplicates_are_removed_keeping_the_oldest(github_server, pr):
    old = github_server.add_comment(pr, body("old"), "github-actions[bot]", "Bot")
    github_server.add_comment(pr, body("dup"), "github-actions[bot]", "Bot")
    outcome = client_for(github_server).upsert_comment(pr, body("new"), owns)
    assert outcome.comment_id == old.id and len(outcome.deleted) == 1
    assert [c.body for c in github_server.comments_on(pr)] == [body("new")]


def test_marker_comments_by_other_users_are_left_alone(github_server, pr):
    forged = github_server.add_comment(pr, body("forged by a human"), "mallory")
    outcome = client_for(github_server).upsert_comment(pr, body("ours"), owns)
    assert outcome.action == "created" and outcome.comment_id != forged.id
    assert github_server.comments[forged.id].body == body("forged by a human")


def test_a_personal_token_matches_its_own_login(github_server, pr):
    github_server.add_token("ghp_personal", "octocat")
    github_server.add_comment(pr, body("the bot's"), "github-actions[bot]", "Bot")
    client = client_for(github_server, "ghp_personal")
    outcome = client.upsert_comment(pr, body("mine"), owns)
    assert outcome.action == "created"
    again = client.upsert_comment(pr, body("mine 2"), owns)
    assert again.comment_id == outcome.comment_id and again.action == "updated"


@pytest.mark.parametrize("gate", ["POST", "GET-after-create"])
def test_two_runs_racing_leave_one_comment(github_server, pr, gate):
    barrier = threading.Barrier(2, timeout=10)
    seen: dict[str, int] = {"lists": 0}
    lock = threading.Lock()

    def hold(req: Any) -> None:
        if gate == "POST":
            barrier.wait()  # both listed (and found nothing) before either creates
            return
        with lock:
            seen["lists"] += 1
            n = seen["lists"]
        if n in (3, 4):  # the listings after both creates
            barrier.wait()

    if gate == "POST":
        github_server.before("POST", COMMENTS, hold)
    else:
        github_server.before("GET", COMMENTS, hold)
        github_server.before("POST", COMMENTS, lambda req: barrier.wait())

    results: list[Any] = []
    errors: list[Exception] = []

    def run(text: str) -> None:
        try:
            results.append(client_for(github_server).upsert_comment(pr, body(text), owns))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"run {i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    left = github_server.comments_on(pr)
    assert len(left) == 1, [c.body for c in left]
    assert len(github_server.requests_to("POST", COMMENTS)) == 2  # the race did happen
    assert {r.comment_id for r in results} == {left[0].id}
    assert left[0].body in (body("run 0"), body("run 1"))


def test_a_post_that_landed_but_lost_its_answer_leaves_one_comment(github_server, pr):
    github_server.fail("POST", COMMENTS, 502, land=True)  # stored, then answered 502
    outcome = client_for(github_server).upsert_comment(pr, body("once"), owns)
    assert len(github_server.requests_to("POST", COMMENTS)) == 2  # the retry created a second
    (left,) = github_server.comments_on(pr)
    assert outcome.comment_id == left.id and outcome.deleted


# --- faults ---------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff(github_server, pr):
    github_server.fail("POST", COMMENTS, 502, times=2)
    sleeps: list[float] = []
    outcome = client_for(github_server, sleeps=sleeps).upsert_comment(pr, body("x"), owns)
    assert outcome.action == "created" and sleeps == [1.0, 2.0]


def test_5xx_that_persists_is_one_line(github_server, pr):
    github_server.fail("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", 503, times=10)
    sleeps: list[float] = []
    with pytest.raises(GitHubError) as info:
        client_for(github_server, sleeps=sleeps, attempts=3).pull_request(pr)
    assert one_line(info.value) == ("reading pull request #7: GitHub answered HTTP 503 "
                                    "(Server Error) 3 times; giving up")
    assert sleeps == [1.0, 2.0]


def test_timeouts_and_dropped_connections_are_retried(github_server, pr):
    github_server.fail("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", delay_s=1.6, times=1)
    github_server.fail("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", drop=True, times=1)
    sleeps: list[float] = []
    info = client_for(github_server, sleeps=sleeps, timeout_s=1).pull_request(pr)
    assert info.number == pr and len(sleeps) == 2


def test_no_answer_at_all_is_one_line(github_server, pr):
    github_server.fail("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", drop=True, times=9)
    with pytest.raises(GitHubError) as info:
        client_for(github_server, attempts=2).pull_request(pr)
    assert one_line(info.value) == ("reading pull request #7: no answer from GitHub after 2 "
                                    "attempts (connection failed)")


def test_primary_rate_limit_waits_for_the_reset(github_server, pr):
    github_server.rate_limit("GET", COMMENTS, reset_in_s=30)
    sleeps: list[float] = []
    client_for(github_server, sleeps=sleeps).upsert_comment(pr, body("x"), owns)
    assert len(sleeps) == 1 and 28 <= sleeps[0] <= 33


def test_secondary_rate_limit_honours_retry_after(github_server, pr):
    github_server.rate_limit("POST", COMMENTS, reset_in_s=7, secondary=True)
    sleeps: list[float] = []
    client_for(github_server, sleeps=sleeps).upsert_comment(pr, body("x"), owns)
    assert sleeps == [7.0]


def test_rate_limit_beyond_the_cap_gives_up_clearly(github_server, pr):
    github_server.rate_limit("GET", COMMENTS, reset_in_s=3600)
    sleeps: list[float] = []
    with pytest.raises(GitHubError) as info:
        client_for(github_server, sleeps=sleeps).upsert_comment(pr, body("x"), owns)
    text = one_line(info.value)
    assert text.startswith("listing the comments of pull request #7: GitHub API rate limit "
                           "exceeded; it resets at ")
    assert "beyond the 300 s this action waits; re-run the job later" in text
    assert sleeps == []


def test_rate_limit_waits_add_up_to_the_cap(github_server, pr):
    github_server.rate_limit("GET", COMMENTS, reset_in_s=200, times=2)
    sleeps: list[float] = []
    with pytest.raises(GitHubError, match="beyond the 300 s"):
        client_for(github_server, sleeps=sleeps).upsert_comment(pr, body("x"), owns)
    assert len(sleeps) == 1


def test_endless_zero_second_rate_limits_end(github_server, pr):
    github_server.rate_limit("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", reset_in_s=0,
                             times=50, secondary=True)
    sleeps: list[float] = []
    with pytest.raises(GitHubError) as info:
        client_for(github_server, sleeps=sleeps).pull_request(pr)
    assert one_line(info.value) == ("reading pull request #7: still rate limited after 5 waits; "
                                    "re-run the job later")
    assert sleeps == [0.0] * 5


def test_404_is_explained(github_server, pr):
    with pytest.raises(GitHubError) as info:
        client_for(github_server).pull_request(999)
    assert one_line(info.value) == (
        "reading pull request #999: HTTP 404 (Not Found): not found: the pull request, run or "
        "artifact may be gone or expired, or the token cannot see the repository")


def test_422_is_explained(github_server, pr):
    with pytest.raises(GitHubError) as info:
        client_for(github_server).upsert_comment(pr, body("x" * 70_000), owns)
    assert one_line(info.value) == (
        "commenting on pull request #7: HTTP 422 (Validation Failed (Body is too long (maximum "
        "is 65536 characters))): GitHub rejected the request as invalid")


def test_403_without_write_permission_names_the_permission(github_server, pr):
    github_server.add_token("ghs_readonly", None, write=False)
    with pytest.raises(GitHubError) as info:
        client_for(github_server, "ghs_readonly").upsert_comment(pr, body("x"), owns)
    assert "HTTP 403 (Resource not accessible by integration): the token lacks the " \
           "'pull-requests: write' permission" in one_line(info.value)


def test_401_is_explained(github_server, pr):
    with pytest.raises(GitHubError) as info:
        client_for(github_server, "ghs_wrong").pull_request(pr)
    assert one_line(info.value) == ("reading pull request #7: HTTP 401 (Bad credentials): the "
                                    "token is invalid or expired; check the token input")


def test_connect_refuses_plain_http_off_loopback_and_no_token():
    with pytest.raises(GitHubError, match="must use https"):
        connect("t", api_url="http://api.example.com")
    with pytest.raises(GitHubError, match="no GitHub token"):
        connect("")


# --- status, pull requests, baseline -----------------------------------------------------------


def test_status_description_is_one_short_line(github_server, pr):
    sha = github_server.pulls[pr].head_sha
    client_for(github_server).set_status(sha, "failure", "first line\nsecond " + "x" * 300,
                                         context="pytest-greennlp (py3.11)",
                                         target_url="https://github.com/o/r/actions/runs/1")
    (status,) = github_server.statuses[sha]
    assert status["state"] == "failure" and len(status["description"]) == 140
    assert "\n" not in status["description"] and status["context"] == "pytest-greennlp (py3.11)"


def test_pull_for_sha_same_repo_fork_and_stale(github_server, pr):
    client = client_for(github_server)
    head = github_server.pulls[pr].head_sha
    assert client.pull_for_sha(head).number == pr

    fork_head = github_server.add_commits("fork-main", 1, parent=github_server.branches["main"],
                                          prefix="fork")[0]
    github_server.add_pull(8, head_sha=fork_head, head_ref="main", head_repo="mallory/octo-repo")
    found = client.pull_for_sha(fork_head, head_owner="mallory", head_branch="main")
    assert found is not None and found.number == 8 and found.from_fork
    # Without the owner and branch, the open pull requests are searched.
    assert client.pull_for_sha(fork_head).number == 8
    listed = github_server.requests_to("GET", "/repos/{owner}/{repo}/pulls")
    assert {r.query.get("head", [""])[0] for r in listed} >= {"mallory:main"}

    old = github_server.add_commits("feature2", 1, prefix="old")[0]
    assert client.pull_for_sha(old) is None


def test_baseline_is_the_nearest_ancestor_with_an_artifact(github_server):
    main = github_server.add_commits("main", 6)
    feature = github_server.add_commits("feature", 2, parent=main[3])
    github_server.add_pull(3, head_sha=feature[-1])
    good = github_server.add_artifact("green-report", main[1], {"green-report.json": "{}"})
    github_server.add_artifact("green-report", main[2], {"green-report.json": "{}"}, expired=True)
    github_server.add_artifact("green-report", main[3], {"green-report.json": "{}"},
                               head_repository_id=999)  # a fork's run on its own "main"
    github_server.add_artifact("green-report", main[3], {"green-report.json": "{}"},
                               branch="feature")
    github_server.add_artifact("other-name", main[3], {"green-report.json": "{}"})
    github_server.add_artifact("green-report", main[5], {"green-report.json": "{}"})  # not an ancestor

    client = client_for(github_server)
    start = client.merge_base("main", feature[-1])
    assert start == main[3]
    lookup = client.find_baseline_artifact("green-report", branch="main", start=start)
    assert lookup.artifact is not None and lookup.artifact.id == good.id
    assert lookup.artifact.head_sha == main[1] and lookup.commits_searched == 3

    none = client.find_baseline_artifact("green-report", branch="main", start=start, max_commits=2)
    assert none.artifact is None
    assert none.reason == f"no 'green-report' artifact on 'main' within 2 commits of {start[:12]}"
    missing = client.find_baseline_artifact("nothing", branch="main", start=start)
    assert missing.reason == "no unexpired 'nothing' artifact from 'main'"


def test_artifact_download_sends_no_token_to_the_storage_host(github_server):
    sha = github_server.add_commits("main", 1)[0]
    art = github_server.add_artifact("green-report", sha, {"green-report.json": '{"a": 1}',
                                                           "plots/x.png": b"\x89PNG"})
    client = client_for(github_server)
    ref = ArtifactRef(art.id, art.name, art.run_id, sha, "main", len(art.archive))
    assert client.download_artifact_file(ref, "green-report.json") == b'{"a": 1}'
    zip_requests = [r for r in github_server.log if r.path.endswith("/zip")]
    assert zip_requests and all(r.authorization for r in zip_requests)
    assert github_server.blob_log and not any(r.authorization for r in github_server.blob_log)


def test_artifact_download_refuses_bad_archives(github_server):
    sha = github_server.add_commits("main", 1)[0]
    client = client_for(github_server)

    def ref(art: Any) -> ArtifactRef:
        return ArtifactRef(art.id, art.name, art.run_id, sha, "main", len(art.archive))

    wrong = github_server.add_artifact("a", sha, {"../green-report.json": "{}"})
    with pytest.raises(ReportError, match="artifact has no file 'green-report.json'"):
        client.download_artifact_file(ref(wrong), "green-report.json")
    bomb = github_server.add_artifact("b", sha, {"green-report.json": "0" * 2_000_000})
    with pytest.raises(ReportError, match="unpacks to 2000000 bytes, over the 1000 byte limit"):
        client.download_artifact_file(ref(bomb), "green-report.json", max_file_bytes=1000)
    big = github_server.add_artifact("c", sha, {"green-report.json": "0" * 2_000_000})
    with pytest.raises(ReportError, match="larger than 1000 bytes"):
        client.download_artifact_file(ref(big), "green-report.json", max_zip_bytes=1000)
    junk = github_server.add_artifact("d", sha, {})
    junk.archive = b"not a zip"
    with pytest.raises(ReportError, match="not a readable zip"):
        client.download_artifact_file(ref(junk), "green-report.json")
    gone = github_server.add_artifact("e", sha, {"green-report.json": "{}"}, expired=True)
    with pytest.raises(GitHubError) as info:
        client.download_artifact_file(ref(gone), "green-report.json")
    assert one_line(info.value).endswith(
        "HTTP 410 (Artifact has expired): gone: the artifact has expired or was deleted")


# --- the token -------------------------------------------------------------------------------


def test_the_token_never_reaches_logs_or_messages(github_server, pr, caplog):
    caplog.set_level(logging.DEBUG)  # PyGithub and urllib3 log every request at DEBUG
    client = client_for(github_server)
    messages = []
    github_server.fail("POST", COMMENTS, 500, times=1)
    client.upsert_comment(pr, body("x"), owns)
    for bad in (lambda: client.pull_request(404),
                lambda: client_for(github_server, "ghs_wrong").pull_request(pr),
                lambda: client.set_status("0" * 40, "success", "x")):
        with pytest.raises(GitHubError) as info:
            bad()
        messages.append(str(info.value) + repr(info.value.__cause__))
    assert any("GET" in r.getMessage() for r in caplog.records)  # the requests were logged
    assert TOKEN not in caplog.text and "ghs_wrong" not in caplog.text
    assert not any(TOKEN in m for m in messages)
    assert all(r.authorization for r in github_server.log)  # ...yet it was sent


# --- the server's own checks ---------------------------------------------------------------------


def test_the_server_checks_requests_and_responses_against_the_description(github_server):
    spec = github_server.spec
    op = spec.operation("GET", COMMENTS)
    params = {"owner": "o", "repo": "r", "issue_number": "7"}
    assert spec.check_request(op, params, {"per_page": ["100"]}, b"") == []
    problems = spec.check_request(op, {**params, "issue_number": "seven"},
                                  {"per_page": ["100"], "sort": ["x"]}, b"")
    assert any("issue_number" in p for p in problems)
    assert any("query parameter 'sort' is not declared" in p for p in problems)
    post = spec.operation("POST", COMMENTS)
    assert spec.check_request(post, params, {}, json.dumps({"body": 5}).encode())

    good = github_server._skeleton("GET", COMMENT, 200)
    assert spec.check_response(spec.operation("GET", COMMENT), 200,
                               json.dumps(good).encode(), False) == []
    del good["user"]
    assert any("'user' is a required property" in p for p in spec.check_response(
        spec.operation("GET", COMMENT), 200, json.dumps(good).encode(), False))
    assert spec.check_response(op, 418, b"{}", False)  # undocumented status
    assert spec.check_response(op, 502, b'{"message": "x"}', True) == []  # injected fault
