"""The learning report: how the decisions of a period worked out, per category and action.

``build_report(records, since_ms=..., until_ms=...)`` is pure (records in, figures out);
``render_text`` and ``render_html`` present it. The HTML is one self-contained file: charts are
inline SVG, styles inline, no script, font, image or link to anything outside the file, and
every value from the store is HTML-escaped, so it opens anywhere, including as an email
attachment. The figures are defined in docs/learning.md:

- decisions: decisions made (duplicates of a delivery not counted); acted: carried out in act mode
- retry success: acted RETRY / RETRY_WITH_NEW_PARAMS whose final outcome is known,
  succeeded / (succeeded + failed)
- escalations: decisions whose action is ESCALATE
- feedback agreement: correct / (correct + wrong) of the people's verdicts
- shadow agreement: agreed / (agreed + disagreed) of shadow decisions (outcome.agreed)
- time to recovery: median of outcome.recovered_after_s (the failed attempt's end to the end
  of the rerun that succeeded: the app's retry, or in shadow mode a person's rerun)
"""

from __future__ import annotations

import html
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from shared.decide.rootcause import root_line
from shared.models import Action, Category
from shared.store import DecisionRecord

if TYPE_CHECKING:  # pragma: no cover
    from shared.store.base import Store

__all__ = ["Row", "Report", "build_report", "load_report", "render_text", "render_html", "report_to_dict",
           "fmt_duration"]

TOP_N = 10
_RETRIES = (Action.RETRY.value, Action.RETRY_WITH_NEW_PARAMS.value)
_ALL = "all"
_ACTION_COLOURS = {
    "RETRY": "#2e7d32",
    "RETRY_WITH_NEW_PARAMS": "#66bb6a",
    "SEND_EMAIL": "#1565c0",
    "ESCALATE": "#c62828",
    "IGNORE": "#9e9e9e",
}
_OTHER_COLOUR = "#6d4c41"


@dataclass
class Row:
    """The figures of one (category, action) group; action ``all`` for a category's total."""

    category: str
    action: str
    decisions: int = 0
    acted: int = 0
    retries_ok: int = 0
    retries_failed: int = 0
    retries_running: int = 0
    escalations: int = 0
    feedback_correct: int = 0
    feedback_wrong: int = 0
    shadow_agreed: int = 0
    shadow_disagreed: int = 0
    recoveries_s: list[float] = field(default_factory=list)

    def add(self, r: DecisionRecord) -> None:
        self.decisions += 1
        out, fb = r.outcome or {}, r.feedback or {}
        if r.mode == "act" and r.status == "acted":
            self.acted += 1
            if r.action in _RETRIES:
                result = out.get("result")
                if result == "succeeded":
                    self.retries_ok += 1
                elif result == "failed":
                    self.retries_failed += 1
                elif result == "running":
                    self.retries_running += 1
        if r.action == Action.ESCALATE.value:
            self.escalations += 1
        if fb.get("verdict") == "correct":
            self.feedback_correct += 1
        elif fb.get("verdict") == "wrong":
            self.feedback_wrong += 1
        if r.mode == "shadow" and out.get("agreed") is True:
            self.shadow_agreed += 1
        elif r.mode == "shadow" and out.get("agreed") is False:
            self.shadow_disagreed += 1
        rec = out.get("recovered_after_s")
        if isinstance(rec, (int, float)) and not isinstance(rec, bool) and rec >= 0:
            self.recoveries_s.append(float(rec))

    @staticmethod
    def _rate(good: int, bad: int) -> float | None:
        return good / (good + bad) if good + bad else None

    @property
    def retry_success_rate(self) -> float | None:
        return self._rate(self.retries_ok, self.retries_failed)

    @property
    def feedback_agreement(self) -> float | None:
        return self._rate(self.feedback_correct, self.feedback_wrong)

    @property
    def shadow_agreement(self) -> float | None:
        return self._rate(self.shadow_agreed, self.shadow_disagreed)

    @property
    def median_recovery_s(self) -> float | None:
        return statistics.median(self.recoveries_s) if self.recoveries_s else None


@dataclass
class Report:
    since_ms: int
    until_ms: int
    rows: list[Row]                    # per (category, action), categories in taxonomy order
    categories: list[Row]              # per category (action "all")
    total: Row
    top_jobs: list[dict[str, Any]]
    top_fingerprints: list[dict[str, Any]]
    per_day: list[tuple[str, int]]     # (YYYY-MM-DD, decisions), every day of the period
    modes: dict[str, int]
    open_work: dict[str, int] = field(default_factory=dict)   # retrying / escalated / undelivered / awaiting_retriage
    spend: dict[str, Any] = field(default_factory=dict)   # shared.learning.spend.summarise_spend
    precedents: list[dict[str, Any]] = field(default_factory=list)   # corrections that decided, and how it went


def _order(category: str) -> tuple[int, str]:
    names = [c.value for c in Category]
    return (names.index(category), category) if category in names else (len(names), category)


def _action_order(action: str) -> tuple[int, str]:
    names = [a.value for a in Action]
    return (names.index(action), action) if action in names else (len(names), action)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def build_report(records: Iterable[DecisionRecord], *, since_ms: int, until_ms: int,
                 budget_usd_per_day: float | None = None) -> Report:
    """The figures of the decisions created in [since_ms, until_ms). Pure."""
    from shared.learning.spend import summarise_spend

    chosen = [r for r in records if r.status != "duplicate" and since_ms <= r.created_at < until_ms]
    groups: dict[tuple[str, str], Row] = {}
    cats: dict[str, Row] = {}
    total = Row(_ALL, _ALL)
    jobs: dict[str, dict[str, Any]] = {}
    fps: dict[str, dict[str, Any]] = {}
    days: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for r in chosen:
        cat, act = r.category or "UNKNOWN", r.action or "?"
        groups.setdefault((cat, act), Row(cat, act)).add(r)
        cats.setdefault(cat, Row(cat, _ALL)).add(r)
        total.add(r)
        days[_day(r.created_at)] += 1
        modes[r.mode or "?"] += 1
        j = jobs.setdefault(r.job_id, {"job_id": r.job_id, "job_name": "", "decisions": 0,
                                       "categories": Counter(), "retries_failed": 0})
        j["decisions"] += 1
        j["job_name"] = j["job_name"] or r.job_name
        j["categories"][cat] += 1
        if r.mode == "act" and r.action in _RETRIES and (r.outcome or {}).get("result") == "failed":
            j["retries_failed"] += 1
        if r.fingerprint:
            f = fps.setdefault(r.fingerprint, {"fingerprint": r.fingerprint, "category": cat, "decisions": 0,
                                               "jobs": set(), "excerpt": "", "last_ms": 0})
            f["decisions"] += 1
            f["jobs"].add(r.job_id)
            if r.created_at >= f["last_ms"]:
                f["last_ms"], f["excerpt"], f["category"] = r.created_at, root_line(r.excerpt), cat
    precedents = _precedents(chosen)
    rows = sorted(groups.values(), key=lambda x: (_order(x.category), _action_order(x.action)))
    categories = sorted(cats.values(), key=lambda x: _order(x.category))
    top_jobs = sorted(jobs.values(), key=lambda j: (-j["decisions"], str(j["job_id"])))[:TOP_N]
    for j in top_jobs:
        j["top_category"] = j["categories"].most_common(1)[0][0] if j["categories"] else ""
        j["categories"] = dict(j["categories"])
    top_fps = sorted(fps.values(), key=lambda f: (-f["decisions"], f["fingerprint"]))[:TOP_N]
    for f in top_fps:
        f["jobs"] = len(f["jobs"])
    per_day = []
    if until_ms > since_ms:
        day_ms = 86_400_000
        start = since_ms - since_ms % day_ms
        for t in range(start, until_ms, day_ms):
            per_day.append((_day(t), days.get(_day(t), 0)))
    from shared.app.lifecycle import awaiting_retriage

    acting = [r for r in chosen if r.mode == "act"]
    open_work = {
        "retrying": sum(1 for r in acting if r.status in ("retrying", "acting")),
        "escalated": sum(1 for r in acting if r.status == "escalated"),
        "undelivered": sum(1 for r in acting if (r.notification or {}).get("status") == "failed"),
        # poisoned triages a later sweep still tries to place (shared.app.retriage)
        "awaiting_retriage": sum(1 for r in chosen if awaiting_retriage(r)),
    }
    return Report(since_ms=since_ms, until_ms=until_ms, rows=rows, categories=categories, total=total,
                  top_jobs=top_jobs, top_fingerprints=top_fps, per_day=per_day, modes=dict(modes),
                  open_work=open_work, spend=summarise_spend(chosen, budget_usd_per_day=budget_usd_per_day),
                  precedents=precedents)


def _open_work_line(report: Report) -> str:
    """Act-mode work not yet done (docs/lifecycle.md), or "" when there is none."""
    w = report.open_work or {}
    if not any(w.values()):
        return ""
    return (f"Not done yet: {w.get('retrying', 0)} action(s) retrying, {w.get('undelivered', 0)} notification(s) "
            f"undelivered; {w.get('escalated', 0)} decision(s) escalated to a person"
            + (f"; {w['awaiting_retriage']} failed triage(s) to be placed by a later sweep"
               if w.get("awaiting_retriage") else ""))


def _precedents(records: list[DecisionRecord]) -> list[dict[str, Any]]:
    """Per precedent (shared.learning.precedents): how often it decided in the period, and whether
    what followed agreed — a person's verdict (correct/wrong) first, else the retry's outcome
    (succeeded/failed), else a shadow decision's comparison with what people did."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        p = (r.decision or {}).get("precedent")
        if not isinstance(p, dict) or not p.get("id"):
            continue
        row = out.setdefault(str(p["id"]), {"id": str(p["id"]), "scope": str(p.get("scope") or ""),
                                            "action": str(p.get("action") or ""), "job_id": r.job_id,
                                            "from_decision": str(p.get("decision_key") or ""),
                                            "fired": 0, "agreed": 0, "disagreed": 0, "unknown": 0})
        row["fired"] += 1
        verdict = (r.feedback or {}).get("verdict")
        outcome = r.outcome or {}
        if verdict in ("correct", "wrong"):
            row["agreed" if verdict == "correct" else "disagreed"] += 1
        elif r.action in _RETRIES and outcome.get("result") in ("succeeded", "failed"):
            row["agreed" if outcome["result"] == "succeeded" else "disagreed"] += 1
        elif outcome.get("agreed") in (True, False):
            row["agreed" if outcome["agreed"] else "disagreed"] += 1
        else:
            row["unknown"] += 1
    return sorted(out.values(), key=lambda x: (-x["fired"], x["id"]))


def load_report(store: Store, *, since_s: int, now_ms: int | None = None,
                budget_usd_per_day: float | None = None) -> Report:
    """The report of the last ``since_s`` seconds of the store's decisions."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    since = now - int(since_s) * 1000
    return build_report(store.list(since_ms=since, until_ms=now + 1), since_ms=since, until_ms=now + 1,
                        budget_usd_per_day=budget_usd_per_day)


# --- text ----------------------------------------------------------------------------------------

def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _pct(rate: float | None, good: int, bad: int) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}% ({good}/{good + bad})"


def _cells(row: Row) -> list[str]:
    return [
        row.category, row.action, str(row.decisions), str(row.acted),
        _pct(row.retry_success_rate, row.retries_ok, row.retries_failed),
        str(row.escalations),
        _pct(row.feedback_agreement, row.feedback_correct, row.feedback_wrong),
        _pct(row.shadow_agreement, row.shadow_agreed, row.shadow_disagreed),
        fmt_duration(row.median_recovery_s),
    ]


HEADERS = ["CATEGORY", "ACTION", "DECISIONS", "ACTED", "RETRY_SUCCESS", "ESCALATIONS", "FEEDBACK_AGREE",
           "SHADOW_AGREE", "MEDIAN_RECOVERY"]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    clean = [["".join(ch if ch.isprintable() else "?" for ch in c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in clean]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in clean]
    return "\n".join(lines)


def _period(report: Report) -> str:
    fmt = "%Y-%m-%d %H:%M UTC"
    a = datetime.fromtimestamp(report.since_ms / 1000, tz=timezone.utc).strftime(fmt)
    b = datetime.fromtimestamp(report.until_ms / 1000, tz=timezone.utc).strftime(fmt)
    return f"{a} to {b}"


def _figure_rows(report: Report) -> tuple[list[list[str]], set[int]]:
    """The per-category-and-action table: each category's rows, its subtotal when it has more
    than one action, then the total. Also the indexes of the subtotal and total rows."""
    rows: list[list[str]] = []
    totals: set[int] = set()
    by_cat: dict[str, list[Row]] = defaultdict(list)
    for r in report.rows:
        by_cat[r.category].append(r)
    for c in report.categories:
        rows.extend(_cells(r) for r in by_cat[c.category])
        if len(by_cat[c.category]) > 1:
            totals.add(len(rows))
            rows.append(_cells(c))
    totals.add(len(rows))
    rows.append(_cells(report.total))
    return rows, totals


def render_text(report: Report) -> str:
    out = [f"Triage report, {_period(report)}: {report.total.decisions} decision(s)"
           + (" (" + ", ".join(f"{m} {n}" for m, n in sorted(report.modes.items())) + ")" if report.modes else "")]
    if not report.total.decisions:
        out.append("(no decisions in this period)")
        return "\n".join(out) + "\n"
    rows, _ = _figure_rows(report)
    if _open_work_line(report):
        out.append(_open_work_line(report))
    out += ["", _table(HEADERS, rows), ""]
    from shared.learning.spend import render_spend_text

    spend = render_spend_text(report.spend, _table)
    out += spend[1:] + [""] if spend else []
    out.append("Top failing jobs")
    out.append(_table(["JOB_ID", "JOB_NAME", "DECISIONS", "TOP_CATEGORY", "FAILED_RETRIES"],
                      [[str(j["job_id"]), str(j["job_name"] or "-")[:60], str(j["decisions"]), j["top_category"],
                        str(j["retries_failed"])] for j in report.top_jobs]))
    out += ["", "Top failure fingerprints"]
    out.append(_table(["FINGERPRINT", "CATEGORY", "DECISIONS", "JOBS", "ROOT_CAUSE"],
                      [[f["fingerprint"], f["category"], str(f["decisions"]), str(f["jobs"]),
                        f["excerpt"][:100] or "-"] for f in report.top_fingerprints]))
    if report.precedents:
        out += ["", "Precedents (corrections that decided)"]
        out.append(_table(["PRECEDENT", "SCOPE", "ACTION", "FIRED", "AGREED", "DISAGREED", "UNKNOWN", "FROM"],
                          [[p["id"], p["scope"], p["action"], str(p["fired"]), str(p["agreed"]),
                            str(p["disagreed"]), str(p["unknown"]), p["from_decision"]] for p in report.precedents]))
    return "\n".join(out) + "\n"


# --- HTML ----------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _svg_category_actions(report: Report) -> str:
    """Horizontal stacked bars: decisions per category, coloured by action."""
    cats = report.categories
    if not cats:
        return ""
    by = {(r.category, r.action): r.decisions for r in report.rows}
    actions = sorted({r.action for r in report.rows}, key=_action_order)
    biggest = max(c.decisions for c in cats) or 1
    label_w, bar_w, row_h = 140, 420, 22
    height = row_h * len(cats) + 40
    legend_w = label_w + sum(14 + 8 * len(a) + 16 for a in actions)
    parts = [_svg_open(max(label_w + bar_w + 60, legend_w), height, "Decisions per category and action")]
    for i, c in enumerate(cats):
        y = 10 + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" class="lbl">{_e(c.category)}</text>')
        x = float(label_w)
        for a in actions:
            n = by.get((c.category, a), 0)
            if not n:
                continue
            w = bar_w * n / biggest
            colour = _ACTION_COLOURS.get(a, _OTHER_COLOUR)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}">'
                         f'<title>{_e(c.category)} / {_e(a)}: {n}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 14}" class="num">{c.decisions}</text>')
    ly = height - 14
    lx = label_w
    for a in actions:
        colour = _ACTION_COLOURS.get(a, _OTHER_COLOUR)
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"></rect>'
                     f'<text x="{lx + 14}" y="{ly}" class="lbl">{_e(a)}</text>')
        lx += 14 + 8 * len(a) + 16
    parts.append("</svg>")
    return "".join(parts)


def _svg_rates(report: Report) -> str:
    """Bars: retry success rate per category (categories with checked retries only)."""
    cats = [c for c in report.categories if c.retry_success_rate is not None]
    if not cats:
        return '<p class="muted">No acted retries with a known outcome in this period.</p>'
    label_w, bar_w, row_h = 140, 360, 22
    height = row_h * len(cats) + 20
    parts = [_svg_open(label_w + bar_w + 120, height, "Retry success rate per category")]
    for i, c in enumerate(cats):
        y = 10 + i * row_h
        rate = c.retry_success_rate or 0.0
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" class="lbl">{_e(c.category)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="{row_h - 6}" fill="#eceff1"></rect>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w * rate:.1f}" height="{row_h - 6}" fill="#2e7d32">'
                     f'<title>{_e(c.category)}: {c.retries_ok} of {c.retries_ok + c.retries_failed}</title></rect>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 14}" class="num">{rate * 100:.0f}% '
                     f'({c.retries_ok}/{c.retries_ok + c.retries_failed})</text>')
    parts.append("</svg>")
    return "".join(parts)


MAX_CHART_DAYS = 92


def _svg_open(width: float, height: float, label: str) -> str:
    """An <svg> that scales down to its container (a phone) and never grows past its drawn size."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" width="100%" '
            f'style="max-width:{width:g}px;height:auto" preserveAspectRatio="xMinYMin meet" role="img" '
            f'aria-label="{_e(label)}">')


def _svg_days(report: Report) -> str:
    """Vertical bars: decisions per day (the last MAX_CHART_DAYS days, said so when the period is
    longer). A date label sits under the bar of its day, every few bars."""
    days = report.per_day[-MAX_CHART_DAYS:]
    if not days:
        return ""
    biggest = max(n for _, n in days) or 1
    bar, gap, chart_h, left, label_w = 12, 3, 120, 40, 66
    step = -(-label_w // (bar + gap))                      # bars per label, so labels never overlap
    width = left + len(days) * (bar + gap) + label_w
    labelled = list(range(0, len(days), step))
    if labelled[-1] != len(days) - 1 and len(labelled) > 1:
        labelled[-1] = len(days) - 1                       # the last day rather than the label before it
    parts = [_svg_open(width, chart_h + 40, "Decisions per day")]
    for i, (day, n) in enumerate(days):
        h = chart_h * n / biggest
        x = left + i * (bar + gap)
        parts.append(f'<rect x="{x}" y="{10 + chart_h - h:.1f}" width="{bar}" height="{h:.1f}" fill="#1565c0">'
                     f'<title>{_e(day)}: {n}</title></rect>')
        if i in labelled:
            parts.append(f'<line x1="{x + bar / 2:g}" y1="{12 + chart_h}" x2="{x + bar / 2:g}" y2="{16 + chart_h}" '
                         f'stroke="#57606a"></line>'
                         f'<text x="{x}" y="{chart_h + 30}" class="lbl">{_e(day)}</text>')
    parts.append(f'<text x="{left - 6}" y="18" text-anchor="end" class="num">{biggest}</text>')
    parts.append(f'<text x="{left - 6}" y="{10 + chart_h}" text-anchor="end" class="num">0</text>')
    parts.append("</svg>")
    if len(report.per_day) > MAX_CHART_DAYS:
        parts.append(f'<p class="muted">The chart shows the last {MAX_CHART_DAYS} of the period\'s '
                     f'{len(report.per_day)} days; the tables cover all of them.</p>')
    return "".join(parts)


def _html_table(headers: list[str], rows: list[list[str]], strong: frozenset[int] | set[int] = frozenset()) -> str:
    """A table in a box that scrolls sideways on a narrow screen instead of clipping."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        cls = ' class="sub"' if i in strong else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1f2328;background:#fff}"
    "h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}"
    "table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}"
    "th,td{border-bottom:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f6f8fa}tr.sub td{font-weight:600;background:#fafbfc}"
    "td:nth-child(n+3){font-variant-numeric:tabular-nums}"
    ".lbl{font-size:11px;fill:#1f2328}.num{font-size:11px;fill:#57606a}.muted{color:#57606a}"
    "code{font-size:.85em}"
    ".scroll{overflow-x:auto;max-width:100%}svg{display:block}"
    "@media (max-width:600px){body{margin:.75rem}th,td{padding:.25rem .4rem}}"
)


def render_html(report: Report) -> str:
    title = f"Triage report, {_period(report)}"
    rows, strong = _figure_rows(report)
    modes = ", ".join(f"{m}: {n}" for m, n in sorted(report.modes.items())) or "none"
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{report.total.decisions} decision(s); mode {_e(modes)}. Figures are defined in docs/learning.md.</p>",
    ]
    if _open_work_line(report):
        parts.append(f"<p><strong>{_e(_open_work_line(report))}</strong></p>")
    if report.total.decisions:
        parts += [
            "<h2>Decisions per category and action</h2>", _svg_category_actions(report),
            "<h2>Retry success rate per category</h2>", _svg_rates(report),
            "<h2>Decisions per day</h2>", _svg_days(report),
            "<h2>Figures per category and action</h2>", _html_table(HEADERS, rows, strong),
            "<h2>Top failing jobs</h2>",
            _html_table(["job id", "job name", "decisions", "top category", "failed retries"],
                        [[str(j["job_id"]), str(j["job_name"] or "-"), str(j["decisions"]), j["top_category"],
                          str(j["retries_failed"])] for j in report.top_jobs]),
            "<h2>Top failure fingerprints</h2>",
            _html_table(["fingerprint", "category", "decisions", "jobs", "root cause (redacted)"],
                        [[f["fingerprint"], f["category"], str(f["decisions"]), str(f["jobs"]), f["excerpt"] or "-"]
                         for f in report.top_fingerprints]),
        ]
        if report.precedents:
            parts += ["<h2>Precedents (corrections that decided)</h2>",
                      _html_table(["precedent", "scope", "action", "fired", "agreed", "disagreed", "unknown", "from"],
                                  [[p["id"], p["scope"], p["action"], str(p["fired"]), str(p["agreed"]),
                                    str(p["disagreed"]), str(p["unknown"]), p["from_decision"]]
                                   for p in report.precedents])]
    else:
        parts.append('<p class="muted">No decisions in this period.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


# --- JSON ----------------------------------------------------------------------------------------

def _row_dict(row: Row) -> dict[str, Any]:
    return {"category": row.category, "action": row.action, "decisions": row.decisions, "acted": row.acted,
            "retries_succeeded": row.retries_ok, "retries_failed": row.retries_failed,
            "retries_running": row.retries_running, "retry_success_rate": row.retry_success_rate,
            "escalations": row.escalations, "feedback_correct": row.feedback_correct,
            "feedback_wrong": row.feedback_wrong, "feedback_agreement": row.feedback_agreement,
            "shadow_agreed": row.shadow_agreed, "shadow_disagreed": row.shadow_disagreed,
            "shadow_agreement": row.shadow_agreement, "median_recovery_s": row.median_recovery_s}


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (``report -o json``); rates are fractions or null."""
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "since": datetime.fromtimestamp(report.since_ms / 1000, tz=timezone.utc).strftime(iso),
        "until": datetime.fromtimestamp(report.until_ms / 1000, tz=timezone.utc).strftime(iso),
        "decisions": report.total.decisions,
        "modes": dict(report.modes),
        "total": _row_dict(report.total),
        "categories": [_row_dict(r) for r in report.categories],
        "rows": [_row_dict(r) for r in report.rows],
        "top_jobs": [dict(j) for j in report.top_jobs],
        "top_fingerprints": [dict(f) for f in report.top_fingerprints],
        "per_day": [{"day": d, "decisions": n} for d, n in report.per_day],
        "spend": dict(report.spend),
        "precedents": [dict(p) for p in report.precedents],
    }
