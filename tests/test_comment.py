"""comment.py: the Markdown, its limits, hostile report content, and the Mermaid it embeds."""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import replace
from typing import Any

import pytest
from jstools import node, requires_js
from reportfactory import energy, fingerprint, record, report, trials

from pytest_greennlp.comment import (
    MARKER,
    MAX_COMMENT_CHARS,
    CommentContext,
    html,
    is_sticky,
    md,
    mermaid_blocks,
    render_comment,
    sticky_header,
    text_length,
)
from pytest_greennlp.compare import compare_reports
from pytest_greennlp.gate import evaluate_gates, parse_limits
from pytest_greennlp.records import Metric

SWEEP = {
    "version": 1, "rule": "confidence", "n_examples": 200,
    "full_model": {"accuracy": 0.97, "flops_per_example": 2.0e9},
    "operating_points": {
        "no_loss": {"threshold": 0.95, "accuracy": 0.97, "flops_per_example": 1.2e9,
                    "speedup": 1.67, "exit_counts": [10, 20]},
        "within_1pt": {"threshold": 0.8, "accuracy": 0.962, "flops_per_example": 6e8,
                       "speedup": 3.3, "exit_counts": [25, 5]},
    },
    "pareto": [{"speedup": s, "accuracy": a} for s, a in
               [(1.0, 0.97), (1.67, 0.97), (2.5, 0.965), (3.3, 0.962), (6.0, 0.9)]],
    "measured": [{"name": "within_1pt", "threshold": 0.8, "batch_size": 1,
                  "measured_speedup": 2.9, "predicted_speedup": 3.3, "accuracy": 0.96}],
}


def pair() -> tuple[Any, Any]:
    base = report(
        record("tests/test_nlp.py::test_train", flops=1000, wall=[1.0, 1.02, 0.98],
               energy_=energy(estimated=[50, 51, 49]), metrics={"accuracy": 0.90},
               trials=trials("lr", [0.6, 0.7, 0.8, None])),
        record("tests/test_nlp.py::test_infer", flops=500, wall=[0.5, 0.51, 0.49],
               energy_=energy(measured=[20, 20.2, 19.8]), metrics={"loss": 1.0},
               lower_is_better=["loss"]),
    )
    head = report(
        record("tests/test_nlp.py::test_train", flops=1500, wall=[1.5, 1.52, 1.48],
               energy_=energy(estimated=[70, 71, 69]), metrics={"accuracy": 0.90},
               trials=trials("lr", [0.75, 0.8, 0.85, 0.5])),
        record("tests/test_nlp.py::test_infer", flops=500, wall=[0.5, 0.51, 0.49],
               energy_=energy(measured=[20, 20.2, 19.8]), metrics={"loss": 0.9},
               lower_is_better=["loss"], sweep=SWEEP),
        record("tests/test_nlp.py::test_new", flops=10, wall=0.1),
    )
    return base, head


def render(base: Any, head: Any, limits: dict[str, Any] | None = None, **ctx: Any) -> str:
    comparison = compare_reports(base, head) if base is not None else None
    gate = evaluate_gates(comparison, head, parse_limits(limits or {}))
    fields: dict[str, Any] = {
        "head_sha": "a" * 40, "base_report": base, "baseline_sha": "b" * 40,
        "baseline_note": "artifact 'green-report' from main, at the merge-base",
        "run_url": "https://github.com/o/r/actions/runs/42",
        "plots_url": "https://github.com/o/r/actions/runs/42#artifacts"}
    context = CommentContext(**{**fields, **ctx})
    return render_comment(head, comparison, gate, context)


# --- the marker -----------------------------------------------------------------------------


def test_sticky_marker_and_keys():
    assert sticky_header() == MARKER == "<!-- pytest-greennlp -->"
    keyed = sticky_header("py3.11 / cuda")
    assert keyed == "<!-- pytest-greennlp -->\n<!-- pytest-greennlp-key: py3.11-/-cuda -->"
    assert is_sticky(MARKER + "\nbody") and not is_sticky(MARKER + "\nbody", "py3.11 / cuda")
    assert is_sticky(keyed + "\nbody", "py3.11 / cuda") and not is_sticky(keyed + "\nx")
    assert not is_sticky(keyed + "\nx", "py3.12")
    assert not is_sticky("quote: " + MARKER) and not is_sticky("")
    assert "--" not in sticky_header("a -- b -->")[len(MARKER) + 5:-3]  # cannot close the comment


# --- content ---------------------------------------------------------------------------------


def test_comment_with_baseline_has_every_part():
    base, head = pair()
    text = render(base, head, {"max_flops_increase_pct": 10}, key="py3.11")
    assert text.startswith(sticky_header("py3.11") + "\n")
    headline = text.split("\n")[4]
    assert headline == "❌ **Efficiency gate failed**: 1 limit(s) exceeded"
    assert "**Head** `aaaaaaaaaaaa` on Test CPU 3000 × 2, no GPU, cpu" in text
    assert "**Baseline** `bbbbbbbbbbbb` on Test CPU 3000 × 2, no GPU, cpu (artifact" in text
    assert "#### What gated\n- ❌ tests/test\\_nlp.py::test\\_train: FLOPs \\+50.0%" in text
    assert "| T1 | tests/test\\_nlp.py::test\\_train | 🟡 better-but-costlier |" in text
    assert "70 J estimated (+40.0% ▲)" in text  # the energy basis is labelled
    assert "20 J measured (+0.0% =)" in text
    assert "| T3 | tests/test\\_nlp.py::test\\_new | 🆕 new |" in text
    assert "#### Expected validation performance" in text and "| G1 lr | 4 |" in text
    assert "#### Speed / accuracy (early exit)" in text and "| within\\_1pt (0.8) | 1 | 2.90× | 3.30× |" in text
    assert text.count("<details>") == text.count("</details>") >= 3
    assert "[workflow run](https://github.com/o/r/actions/runs/42)" in text
    assert "[plots (artifact)](https://github.com/o/r/actions/runs/42#artifacts)" in text
    assert len(mermaid_blocks(text)) == 5  # time, energy, FLOPs, tuning curve, Pareto


def test_no_baseline_says_so():
    _, head = pair()
    text = render(None, head, baseline_sha=None)
    assert "⚪ **No baseline**: 3 test(s) measured on head only within the absolute limits" in text
    assert "**Baseline**: none (artifact" in text
    assert "Time per test (s)" in text


def test_accepted_regression_is_recorded():
    base, head = pair()
    text = render(base, head, {"max_flops_increase_pct": 10}, accepted_by="greennlp-accept")
    assert "⚠️ **Regression accepted** by the label **greennlp\\-accept**" not in text  # '-' is safe
    assert "⚠️ **Regression accepted** by the label **greennlp-accept**: 1 limit(s) exceeded" in text
    assert "accepts these on purpose; the check passes." in text


def test_hardware_mismatch_is_not_compared():
    base, head = pair()
    head = replace(head, fingerprint=fingerprint(cpu="Other CPU"))
    text = render(base, head)
    assert "⚪ **Not compared**: hardware differs: cpu\\_model" in text


def test_unsafe_links_are_dropped():
    _, head = pair()
    text = render(None, head, run_url="javascript:alert(1)", plots_url="http://plain.example")
    assert "javascript" not in text and "plain.example" not in text


# --- hostile content -------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(document.cookie)</script>",
    '<img src=x onerror="alert(1)">',
    "<details open><summary>x</summary>",
    "@octocat @github/security-team",
    "[click me](https://evil.example/phish) ![img](https://evil.example/x.png)",
    "https://evil.example/bare and www.evil.example and mail@evil.example",
    "fixes #1 and GH-2 and octo-org/octo-repo#3",
    "`code` ``` ~~~ | pipe | $x^2$ $$y$$ \\",
    "line1\nline2\r\n# heading\n> quote\n- item",
    "<!-- pytest-greennlp --> --> <!--",
    "\u202eevil\u202c \u200b\ufeff zero-width",
    "javascript:alert(1) data:text/html,<b>x</b>",
]


def hostile_reports() -> tuple[Any, Any]:
    long_id = "tests/test_x.py::test_" + "A" * 100_000 + "@octocat<script>"
    names = [f"tests/test_h.py::test_{i}[{h}]" for i, h in enumerate(HOSTILE)] + [long_id]
    base_tests, head_tests = [], []
    for i, nodeid in enumerate(names):
        evil = HOSTILE[i % len(HOSTILE)]
        common: dict[str, Any] = {"flops": 100 + i, "wall": [1.0, 1.01, 0.99],
                                  "energy_": energy(estimated=[5, 5.1, 4.9]),
                                  "trials": trials(evil, [0.1, 0.2])}
        base_tests.append(record(nodeid, metrics={evil: 0.5}, **common))
        head_tests.append(replace(record(nodeid, metrics={evil: 0.4}, sweep={
            "rule": evil, "n_examples": evil, "full_model": {"accuracy": evil},
            "operating_points": {evil: {"threshold": evil, "speedup": 2.0}},
            "measured": [{"name": evil, "threshold": 0.5}], "pareto": [evil, {"speedup": 1e308}],
        }, **common), notes=(evil,), metrics=(Metric(evil, 0.4),)))
    fp = fingerprint(cpu="<b>CPU</b> @intel https://cpu.example", gpus=["<script>gpu</script>"])
    base = report(*base_tests, fp=fp)
    head = report(*head_tests, fp=fp, tool_version="<script>1</script>")
    return base, head


@pytest.fixture(scope="module")
def hostile_comment() -> str:
    base, head = hostile_reports()
    return render(base, head, {"max_flops_increase_pct": 0, "min_metric_delta": 0.0},
                  key="<script>", accepted_by="@octocat")


def _visible_text(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_hostile_content_is_inert_in_the_markdown(hostile_comment):
    text = hostile_comment
    assert text_length(text) <= MAX_COMMENT_CHARS
    assert "A" * 300 not in text  # the 100,000-character id was capped
    for needle in ("<script", "<img", "<details open", "](https://evil",
                   "https://evil", "www.evil", "@octocat", "@github", "#1 ", "GH-2", "\u202e",
                   "\ufeff", "$$y", "<!--\n", "javascript:alert(1) data:text/html,<b>"):
        assert needle not in text, needle
    # Our own HTML only; every "<" from a report arrives as "&lt;".
    assert set(re.findall(r"<(/?[a-z]+)", text)) <= {"details", "/details", "summary", "/summary",
                                                    "sub", "/sub", "br"}
    # Exactly one marker comment at the top, however often a report spells it.
    assert text.count("<!--") == 2 and text.startswith(MARKER + "\n<!-- pytest-greennlp-key: script -->")


@requires_js
def test_hostile_content_renders_inert_with_a_gfm_parser(hostile_comment):
    (rendered,) = node("gfm-render.mjs", [hostile_comment])
    hrefs = re.findall(r'href="([^"]*)"', rendered)
    assert hrefs == ["https://github.com/o/r/actions/runs/42",
                     "https://github.com/o/r/actions/runs/42#artifacts"]
    assert "<img" not in rendered and "<script" not in rendered.replace("&lt;script", "")
    tags = set(re.findall(r"<([a-z0-9]+)", rendered))
    assert tags <= {"a", "p", "h3", "h4", "br", "strong", "code", "table", "thead", "tbody", "tr",
                    "th", "td", "details", "summary", "sub", "ul", "li", "pre", "blockquote", "em"}
    visible = _visible_text(rendered)
    # Mentions, references and autolinks are broken by a zero-width space.
    assert not re.search(r"@[A-Za-z0-9]", visible)
    assert not re.search(r"(?<![\w])#\d", visible)
    assert "https://evil" not in visible and "www.evil" not in visible
    assert "@\u200boctocat" in visible and "https:\u200b//evil.example" in visible


@requires_js
def test_tables_keep_their_shape_with_hostile_cells(hostile_comment):
    (rendered,) = node("gfm-render.mjs", [hostile_comment])
    for table in re.findall(r"<table>.*?</table>", rendered, flags=re.DOTALL):
        widths = {len(re.findall(r"<t[hd]>", row)) for row in re.findall(r"<tr>.*?</tr>", table, re.DOTALL)}
        assert len(widths) == 1, widths  # no pipe or newline from a report split a cell


def test_escapers():
    assert md("a|b") == "a\\|b" and md("x\ny") == "x y" and md("[a](b)") == "\\[a\\]\\(b\\)"
    assert md("@me") == "@&#8203;me" and md("#12") == "\\#&#8203;12"
    assert md("ftp://x") == "ftp:&#8203;//x" and md("WWW.x.com") == "WWW&#8203;.x.com"
    assert md("x" * 50, 10) == "xxxxx…xxxx" and len(md("y" * 100_000)) == 400
    assert md("\u202egnp.exe") == "gnp.exe"
    assert html("<a href='x'>`*_|</a>") == ("&lt;a href=&#39;x&#39;&gt;&#96;&#42;&#95;&#124;"
                                           "&lt;/a&gt;")


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 60, 600])
def test_many_tests_stay_under_the_limit(n):
    base = report(*[record(f"tests/test_m.py::test_{i}_" + "x" * 150, flops=100, wall=[1.0, 1.1, 0.9],
                           energy_=energy(measured=[3, 3.1, 2.9]), metrics={"acc": 0.5})
                    for i in range(n)])
    head = report(*[record(f"tests/test_m.py::test_{i}_" + "x" * 150, flops=120, wall=[1.2, 1.3, 1.1],
                           energy_=energy(measured=[4, 4.1, 3.9]), metrics={"acc": 0.4})
                    for i in range(n)])
    text = render(base, head, {"max_flops_increase_pct": 0})
    assert text_length(text) <= MAX_COMMENT_CHARS
    assert text.rstrip().endswith("</sub>")  # the footer always survives
    if n == 600:
        assert "Left out to stay within GitHub's 65,536-character limit" in text
        assert "more test(s) not shown here" in text
    else:  # every test has its row; details may be left out
        assert len(re.findall(r"^\| T\d+ \|", text, flags=re.MULTILINE)) == n
        assert "Left out" not in text or "Left out to stay within GitHub's 65,536-character " \
            "limit: details of " in text
    assert text.count("<details>") == text.count("</details>")


def test_limit_is_counted_in_utf16_units():
    assert text_length("🌱") == 2 and text_length("é") == 1
    base, head = pair()
    small = render_comment(head, compare_reports(base, head), None, None, limit=3000)
    assert text_length(small) <= 3000 and small.startswith(MARKER)


def test_non_finite_and_huge_numbers_render():
    head = report(record("tests/t.py::test_huge", flops=10**30, wall=1e308,
                         metrics={"m": float("inf")}))
    text = render_comment(head)
    assert "| 1e+308 s | 1e+30 |" in text
    assert "inf" not in text.lower() and "nan" not in text.lower()
    assert text_length(text) <= MAX_COMMENT_CHARS


# --- mermaid ----------------------------------------------------------------------------------


@requires_js
def test_every_chart_parses_with_mermaid(hostile_comment):
    base, head = pair()
    charts = (mermaid_blocks(render(base, head)) + mermaid_blocks(render(None, head))
              + mermaid_blocks(hostile_comment))
    assert len(charts) >= 8
    results = node("mermaid-parse.mjs", charts)
    assert [r.get("error") for r in results if not r["ok"]] == []
    assert {r["diagramType"] for r in results} == {"xychart"}


@requires_js
def test_the_mermaid_check_does_catch_a_broken_chart():
    (result,) = node("mermaid-parse.mjs", ["xychart-beta\n    bar [1,, 2]"])
    assert not result["ok"] and "Parse error" in result["error"]
