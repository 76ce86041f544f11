"""What people read: subject, HTML and plain-text bodies, and the signed feedback links. Every
dynamic value is redacted (``shared.redact`` plus the values the ``SecretProvider`` handed out)
and HTML-escaped.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from shared.models import Action, Category, Decision
from shared.redact import redact
from shared.signing import APPROVAL_VERDICTS, VERDICTS, make_token
from shared.snapshot import strip_ansi

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord

from shared.notify.notifier import EMAIL_ACTIONS, Email, Recipients, Similar
from shared.notify.recipients import _owner_recipients, recipients_for

__all__ = ["render_email", "feedback_links", "decision_links", "default_fix"]


_MAX_EXCERPT = 4000
_MAX_TASKS = 20
_MAX_SUBJECT = 200
_MAX_ERROR = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

_WHAT_FAILED = {
    Category.PERMISSION: "the job's identity is missing a permission",
    Category.CODE: "the job's code raised an error",
    Category.DATA: "the data the job reads is missing or not as expected",
    Category.CONFIGURATION: "a job or cluster setting is invalid",
    Category.DEPENDENCY: "a library could not be installed",
    Category.TIMEOUT: "the run timed out",
    Category.RESOURCE: "the cluster ran out of memory or disk",
    Category.NETWORK: "a network connection failed",
    Category.INFRASTRUCTURE: "the cloud infrastructure failed",
    Category.CONCURRENCY: "concurrent runs or writers conflicted",
    Category.CANCELED: "the run was canceled or skipped",
    Category.UNKNOWN: "triage does not recognise this failure",
}

_DEFAULT_FIX = {
    Category.PERMISSION: "Grant the job's run-as identity the privilege the error names (for Unity Catalog "
                         "e.g. USE CATALOG, USE SCHEMA, SELECT or MODIFY; for storage an RBAC role such as "
                         "Storage Blob Data Contributor), or run the job as an identity that has it. Then "
                         "repair the run.",
    Category.CODE: "Fix the code at the line the error points to, check it on a small input, then repair "
                   "the run. Retrying unchanged code fails the same way.",
    Category.DATA: "Check the input the error names: the table or path exists, its schema matches what the "
                   "code expects, and its constraints hold. Fix the upstream data or the code's "
                   "expectation, then repair the run.",
    Category.CONFIGURATION: "Correct the job or cluster setting the error names (cluster spec, node type, "
                            "parameter or widget, a referenced resource), then repair the run.",
    Category.DEPENDENCY: "Fix the library the error names: its name and version, the package index URL and "
                         "its credentials, and whether the cluster can reach it. Then repair the run.",
    Category.TIMEOUT: "If it keeps timing out, raise the task's timeout or find the slow stage (skew, a "
                      "missing filter, an external call that hangs).",
    Category.RESOURCE: "Give the task more memory (a larger node type or more workers), or reduce the data "
                       "each partition holds (more shuffle partitions, avoid collect()).",
    Category.NETWORK: "Check that the cluster can reach the host in the error (firewall, private endpoint, "
                      "DNS, the service's own health).",
    Category.INFRASTRUCTURE: "Usually passes on a retry. If it persists, check the workspace's compute quota "
                             "and the cluster's availability (spot/on-demand) settings.",
    Category.CONCURRENCY: "Keep concurrent writers off the same Delta table (serialize the jobs, or write "
                          "disjoint partitions with a partition predicate), or raise the run limit.",
    Category.CANCELED: "Nothing to fix unless the cancellation was unexpected.",
    Category.UNKNOWN: "Read the root cause below and the run's logs. Your feedback through the links below "
                      "teaches the triage this failure.",
}


def default_fix(category: Category | str) -> str:
    """A per-category suggestion for when the decision brings none."""
    try:
        return _DEFAULT_FIX[Category(str(category))]
    except ValueError:
        return _DEFAULT_FIX[Category.UNKNOWN]


# --- feedback links -----------------------------------------------------------------------

def feedback_links(settings: "Settings", key: bytes | None, decision_key: str, *, now: float, job_id: str = "",
                   workspace: str = "", approval: bool = False) -> dict[str, str]:
    """``{"correct": url, "wrong": url}`` (and ``"approve"``/``"reject"`` with ``approval``) signed
    with ``key``, bound to the decision's job and workspace, and valid for
    ``TRIAGE_FEEDBACK_LINK_TTL``; empty when TRIAGE_PUBLIC_BASE_URL or the key is missing. Each
    URL opens a confirmation page (GET changes nothing); the page's button posts the token."""
    base = (settings.public_base_url or "").rstrip("/")
    if not base or not key or not _safe_url(base):
        return {}
    expires_at = int(now) + int(settings.feedback_link_ttl_s)
    verdicts = VERDICTS + (APPROVAL_VERDICTS if approval else ())
    return {v: f"{base}/api/feedback/"
               f"{make_token(key, decision_key, v, expires_at=expires_at, job_id=job_id, workspace=workspace)}"
            for v in verdicts}


def decision_links(settings: "Settings", key: bytes | None, record: "DecisionRecord", *, now: float
                   ) -> dict[str, str]:
    """The signed links for a stored decision, for any channel (email, chat cards): feedback
    always, Approve/Reject while the decision's approval is pending. Empty when links are not
    configured."""
    pending = str((record.decision or {}).get("approval") or "") == "pending"
    return feedback_links(settings, key, record.decision_key, now=now, job_id=str(record.job_id or ""),
                          workspace=str(record.workspace or ""), approval=pending)


# --- rendering ----------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _safe_url(url: str) -> str:
    """The URL when it is an absolute http(s) URL without spaces or control characters, else ''."""
    u = str(url or "").strip()
    if not u or any(c.isspace() for c in u) or _CONTROL.search(u):
        return ""
    try:
        parts = urlsplit(u)
    except ValueError:
        return ""
    return u if parts.scheme in ("https", "http") and parts.netloc else ""


def _fmt_ms(ms: Any) -> str:
    try:
        value = int(ms)
    except (TypeError, ValueError):
        return ""
    if value <= 0:
        return ""
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _one_line(text: str, limit: int) -> str:
    t = " ".join(_CONTROL.sub(" ", str(text or "")).split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


_ERROR_CLASS = re.compile(r"\[[A-Z][A-Z0-9_.]{2,}\]")
_ERRORISH = re.compile(r"(?:Exception|Error|error|failed|denied|refused|not found|does not exist)")
_INNERMOST = re.compile(r"(?<![\w.])(?:[\w$]+\.)*[\w$]*(?:Exception|Error): ")
_LOG_PREFIX = re.compile(r"^(?:\[[0-9T:.\-Z ]{10,}\]\s*)+")


def _cause_line(excerpt: str, limit: int = 300) -> str:
    """The line of a root-cause excerpt that names the failure: the first with an error class
    (``[INSUFFICIENT_PERMISSIONS] ...``), else the first that reads like an error, else the last."""
    lines = [_LOG_PREFIX.sub("", ln).strip() for ln in (excerpt or "").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("at ", "\tat ", "==", "File \""))]
    if not lines:
        return ""
    index = next((i for i, ln in enumerate(lines) if _ERROR_CLASS.search(ln)), None)
    if index is None:
        index = next((i for i, ln in enumerate(lines) if _ERRORISH.search(ln)), len(lines) - 1)
    chosen = lines[index]
    if len(chosen) > 160:        # a wrapped chain: start at the innermost exception
        starts = [m.start() for m in _INNERMOST.finditer(chosen)]
        if starts:
            chosen = chosen[starts[-1]:]
    if chosen.endswith(":") and index + 1 < len(lines):   # "Insufficient privileges:" + the detail
        chosen = f"{chosen} {lines[index + 1]}"
    return _one_line(chosen.lstrip(": "), limit)


def _run_url(template: str, run_id: str) -> str:
    """The page of another run of the same job, from a run's page URL (``.../run/<id>`` or
    ``.../runs/<id>``); '' when the URL has no run id to replace."""
    m = re.search(r"(/runs?/)(\d+)(\D*)$", template or "")
    return _safe_url(template[: m.start(2)] + str(run_id) + m.group(3)) if m and str(run_id).isdigit() else ""


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = " ".join(item.lower().split())
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


@dataclass(frozen=True)
class _Task:
    key: str
    state: str
    code: str
    url: str
    upstream: bool


@dataclass(frozen=True)
class _View:
    """Everything the templates show, already cleaned (redacted, bounded) but not escaped."""

    subject: str
    headline: str
    todo: str
    job_name: str
    job_id: str
    run_id: str
    run_url: str
    workspace: str
    ended: str
    tasks: tuple[_Task, ...]
    more_tasks: int
    category: str
    category_text: str
    action: str
    confidence: str
    decided_by: str
    reason: str
    evidence: tuple[str, ...]
    notes: tuple[str, ...]
    excerpt: str
    fix: str
    prior_retries: int
    max_retries: int
    repairs: tuple[str, ...]
    similar: str
    window_note: str
    decision_key: str
    mode: str
    links: tuple[tuple[str, str], ...]
    links_expire: str
    proposal: str
    approval_links: tuple[tuple[str, str], ...]
    owner_line: str
    why_you: str
    outage: str = ""          # how many other jobs fail the same way (shared.notify.incidents)
    cause: str = ""           # the one line of the error that says what went wrong (first card)
    attempts: tuple[tuple[str, str], ...] = ()   # earlier attempts of the lineage: (label, url or '')


def render_email(
    snapshot: "Snapshot",
    decision: Decision,
    record: "DecisionRecord",
    *,
    settings: "Settings",
    links: Mapping[str, str],
    recipients: Recipients | None = None,
    similar: Similar | None = None,
    scrub: Callable[[str], str] | None = None,
    now: float | None = None,
    others: str = "",
) -> Email:
    """Subject, HTML and plain-text bodies for a decision; nothing is sent.

    ``links`` maps a verdict to its feedback URL (``feedback_links``); ``similar`` carries the
    failures counted, not emailed, since the last email; ``scrub`` removes known secret values
    (``SecretProvider.scrub``) before ``shared.redact`` runs; ``others`` says how many other jobs
    fail the same way (``shared.notify.notice.outage_text``).
    """
    rcpt = recipients or recipients_for(snapshot, decision, settings)
    view = _build_view(snapshot, decision, record, settings=settings, links=links, recipients=rcpt,
                       similar=similar, scrub=scrub, now=time.time() if now is None else now, others=others)
    return Email(subject=view.subject, html=_render_html(view), text=_render_text(view), to=rcpt.to)


def _build_view(snapshot: "Snapshot", decision: Decision, record: "DecisionRecord", *, settings: "Settings",
                links: Mapping[str, str], recipients: Recipients, similar: Similar | None,
                scrub: Callable[[str], str] | None, now: float, others: str = "") -> _View:
    def clean(text: Any, limit: int = 2000) -> str:
        t = strip_ansi(str(text or ""))
        if scrub is not None:
            t = scrub(t)
        t = _CONTROL.sub("", redact(t)).strip()
        return t if len(t) <= limit else t[: limit - 1] + "…"

    action = Action(str(decision.action))
    category = Category(str(decision.category))
    job_name = _one_line(clean(snapshot.job_name or record.job_name, 200), 120) or "job"
    fix = clean(decision.suggested_fix or default_fix(category), 3000)

    if action is Action.ESCALATE:
        suffix = "on-call action needed"
        headline = f"On-call action needed: {_WHAT_FAILED[category]}."
        why = clean(decision.notes[0], 200) if decision.notes else _WHAT_FAILED[category]
        todo = (f"The triage escalated this failure ({why.rstrip('.')}). Decide what it needs: fix it and "
                "repair the run, or hand it to the job's owner.")
    elif action is Action.SEND_EMAIL:
        suffix = "owner action needed"
        headline = f"Owner action needed: {_WHAT_FAILED[category]}."
        todo = "Retrying will not fix this failure: the job's owner must act, then repair the run in Databricks."
    elif action.is_retry:
        suffix = "retry scheduled, for information"
        headline = f"For information: {_WHAT_FAILED[category]}; the triage retries it."
        todo = "Nothing to do now; the on-call list hears about it if the retries do not help."
    else:
        suffix = "ignored, for information"
        headline = f"For information: {_WHAT_FAILED[category]}; the triage takes no action."
        todo = "Nothing to do."

    sim_text = ""
    if similar is not None and similar.count > 0:
        n = similar.count
        sim_text = (f"{n} similar failure{'s' if n != 1 else ''} of this job (same error) since "
                    f"{_fmt_ms(similar.since_ms)} {'were' if n != 1 else 'was'} counted but not emailed"
                    + (f"; the last at {_fmt_ms(similar.until_ms)}." if similar.until_ms else "."))
    subject = f"[triage] {job_name} failed: {category.value} — {suffix}"
    if similar is not None and similar.count > 0:
        subject += f" (+{similar.count} similar since {_fmt_ms(similar.since_ms)})"
    subject = _one_line(subject, _MAX_SUBJECT)

    failed = snapshot.failed_tasks
    tasks = []
    for t in failed[:_MAX_TASKS]:
        tasks.append(_Task(
            key=_one_line(clean(t.task_key or "(run)", 200), 120),
            state=_one_line(clean(t.state.result_state or t.state.life_cycle_state or "", 60), 40),
            code=_one_line(clean(t.state.termination_code or "", 80), 60),
            url=_safe_url(t.run_page_url),
            upstream=t.state.upstream,
        ))

    repairs = []
    for r in snapshot.repair_history[-10:]:
        state = r.get("state") if isinstance(r.get("state"), Mapping) else {}
        status = r.get("status") if isinstance(r.get("status"), Mapping) else {}
        result = (state or {}).get("result_state") or (status or {}).get("state") or ""
        kind = str(r.get("type") or "")
        label = "original run" if kind == "ORIGINAL" else f"repair {r.get('id') or ''}".strip()
        when = _fmt_ms(r.get("start_time"))
        repairs.append(_one_line(clean(f"{label}{' at ' + when if when else ''}: {result or 'unknown'}", 200), 160))

    run_url = _safe_url(snapshot.run_page_url)
    attempts: list[tuple[str, str]] = []
    lineage = str(record.lineage or "")
    if lineage and lineage != str(snapshot.run_id) and lineage.isdigit():
        attempts.append((f"original run {lineage}", _run_url(run_url, lineage)))
    for r in snapshot.repair_history[-10:]:
        if str(r.get("type") or "") == "ORIGINAL":
            continue
        when = _fmt_ms(r.get("start_time"))
        attempts.append((_one_line(clean(f"repair {r.get('id') or ''}".strip() + (f" at {when}" if when else ""),
                                         120), 120), run_url))

    owner_line = ""
    if action is Action.ESCALATE:
        owner = _owner_recipients(snapshot, settings)
        if owner.to and owner.source != "EMAIL_DEFAULT_TO":
            owner_line = f"Job owner: {', '.join(owner.to)} ({owner.source})."

    link_items = tuple((v, u) for v, u in links.items() if _safe_url(u) and v not in APPROVAL_VERDICTS)
    approval_items = tuple((v, u) for v, u in links.items() if _safe_url(u) and v in APPROVAL_VERDICTS)
    proposal = ""
    if decision.approval == "pending" and decision.proposed_action:
        params = ", ".join(f"{k}={v}" for k, v in sorted((decision.proposed_params or {}).items()))
        proposal = clean(f"{decision.proposed_action}" + (f" ({params})" if params else ""), 300)
    expires = ""
    if link_items or approval_items:
        expires = _fmt_ms((int(now) + int(settings.feedback_link_ttl_s)) * 1000)

    window_note = ""
    if settings.email_window_s and action in EMAIL_ACTIONS:
        hours = settings.email_window_s / 3600
        span = f"{hours:g} hour{'s' if hours != 1 else ''}" if hours >= 1 else f"{settings.email_window_s} seconds"
        window_note = (f"Further failures of this job with the same error in the next {span} are counted, "
                       "not emailed; the next email says how many there were.")

    return _View(
        subject=subject,
        headline=headline,
        todo=todo,
        job_name=job_name,
        job_id=str(snapshot.job_id or record.job_id or ""),
        run_id=str(snapshot.run_id or record.run_id or ""),
        run_url=_safe_url(snapshot.run_page_url),
        workspace=_one_line(clean(snapshot.workspace_host or record.workspace, 200), 200),
        ended=_fmt_ms(snapshot.run.get("end_time")),
        tasks=tuple(tasks),
        more_tasks=max(0, len(failed) - _MAX_TASKS),
        category=category.value,
        category_text=_WHAT_FAILED[category],
        action=action.value,
        confidence=f"{float(decision.confidence):.0%}",
        decided_by=_one_line(clean(decision.decided_by, 40), 40),
        reason=clean(decision.reason, 1000),
        evidence=tuple(_unique([_one_line(clean(e, 200), 200) for e in decision.evidence])[:5]),
        notes=tuple(_one_line(clean(n, 300), 300) for n in list(decision.notes)[:5]),
        excerpt=clean(decision.excerpt or record.excerpt, _MAX_EXCERPT),
        fix=fix,
        prior_retries=int(snapshot.prior_retries),
        max_retries=int(settings.max_retries),
        repairs=tuple(repairs),
        similar=sim_text,
        window_note=window_note,
        decision_key=_one_line(clean(record.decision_key or snapshot.decision_key, 100), 100),
        mode=_one_line(clean(record.mode or settings.mode, 20), 20),
        links=link_items,
        links_expire=expires,
        proposal=proposal,
        approval_links=approval_items,
        owner_line=owner_line,
        why_you=(f"You receive this as {recipients.source}." if recipients.source else ""),
        outage=clean(others, 2000),
        cause=_cause_line(clean(decision.excerpt or record.excerpt, _MAX_EXCERPT)),
        attempts=tuple(attempts),
    )


_CSS_BOX = "border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:12px 0;"
_CSS_H2 = "font-size:15px;margin:0 0 8px 0;color:#24292f;"
_CSS_CODE = "font-family:Consolas,Menlo,monospace;font-size:12px;background:#f6f8fa;padding:1px 4px;border-radius:3px;"
_CSS_PRE = ("white-space:pre-wrap;word-break:break-word;font-family:Consolas,Menlo,monospace;font-size:12px;"
            "background:#f6f8fa;padding:8px;border-radius:4px;margin:0;")


def _render_html(v: _View) -> str:
    p: list[str] = []
    add = p.append
    color = "#cf222e" if v.action in (Action.SEND_EMAIL.value, Action.ESCALATE.value) else "#57606a"
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(v.subject)}</title></head>")
    add('<body style="font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#24292f;'
        'max-width:760px;margin:0 auto;padding:16px;overflow-wrap:anywhere;word-wrap:break-word;">')
    add(f'<h1 style="font-size:18px;margin:0 0 4px 0;">{_e(v.job_name)} failed: '
        f'<span style="color:{color};">{_e(v.category)}</span></h1>')
    add(f'<p style="margin:4px 0 12px 0;font-weight:600;">{_e(v.headline)}</p>')
    add(f'<div style="{_CSS_BOX}background:#fff8c5;"><h2 style="{_CSS_H2}">What to do</h2>'
        f'<p style="margin:0;">{_e(v.todo)}</p>')
    if v.cause:
        add(f'<p style="margin:8px 0 0 0;"><b>Cause:</b> <code style="{_CSS_CODE}">{_e(v.cause)}</code></p>')
    add(f'<p style="margin:8px 0 0 0;"><b>Suggested fix:</b> {_e(v.fix)}</p>')
    if v.attempts and v.action == Action.ESCALATE.value:
        add('<p style="margin:8px 0 0 0;"><b>Earlier attempts:</b> ' + ", ".join(
            f'<a href="{_e(url)}">{_e(label)}</a>' if url else _e(label) for label, url in v.attempts) + "</p>")
    if v.outage:
        add(f'<p style="margin:8px 0 0 0;font-weight:600;">{_e(v.outage)}</p>')
    if v.owner_line:
        add(f'<p style="margin:8px 0 0 0;">{_e(v.owner_line)}</p>')
    if v.run_url:
        add(f'<p style="margin:8px 0 0 0;"><a href="{_e(v.run_url)}">Open run {_e(v.run_id)} in Databricks</a></p>')
    add("</div>")

    add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">What failed</h2>'
        '<table style="border-collapse:collapse;font-size:14px;width:100%;table-layout:fixed;">')
    rows = [("Job", f"{v.job_name}" + (f" (id {v.job_id})" if v.job_id else "")),
            ("Run", v.run_id), ("Workspace", v.workspace), ("Ended", v.ended)]
    for label, value in rows:
        if value:
            cell = _e(value)
            if label == "Run" and v.run_url:
                cell = f'<a href="{_e(v.run_url)}">{_e(value)}</a>'
            add(f'<tr><td style="padding:2px 12px 2px 0;color:#57606a;width:88px;vertical-align:top;">{_e(label)}'
                f'</td><td style="overflow-wrap:anywhere;word-break:break-all;">{cell}</td></tr>')
    add("</table>")
    if v.tasks:
        add('<p style="margin:8px 0 4px 0;color:#57606a;">Failed tasks</p><ul style="margin:0;padding-left:20px;">')
        for t in v.tasks:
            name = f'<a href="{_e(t.url)}">{_e(t.key)}</a>' if t.url else _e(t.key)
            detail = ", ".join(x for x in (t.state, t.code) if x)
            extra = " — only because an upstream task failed" if t.upstream else ""
            add(f"<li>{name}{' (' + _e(detail) + ')' if detail else ''}{_e(extra)}</li>")
        if v.more_tasks:
            add(f"<li>and {v.more_tasks} more</li>")
        add("</ul>")
    add("</div>")

    add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">Why</h2>'
        f'<p style="margin:0 0 6px 0;">Category <b>{_e(v.category)}</b>: {_e(v.category_text)}. '
        f'Decision <b>{_e(v.action)}</b> (confidence {_e(v.confidence)}, decided by {_e(v.decided_by)}).</p>')
    if v.reason:
        add(f'<p style="margin:0 0 6px 0;">{_e(v.reason)}</p>')
    if v.evidence:
        add('<p style="margin:0;color:#57606a;">Evidence: ' + "; ".join(_e(x) for x in v.evidence) + "</p>")
    for n in v.notes:
        add(f'<p style="margin:4px 0 0 0;color:#57606a;">Note: {_e(n)}</p>')
    add("</div>")

    if v.excerpt:
        add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">Root cause (secrets redacted)</h2>'
            f'<pre style="{_CSS_PRE}">{_e(v.excerpt)}</pre></div>')

    add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">Retry history</h2>'
        f'<p style="margin:0;">Automatic retries of this run so far: {v.prior_retries} '
        f'(limit {v.max_retries}; the job tag triage.max_retries overrides it).</p>')
    if v.repairs:
        add('<ul style="margin:6px 0 0 0;padding-left:20px;">' + "".join(f"<li>{_e(r)}</li>" for r in v.repairs)
            + "</ul>")
    if v.attempts and v.action != Action.ESCALATE.value:
        add('<p style="margin:6px 0 0 0;">Earlier attempts: ' + ", ".join(
            f'<a href="{_e(url)}">{_e(label)}</a>' if url else _e(label) for label, url in v.attempts) + "</p>")
    if v.similar:
        add(f'<p style="margin:6px 0 0 0;font-weight:600;">{_e(v.similar)}</p>')
    if v.window_note:
        add(f'<p style="margin:6px 0 0 0;color:#57606a;">{_e(v.window_note)}</p>')
    add("</div>")

    if v.proposal:
        add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">Approval requested</h2>'
            f'<p style="margin:0 0 6px 0;">A retry was proposed that the policy does not carry out on its own: '
            f'<b>{_e(v.proposal)}</b>. Nothing is sent unless you approve it.</p>')
        if v.approval_links:
            btn = {"approve": "background:#1f883d;", "reject": "background:#cf222e;"}
            add('<p style="margin:0;">' + " &nbsp; ".join(
                f'<a href="{_e(url)}" style="{btn.get(verdict, "")}color:#ffffff;padding:6px 14px;border-radius:6px;'
                f'text-decoration:none;display:inline-block;">{_e(verdict.capitalize())}</a>'
                for verdict, url in v.approval_links) + "</p>")
            add(f'<p style="margin:4px 0 0 0;color:#57606a;font-size:12px;">Each button opens a page where you '
                f'confirm; the approval expires {_e(v.links_expire)}. Or run: python -m shared approve '
                f'{_e(v.decision_key)}</p>')
        else:
            add(f'<p style="margin:0;color:#57606a;">Approve with: python -m shared approve {_e(v.decision_key)} '
                f'(or reject with: python -m shared reject {_e(v.decision_key)})</p>')
        add("</div>")

    add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">Was this diagnosis right?</h2>')
    if v.links:
        labels = {"correct": "Yes, the diagnosis is correct", "wrong": "No, the diagnosis is wrong"}
        add('<p style="margin:0;">' + " &nbsp;|&nbsp; ".join(
            f'<a href="{_e(url)}">{_e(labels.get(verdict, verdict))}</a>' for verdict, url in v.links) + "</p>")
        add(f'<p style="margin:4px 0 0 0;color:#57606a;font-size:12px;">Each link opens a page where you '
            f'confirm your answer; they work until {_e(v.links_expire)}.</p>')
    else:
        add('<p style="margin:0;color:#57606a;">Feedback links are not configured '
            "(TRIAGE_PUBLIC_BASE_URL and the secret TRIAGE_FEEDBACK_SIGNING_KEY).</p>")
    add("</div>")

    foot = [f"Decision key {v.decision_key}", f"mode {v.mode}"]
    add(f'<p style="color:#57606a;font-size:12px;margin-top:16px;">{_e(" · ".join(foot))}. '
        f"{_e(v.why_you)} Sent by the Databricks failure triage.</p>")
    add("</body></html>")
    return "\n".join(p) + "\n"


def _render_text(v: _View) -> str:
    lines = [f"{v.job_name} failed: {v.category}", v.headline, "", "WHAT TO DO", v.todo]
    if v.cause:
        lines.append(f"Cause: {v.cause}")
    lines.append(f"Suggested fix: {v.fix}")
    if v.attempts:
        lines.append("Earlier attempts: " + ", ".join(f"{label} {url}".strip() for label, url in v.attempts))
    if v.outage:
        lines.append(v.outage)
    if v.owner_line:
        lines.append(v.owner_line)
    if v.run_url:
        lines.append(f"Run: {v.run_url}")
    lines += ["", "WHAT FAILED", f"Job: {v.job_name}" + (f" (id {v.job_id})" if v.job_id else ""),
              f"Run: {v.run_id}"]
    if v.workspace:
        lines.append(f"Workspace: {v.workspace}")
    if v.ended:
        lines.append(f"Ended: {v.ended}")
    if v.tasks:
        lines.append("Failed tasks:")
        for t in v.tasks:
            detail = ", ".join(x for x in (t.state, t.code) if x)
            lines.append(f"  - {t.key}" + (f" ({detail})" if detail else "")
                         + (" - only because an upstream task failed" if t.upstream else "")
                         + (f" {t.url}" if t.url else ""))
        if v.more_tasks:
            lines.append(f"  - and {v.more_tasks} more")
    lines += ["", "WHY", f"Category {v.category}: {v.category_text}. Decision {v.action} "
              f"(confidence {v.confidence}, decided by {v.decided_by})."]
    if v.reason:
        lines.append(v.reason)
    if v.evidence:
        lines.append("Evidence: " + "; ".join(v.evidence))
    lines += [f"Note: {n}" for n in v.notes]
    if v.excerpt:
        lines += ["", "ROOT CAUSE (secrets redacted)", v.excerpt]
    lines += ["", "RETRY HISTORY",
              f"Automatic retries of this run so far: {v.prior_retries} (limit {v.max_retries}; "
              "the job tag triage.max_retries overrides it)."]
    lines += [f"  - {r}" for r in v.repairs]
    if v.similar:
        lines.append(v.similar)
    if v.window_note:
        lines.append(v.window_note)
    if v.proposal:
        lines += ["", "APPROVAL REQUESTED",
                  f"A retry was proposed that the policy does not carry out on its own: {v.proposal}.",
                  "Nothing is sent unless you approve it."]
        lines += [f"  {verdict}: {url}" for verdict, url in v.approval_links]
        lines.append(f"Or run: python -m shared approve {v.decision_key} (or reject {v.decision_key}).")
    lines += ["", "WAS THIS DIAGNOSIS RIGHT?"]
    if v.links:
        lines += [f"  {verdict}: {url}" for verdict, url in v.links]
        lines.append(f"The links work until {v.links_expire}.")
    else:
        lines.append("Feedback links are not configured (TRIAGE_PUBLIC_BASE_URL and TRIAGE_FEEDBACK_SIGNING_KEY).")
    lines += ["", f"Decision key {v.decision_key} · mode {v.mode}. {v.why_you}".rstrip(),
              "Sent by the Databricks failure triage."]
    return "\n".join(lines) + "\n"


