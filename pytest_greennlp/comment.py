"""The pull-request comment: pure Markdown from a head report, a comparison and a gate result.

`render_comment` returns the whole body: the hidden sticky marker, a one-line headline
verdict, the commits and hardware of both sides, what gated, a table of every test
(measured and estimated energy labelled), inline Mermaid ``xychart-beta`` charts, the
expected-validation-performance and speed/accuracy summaries, one collapsed table per
test, and links to the run and its plot artifacts. No I/O.

Everything that comes from a report (test ids, metric and group names, notes, config
values, the sweep payload) is untrusted: a pull request from a fork writes it.
`md` and `html` make such text inert: control and bidirectional-override characters
are dropped, the length is capped, HTML and Markdown syntax are escaped, and @mentions,
#references and bare URLs are broken with a zero-width space so that they neither
notify, link nor cross-reference. Charts never contain report text: tests are labelled
T1, T2, ... as in the table.

The body stays within GitHub's 65,536-character limit (counted in UTF-16 code units,
the stricter reading): sections that do not fit are left out, in reverse order of
importance, and a note says what was left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_greennlp import evp
from pytest_greennlp.compare import (
    VERDICTS,
    Comparison,
    Delta,
    TestComparison,
    finite_number,
)
from pytest_greennlp.gate import GateResult
from pytest_greennlp.records import Energy, Report, TestRecord, Trial

__all__ = [
    "MARKER",
    "MAX_COMMENT_CHARS",
    "CommentContext",
    "html",
    "is_sticky",
    "md",
    "mermaid_blocks",
    "render_comment",
    "sticky_header",
    "text_length",
]

#: The hidden marker every comment of ours starts with.
MARKER = "<!-- pytest-greennlp -->"
#: GitHub's limit on a comment body.
MAX_COMMENT_CHARS = 65_536

_KEY_PREFIX = "<!-- pytest-greennlp-key: "
_ZWSP = "\u200b"
#: Longest test id shown in a table cell / in a section title.
_ID_CELL = 120
_ID_TITLE = 200
_NAME = 80
_LINE = 400
_MAX_CHART_TESTS = 20
_MAX_TABLE_ROWS = 200

_VERDICT_ICON = {
    "better": "🟢",
    "cheaper-at-equal-quality": "🟢",
    "better-but-costlier": "🟡",
    "unchanged": "⚪",
    "inconclusive": "⚪",
    "incomparable": "⚪",
    "costlier-at-equal-quality": "🔴",
    "worse": "🔴",
}


# --- escaping --------------------------------------------------------------------------

# C0/C1 controls, zero-width and bidirectional formatting characters (Trojan Source).
_INVISIBLE = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
_MD_ESCAPE = {c: "\\" + c for c in "\\`*_{}[]()#+!|~$^"}
_HTML_ESCAPE = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
_BREAKS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"@"), "@" + _ZWSP),                      # @mentions, user@host
    (re.compile(r":(?=//)"), ":" + _ZWSP),                # scheme://
    (re.compile(r"(?i)\bwww\."), lambda m: m.group(0)[:3] + _ZWSP + "."),  # www. autolinks
    (re.compile(r"#(?=\d)"), "#" + _ZWSP),                # #123 references
    (re.compile(r"(?i)\b(gh)-(?=\d)"), lambda m: m.group(1) + _ZWSP + "-"),  # GH-123
]


def _plain(text: object, limit: int) -> str:
    """One line of visible characters, at most ``limit`` of them (middle elided)."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > 4 * limit + 64:  # drop the bulk before the regexes see it
        value = value[: 2 * limit] + " " + value[-2 * limit:]
    value = _INVISIBLE.sub(" ", value)
    value = " ".join(value.split())
    if len(value) > limit:
        head = max(1, (limit - 1) * 3 // 5)
        tail = max(0, limit - 1 - head)
        value = value[:head] + "…" + (value[-tail:] if tail else "")
    for pattern, repl in _BREAKS:
        value = pattern.sub(repl, value)
    return value


def md(text: object, limit: int = _LINE) -> str:
    """Untrusted text as inert inline Markdown (table cells included).

    Examples
    --------
    >>> md("<script>alert(1)</script> @octocat [x](https://e.vil)")
    '&lt;script&gt;alert\\\\(1\\\\)&lt;/script&gt; @&#8203;octocat \\\\[x\\\\]\\\\(https:&#8203;//e.vil\\\\)'
    """
    out = []
    for ch in _plain(text, limit):
        if ch in _HTML_ESCAPE:
            out.append(_HTML_ESCAPE[ch])
        elif ch in _MD_ESCAPE:
            out.append(_MD_ESCAPE[ch])
        elif ch == _ZWSP:
            out.append("&#8203;")
        else:
            out.append(ch)
    return "".join(out)


def html(text: object, limit: int = _LINE) -> str:
    """Untrusted text as inert HTML text (inside ``<summary>``, where Markdown is off).

    Examples
    --------
    >>> html("a <b> & @c")
    'a &lt;b&gt; &amp; @&#8203;c'
    """
    out = []
    for ch in _plain(text, limit):
        if ch in _HTML_ESCAPE:
            out.append(_HTML_ESCAPE[ch])
        elif ch == _ZWSP:
            out.append("&#8203;")
        elif ch in "`*_[]\\|~$":
            out.append(f"&#{ord(ch)};")  # inert in HTML and in Markdown alike
        else:
            out.append(ch)
    return "".join(out)


def text_length(text: str) -> int:
    """Length in UTF-16 code units (what a JavaScript ``length`` counts)."""
    return len(text.encode("utf-16-le")) // 2


# --- the sticky marker -------------------------------------------------------------------


def _clean_key(key: str | None) -> str | None:
    if key is None:
        return None
    cleaned = re.sub(r"[^A-Za-z0-9_.:/=+-]+", "-", key.strip())
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:100].strip("-")  # "--" would end the comment
    return cleaned or None


def sticky_header(key: str | None = None) -> str:
    """The hidden first line(s) of our comment; ``key`` separates workflows or matrix cells."""
    cleaned = _clean_key(key)
    return MARKER if cleaned is None else f"{MARKER}\n{_KEY_PREFIX}{cleaned} -->"


def is_sticky(body: str, key: str | None = None) -> bool:
    """Whether ``body`` is our sticky comment for ``key`` (exactly that key, or none)."""
    lines = body.replace("\r\n", "\n").split("\n", 2)
    if not lines or lines[0].strip() != MARKER:
        return False
    second = lines[1].strip() if len(lines) > 1 else ""
    cleaned = _clean_key(key)
    if cleaned is None:
        return not second.startswith(_KEY_PREFIX)
    return second == f"{_KEY_PREFIX}{cleaned} -->"


# --- numbers -----------------------------------------------------------------------------


def _si(value: object, unit: str = "") -> str:
    number = finite_number(value)
    if number is None:
        return "n/a"
    if number == 0:
        return f"0 {unit}".strip()
    magnitude = abs(number)
    if magnitude >= 1e18:
        return f"{number:.3g} {unit}".strip()
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
                           (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if magnitude >= factor:
            return f"{number / factor:.3g} {prefix}{unit}".strip()
    return f"{number:.2e} {unit}".strip()


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.1f}%"


def _score(value: object) -> str:
    number = finite_number(value)
    return "n/a" if number is None else f"{number:.4g}"


def _short_sha(sha: str | None) -> str:
    if not sha or not re.fullmatch(r"[0-9a-fA-F]{7,64}", sha):
        return "unknown"
    return sha[:12]


# --- context -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CommentContext:
    """What the comment says besides the reports; set by the Action from trusted sources.

    ``run_url`` and ``plots_url`` must be built from the workflow's own environment,
    never from a report. ``baseline_note`` says where the baseline came from or why
    there is none. ``accepted_by`` names the label that accepted a regression.
    """

    key: str | None = None
    head_sha: str | None = None
    base_report: Report | None = None
    baseline_sha: str | None = None
    baseline_note: str = ""
    run_url: str | None = None
    plots_url: str | None = None
    accepted_by: str | None = None
    title: str = "pytest-greennlp"


def _safe_url(url: str | None) -> str | None:
    if not url or not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/%#=?&+-]*)?", url):
        return None
    return url


# --- sections ----------------------------------------------------------------------------


def _headline(head: Report, comparison: Comparison | None, gate: GateResult | None,
              ctx: CommentContext) -> str:
    failed = gate is not None and not gate.passed
    n_fail = len(gate.failures) if gate is not None else 0
    if failed and ctx.accepted_by:
        return (f"⚠️ **Regression accepted** by the label **{md(ctx.accepted_by, 50)}**: "
                f"{n_fail} limit(s) exceeded")
    if failed:
        return f"❌ **Efficiency gate failed**: {n_fail} limit(s) exceeded"
    if comparison is None:
        tail = " within the absolute limits" if gate is not None else ""
        return (f"⚪ **No baseline**: {len(head.tests)} test(s) measured on head only{tail}")
    if comparison.refused:
        return f"⚪ **Not compared**: {md(comparison.refused, 200)}"
    counts = comparison.verdict_counts()
    total = comparison.total.verdict
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) or "no test in common"
    icon = _VERDICT_ICON.get(total, "⚪")
    if total in ("worse", "costlier-at-equal-quality"):
        icon = "🟠"  # regressed, but no limit failed
    return f"{icon} **{total.replace('-', ' ').capitalize()}** overall: {summary}"


def _hardware(report: Report) -> str:
    fp = report.fingerprint
    gpus = ", ".join(g.name for g in fp.gpus[:4]) or "no GPU"
    return md(f"{fp.cpu_model} × {fp.cpu_count}, {gpus}, {fp.device}", 200)


def _sides(head: Report, ctx: CommentContext) -> str:
    lines = [f"**Head** `{_short_sha(ctx.head_sha)}` on {_hardware(head)}"]
    if ctx.base_report is not None:
        lines.append(f"**Baseline** `{_short_sha(ctx.baseline_sha)}` on "
                     f"{_hardware(ctx.base_report)}"
                     + (f" ({md(ctx.baseline_note, 200)})" if ctx.baseline_note else ""))
    else:
        lines.append("**Baseline**: none" + (f" ({md(ctx.baseline_note, 300)})"
                                              if ctx.baseline_note else ""))
    return "<br>\n".join(lines)


def _gate_section(gate: GateResult | None, ctx: CommentContext) -> str:
    if gate is None:
        return ""
    lines = ["#### What gated"]
    if gate.passed:
        lines.append("Every limit passed." if gate.compared or gate.unchecked
                     else "No limit failed.")
    else:
        for failure in gate.failures[:20]:
            lines.append(f"- ❌ {md(failure.message, _LINE)}")
        if len(gate.failures) > 20:
            lines.append(f"- … and {len(gate.failures) - 20} more")
        if ctx.accepted_by:
            lines.append(f"\nThe label **{md(ctx.accepted_by, 50)}** accepts these on purpose; "
                         "the check passes.")
    if gate.unchecked:
        items = "\n".join(f"- {md(u, _LINE)}" for u in gate.unchecked[:50])
        more = f"\n- … and {len(gate.unchecked) - 50} more" if len(gate.unchecked) > 50 else ""
        lines.append(f"\n<details><summary>{len(gate.unchecked)} limit(s) not checked or "
                     f"within the noise</summary>\n\n{items}{more}\n\n</details>")
    return "\n".join(lines)


def _energy_head(energy: Energy | None) -> str:
    if energy is None:
        return "n/a"
    cells = []
    if finite_number(energy.measured_j) is not None:
        cells.append(f"{_si(energy.measured_j, 'J')} measured")
    if finite_number(energy.estimated_j) is not None:
        cells.append(f"{_si(energy.estimated_j, 'J')} estimated")
    return " + ".join(cells) or "n/a"


def _co2_head(record: TestRecord) -> str:
    if record.co2e is None:
        return "n/a"
    cells = []
    if finite_number(record.co2e.from_measured_g) is not None:
        cells.append(f"{_si(record.co2e.from_measured_g, 'g')} (measured)")
    if finite_number(record.co2e.from_estimated_g) is not None:
        cells.append(f"{_si(record.co2e.from_estimated_g, 'g')} (estimated)")
    return " + ".join(cells) or "n/a"


_CHANGE_MARK = {"up": "▲", "down": "▼", "same": "=", "inconclusive": "?", "n/a": ""}


def _delta_cell(delta: Delta | None) -> str:
    if delta is None:
        return "–"
    if delta.change == "n/a":
        return "n/a"
    basis = f" {delta.basis}" if delta.basis else ""
    change = _pct(delta.pct) if delta.pct is not None else f"from {_si(delta.base, delta.unit)}"
    return (f"{_si(delta.head, delta.unit)}{basis} ({change} "
            f"{_CHANGE_MARK.get(delta.change, '')})").replace(" )", ")")


def _quality_cell(test: TestComparison) -> str:
    parts = []
    for m in test.metrics[:3]:
        if m.difference is None:
            parts.append(f"{md(m.name, 30)} n/a")
        else:
            parts.append(f"{md(m.name, 30)} {m.difference:+.3g}")
    if len(test.metrics) > 3:
        parts.append(f"+{len(test.metrics) - 3} more")
    if test.trial_groups:
        parts.append(f"{len(test.trial_groups)} trial group(s)")
    return ", ".join(parts) or "–"


def _order(comparison: Comparison) -> list[TestComparison]:
    rank = {v: i for i, v in enumerate(reversed(VERDICTS))}  # worst first
    return sorted(comparison.tests, key=lambda t: (rank.get(t.verdict, 99), t.nodeid))


def _labels(tests: Sequence[Any]) -> dict[str, str]:
    return {t.nodeid: f"T{i}" for i, t in enumerate(tests, 1)}


def _comparison_table(comparison: Comparison, order: Sequence[TestComparison],
                      added: Sequence[TestRecord], labels: Mapping[str, str], budget: int) -> str:
    header = ("| | Test | Verdict | Time | FLOPs | Energy | CO2e | Quality |\n"
              "|---|---|---|---|---|---|---|---|")
    rows = []
    used = text_length(header)
    for test in order[:_MAX_TABLE_ROWS]:
        row = (f"| {labels[test.nodeid]} | {md(test.nodeid, _ID_CELL)} | "
               f"{_VERDICT_ICON.get(test.verdict, '')} {test.verdict} | {_delta_cell(test.time)} | "
               f"{_delta_cell(test.flops)} | {_delta_cell(test.energy)} | "
               f"{_delta_cell(test.co2e)} | {_quality_cell(test)} |")
        if used + text_length(row) + 200 > budget:
            break
        rows.append(row)
        used += text_length(row) + 1
    for record in added:
        row = (f"| {labels[record.nodeid]} | {md(record.nodeid, _ID_CELL)} | 🆕 new | "
               f"{_si(record.timing.wall_s, 's') if record.timing else 'n/a'} | "
               f"{_si(record.flops.total) if record.flops else 'n/a'} | "
               f"{_energy_head(record.energy)} | {_co2_head(record)} | "
               f"{', '.join(md(m.name, 30) for m in record.metrics[:3]) or '–'} |")
        if used + text_length(row) + 200 > budget:
            break
        rows.append(row)
        used += text_length(row) + 1
    total = comparison.total
    rows.append(f"| | **Total** ({total.tests} comparable) | {total.verdict} | "
                f"{_delta_cell(total.time)} | {_delta_cell(total.flops)} | "
                f"{_delta_cell(total.energy)} | {_delta_cell(total.co2e)} | |")
    shown = len(rows) - 1
    note = ""
    if shown < len(order) + len(added):
        note = (f"\n\n{len(order) + len(added) - shown} more test(s) not shown here (the "
                "report artifact has them all).")
    legend = ("\n\n<sub>▲ ▼ beyond noise and min effect · = below min effect · ? within noise "
              "or too few runs · energy and CO2e compared like with like (measured or "
              "estimated)</sub>")
    return "\n".join([header, *rows]) + note + legend


def _head_table(head: Report, tests: Sequence[TestRecord], labels: Mapping[str, str],
                budget: int) -> str:
    header = ("| | Test | Outcome | Time | FLOPs | Energy | CO2e |\n"
              "|---|---|---|---|---|---|---|")
    rows = []
    used = text_length(header)
    for t in tests[:_MAX_TABLE_ROWS]:
        row = (f"| {labels[t.nodeid]} | {md(t.nodeid, _ID_CELL)} | {md(t.outcome, 20)} | "
               f"{_si(t.timing.wall_s, 's') if t.timing else 'n/a'} | "
               f"{_si(t.flops.total) if t.flops else 'n/a'} | {_energy_head(t.energy)} | "
               f"{_co2_head(t)} |")
        if used + text_length(row) + 200 > budget:
            break
        rows.append(row)
        used += text_length(row) + 1
    note = ""
    if len(rows) < len(tests):
        note = f"\n\n{len(tests) - len(rows)} more test(s) not shown here."
    return "\n".join([header, *rows]) + note


# --- charts ------------------------------------------------------------------------------


def _decimal(value: object) -> str:
    """A plain decimal for Mermaid, whose grammar has no exponents (non-finite: 0)."""
    number = finite_number(value)
    if number is None:
        return "0"
    text = f"{number:.6g}"
    if "e" in text:
        text = f"{number:.6f}".rstrip("0").rstrip(".") or "0"
    return "0" if text in ("-0", "") else text


def _num_list(values: Iterable[float]) -> str:
    return "[" + ", ".join(_decimal(v) for v in values) + "]"


def _xychart(title: str, categories: Sequence[str], y_title: str,
             series: Sequence[tuple[str, Sequence[float]]]) -> str:
    """A Mermaid xychart; every string here is ours (ASCII, no quotes), never report text."""
    cats = ", ".join(f'"{c}"' for c in categories)
    lines = ["```mermaid", "xychart-beta", f'    title "{title}"', f"    x-axis [{cats}]",
             f'    y-axis "{y_title}"']
    for kind, values in series:
        lines.append(f"    {kind} {_num_list(values)}")
    lines.append("```")
    return "\n".join(lines)


def mermaid_blocks(markdown: str) -> list[str]:
    """The Mermaid diagrams inside ``markdown`` (for tests and tools)."""
    return re.findall(r"```mermaid\n(.*?)\n```", markdown, flags=re.DOTALL)


def _charts(comparison: Comparison | None, head: Report, order: Sequence[Any],
            labels: Mapping[str, str]) -> str:
    charts = []
    if comparison is not None and not comparison.refused:
        for quantity, label in (("time", "Time"), ("energy", "Energy"), ("flops", "FLOPs")):
            points = []
            for test in order:
                delta = getattr(test, quantity)
                if delta is None or delta.change == "n/a" or test.verdict == "incomparable":
                    continue
                base, value = finite_number(delta.base), finite_number(delta.head)
                if base is None or value is None or base <= 0:
                    continue
                points.append((labels[test.nodeid], 100.0 * value / base))
            if not points:
                continue
            points = points[:_MAX_CHART_TESTS]
            charts.append(_xychart(f"{label}: head as % of baseline",
                                   [p[0] for p in points], "% of baseline",
                                   [("bar", [p[1] for p in points]),
                                    ("line", [100.0] * len(points))]))
    else:
        tests = [t for t in order if isinstance(t, TestRecord)]
        points = [(labels[t.nodeid], t.timing.wall_s) for t in tests if t.timing is not None
                  and finite_number(t.timing.wall_s) is not None][:_MAX_CHART_TESTS]
        if points:
            charts.append(_xychart("Time per test (s)", [p[0] for p in points], "seconds",
                                   [("bar", [p[1] for p in points])]))
    if not charts:
        return ""
    return "#### Charts\n" + "\n\n".join(charts)


# --- expected validation performance -------------------------------------------------------


def _groups(report: Report) -> dict[str, list[Trial]]:
    groups: dict[str, list[Trial]] = {}
    for test in report.tests:
        for trial in test.trials:
            groups.setdefault(trial.group, []).append(trial)
    return groups


def _curve(trials: Sequence[Trial], ks: Sequence[int]) -> list[float] | None:
    scores = [(finite_number(t.score) if t.status == "ok" else None) for t in trials]
    values = np.array([math.nan if s is None else s for s in scores], dtype=np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    minimize = not trials[0].higher_is_better
    try:
        curve = evp.expected_max(values, ks, minimize=minimize)
    except ValueError:
        return None
    return [float(v) for v in curve]


def _evp_section(head: Report, comparison: Comparison | None,
                 base: Report | None) -> str:
    head_groups = _groups(head)
    if not head_groups:
        return ""
    base_groups = _groups(base) if base is not None else {}
    compared = {t.group: t for t in comparison.trials} if comparison is not None else {}
    lines = ["#### Expected validation performance",
             "| Group | Trials (head) | Mean of 1 | Expected best of all | vs baseline at equal budget |",
             "|---|---|---|---|---|"]
    charts: list[str] = []
    for index, (group, trials) in enumerate(sorted(head_groups.items())[:20], 1):
        n = len(trials)
        curve = _curve(trials, [1, n])
        failed = sum(t.status != "ok" for t in trials)
        against = compared.get(group)
        verdict = md(against.summary, 300) if against is not None else "–"
        lines.append(f"| G{index} {md(group, _NAME)} | {n}"
                     f"{f' ({failed} failed)' if failed else ''} | "
                     f"{_score(curve[0]) if curve else 'n/a'} | "
                     f"{_score(curve[-1]) if curve else 'n/a'} | {verdict} |")
        if curve and len(charts) < 3 and n >= 2:
            base_trials = base_groups.get(group, [])
            kmax = min(max(n, len(base_trials)), 20)
            ks = list(range(1, kmax + 1))
            series = []
            head_curve = _curve(trials, ks)
            if head_curve:
                series.append(("line", head_curve))
            base_curve = _curve(base_trials, ks) if base_trials else None
            if base_curve:
                series.append(("line", base_curve))
            title = (f"G{index} expected best of k trials (head, then baseline)" if base_curve
                     else f"G{index} expected best of k trials")
            charts.append(_xychart(title, [str(k) for k in ks], "score", series))
    if len(head_groups) > 20:
        lines.append(f"\n{len(head_groups) - 20} more group(s) not shown.")
    text = "\n".join(lines)
    if charts:
        text += "\n\n" + "\n\n".join(charts)
    return text


# --- speed / accuracy (early exit) ----------------------------------------------------------


def _sweep_section(tests: Sequence[TestRecord], labels: Mapping[str, str]) -> str:
    blocks = []
    for test in tests:
        payload = test.extra.get("sweep") if isinstance(test.extra, Mapping) else None
        if not isinstance(payload, Mapping):
            continue
        blocks.append(_one_sweep(labels[test.nodeid], test.nodeid, payload))
        if len(blocks) >= 5:
            break
    if not blocks:
        return ""
    return "#### Speed / accuracy (early exit)\n" + "\n\n".join(blocks)


def _one_sweep(label: str, nodeid: str, payload: Mapping[str, Any]) -> str:
    given = payload.get("full_model")
    full: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    first = (f"**{label}** {md(nodeid, _ID_CELL)}: rule {md(payload.get('rule', '?'), 20)}, "
             f"{_score(payload.get('n_examples'))} examples, full model accuracy "
             f"{_score(full.get('accuracy'))} at {_si(full.get('flops_per_example'), 'FLOPs')}"
             " per example")
    lines = [first]
    points = payload.get("operating_points")
    if isinstance(points, Mapping) and points:
        lines += ["", "| Operating point | Threshold | Accuracy | FLOPs / example | Speedup (FLOPs) |",
                  "|---|---|---|---|---|"]
        for name, point in list(points.items())[:10]:
            if not isinstance(point, Mapping):
                continue
            speedup = finite_number(point.get("speedup"))
            lines.append(f"| {md(name, 40)} | {_score(point.get('threshold'))} | "
                         f"{_score(point.get('accuracy'))} | "
                         f"{_si(point.get('flops_per_example'))} | "
                         f"{'n/a' if speedup is None else f'{speedup:.2f}×'} |")
    measured = payload.get("measured")
    if isinstance(measured, list) and measured:
        lines += ["", "| Measured at | Batch | Speedup measured | Speedup predicted | Accuracy |",
                  "|---|---|---|---|---|"]
        for row in measured[:10]:
            if not isinstance(row, Mapping):
                continue
            ms, ps = finite_number(row.get("measured_speedup")), finite_number(row.get("predicted_speedup"))
            lines.append(f"| {md(row.get('name', '?'), 40)} ({_score(row.get('threshold'))}) | "
                         f"{_score(row.get('batch_size'))} | "
                         f"{'n/a' if ms is None else f'{ms:.2f}×'} | "
                         f"{'n/a' if ps is None else f'{ps:.2f}×'} | "
                         f"{_score(row.get('accuracy'))} |")
    pareto = payload.get("pareto")
    if isinstance(pareto, list):
        pts = []
        for point in pareto:
            if isinstance(point, Mapping):
                s, a = finite_number(point.get("speedup")), finite_number(point.get("accuracy"))
                if s is not None and a is not None:
                    pts.append((s, a))
        pts = sorted(set(pts))
        if len(pts) > 12:
            step = (len(pts) - 1) / 11
            pts = [pts[round(i * step)] for i in range(12)]
        if len(pts) >= 2:
            lines += ["", _xychart(f"{label} accuracy along the Pareto front, by FLOPs speedup",
                                   [f"{s:.2f}x" for s, _ in pts], "accuracy",
                                   [("line", [a for _, a in pts])])]
    return "\n".join(lines)


# --- per-test details -----------------------------------------------------------------------


def _row(name: str, base: str, head: str, change: str, how: str) -> str:
    return f"| {name} | {base} | {head} | {change} | {how} |"


def _delta_row(name: str, delta: Delta | None) -> str | None:
    if delta is None:
        return None
    basis = f" ({delta.basis})" if delta.basis else ""
    change = "n/a" if delta.change == "n/a" else (
        f"{_pct(delta.pct)} {_CHANGE_MARK.get(delta.change, '')}".strip()
        if delta.pct is not None else f"{delta.change}")
    return _row(f"{name}{basis}", _si(delta.base, delta.unit), _si(delta.head, delta.unit),
                change, md(f"{delta.method}; {delta.test}".strip("; "), 200))


def _test_details(test: TestComparison, label: str, head: TestRecord | None,
                  base: TestRecord | None) -> str:
    rows = ["| | Baseline | Head | Change | How |", "|---|---|---|---|---|"]
    for name, delta in (("Time", test.time), ("FLOPs", test.flops), ("Energy", test.energy),
                        ("CO2e", test.co2e)):
        row = _delta_row(name, delta)
        if row:
            rows.append(row)
    if head is not None and head.energy is not None:
        rows.append(_row("Energy, all bases (head)", "",
                         _energy_head(head.energy), "", "measured = counters, estimated = model"))
    if head is not None and head.memory is not None:
        rows.append(_row("Peak RSS", _si(base.memory.peak_rss_bytes, "B")
                         if base is not None and base.memory else "n/a",
                         _si(head.memory.peak_rss_bytes, "B"), "", md(head.memory.rss_method, 80)))
    for m in test.metrics[:20]:
        direction = "higher is better" if m.higher_is_better else "lower is better"
        change = "n/a" if m.difference is None else f"{m.difference:+.4g} ({m.quality})"
        rows.append(_row(f"{md(m.name, _NAME)}", _score(m.base), _score(m.head), change,
                         direction))
    for name in test.missing_metrics[:10]:
        rows.append(_row(md(name, _NAME), "reported", "missing", "", ""))
    why = md(test.price or test.reason, 600)
    notes = "".join(f"\n- {md(n, 300)}" for n in test.notes[:10])
    outcome = ""
    if test.base_outcome != "passed" or test.head_outcome != "passed":
        outcome = f"\n\nOutcome: {md(test.base_outcome, 20)} → {md(test.head_outcome, 20)}"
    return (f"<details><summary>{label} {_VERDICT_ICON.get(test.verdict, '')} {test.verdict}: "
            f"{html(test.nodeid, _ID_TITLE)}</summary>\n\n{why}{outcome}\n\n"
            + "\n".join(rows) + notes + "\n\n</details>")


def _head_details(record: TestRecord, label: str) -> str:
    rows = ["| | Head | How |", "|---|---|---|"]
    if record.timing is not None:
        rows.append(f"| Time | {_si(record.timing.wall_s, 's')} | wall clock, median of "
                    f"{len(record.timing.wall_samples_s)} run(s) |")
        rows.append(f"| CPU time | {_si(record.timing.cpu_s, 's')} | process CPU time |")
    if record.flops is not None:
        rows.append(f"| FLOPs | {_si(record.flops.total)} | {md(record.flops.method, 80)} |")
    if record.energy is not None:
        rows.append(f"| Energy | {_energy_head(record.energy)} | measured = counters, "
                    "estimated = model |")
    rows.append(f"| CO2e | {_co2_head(record)} | |")
    if record.memory is not None:
        rows.append(f"| Peak RSS | {_si(record.memory.peak_rss_bytes, 'B')} | "
                    f"{md(record.memory.rss_method, 80)} |")
    for m in record.metrics[:20]:
        rows.append(f"| {md(m.name, _NAME)} | {_score(m.value)} | "
                    f"{'higher' if m.higher_is_better else 'lower'} is better |")
    return (f"<details><summary>{label} {html(record.outcome, 20)}: "
            f"{html(record.nodeid, _ID_TITLE)}</summary>\n\n" + "\n".join(rows) + "\n\n</details>")


# --- assembly -------------------------------------------------------------------------------


class _Body:
    """Collects sections while keeping the total within the limit."""

    def __init__(self, limit: int, reserve: int) -> None:
        self.parts: list[str] = []
        self.limit = limit
        self.used = 0
        self.reserve = reserve
        self.omitted: list[str] = []

    def left(self) -> int:
        return self.limit - self.reserve - self.used

    def add(self, text: str, name: str) -> None:
        if not text:
            return
        size = text_length(text) + 2
        if size <= self.left():
            self.parts.append(text)
            self.used += size
        else:
            self.omitted.append(name)


def render_comment(
    head: Report,
    comparison: Comparison | None = None,
    gate: GateResult | None = None,
    context: CommentContext | None = None,
    *,
    limit: int = MAX_COMMENT_CHARS,
) -> str:
    """Render the sticky comment (also the job summary) as Markdown.

    Parameters
    ----------
    head : Report, required
        The pull request's report.
    comparison : Comparison or None, optional
        From `compare.compare_reports` against the baseline; None without a baseline.
    gate : GateResult or None, optional
        From `gate.evaluate_gates`; None when no gate ran.
    context : CommentContext or None, optional
        Commits, the baseline report and note, links, the accepting label, the key.
    limit : int, optional
        Most UTF-16 code units in the result (GitHub's comment limit by default).

    Returns
    -------
    str
        Markdown that starts with `sticky_header` and is at most ``limit`` long.
    """
    # Validate the arguments.
    if limit < 2000:
        raise ValueError("limit must be at least 2000.")
    ctx = context or CommentContext()

    header = sticky_header(ctx.key)
    title = f"### 🌱 {md(ctx.title, 80)}"
    headline = _headline(head, comparison, gate, ctx)
    links = []
    run_url, plots_url = _safe_url(ctx.run_url), _safe_url(ctx.plots_url)
    if run_url:
        links.append(f"[workflow run]({run_url})")
    if plots_url:
        links.append(f"[plots (artifact)]({plots_url})")
    carbon = head.carbon
    footer = (f"<sub>CO2e at {_score(carbon.g_per_kwh)} g/kWh ({md(carbon.region, 40)}, "
              f"{md(carbon.source, 60)}), PUE {_score(carbon.pue)} · measured = hardware "
              f"counters, estimated = model · pytest-greennlp {md(head.tool_version, 20)}"
              + (" · " + " · ".join(links) if links else "") + "</sub>")

    body = _Body(limit, reserve=text_length(footer) + 600)
    body.add(header, "marker")
    body.add(f"{title}\n{headline}", "headline")
    body.add(_sides(head, ctx), "commits and hardware")
    body.add(_gate_section(gate, ctx), "gate")

    base_records = {t.nodeid: t for t in ctx.base_report.tests} if ctx.base_report else {}
    head_records = {t.nodeid: t for t in head.tests}
    if comparison is not None:
        order: list[Any] = _order(comparison)
        added = [head_records[n] for n in comparison.added if n in head_records]
        labels = _labels([*order, *added])
        body.add("#### Tests\n" + _comparison_table(comparison, order, added, labels,
                                                     body.left() // 2), "tests table")
        extra = []
        if comparison.removed:
            extra.append(f"{len(comparison.removed)} test(s) gone since the baseline: "
                         + ", ".join(md(n, 100) for n in comparison.removed[:10]))
        extra += [md(n, 300) for n in comparison.notes[:10]]
        body.add("\n".join(f"- {e}" for e in extra), "notes")
    else:
        order = sorted(head.tests, key=lambda t: t.nodeid)
        labels = _labels(order)
        body.add("#### Tests\n" + _head_table(head, order, labels, body.left() // 2),
                 "tests table")
    for record in sorted(head.tests, key=lambda t: t.nodeid):  # added tests get labels too
        labels.setdefault(record.nodeid, f"T{len(labels) + 1}")
    body.add(_charts(comparison, head, order, labels), "charts")
    body.add(_evp_section(head, comparison, ctx.base_report), "expected validation performance")
    by_label = sorted(head.tests, key=lambda t: int(labels[t.nodeid][1:]))
    body.add(_sweep_section(by_label, labels), "speed / accuracy")
    details_omitted = 0
    if comparison is not None:
        order = [*order, *added]
    for item in order:
        if isinstance(item, TestComparison):
            block = _test_details(item, labels[item.nodeid], head_records.get(item.nodeid),
                                  base_records.get(item.nodeid))
        else:
            block = _head_details(item, labels[item.nodeid])
        before = len(body.omitted)
        body.add(block, "test details")
        if len(body.omitted) > before:
            body.omitted.pop()
            details_omitted += 1
    if details_omitted:
        body.omitted.append(f"details of {details_omitted} test(s)")
    if body.omitted:
        body.reserve = 0
        body.add(f"> [!NOTE]\n> Left out to stay within GitHub's {MAX_COMMENT_CHARS:,}-character "
                 f"limit: {', '.join(body.omitted[:10])}. The report artifact has everything "
                 "(`greennlp compare` renders it locally).", "note")
    body.reserve = 0
    body.add(footer, "footer")
    text = "\n\n".join(body.parts) + "\n"
    if text_length(text) > limit:  # cannot happen with the reserve; never exceed anyway
        text = text[: limit // 2] + "\n"
    return text
