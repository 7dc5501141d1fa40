"""A stateful GitHub REST server on 127.0.0.1 for the tests, checked against GitHub's own description.

It implements the endpoints the Action uses (issue comments, pulls, commit statuses,
commits and compare, artifacts and their download, the authenticated user) with real
state, pagination through ``Link`` headers, tokens with or without write access, and
fault injection (any status, rate limits, delays past the client's timeout, dropped
connections). PyGithub talks to it through ``base_url``.

Every request is checked against the operation in GitHub's OpenAPI description from
npm ``@octokit/openapi`` (``generated/api.github.com.deref.json``): the route must
exist, every path and query parameter must be declared and fit its schema, and a JSON
body must fit the request schema. Every response is checked too: its status must be one
the operation documents (an injected fault, or a 401, 403, 404 or 422, which GitHub can
answer to any operation, may be undocumented; its body must then be GitHub's
``basic-error``) and its body must fit that status's schema. Checks
use ``openapi-schema-validator`` (OpenAPI 3.0 dialect, ``nullable`` included). Problems
are collected in ``GitHubServer.violations``; the ``github_server`` fixture fails the test
when any are left.

Response objects start from a skeleton generated from the operation's response schema
(every required property, with a placeholder value) and are overlaid with the server's
state, so they carry every field GitHub promises.

The artifact archive is served, like on GitHub, by a redirect to another host
(``localhost`` instead of ``127.0.0.1``); that host is not part of the REST API and is
not checked, but it records whether a request carried credentials.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator, oas30_format_checker

JS_DIR = Path(__file__).parent / "js"
SPEC_PATH = JS_DIR / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.deref.json"

Json = Any
#: Answers GitHub gives to any operation (bad token, no permission, no such object, invalid
#: input) although the description does not list them for every one; their body must
#: still be GitHub's basic-error.
GENERIC_ERRORS = (401, 403, 404, 422)
Handler = Callable[["Request"], "Response"]


# --- the OpenAPI description ---------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", "?"))


class OpenAPI:
    """Route matching and schema checks for one OpenAPI 3.0 description."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        self.version = str(data.get("info", {}).get("version", "?"))
        self.openapi = str(data.get("openapi", "?"))
        self.operations: list[Operation] = []
        for template, item in data["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$"
            for method, spec in item.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    self.operations.append(Operation(method.upper(), template, re.compile(pattern),
                                                     spec))
        # Literal segments win over parameters: more literal characters first.
        self.operations.sort(key=lambda op: -len(re.sub(r"\{[^}]+\}", "", op.template)))
        self._validators: dict[int, OAS30Validator] = {}
        # The description is dereferenced, so shared schemas are taken from operations.
        get_pull = self.operation("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
        self.basic_error = self.schema_at(get_pull, 404)
        pull = self.schema_at(get_pull, 200)
        self.simple_user = pull["properties"]["user"]
        self.repository = pull["properties"]["head"]["properties"]["repo"]
        self._lock = threading.Lock()

    def find(self, method: str, path: str,
             prefer: Any = ()) -> tuple[Operation, dict[str, str]] | None:
        """The operation ``path`` belongs to; among several, the first template in ``prefer``.

        (GitHub describes some URLs twice, e.g. ``compare/{base}...{head}`` and
        ``compare/{basehead}``.)
        """
        found = []
        for op in self.operations:
            if op.method != method:
                continue
            m = op.regex.match(path)
            if m:
                names = re.findall(r"\{([^}]+)\}", op.template)
                values = [urllib.parse.unquote(v) for v in m.groups()]
                found.append((op, dict(zip(names, values))))
        for op, params in found:
            if (method, op.template) in prefer:
                return op, params
        return found[0] if found else None

    def operation(self, method: str, template: str) -> Operation:
        for op in self.operations:
            if op.method == method and op.template == template:
                return op
        raise KeyError(f"{method} {template} is not in the description")

    def _validator(self, schema: dict[str, Any]) -> OAS30Validator:
        key = id(schema)
        with self._lock:
            if key not in self._validators:
                self._validators[key] = OAS30Validator(schema, format_checker=oas30_format_checker)
            return self._validators[key]

    def errors(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        out = []
        for err in self._validator(schema).iter_errors(value):
            loc = "/".join(str(p) for p in err.absolute_path)
            out.append(f"{where}{'/' + loc if loc else ''}: {err.message[:300]}")
            if len(out) >= 5:
                break
        return out

    def check_request(self, op: Operation, path_params: dict[str, str],
                      query: dict[str, list[str]], body: bytes) -> list[str]:
        where = f"request {op.method} {op.template}"
        problems = []
        declared = {(p["in"], p["name"]): p for p in op.spec.get("parameters", [])}
        for name, value in path_params.items():
            param = declared.get(("path", name))
            if param is None:
                problems.append(f"{where}: path parameter {name!r} is not declared")
                continue
            problems += self.errors(param["schema"], _coerce(param["schema"], value),
                                    f"{where} path {name}")
        for name, values in query.items():
            param = declared.get(("query", name))
            if param is None:
                problems.append(f"{where}: query parameter {name!r} is not declared")
                continue
            for value in values:
                problems += self.errors(param["schema"], _coerce(param["schema"], value),
                                        f"{where} query {name}")
        for (where_in, name), param in declared.items():
            if where_in == "query" and param.get("required") and name not in query:
                problems.append(f"{where}: required query parameter {name!r} missing")
        request_body = op.spec.get("requestBody")
        if request_body is None:
            if body:
                problems.append(f"{where}: a body was sent but the operation takes none")
        else:
            schema = request_body.get("content", {}).get("application/json", {}).get("schema")
            if not body:
                if request_body.get("required"):
                    problems.append(f"{where}: the required body is missing")
            elif schema is not None:
                try:
                    value = json.loads(body)
                except ValueError:
                    problems.append(f"{where}: the body is not JSON")
                else:
                    problems += self.errors(schema, value, f"{where} body")
        return problems

    def response_schema(self, op: Operation, status: int) -> dict[str, Any] | None:
        responses = op.spec.get("responses", {})
        entry = responses.get(str(status)) or responses.get("default")
        if entry is None:
            return None
        return entry.get("content", {}).get("application/json", {}).get("schema")

    def schema_at(self, op: Operation, status: int, *path: str) -> dict[str, Any]:
        """The response schema of ``op`` for ``status``, then down ``path`` (names or "items")."""
        schema = self.response_schema(op, status)
        assert schema is not None, (op.template, status)
        for step in path:
            schema = schema["items"] if step == "items" else schema["properties"][step]
        return schema

    def documents(self, op: Operation, status: int) -> bool:
        responses = op.spec.get("responses", {})
        return str(status) in responses or "default" in responses

    def check_response(self, op: Operation, status: int, body: bytes,
                       injected: bool) -> list[str]:
        where = f"response {status} to {op.method} {op.template}"
        if not self.documents(op, status):
            if not injected and status not in GENERIC_ERRORS:
                return [f"{where}: status not documented for {op.operation_id}"]
            schema: dict[str, Any] | None = self.basic_error
        else:
            schema = self.response_schema(op, status)
        if schema is None:
            return [f"{where}: body sent where none is documented"] if body else []
        if not body:
            return [f"{where}: empty body where JSON is documented"]
        try:
            value = json.loads(body)
        except ValueError:
            return [f"{where}: body is not JSON"]
        return self.errors(schema, value, where)


def _coerce(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


@functools.lru_cache(maxsize=1)
def load_spec() -> OpenAPI:
    """GitHub's REST description, parsed once per process (about 2 s)."""
    return OpenAPI(SPEC_PATH)


def skeleton(schema: dict[str, Any], depth: int = 0, *, force: bool = False) -> Any:
    """A value that fits ``schema``: every required property, placeholder values.

    A nullable schema gives None, unless ``force`` (then its non-null form).
    """
    if depth > 40:
        return None
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = skeleton(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"]
            return skeleton(branches[0], depth + 1) if branches else None
    if schema.get("nullable") and not force:
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: skeleton(props.get(name, {}), depth + 1)
                for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2024-01-01T00:00:00Z"
        if fmt == "uri":
            return "https://example.invalid/"
        if fmt == "email":
            return "nobody@example.invalid"
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return False
    return None


def merge(base: Any, over: Any) -> Any:
    """``over`` laid over ``base``: dicts merge recursively, everything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value)
        return out
    return copy.deepcopy(over)


# --- state -----------------------------------------------------------------------------


@dataclass
class Token:
    login: str | None  # None: an installation token (GITHUB_TOKEN), which has no user
    write: bool = True
    user_type: str = "User"


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    login: str
    user_type: str
    created_at: str
    updated_at: str


@dataclass
class Pull:
    number: int
    head_sha: str
    head_ref: str
    head_repo: str | None  # full name; a fork's differs; None when the fork was deleted
    base_ref: str
    base_sha: str
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    author: str = "contributor"


@dataclass
class Artifact:
    id: int
    name: str
    run_id: int
    head_sha: str
    head_branch: str
    head_repository_id: int
    archive: bytes
    expired: bool = False


@dataclass
class Fault:
    method: str
    template: str
    status: int = 500
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Json = None
    delay_s: float = 0.0
    drop: bool = False
    land: bool = False  # carry the request out, then answer with the fault


@dataclass
class Request:
    method: str
    path: str
    template: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    login: str | None = None
    status: int = 0
    authorization: bool = False

    def json(self) -> Json:
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    status: int
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str, **extra: Any) -> Response:
    body = {"message": message,
            "documentation_url": "https://docs.github.com/rest", **extra}
    if status == 422:
        body.setdefault("errors", [])
    return Response(status, body)


def make_zip(files: dict[str, bytes | str]) -> bytes:
    """A zip archive holding ``files`` (what an artifact download returns)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


class GitHubServer:
    """The server and its state. Start with `start`, stop with `stop`."""

    def __init__(self, *, owner: str = "octo-org", repo: str = "octo-repo",
                 repo_id: int = 1296269, max_per_page: int = 100) -> None:
        self.spec = load_spec()
        self.owner, self.repo, self.repo_id = owner, repo, repo_id
        self.full_name = f"{owner}/{repo}"
        self.max_per_page = max_per_page
        self.tokens: dict[str, Token] = {}
        self.comments: dict[int, Comment] = {}
        self.pulls: dict[int, Pull] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.commits: dict[str, list[str]] = {}  # sha -> parents
        self.commit_order: list[str] = []  # oldest first
        self.branches: dict[str, str] = {}
        self.artifacts: list[Artifact] = []
        self.faults: list[Fault] = []
        self.hooks: list[tuple[str, str, Callable[[Request], None]]] = []
        self.log: list[Request] = []
        self.blob_log: list[Request] = []
        self.violations: list[str] = []
        self._lock = threading.RLock()
        self._next_id = 1000
        self._clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self._routes: dict[tuple[str, str], Handler] = {}
        self._register()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.blob_base = ""

    # -- lifecycle

    def start(self) -> GitHubServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.blob_base = f"http://localhost:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- set-up helpers for tests

    def add_token(self, token: str, login: str | None = None, *, write: bool = True,
                  user_type: str = "User") -> None:
        self.tokens[token] = Token(login, write, user_type)

    def add_commits(self, branch: str, count: int, *, parent: str | None = None,
                    prefix: str = "c") -> list[str]:
        """Append ``count`` commits to ``branch`` (linear), returning their SHAs."""
        shas = []
        head = parent if parent is not None else self.branches.get(branch)
        for _ in range(count):
            sha = _sha(f"{prefix}{len(self.commit_order)}-{branch}")
            self.commits[sha] = [head] if head else []
            self.commit_order.append(sha)
            shas.append(sha)
            head = sha
        if head:
            self.branches[branch] = head
        return shas

    def add_pull(self, number: int, *, head_sha: str, base_ref: str = "main",
                 head_ref: str = "feature", head_repo: str | None = None,
                 labels: list[str] | None = None, state: str = "open") -> Pull:
        pull = Pull(number, head_sha, head_ref,
                    self.full_name if head_repo is None else head_repo,
                    base_ref, self.branches.get(base_ref, head_sha), state, labels or [])
        self.pulls[number] = pull
        return pull

    def add_artifact(self, name: str, head_sha: str, files: dict[str, bytes | str], *,
                     branch: str = "main", expired: bool = False,
                     head_repository_id: int | None = None) -> Artifact:
        with self._lock:
            art = Artifact(self._new_id(), name, self._new_id(), head_sha, branch,
                           self.repo_id if head_repository_id is None else head_repository_id,
                           make_zip(files), expired)
            self.artifacts.append(art)
            return art

    def add_comment(self, issue: int, body: str, login: str, user_type: str = "User") -> Comment:
        with self._lock:
            stamp = self._stamp()
            comment = Comment(self._new_id(), issue, body, login, user_type, stamp, stamp)
            self.comments[comment.id] = comment
            return comment

    def fail(self, method: str, template: str, status: int = 500, *, times: int = 1,
             headers: dict[str, str] | None = None, body: Json = None, delay_s: float = 0.0,
             drop: bool = False, land: bool = False) -> None:
        """Answer the next ``times`` matching requests with a fault instead.

        ``land`` carries the request out first (a write that succeeded but whose answer
        was lost, as behind a timing-out proxy).
        """
        self.spec.operation(method, template)  # the route must exist
        self.faults.append(Fault(method, template, status, times, headers or {}, body,
                                 delay_s, drop, land))

    def rate_limit(self, method: str, template: str, *, reset_in_s: float, times: int = 1,
                   secondary: bool = False) -> None:
        """The primary (403, remaining 0) or secondary (403, retry-after) rate limit."""
        if secondary:
            headers = {"retry-after": str(int(reset_in_s))}
            message = "You have exceeded a secondary rate limit. Please wait a few minutes."
        else:
            headers = {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0",
                       "x-ratelimit-used": "1000", "x-ratelimit-resource": "core",
                       "x-ratelimit-reset": str(int(time.time() + reset_in_s))}
            message = "API rate limit exceeded for installation ID 1."
        self.fail(method, template, 403, times=times, headers=headers,
                  body={"message": message,
                        "documentation_url": "https://docs.github.com/rest/rate-limit"})

    def before(self, method: str, template: str, hook: Callable[[Request], None]) -> None:
        """Call ``hook`` before handling each matching request (outside the state lock)."""
        self.spec.operation(method, template)
        self.hooks.append((method, template, hook))

    def comments_on(self, issue: int) -> list[Comment]:
        with self._lock:
            return sorted((c for c in self.comments.values() if c.issue == issue),
                          key=lambda c: c.id)

    def requests_to(self, method: str, template: str) -> list[Request]:
        return [r for r in self.log if r.method == method and r.template == template]

    # -- plumbing

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _stamp(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        auth = handler.headers.get("Authorization")
        if split.path.startswith("/_blob/"):
            self._serve_blob(handler, split.path, query, auth)
            return
        method = handler.command
        found = self.spec.find(method, split.path, self._routes)
        if found is None:
            with self._lock:
                self.violations.append(f"{method} {split.path}: no such operation in the description")
            self._send(handler, 404, {"message": "Not Found"}, {})
            return
        op, params = found
        req = Request(method, split.path, op.template, params, query, body,
                      authorization=auth is not None)
        problems = self.spec.check_request(op, params, query, body)
        with self._lock:
            self.log.append(req)
            self.violations.extend(problems)
        for hook_method, hook_template, hook in list(self.hooks):
            if hook_method == method and hook_template == op.template:
                hook(req)
        injected = False
        fault = self._take_fault(method, op.template)
        if fault is not None:
            if fault.land:
                self._dispatch(req, op, auth)
            if fault.delay_s:
                time.sleep(fault.delay_s)
            if fault.drop:
                handler.close_connection = True
                try:
                    handler.connection.shutdown(2)
                except OSError:
                    pass
                return
            injected = True
            resp = Response(fault.status, fault.body if fault.body is not None else
                            {"message": "Server Error"} if fault.status >= 500 else
                            {"message": "Injected"}, dict(fault.headers))
        else:
            resp = self._dispatch(req, op, auth)
        req.status = resp.status
        raw = b"" if resp.body is None else json.dumps(resp.body).encode()
        problems = self.spec.check_response(op, resp.status, raw, injected)
        if problems:
            with self._lock:
                self.violations.extend(problems)
        self._send(handler, resp.status, resp.body, resp.headers)

    def _take_fault(self, method: str, template: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.template == template and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _dispatch(self, req: Request, op: Operation, auth: str | None) -> Response:
        route = self._routes.get((req.method, op.template))
        if route is None:
            with self._lock:
                self.violations.append(f"{req.method} {op.template}: not implemented by the test server")
            return error(404, "Not Found")
        token = None
        if auth:
            parts = auth.split(None, 1)
            if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
                token = self.tokens.get(parts[1])
        if token is None:
            return error(401, "Bad credentials")
        req.login = token.login
        if (req.params.get("owner"), req.params.get("repo")) not in ((None, None),
                                                                     (self.owner, self.repo)):
            return error(404, "Not Found")
        if req.method != "GET" and not token.write:
            return error(403, "Resource not accessible by integration")
        with self._lock:
            return route(req)

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: Json,
              headers: dict[str, str]) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        try:
            handler.send_response(status)
            if raw:
                handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(raw)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve_blob(self, handler: BaseHTTPRequestHandler, path: str,
                    query: dict[str, list[str]], auth: str | None) -> None:
        req = Request("GET", path, "/_blob/{id}", {}, query, b"", authorization=auth is not None)
        self.blob_log.append(req)
        art_id = int(path.rsplit("/", 1)[-1])
        art = next((a for a in self.artifacts if a.id == art_id), None)
        if art is None or query.get("sig") != [f"sig{art_id}"]:
            raw = b"AuthenticationFailed"
            handler.send_response(403)
        else:
            raw = art.archive
            handler.send_response(200)
            handler.send_header("Content-Type", "application/zip")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    # -- object builders (skeleton from the response schema, overlaid with state)

    def _skeleton(self, method: str, template: str, status: int, *, item: str | None = None,
                  array: bool = False) -> Any:
        op = self.spec.operation(method, template)
        schema = self.spec.response_schema(op, status)
        assert schema is not None, (method, template, status)
        if item is not None:
            schema = schema["properties"][item]
        if array or item is not None:
            schema = schema["items"]
        return skeleton(schema)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _user(self, login: str, user_type: str = "User") -> dict[str, Any]:
        return merge(skeleton(self.spec.simple_user, force=True), {"login": login, "id": abs(hash(login)) % 10**7 + 1, "type": user_type,
                "node_id": f"U_{login}", "url": self._url(f"/users/{urllib.parse.quote(login)}"),
                "html_url": f"https://github.invalid/{login}", "site_admin": False})

    def _repo_obj(self, full_name: str | None) -> dict[str, Any] | None:
        if full_name is None:
            return None
        base = skeleton(self.spec.repository, force=True)
        owner, name = full_name.split("/", 1)
        repo_id = self.repo_id if full_name == self.full_name else abs(hash(full_name)) % 10**7 + 2
        return merge(base, {
            "id": repo_id, "name": name, "full_name": full_name,
            "owner": self._user(owner, "Organization"),
            "url": self._url(f"/repos/{full_name}"), "fork": full_name != self.full_name,
            "html_url": f"https://github.invalid/{full_name}"})

    def _comment_obj(self, c: Comment, base: Any) -> dict[str, Any]:
        return merge(base, {
            "id": c.id, "node_id": f"IC_{c.id}", "body": c.body,
            "url": self._url(f"/repos/{self.full_name}/issues/comments/{c.id}"),
            "html_url": f"https://github.invalid/{self.full_name}/pull/{c.issue}#issuecomment-{c.id}",
            "issue_url": self._url(f"/repos/{self.full_name}/issues/{c.issue}"),
            "user": self._user(c.login, c.user_type),
            "created_at": c.created_at, "updated_at": c.updated_at,
            "author_association": "NONE"})

    def _pull_obj(self, p: Pull, base: Any) -> dict[str, Any]:
        def part(ref: str, sha: str, repo: str | None, part_base: dict[str, Any]) -> dict[str, Any]:
            owner = (repo or "ghost/gone").split("/", 1)[0]
            return merge(part_base, {
                "ref": ref, "sha": sha, "label": f"{owner}:{ref}",
                "user": self._user(owner, "Organization"),
                "repo": self._repo_obj(repo)})

        url = self._url(f"/repos/{self.full_name}/pulls/{p.number}")
        label_base = {"id": 1, "node_id": "L_1", "url": self._url("/labels/x"), "name": "",
                      "description": None, "color": "ededed", "default": False}
        return merge(base, {
            "id": p.number + 5000, "node_id": f"PR_{p.number}", "number": p.number,
            "state": p.state, "url": url,
            "html_url": f"https://github.invalid/{self.full_name}/pull/{p.number}",
            "issue_url": self._url(f"/repos/{self.full_name}/issues/{p.number}"),
            "comments_url": self._url(f"/repos/{self.full_name}/issues/{p.number}/comments"),
            "user": self._user(p.author),
            "labels": [dict(label_base, name=name, id=i + 1) for i, name in enumerate(p.labels)],
            "head": part(p.head_ref, p.head_sha, p.head_repo, base["head"]),
            "base": part(p.base_ref, p.base_sha, self.full_name, base["base"])})

    def _commit_obj(self, sha: str, base: Any) -> dict[str, Any]:
        url = self._url(f"/repos/{self.full_name}/commits/{sha}")
        return merge(base, {
            "sha": sha, "node_id": f"C_{sha[:8]}", "url": url,
            "html_url": f"https://github.invalid/{self.full_name}/commit/{sha}",
            "comments_url": url + "/comments",
            "parents": [{"sha": p, "url": self._url(f"/repos/{self.full_name}/commits/{p}")}
                        for p in self.commits.get(sha, [])]})

    def _artifact_obj(self, a: Artifact, base: Any) -> dict[str, Any]:
        return merge(base, {
            "id": a.id, "node_id": f"A_{a.id}", "name": a.name, "size_in_bytes": len(a.archive),
            "url": self._url(f"/repos/{self.full_name}/actions/artifacts/{a.id}"),
            "archive_download_url": self._url(
                f"/repos/{self.full_name}/actions/artifacts/{a.id}/zip"),
            "expired": a.expired, "created_at": "2024-01-01T00:00:00Z",
            "expires_at": "2024-04-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "digest": None,
            "workflow_run": {"id": a.run_id, "repository_id": self.repo_id,
                             "head_repository_id": a.head_repository_id,
                             "head_branch": a.head_branch, "head_sha": a.head_sha}})

    def _page(self, req: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = min(int(req.query.get("per_page", ["30"])[0]), self.max_per_page)
            page = max(int(req.query.get("page", ["1"])[0]), 1)
        except ValueError:
            per_page, page = 30, 1
        per_page = max(per_page, 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []

        def link(n: int, rel: str) -> str:
            query = {k: v[0] for k, v in req.query.items()}
            query.update(page=str(n), per_page=str(per_page))
            return f'<{self._url(req.path)}?{urllib.parse.urlencode(query)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- routes

    def _register(self) -> None:
        r = self._routes
        repo = "/repos/{owner}/{repo}"
        r["GET", "/user"] = self._get_user
        r["GET", repo + "/issues/{issue_number}/comments"] = self._list_comments
        r["POST", repo + "/issues/{issue_number}/comments"] = self._create_comment
        r["GET", repo + "/issues/comments/{comment_id}"] = self._get_comment
        r["PATCH", repo + "/issues/comments/{comment_id}"] = self._update_comment
        r["DELETE", repo + "/issues/comments/{comment_id}"] = self._delete_comment
        r["POST", repo + "/statuses/{sha}"] = self._create_status
        r["GET", repo + "/pulls/{pull_number}"] = self._get_pull
        r["GET", repo + "/pulls"] = self._list_pulls
        r["GET", repo + "/commits/{commit_sha}/pulls"] = self._commit_pulls
        r["GET", repo + "/commits"] = self._list_commits
        r["GET", repo + "/compare/{basehead}"] = self._compare
        r["GET", repo + "/actions/artifacts"] = self._list_artifacts
        r["GET", repo + "/actions/artifacts/{artifact_id}/{archive_format}"] = self._download
        for method, template in r:
            self.spec.operation(method, template)  # every route is a documented operation

    def _get_user(self, req: Request) -> Response:
        if req.login is None:
            return error(403, "Resource not accessible by integration")
        token = next(t for t in self.tokens.values() if t.login == req.login)
        base = self._skeleton("GET", "/user", 200)
        return Response(200, merge(base, self._user(req.login, token.user_type)))

    def _issue(self, req: Request) -> int | None:
        number = int(req.params["issue_number"])
        return number if number in self.pulls else None

    def _list_comments(self, req: Request) -> Response:
        number = self._issue(req)
        if number is None:
            return error(404, "Not Found")
        base = self._skeleton("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", 200,
                              array=True)
        items = [self._comment_obj(c, base) for c in self.comments_on(number)]
        chunk, headers = self._page(req, items)
        return Response(200, chunk, headers)

    def _check_body(self, req: Request) -> str | Response:
        data = req.json()
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str):
            return error(422, "Invalid request.")
        if len(body) > 65536:
            return error(422, "Validation Failed", errors=[{
                "resource": "IssueComment", "code": "custom", "field": "data",
                "message": "Body is too long (maximum is 65536 characters)"}])
        return body

    def _create_comment(self, req: Request) -> Response:
        number = self._issue(req)
        if number is None:
            return error(404, "Not Found")
        body = self._check_body(req)
        if isinstance(body, Response):
            return body
        token_user = req.login or "github-actions[bot]"
        user_type = "Bot" if req.login is None else next(
            t.user_type for t in self.tokens.values() if t.login == req.login)
        comment = self.add_comment(number, body, token_user, user_type)
        base = self._skeleton("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", 201)
        obj = self._comment_obj(comment, base)
        return Response(201, obj, {"Location": obj["url"]})

    def _comment_for(self, req: Request) -> Comment | None:
        return self.comments.get(int(req.params["comment_id"]))

    def _get_comment(self, req: Request) -> Response:
        comment = self._comment_for(req)
        if comment is None:
            return error(404, "Not Found")
        base = self._skeleton("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 200)
        return Response(200, self._comment_obj(comment, base))

    def _may_write(self, req: Request, comment: Comment) -> bool:
        return comment.login == (req.login or "github-actions[bot]")

    def _update_comment(self, req: Request) -> Response:
        comment = self._comment_for(req)
        if comment is None:
            return error(404, "Not Found")
        if not self._may_write(req, comment):
            return error(403, "Must have admin rights to Repository.")
        body = self._check_body(req)
        if isinstance(body, Response):
            return body
        comment.body = body
        comment.updated_at = self._stamp()
        base = self._skeleton("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}", 200)
        return Response(200, self._comment_obj(comment, base))

    def _delete_comment(self, req: Request) -> Response:
        comment = self._comment_for(req)
        if comment is None:
            return error(404, "Not Found")
        if not self._may_write(req, comment):
            return error(403, "Must have admin rights to Repository.")
        del self.comments[comment.id]
        return Response(204)

    def _create_status(self, req: Request) -> Response:
        sha = req.params["sha"]
        data = req.json() or {}
        description = data.get("description") or ""
        if len(description) > 140:
            return error(422, "Validation Failed", errors=[{
                "resource": "Status", "code": "custom", "field": "description",
                "message": "description is too long (maximum is 140 characters)"}])
        if sha not in self.commits and not any(p.head_sha == sha for p in self.pulls.values()):
            return error(422, "No commit found for SHA: " + sha)
        entry = {"state": data["state"], "description": description,
                 "context": data.get("context") or "default",
                 "target_url": data.get("target_url")}
        self.statuses.setdefault(sha, []).append(entry)
        base = self._skeleton("POST", "/repos/{owner}/{repo}/statuses/{sha}", 201)
        sid = self._new_id()
        obj = merge(base, {**entry, "id": sid, "node_id": f"S_{sid}",
                           "url": self._url(f"/repos/{self.full_name}/statuses/{sha}"),
                           "creator": self._user(req.login or "github-actions[bot]",
                                                 "Bot" if req.login is None else "User")})
        return Response(201, obj, {"Location": obj["url"]})

    def _get_pull(self, req: Request) -> Response:
        pull = self.pulls.get(int(req.params["pull_number"]))
        if pull is None:
            return error(404, "Not Found")
        base = self._skeleton("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", 200)
        return Response(200, self._pull_obj(pull, base))

    def _simple_pulls(self, req: Request, template: str, pulls: list[Pull]) -> Response:
        base = self._skeleton("GET", template, 200, array=True)
        chunk, headers = self._page(req, [self._pull_obj(p, base) for p in pulls])
        return Response(200, chunk, headers)

    def _list_pulls(self, req: Request) -> Response:
        state = req.query.get("state", ["open"])[0]
        pulls = [p for p in self.pulls.values() if state == "all" or p.state == state]
        head = req.query.get("head", [None])[0]
        if head:
            owner, _, ref = head.partition(":")
            pulls = [p for p in pulls if p.head_ref == ref and p.head_repo is not None
                     and p.head_repo.split("/")[0] == owner]
        pulls.sort(key=lambda p: p.number, reverse=True)
        return self._simple_pulls(req, "/repos/{owner}/{repo}/pulls", pulls)

    def _commit_pulls(self, req: Request) -> Response:
        sha = req.params["commit_sha"]
        # GitHub lists pull requests whose head contains the commit; a fork's commits
        # are not found this way (the reason the Action has fall-backs).
        pulls = [p for p in self.pulls.values()
                 if p.head_repo == self.full_name and sha in self._ancestry(p.head_sha)]
        return self._simple_pulls(req, "/repos/{owner}/{repo}/commits/{commit_sha}/pulls", pulls)

    def _ancestry(self, sha: str) -> list[str]:
        """``sha`` and its ancestors, newest first (first parents, then the rest)."""
        out, queue, seen = [], [sha], set()
        while queue:
            cur = queue.pop(0)
            if cur in seen or cur not in self.commits:
                continue
            seen.add(cur)
            out.append(cur)
            queue.extend(self.commits[cur])
        return out

    def _resolve(self, ref: str) -> str | None:
        if ref in self.commits:
            return ref
        return self.branches.get(ref)

    def _list_commits(self, req: Request) -> Response:
        start = self._resolve(req.query.get("sha", ["main"])[0])
        if start is None:
            return error(404, "No commit found for SHA")
        base = self._skeleton("GET", "/repos/{owner}/{repo}/commits", 200, array=True)
        items = [self._commit_obj(s, base) for s in self._ancestry(start)]
        chunk, headers = self._page(req, items)
        return Response(200, chunk, headers)

    def _compare(self, req: Request) -> Response:
        base_ref, sep, head_ref = req.params["basehead"].partition("...")
        base_sha, head_sha = self._resolve(base_ref), self._resolve(head_ref)
        if not sep or base_sha is None or head_sha is None:
            return error(404, "Not Found")
        head_line = self._ancestry(head_sha)
        base_set = set(self._ancestry(base_sha))
        merge_base = next((s for s in head_line if s in base_set), None)
        if merge_base is None:
            return error(404, "No common ancestor between base and head")
        skel = self._skeleton("GET", "/repos/{owner}/{repo}/compare/{basehead}", 200)
        ahead = [s for s in head_line if s not in base_set]
        obj = merge(skel, {
            "url": self._url(req.path), "status": "diverged" if ahead else "identical",
            "ahead_by": len(ahead), "behind_by": 0, "total_commits": len(ahead),
            "base_commit": self._commit_obj(base_sha, skel["base_commit"]),
            "merge_base_commit": self._commit_obj(merge_base, skel["merge_base_commit"]),
            "commits": [], "html_url": "https://github.invalid/compare",
            "permalink_url": "https://github.invalid/compare",
            "diff_url": "https://github.invalid/compare.diff",
            "patch_url": "https://github.invalid/compare.patch"})
        return Response(200, obj)

    def _list_artifacts(self, req: Request) -> Response:
        name = req.query.get("name", [None])[0]
        arts = [a for a in reversed(self.artifacts) if name is None or a.name == name]
        base = self._skeleton("GET", "/repos/{owner}/{repo}/actions/artifacts", 200,
                              item="artifacts")
        chunk, headers = self._page(req, [self._artifact_obj(a, base) for a in arts])
        return Response(200, {"total_count": len(arts), "artifacts": chunk}, headers)

    def _download(self, req: Request) -> Response:
        art_id = int(req.params["artifact_id"])
        art = next((a for a in self.artifacts if a.id == art_id), None)
        if art is None or req.params["archive_format"] != "zip":
            return error(404, "Not Found")
        if art.expired:
            return error(410, "Artifact has expired")
        return Response(302, None, {"Location": f"{self.blob_base}/_blob/{art_id}?sig=sig{art_id}"})


def _sha(seed: str) -> str:
    import hashlib

    return hashlib.sha1(seed.encode()).hexdigest()


# --- pytest glue -----------------------------------------------------------------------------

import pytest

#: The installation token (``GITHUB_TOKEN``) the tests use; it must never show up in output.
TOKEN = "ghs_Z3JlZW5ubHAtdGVzdC10b2tlbi1uZXZlci1wcmludA"
_SPEC_MISSING = ("GitHub's OpenAPI description is absent: run `npm ci --prefix tests/js` "
                 "(as .ci/run does) to install @octokit/openapi")


def serve() -> Any:
    """Body of the ``github_server`` fixtures: a running `GitHubServer` with `TOKEN`.

    Fails the test if any exchange broke GitHub's description. Use as
    ``yield from serve()`` in a fixture.
    """
    if not SPEC_PATH.is_file():
        pytest.skip(_SPEC_MISSING)
    server = GitHubServer().start()
    server.add_token(TOKEN, None)
    try:
        yield server
    finally:
        server.stop()
    assert not server.violations, "OpenAPI violations:\n" + "\n".join(server.violations)


def client_for(server: GitHubServer, token: str = TOKEN, *, sleeps: list[float] | None = None,
               timeout_s: int = 15, **retry: Any) -> Any:
    """A `GitHubClient` for ``server`` that records its sleeps instead of sleeping."""
    from pytest_greennlp.github import GitHubClient, RetryPolicy, connect

    record = sleeps if sleeps is not None else []
    gh = connect(token, api_url=server.base_url, timeout_s=timeout_s, seconds_between_writes=None)
    return GitHubClient(gh, f"{server.owner}/{server.repo}", retry=RetryPolicy(**retry),
                        sleep=record.append)
