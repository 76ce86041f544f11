"""shared.learning.report on a simulated month of failures, on both store backends: the figures match a
hand count, and the HTML is self-contained and escaped."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import pytest

from shared.cli import main
from shared.learning.report import build_report, fmt_duration, load_report, render_html, render_text
from tests.plugins.learning import decision, now_ms, unique_key

DAY_MS = 86_400_000
HOSTILE = "<script>alert(1)</script> & \"quotes\""


def _month(now: int) -> list:
    """30 days of decisions. Every figure the tests expect is counted by hand from this plan."""
    recs = []
    seq = iter(range(1, 10_000))

    def add(category, action, *, mode="act", status=None, job="100", outcome=None, feedback=None, day=None,
            fingerprint=None, job_name="etl", excerpt="error"):
        n = next(seq)
        created = now - (day if day is not None else n % 29 + 0.5) * DAY_MS
        recs.append(decision(f"{9000 + n}-0", job_id=job, category=category, action=action, mode=mode,
                             status=status or ("acted" if mode == "act" else "decided"),
                             fingerprint=fingerprint or f"fp-{category.lower()}", excerpt=excerpt,
                             created_at=int(created), outcome=outcome or {}, feedback=feedback or {},
                             job_name=job_name))

    # NETWORK / RETRY, acted: 12 = 9 succeeded (recovered after 60..540 s), 2 failed, 1 running;
    # feedback 3 correct, 1 wrong.
    for i in range(9):
        fb = {"verdict": "correct"} if i < 3 else None
        add("NETWORK", "RETRY", job="7", outcome={"result": "succeeded", "final": True,
                                                   "recovered_after_s": 60.0 * (i + 1)}, feedback=fb,
            job_name=HOSTILE)
    for _ in range(2):
        add("NETWORK", "RETRY", job="7", outcome={"result": "failed", "final": True}, job_name=HOSTILE)
    add("NETWORK", "RETRY", job="7", outcome={"result": "running", "final": False},
        feedback={"verdict": "wrong", "correct_action": "ESCALATE"}, job_name=HOSTILE)
    # NETWORK / ESCALATE, acted (policy: hopeless fingerprint): 2.
    for _ in range(2):
        add("NETWORK", "ESCALATE", job="7", job_name=HOSTILE)
    # TIMEOUT / RETRY, acted: 5 = 3 succeeded (120, 240, 900 s), 2 failed.
    for s in (120.0, 240.0, 900.0):
        add("TIMEOUT", "RETRY", job="8", outcome={"result": "succeeded", "final": True, "recovered_after_s": s})
    for _ in range(2):
        add("TIMEOUT", "RETRY", job="8", outcome={"result": "failed", "final": True})
    # RESOURCE / RETRY_WITH_NEW_PARAMS, acted: 4 = 2 succeeded (600, 1200 s), 2 failed.
    for s in (600.0, 1200.0):
        add("RESOURCE", "RETRY_WITH_NEW_PARAMS", job="9",
            outcome={"result": "succeeded", "final": True, "recovered_after_s": s})
    for _ in range(2):
        add("RESOURCE", "RETRY_WITH_NEW_PARAMS", job="9", outcome={"result": "failed", "final": True})
    # CODE / SEND_EMAIL, shadow: 6 = 4 agreed, 1 disagreed (a rerun worked, after 3600 s), 1 no evidence;
    # feedback 2 correct, 1 wrong (should have been RETRY).
    for i in range(4):
        add("CODE", "SEND_EMAIL", mode="shadow", job="10",
            outcome={"human_action": "none", "agreed": True, "final": True},
            feedback={"verdict": "correct"} if i < 2 else None)
    add("CODE", "SEND_EMAIL", mode="shadow", job="10",
        outcome={"human_action": "repair", "human_result": "succeeded", "agreed": False, "final": True,
                 "recovered_after_s": 3600.0},
        feedback={"verdict": "wrong", "correct_action": "RETRY"})
    add("CODE", "SEND_EMAIL", mode="shadow", job="10", outcome={"human_action": "none", "agreed": None})
    # UNKNOWN / ESCALATE, shadow: 3 = 1 agreed, 2 not checked yet.
    add("UNKNOWN", "ESCALATE", mode="shadow", job="11", outcome={"human_action": "none", "agreed": True})
    for _ in range(2):
        add("UNKNOWN", "ESCALATE", mode="shadow", job="11")
    # CANCELED / IGNORE: 2.
    for _ in range(2):
        add("CANCELED", "IGNORE", mode="shadow", job="12")
    # Not counted: a duplicate delivery, and a decision older than the month.
    add("NETWORK", "RETRY", job="7", status="duplicate")
    add("NETWORK", "RETRY", job="7", day=31)
    return recs


@pytest.fixture
def month(learning_store):
    now = now_ms()
    for r in _month(now):
        assert learning_store.claim(r).won
    return learning_store, now


def _row(report, category, action):
    rows = report.categories if action == "all" else report.rows
    [row] = [r for r in rows if r.category == category and r.action == action]
    return row


def test_report_figures_match_hand_count(month):
    store, now = month
    report = load_report(store, since_s=30 * 86400, now_ms=now)

    assert report.total.decisions == 34
    net = _row(report, "NETWORK", "RETRY")
    assert (net.decisions, net.acted, net.retries_ok, net.retries_failed, net.retries_running) == (12, 12, 9, 2, 1)
    assert net.retry_success_rate == pytest.approx(9 / 11)
    assert (net.feedback_correct, net.feedback_wrong) == (3, 1)
    assert net.median_recovery_s == 300.0
    assert _row(report, "NETWORK", "ESCALATE").escalations == 2
    net_all = _row(report, "NETWORK", "all")
    assert (net_all.decisions, net_all.escalations, net_all.retry_success_rate) == (14, 2, pytest.approx(9 / 11))

    t = _row(report, "TIMEOUT", "RETRY")
    assert (t.decisions, t.retry_success_rate, t.median_recovery_s) == (5, pytest.approx(3 / 5), 240.0)
    r = _row(report, "RESOURCE", "RETRY_WITH_NEW_PARAMS")
    assert (r.decisions, r.retry_success_rate, r.median_recovery_s) == (4, 0.5, 900.0)

    code = _row(report, "CODE", "SEND_EMAIL")
    assert (code.decisions, code.acted, code.retry_success_rate) == (6, 0, None)
    assert (code.shadow_agreed, code.shadow_disagreed, code.shadow_agreement) == (4, 1, pytest.approx(0.8))
    assert (code.feedback_correct, code.feedback_wrong) == (2, 1)
    assert code.median_recovery_s == 3600.0
    unk = _row(report, "UNKNOWN", "ESCALATE")
    assert (unk.decisions, unk.escalations, unk.shadow_agreement) == (3, 3, 1.0)
    assert _row(report, "CANCELED", "IGNORE").decisions == 2

    assert (report.total.retries_ok, report.total.retries_failed) == (14, 6)
    assert report.total.escalations == 5
    assert (report.total.feedback_correct, report.total.feedback_wrong) == (5, 2)
    assert report.modes == {"act": 23, "shadow": 11}
    assert [(j["job_id"], j["decisions"], j["retries_failed"]) for j in report.top_jobs[:3]] == [
        ("7", 14, 2), ("10", 6, 0), ("8", 5, 2)]
    assert report.top_fingerprints[0]["fingerprint"] == "fp-network"
    assert report.top_fingerprints[0]["decisions"] == 14
    assert sum(n for _, n in report.per_day) == 34


def test_render_text_shows_rates_and_totals(month):
    store, now = month
    text = render_text(load_report(store, since_s=30 * 86400, now_ms=now))
    lines = text.splitlines()
    net = next(ln for ln in lines if ln.startswith("NETWORK ") and " RETRY " in ln)
    assert net.split()[:4] == ["NETWORK", "RETRY", "12", "12"]
    assert "82% (9/11)" in net and "75% (3/4)" in net and "5m00s" in net
    code = next(ln for ln in lines if ln.startswith("CODE "))
    assert "80% (4/5)" in code and "67% (2/3)" in code and "1h00m" in code
    total = next(ln for ln in lines if ln.startswith("all "))
    assert total.split()[:4] == ["all", "all", "34", "23"] and "70% (14/20)" in total
    assert "Top failing jobs" in text and "fp-network" in text


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [(n, v or "") for n, v in attrs if n in ("src", "href", "action", "xlink:href")]

    def handle_data(self, data):
        self.text.append(data)


def test_render_html_self_contained_escaped_with_svg(month):
    store, now = month
    doc = render_html(load_report(store, since_s=30 * 86400, now_ms=now))
    p = _Html()
    p.feed(doc)
    p.close()
    assert p.tags.count("svg") == 3 and "rect" in p.tags
    assert "script" not in p.tags and "link" not in p.tags and "img" not in p.tags
    assert p.refs == []
    assert "url(" not in doc and "@import" not in doc
    assert HOSTILE in "".join(p.text)           # the hostile job name is text, not markup


def test_build_report_empty_period():
    report = build_report([], since_ms=0, until_ms=DAY_MS)
    assert report.total.decisions == 0
    assert "(no decisions in this period)" in render_text(report)
    assert "No decisions in this period" in render_html(report)


@pytest.mark.parametrize("seconds,text", [(None, "-"), (42, "42s"), (300, "5m00s"), (3660, "1h01m"),
                                          (90000, "1d01h")])
def test_fmt_duration(seconds, text):
    assert fmt_duration(seconds) == text


def test_report_command_writes_text_and_html(app_storage, tmp_path):
    env, store = app_storage
    key = unique_key()
    assert store.claim(decision(key, job_id="777001", category="DEPENDENCY", fingerprint="fp-dep",
                                outcome={"result": "succeeded", "final": True, "recovered_after_s": 30.0})).won
    out, err = io.StringIO(), io.StringIO()
    code = main(["report", "--since", "1d", "--html", str(tmp_path / "r.html"), "-q"], env=env, stdout=out,
                stderr=err)
    assert (code, err.getvalue()) == (0, "")
    lines = out.getvalue().splitlines()
    assert any(ln.startswith("DEPENDENCY ") and " RETRY " in ln for ln in lines)
    assert lines[-1].startswith("Top failure fingerprints") or "fp-" in lines[-1]     # stdout is the report only
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_report_command_bad_since_exit_2(app_storage):
    env, _ = app_storage
    err = io.StringIO()
    assert main(["report", "--since", "soon"], env=env, stdout=io.StringIO(), stderr=err) == 2
    assert "error: argument --since: 'soon' is not a duration (use e.g. 90m, 24h, 7d)\n" in err.getvalue()


def test_report_says_what_is_not_done_yet(learning_store):
    """Act-mode work still open (docs/lifecycle.md) is counted: actions retrying, decisions
    escalated, notifications nobody received."""
    from shared.learning.report import build_report

    now = 1_770_000_000_000
    recs = [decision("1-0", status="retrying", mode="act", created_at=now - 1000),
            decision("2-0", status="escalated", mode="act", created_at=now - 1000),
            decision("3-0", action="SEND_EMAIL", status="failed", mode="act", created_at=now - 1000),
            decision("4-0", status="acted", mode="act", created_at=now - 1000),
            decision("5-0", status="decided", mode="shadow", created_at=now - 1000)]
    recs[2].notification = {"status": "failed", "attempts": 5}
    report = build_report(recs, since_ms=now - DAY_MS, until_ms=now)
    assert report.open_work == {"retrying": 1, "escalated": 1, "undelivered": 1, "awaiting_retriage": 0}
    text = render_text(report)
    assert "Not done yet: 1 action(s) retrying, 1 notification(s) undelivered; 1 decision(s) escalated" in text
    assert "failed triage" not in text
    poisoned = decision("6-triage-failed", action="ESCALATE", status="acted", mode="act", created_at=now - 1000)
    poisoned.action_result = {"retriage": {"state": "waiting", "attempts": 1, "next_at": now + 3_600_000}}
    placed = decision("7-triage-failed", action="ESCALATE", status="acted", mode="act", created_at=now - 1000)
    placed.action_result = {"retriage": {"state": "placed", "placed_by": "7-0", "placed_at": now}}
    more = build_report([*recs, poisoned, placed], since_ms=now - DAY_MS, until_ms=now)
    assert more.open_work["awaiting_retriage"] == 1
    assert "; 1 failed triage(s) to be placed by a later sweep" in render_text(more)
    quiet = build_report(recs[3:], since_ms=now - DAY_MS, until_ms=now)
    assert "Not done yet" not in render_text(quiet)


# --- the HTML report on any screen ----------------------------------------------------------------

def _day_chart(html_text: str) -> str:
    start = html_text.rindex("<svg ", 0, html_text.index('aria-label="Decisions per day"'))
    return html_text[start:html_text.index("</svg>", start)]


@pytest.mark.parametrize("days", [1, 3, 7, 30, 92])
def test_day_chart_labels_sit_under_their_own_bars(days):
    import re

    from shared.learning.report import build_report, render_html
    from shared.store import DecisionRecord

    day_ms = 86_400_000
    since = 1_700_000_000_000 - 1_700_000_000_000 % day_ms
    records = [DecisionRecord(decision_key=f"{i}-0", job_id="1", run_id=i, category="NETWORK", action="RETRY",
                              created_at=since + i * day_ms + 3600_000) for i in range(days)]
    chart = _day_chart(render_html(build_report(records, since_ms=since, until_ms=since + days * day_ms)))
    bars = {day: float(x) for x, day in re.findall(r'<rect x="([\d.]+)"[^>]*><title>([\d-]+): \d+</title>', chart)}
    labels = [(float(x), day) for x, day in re.findall(r'<text x="([\d.]+)" y="\d+" class="lbl">([\d-]+)</text>',
                                                          chart)]
    assert len(bars) == days and labels
    assert all(bars[day] == x for x, day in labels), (labels, bars)
    assert labels[0][1] == min(bars)
    if days >= 9:
        assert labels[-1][1] == max(bars)                      # the last day is named under its bar
    xs = [x for x, _ in labels]
    assert all(b - a >= 66 for a, b in zip(xs, xs[1:]))        # labels never overlap
    assert 'viewBox="0 0 ' in chart and 'width="100%"' in chart


def test_long_periods_are_noted_and_tables_scroll_on_a_phone():
    from shared.learning.report import build_report, render_html
    from shared.store import DecisionRecord

    day_ms = 86_400_000
    since = 1_700_000_000_000 - 1_700_000_000_000 % day_ms
    records = [DecisionRecord(decision_key=f"{i}-0", job_id="1", run_id=i, category="CODE", action="SEND_EMAIL",
                              created_at=since + i * day_ms) for i in range(0, 120, 7)]
    page = render_html(build_report(records, since_ms=since, until_ms=since + 120 * day_ms))
    assert "The chart shows the last 92 of the period's 120 days" in page
    assert page.count("<table>") == page.count('<div class="scroll"><table>') >= 3
    assert ".scroll{overflow-x:auto" in page
    assert page.count("<svg ") == page.count('width="100%"') == page.count("viewBox=") >= 2
