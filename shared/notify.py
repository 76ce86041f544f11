"""Email through Azure Communication Services: who gets told, what they read, and no storms.

Pieces (docs/email.md has the operator's view):

- ``recipients_for(snapshot, decision, settings)``: SEND_EMAIL goes to the job tag
  ``triage.owner``, else the job's own failure e-mail notifications, else the run's creator,
  else ``EMAIL_DEFAULT_TO``; ESCALATE goes to ``EMAIL_ESCALATION_TO`` (else the default list).
- ``render_email(...)``: subject, HTML and plain-text bodies. Every dynamic value is redacted
  (``shared.redact`` plus the values the ``SecretProvider`` handed out) and HTML-escaped.
- ``feedback_links(...)``: signed, expiring "correct" / "wrong" links (``shared.signing``).
- ``EmailNotifier.notify(snapshot, decision, record) -> dict``: at most one email per decision
  key; repeated failures of one job with one fingerprint inside ``TRIAGE_EMAIL_WINDOW`` are
  counted, not sent, and the next email after the window says how many there were. Sends go
  through ``azure-communication-email``'s ``EmailClient`` (keyless with ``ACS_ENDPOINT`` and
  the app's identity, or ``ACS_CONNECTION_STRING`` from the secrets), with azure-core retrying
  throttling and 5xx, and the send poller bounded in time. The returned dict belongs in
  ``DecisionRecord.notification``; a failed send says ``{"status": "failed", ...}`` there and
  ``pending_notifications(store)`` finds it again for the next sweep.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence
from urllib.parse import urlsplit

from shared.errors import ConfigError, SecretError, StoreError
from shared.models import Action, Category, Decision
from shared.redact import redact
from shared.signing import VERDICTS, key_from_secret, make_token
from shared.snapshot import strip_ansi

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.secrets import SecretProvider
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

__all__ = [
    "Email",
    "Recipients",
    "Similar",
    "Notifier",
    "EmailNotifier",
    "EMAIL_ACTIONS",
    "NOTIFY_STATUSES",
    "recipients_for",
    "render_email",
    "feedback_links",
    "default_fix",
    "pending_notifications",
]

_log = logging.getLogger(__name__)

EMAIL_ACTIONS = frozenset({Action.SEND_EMAIL, Action.ESCALATE})
# What ``notify`` returns in "status" (and what DecisionRecord.notification["status"] holds):
#   sent        ACS accepted and delivered the message to its outbound queue (status Succeeded)
#   failed      not sent; "error" says why; the next sweep retries (pending_notifications)
#   suppressed  not sent on purpose: a similar failure of this job was emailed inside the window
#   sending     another worker is sending this decision's email right now
#   skipped     the action needs no email (RETRY, IGNORE, ...)
NOTIFY_STATUSES = ("sent", "failed", "suppressed", "sending", "skipped")

_STATE_EMAIL = "email"              # TriageState kind: one entry per decision key
_STATE_WINDOW = "email-window"      # TriageState kind: one entry per job id + fingerprint
_EMAIL_STATE_TTL_S = 30 * 86400
_WINDOW_KEEP_S = 7 * 86400          # a window entry outlives its window so its count is carried
_MAX_RECIPIENTS = 50                # ACS accepts at most 50 recipients per message
_MAX_EXCERPT = 4000
_MAX_TASKS = 20
_MAX_SUBJECT = 200
_MAX_ERROR = 500
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]{1,64}@[^@\s<>()\[\],;:\"\\]{1,255}\.[^@\s<>()\[\],;:\"\\.]{2,63}")
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


# --- plain data ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Email:
    subject: str
    html: str
    text: str
    to: tuple[str, ...]


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...]
    source: str             # e.g. "job tag triage.owner", "EMAIL_ESCALATION_TO"


@dataclass(frozen=True)
class Similar:
    """Failures of the same job with the same fingerprint that were counted, not emailed."""

    count: int
    since_ms: int
    until_ms: int

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "since_ms": self.since_ms, "until_ms": self.until_ms}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Similar | None":
        if not d or not int(d.get("count") or 0):
            return None
        return cls(int(d["count"]), int(d.get("since_ms") or 0), int(d.get("until_ms") or 0))


class Notifier(Protocol):
    """What the pipeline calls for a decision that needs a person."""

    def notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord") -> dict[str, Any]: ...


# --- recipients ---------------------------------------------------------------------------

def _addresses(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = re.split(r"[,;\s]+", values)
    out = []
    for v in values:
        a = str(v or "").strip()
        if a and _ADDRESS.fullmatch(a):
            out.append(a)
    return out


def _unique(addresses: Sequence[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for a in addresses:
        if a.lower() not in seen:
            seen.add(a.lower())
            out.append(a)
    return tuple(out[:_MAX_RECIPIENTS])


def _owner_recipients(snapshot: "Snapshot", settings: "Settings") -> Recipients:
    owner = _addresses(snapshot.tags.get("triage.owner"))
    if owner:
        return Recipients(_unique(owner), "job tag triage.owner")
    settings_obj = (snapshot.job or {}).get("settings") or {}
    notes = settings_obj.get("email_notifications") if isinstance(settings_obj, Mapping) else None
    on_failure = _addresses((notes or {}).get("on_failure") if isinstance(notes, Mapping) else None)
    if on_failure:
        return Recipients(_unique(on_failure), "the job's failure e-mail notifications")
    creator = _addresses([snapshot.creator])
    if creator:
        return Recipients(_unique(creator), "the run's creator")
    if settings.email_default_to:
        return Recipients(_unique(_addresses(settings.email_default_to)), "EMAIL_DEFAULT_TO")
    return Recipients((), "")


def recipients_for(snapshot: "Snapshot", decision: Decision, settings: "Settings") -> Recipients:
    """Who receives the email for this decision (empty ``to`` when nobody is configured)."""
    if Action(str(decision.action)) is Action.ESCALATE:
        on_call = _addresses(settings.email_escalation_to)
        if on_call:
            return Recipients(_unique(on_call), "EMAIL_ESCALATION_TO")
        default = _addresses(settings.email_default_to)
        if default:
            return Recipients(_unique(default), "EMAIL_DEFAULT_TO (EMAIL_ESCALATION_TO is not set)")
        return Recipients((), "")
    return _owner_recipients(snapshot, settings)


# --- feedback links -----------------------------------------------------------------------

def feedback_links(settings: "Settings", key: bytes | None, decision_key: str, *, now: float) -> dict[str, str]:
    """``{"correct": url, "wrong": url}`` signed with ``key`` and valid for
    ``TRIAGE_FEEDBACK_LINK_TTL``; empty when TRIAGE_PUBLIC_BASE_URL or the key is missing."""
    base = (settings.public_base_url or "").rstrip("/")
    if not base or not key or not _safe_url(base):
        return {}
    expires_at = int(now) + int(settings.feedback_link_ttl_s)
    return {v: f"{base}/api/feedback/{make_token(key, decision_key, v, expires_at=expires_at)}" for v in VERDICTS}


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
    owner_line: str
    why_you: str


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
) -> Email:
    """Subject, HTML and plain-text bodies for a decision; nothing is sent.

    ``links`` maps a verdict to its feedback URL (``feedback_links``); ``similar`` carries the
    failures counted, not emailed, since the last email; ``scrub`` removes known secret values
    (``SecretProvider.scrub``) before ``shared.redact`` runs.
    """
    rcpt = recipients or recipients_for(snapshot, decision, settings)
    view = _build_view(snapshot, decision, record, settings=settings, links=links, recipients=rcpt,
                       similar=similar, scrub=scrub, now=time.time() if now is None else now)
    return Email(subject=view.subject, html=_render_html(view), text=_render_text(view), to=rcpt.to)


def _build_view(snapshot: "Snapshot", decision: Decision, record: "DecisionRecord", *, settings: "Settings",
                links: Mapping[str, str], recipients: Recipients, similar: Similar | None,
                scrub: Callable[[str], str] | None, now: float) -> _View:
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

    owner_line = ""
    if action is Action.ESCALATE:
        owner = _owner_recipients(snapshot, settings)
        if owner.to and owner.source != "EMAIL_DEFAULT_TO":
            owner_line = f"Job owner: {', '.join(owner.to)} ({owner.source})."

    link_items = tuple((v, u) for v, u in links.items() if _safe_url(u))
    expires = ""
    if link_items:
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
        evidence=tuple(_one_line(clean(e, 200), 200) for e in list(decision.evidence)[:5]),
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
        owner_line=owner_line,
        why_you=(f"You receive this as {recipients.source}." if recipients.source else ""),
    )


_CSS_BOX = "border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:12px 0;"
_CSS_H2 = "font-size:15px;margin:0 0 8px 0;color:#24292f;"
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
        'max-width:760px;margin:0 auto;padding:16px;">')
    add(f'<h1 style="font-size:18px;margin:0 0 4px 0;">{_e(v.job_name)} failed: '
        f'<span style="color:{color};">{_e(v.category)}</span></h1>')
    add(f'<p style="margin:4px 0 12px 0;font-weight:600;">{_e(v.headline)}</p>')
    add(f'<div style="{_CSS_BOX}background:#fff8c5;"><h2 style="{_CSS_H2}">What to do</h2>'
        f'<p style="margin:0;">{_e(v.todo)}</p>'
        f'<p style="margin:8px 0 0 0;"><b>Suggested fix:</b> {_e(v.fix)}</p>')
    if v.owner_line:
        add(f'<p style="margin:8px 0 0 0;">{_e(v.owner_line)}</p>')
    if v.run_url:
        add(f'<p style="margin:8px 0 0 0;"><a href="{_e(v.run_url)}">Open run {_e(v.run_id)} in Databricks</a></p>')
    add("</div>")

    add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">What failed</h2>'
        '<table style="border-collapse:collapse;font-size:14px;">')
    rows = [("Job", f"{v.job_name}" + (f" (id {v.job_id})" if v.job_id else "")),
            ("Run", v.run_id), ("Workspace", v.workspace), ("Ended", v.ended)]
    for label, value in rows:
        if value:
            cell = _e(value)
            if label == "Run" and v.run_url:
                cell = f'<a href="{_e(v.run_url)}">{_e(value)}</a>'
            add(f'<tr><td style="padding:2px 12px 2px 0;color:#57606a;">{_e(label)}</td><td>{cell}</td></tr>')
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
    if v.similar:
        add(f'<p style="margin:6px 0 0 0;font-weight:600;">{_e(v.similar)}</p>')
    if v.window_note:
        add(f'<p style="margin:6px 0 0 0;color:#57606a;">{_e(v.window_note)}</p>')
    add("</div>")

    add(f'<div style="{_CSS_BOX}"><h2 style="{_CSS_H2}">Was this diagnosis right?</h2>')
    if v.links:
        labels = {"correct": "Yes, the diagnosis is correct", "wrong": "No, the diagnosis is wrong"}
        add('<p style="margin:0;">' + " &nbsp;|&nbsp; ".join(
            f'<a href="{_e(url)}">{_e(labels.get(verdict, verdict))}</a>' for verdict, url in v.links) + "</p>")
        add(f'<p style="margin:4px 0 0 0;color:#57606a;font-size:12px;">Each link opens a page that records '
            f'your answer; they work until {_e(v.links_expire)}.</p>')
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
    lines = [f"{v.job_name} failed: {v.category}", v.headline, "", "WHAT TO DO", v.todo, f"Suggested fix: {v.fix}"]
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
    lines += ["", "WAS THIS DIAGNOSIS RIGHT?"]
    if v.links:
        lines += [f"  {verdict}: {url}" for verdict, url in v.links]
        lines.append(f"The links work until {v.links_expire}.")
    else:
        lines.append("Feedback links are not configured (TRIAGE_PUBLIC_BASE_URL and TRIAGE_FEEDBACK_SIGNING_KEY).")
    lines += ["", f"Decision key {v.decision_key} · mode {v.mode}. {v.why_you}".rstrip(),
              "Sent by the Databricks failure triage."]
    return "\n".join(lines) + "\n"


# --- sending ------------------------------------------------------------------------------

class _SendFailed(Exception):
    def __init__(self, error: str, *, status: int | None = None, code: str | None = None,
                 retryable: bool = True) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.code = code
        self.retryable = retryable


class EmailNotifier:
    """Sends triage emails through Azure Communication Services.

    :param endpoint: the ACS endpoint (``https://<resource>.communication.azure.com``) for keyless
        sending with ``credential`` (``DefaultAzureCredential`` when None). Leave empty to send
        with the connection string ``ACS_CONNECTION_STRING`` read from ``secrets`` at send time
        (so a rotated key is picked up).
    :param sender: the verified ``MailFrom`` address (``EMAIL_SENDER``).
    :param store: the decision store (dedupe per decision key, the storm window).
    :param secrets: the secret provider (connection string, feedback signing key).
    :param transport: an azure-core ``HttpTransport`` (tests use this hook).
    :param send_timeout_s: bound on the send request (with its retries) and, separately, on
        polling for the send status.
    :param clock: seconds since the epoch (tests move it instead of sleeping).
    """

    def __init__(
        self,
        endpoint: str = "",
        credential: Any = None,
        *,
        sender: str,
        settings: "Settings",
        store: "Store",
        secrets: "SecretProvider | None" = None,
        transport: Any = None,
        send_timeout_s: float = 60.0,
        polling_interval_s: float = 2.0,
        retry_total: int = 4,
        retry_backoff_factor: float = 0.8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        endpoint = (endpoint or "").strip().rstrip("/")
        if endpoint and (not endpoint.startswith("https://") or not urlsplit(endpoint).netloc):
            raise ValueError(f"ACS_ENDPOINT must look like https://<resource>.communication.azure.com, got {endpoint!r}")
        if not endpoint and secrets is None:
            raise ValueError("set ACS_ENDPOINT (keyless, with the app's identity) or the secret ACS_CONNECTION_STRING")
        if not _ADDRESS.fullmatch(sender or ""):
            raise ValueError(f"EMAIL_SENDER must be a verified sender address like DoNotReply@<domain>, got {sender!r}")
        if store is None:
            raise ValueError("a Store is needed: it keeps one email per decision key and the storm window")
        if send_timeout_s <= 0 or polling_interval_s < 0 or retry_total < 0:
            raise ValueError("send_timeout_s must be > 0, polling_interval_s and retry_total >= 0")
        self._endpoint = endpoint
        self._credential = credential
        self._owns_credential = False
        self._sender = sender
        self._settings = settings
        self._store = store
        self._secrets = secrets
        self._transport = transport
        self._send_timeout = float(send_timeout_s)
        self._poll_s = float(polling_interval_s)
        self._retry_total = int(retry_total)
        self._retry_backoff = float(retry_backoff_factor)
        self._clock = clock
        self._client: Any = None
        self._client_fp = ""
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: "Settings",
        *,
        store: "Store",
        secrets: "SecretProvider",
        credential: Any = None,
        transport: Any = None,
        **kwargs: Any,
    ) -> "EmailNotifier":
        """Keyless when ACS_ENDPOINT is set, else the connection string. ConfigError naming what
        to set when email is not configured."""
        if not settings.email_sender:
            raise ConfigError("EMAIL_SENDER is not set: the verified sender address of the ACS email domain")
        if not settings.acs_endpoint:
            try:
                has_conn = secrets.get_optional("ACS_CONNECTION_STRING") is not None
            except SecretError as exc:
                raise ConfigError(f"email: {exc}") from exc
            if not has_conn:
                raise ConfigError("email is not configured: set ACS_ENDPOINT (keyless) or the secret ACS_CONNECTION_STRING")
        try:
            return cls(settings.acs_endpoint, credential, sender=settings.email_sender, settings=settings,
                       store=store, secrets=secrets, transport=transport, **kwargs)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    # --- the notifier protocol ----------------------------------------------------------
    def notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord") -> dict[str, Any]:
        """Email the people this decision needs, at most once per decision key. Never raises for
        a send or store problem: the returned dict (for ``record.notification``) says what
        happened."""
        action = Action(str(decision.action))
        now_ms = int(self._clock() * 1000)
        key = record.decision_key or snapshot.decision_key
        if action not in EMAIL_ACTIONS:
            return {"status": "skipped", "reason": f"action {action.value} sends no email", "at": now_ms}
        try:
            return self._notify(snapshot, decision, record, key, now_ms)
        except StoreError as exc:
            _log.warning("email for decision %s not sent: the store failed (%s)", key, type(exc).__name__)
            return {"status": "failed", "error": _bounded(f"store: {exc}"), "retryable": True,
                    "attempts": 1, "at": now_ms}

    def _notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord", key: str,
                now_ms: int) -> dict[str, Any]:
        claim = self._claim(key, now_ms)
        if claim.duplicate is not None:
            prev = claim.duplicate
            out = {k: prev[k] for k in ("status", "at", "attempts", "operation_id", "count", "emailed_decision_key")
                   if k in prev}
            out["duplicate"] = True
            return out
        entry, attempts = claim.entry, claim.attempts
        rcpt = recipients_for(snapshot, decision, self._settings)
        if not rcpt.to:
            what = ("EMAIL_ESCALATION_TO" if Action(str(decision.action)) is Action.ESCALATE
                    else "the job tag triage.owner or EMAIL_DEFAULT_TO")
            result = {"status": "failed", "error": f"no recipient: set {what}", "retryable": False,
                      "attempts": attempts, "at": now_ms}
            self._finish(key, entry, result)
            _log.warning("email for decision %s not sent: no recipient (set %s)", key, what)
            return result
        similar: Similar | None
        if claim.first:
            window = self._window(record, decision, key, now_ms)
            if not window.send:
                value = {"status": "suppressed", "at": now_ms, "attempts": attempts, "count": window.count,
                         "emailed_decision_key": window.emailed_key}
                self._store.state_put(_STATE_EMAIL, key, value, etag=entry.etag, ttl_s=_EMAIL_STATE_TTL_S)
                _log.info("email for decision %s suppressed: failure %d of this job and fingerprint in the window",
                          key, window.count)
                return {"status": "suppressed", "reason": "a similar failure of this job was emailed in the window",
                        "count": window.count, "emailed_decision_key": window.emailed_key, "at": now_ms}
            similar = window.similar
            if similar is not None:
                entry = self._store.state_put(_STATE_EMAIL, key, {**entry.value, "similar": similar.to_dict()},
                                              etag=entry.etag, ttl_s=_EMAIL_STATE_TTL_S) or entry
        else:
            similar = Similar.from_dict(entry.value.get("similar"))

        attempt_id = str(uuid.uuid4())
        base = {"to": list(rcpt.to), "recipient_source": rcpt.source, "attempts": attempts,
                "operation_id": attempt_id}
        try:
            links = self._links(key)
            email = render_email(snapshot, decision, record, settings=self._settings, links=links,
                                 recipients=rcpt, similar=similar,
                                 scrub=self._secrets.scrub if self._secrets is not None else None,
                                 now=now_ms / 1000)
            base["subject"] = email.subject
            self._send(email, attempt_id)
        except _SendFailed as exc:
            result = {"status": "failed", **base, "error": exc.error, "retryable": exc.retryable, "at": now_ms}
            if exc.status is not None:
                result["http_status"] = exc.status
            if exc.code:
                result["error_code"] = exc.code
            self._finish(key, entry, result)
            _log.warning("email for decision %s failed (attempt %d): %s", key, attempts, exc.error)
            return result
        result = {"status": "sent", **base, "at": int(self._clock() * 1000)}
        if similar is not None:
            result["similar"] = similar.to_dict()
        self._finish(key, entry, result)
        _log.info("email for decision %s sent to %d recipient(s) (%s)", key, len(rcpt.to), rcpt.source)
        return result

    # --- store: one email per decision key ----------------------------------------------
    def _claim(self, key: str, now_ms: int) -> "_Claim":
        stale_ms = int((2 * self._send_timeout + 60) * 1000)
        for _ in range(10):
            entry = self._store.state_put(_STATE_EMAIL, key, {"status": "sending", "at": now_ms, "attempts": 1},
                                          if_absent=True, ttl_s=_EMAIL_STATE_TTL_S)
            if entry is not None:
                return _Claim(entry=entry, attempts=1, first=True)
            cur = self._store.state_get(_STATE_EMAIL, key)
            if cur is None:
                continue
            status = cur.value.get("status")
            stale = status == "sending" and now_ms - int(cur.value.get("at") or 0) > stale_ms
            if status == "failed" or stale:
                attempts = int(cur.value.get("attempts") or 1) + 1
                taken = self._store.state_put(_STATE_EMAIL, key,
                                              {**cur.value, "status": "sending", "at": now_ms, "attempts": attempts},
                                              etag=cur.etag, ttl_s=_EMAIL_STATE_TTL_S)
                if taken is not None:
                    return _Claim(entry=taken, attempts=attempts, first=False)
                continue
            return _Claim(duplicate=dict(cur.value))
        raise StoreError(f"email state {key}: too much contention")

    def _finish(self, key: str, entry: Any, result: Mapping[str, Any]) -> None:
        value = {k: result[k] for k in ("status", "at", "attempts", "operation_id", "error", "retryable")
                 if k in result}
        if entry.value.get("similar"):
            value["similar"] = entry.value["similar"]
        try:
            if self._store.state_put(_STATE_EMAIL, key, value, etag=entry.etag, ttl_s=_EMAIL_STATE_TTL_S) is None:
                _log.warning("email state for decision %s changed while sending; kept the other writer's", key)
        except StoreError as exc:  # the email went (or not) regardless; the record says which
            _log.warning("could not record the email state for decision %s (%s)", key, type(exc).__name__)

    # --- store: the storm window ----------------------------------------------------------
    def _window(self, record: "DecisionRecord", decision: Decision, key: str, now_ms: int) -> "_Window":
        """Count this failure in its window (job, action, fingerprint). The first failure of a
        window is sent, carrying the count of the previous window; the others are suppressed."""
        window_ms = int(self._settings.email_window_s) * 1000
        if window_ms <= 0:
            return _Window(send=True, count=1)
        fp = decision.fingerprint or record.fingerprint or str(decision.category)
        job = record.job_id or "nojob"
        digest = hashlib.sha256(f"{decision.action}|{fp}".encode("utf-8")).hexdigest()[:32]
        wkey = f"{job}:{digest}"
        ttl = int(self._settings.email_window_s) + _WINDOW_KEEP_S
        for _ in range(20):
            cur = self._store.state_get(_STATE_WINDOW, wkey)
            if cur is not None and now_ms - int(cur.value.get("opened_at") or 0) < window_ms:
                count = int(cur.value.get("count") or 1) + 1
                value = {**cur.value, "count": count, "last_at": now_ms}
                if self._store.state_put(_STATE_WINDOW, wkey, value, etag=cur.etag, ttl_s=ttl) is not None:
                    return _Window(send=False, count=count, emailed_key=cur.value.get("decision_key"))
                continue
            similar = None
            if cur is not None and int(cur.value.get("count") or 1) > 1:
                similar = Similar(count=int(cur.value["count"]) - 1,
                                  since_ms=int(cur.value.get("opened_at") or 0),
                                  until_ms=int(cur.value.get("last_at") or 0))
            value = {"opened_at": now_ms, "last_at": now_ms, "count": 1, "decision_key": key}
            if cur is None:
                put = self._store.state_put(_STATE_WINDOW, wkey, value, if_absent=True, ttl_s=ttl)
            else:
                put = self._store.state_put(_STATE_WINDOW, wkey, value, etag=cur.etag, ttl_s=ttl)
            if put is not None:
                return _Window(send=True, count=1, similar=similar)
        raise StoreError(f"email window {wkey}: too much contention")

    # --- feedback links -----------------------------------------------------------------
    def _links(self, decision_key: str) -> dict[str, str]:
        if not self._settings.public_base_url or self._secrets is None:
            return {}
        try:
            raw = self._secrets.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
            key = key_from_secret(raw) if raw else None
        except (SecretError, ValueError) as exc:
            _log.warning("feedback links left out of the email: %s", exc)
            return {}
        return feedback_links(self._settings, key, decision_key, now=self._clock())

    # --- ACS --------------------------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        from azure.core.pipeline.policies import RetryPolicy

        kwargs: dict[str, Any] = {
            # 408/429/500/502/503/504 and connection errors, honouring Retry-After; 'timeout'
            # bounds one request with all its retries.
            "retry_policy": RetryPolicy(retry_total=self._retry_total, retry_backoff_factor=self._retry_backoff,
                                        retry_backoff_max=30, timeout=self._send_timeout),
            "polling_interval": self._poll_s,
        }
        if self._transport is not None:
            kwargs["transport"] = self._transport
        return kwargs

    def _email_client(self) -> Any:
        from azure.communication.email import EmailClient

        if self._endpoint:
            with self._client_lock:
                if self._client is None:
                    if self._credential is None:
                        from azure.identity import DefaultAzureCredential

                        self._credential = DefaultAzureCredential()
                        self._owns_credential = True
                    self._client = EmailClient(self._endpoint, self._credential, **self._client_kwargs())
                return self._client
        assert self._secrets is not None
        try:
            conn = self._secrets.get("ACS_CONNECTION_STRING")
        except SecretError as exc:
            raise _SendFailed(str(exc), retryable=True) from exc
        fp = hashlib.sha256(conn.encode("utf-8")).hexdigest()
        with self._client_lock:
            if self._client is None or fp != self._client_fp:
                # A rotated key: build a new client. The old one may still be in use by another
                # thread's send, so it is left to the garbage collector rather than closed here.
                try:
                    self._client = EmailClient.from_connection_string(conn, **self._client_kwargs())
                except (ValueError, TypeError):
                    raise _SendFailed("the secret ACS_CONNECTION_STRING is malformed (expected "
                                      "endpoint=https://<resource>.communication.azure.com/;accesskey=<key>)",
                                      retryable=False) from None
                self._client_fp = fp
            return self._client

    def _send(self, email: Email, attempt_id: str) -> dict[str, Any]:
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        client = self._email_client()
        message = {
            "senderAddress": self._sender,
            "recipients": {"to": [{"address": a} for a in email.to]},
            "content": {"subject": email.subject, "plainText": email.text, "html": email.html},
            # No tracking pixels and no link rewriting: the feedback links must arrive as signed.
            "userEngagementTrackingDisabled": True,
        }
        # Repeatable requests (ACS honours these for 5 minutes): azure-core's retries of this POST
        # after a 429/5xx cannot send the email twice.
        headers = {"Repeatability-Request-Id": attempt_id, "Repeatability-First-Sent": formatdate(usegmt=True)}
        try:
            poller = client.begin_send(
                message,
                operation_id=attempt_id,
                headers=headers,
                polling_interval=self._poll_s,
                retry_on_methods=["POST", "GET"],
            )
            result = poller.result(timeout=self._send_timeout)
        except ClientAuthenticationError as exc:
            raise _SendFailed(_bounded(f"ACS refused the credential: {_describe(exc)}"),
                              status=exc.status_code, code=_code(exc), retryable=True) from exc
        except HttpResponseError as exc:
            status = exc.status_code
            if status is not None and status < 300:  # the poller read a terminal "Failed"/"Canceled"
                raise _SendFailed(_bounded(f"ACS send operation failed: {_describe(exc, with_status=False)}"),
                                  code=_code(exc), retryable=True) from exc
            retryable = status is None or status >= 500 or status in (408, 409, 429)
            raise _SendFailed(_bounded(_describe(exc)), status=status, code=_code(exc), retryable=retryable) from exc
        except AzureError as exc:
            raise _SendFailed(_bounded(f"{type(exc).__name__}: {exc}"), retryable=True) from exc
        if not poller.done():
            raise _SendFailed(f"ACS did not confirm the send within {self._send_timeout:g}s "
                              f"(operation {attempt_id})", retryable=True)
        status = str((result or {}).get("status") or "")
        if status.lower() != "succeeded":
            err = (result or {}).get("error") or {}
            raise _SendFailed(_bounded(f"ACS send ended with status {status or 'unknown'}: "
                                       f"{err.get('code') or ''} {err.get('message') or ''}".strip()),
                              code=err.get("code"), retryable=True)
        return dict(result)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._owns_credential and self._credential is not None and hasattr(self._credential, "close"):
            self._credential.close()

    def __enter__(self) -> "EmailNotifier":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class _Claim:
    entry: Any = None                       # the "email" state entry this worker now owns
    attempts: int = 1
    first: bool = True                      # False: a retry of a failed or abandoned send
    duplicate: dict[str, Any] | None = None  # set when another attempt owns or finished it


@dataclass(frozen=True)
class _Window:
    send: bool
    count: int
    emailed_key: str | None = None
    similar: Similar | None = None


def _code(exc: Any) -> str | None:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    return str(code) if code else None


def _describe(exc: Any, *, with_status: bool = True) -> str:
    status = getattr(exc, "status_code", None)
    code = _code(exc)
    message = getattr(getattr(exc, "error", None), "message", None) or getattr(exc, "reason", None) or ""
    if not message:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    parts = [] if not with_status else [f"HTTP {status}" if status else type(exc).__name__]
    if code:
        parts.append(f"[{code}]")
    parts.append(str(message))
    return " ".join(parts)


def _bounded(text: str) -> str:
    t = _one_line(redact(str(text)), _MAX_ERROR)
    return t


# --- the sweep's view -----------------------------------------------------------------------

def pending_notifications(store: "Store", *, since_ms: int | None = None, max_attempts: int = 5,
                          stale_after_s: int = 900, now_ms: int | None = None,
                          limit: int | None = None) -> list["DecisionRecord"]:
    """Decisions whose email the next sweep should (re)try with ``notifier.notify(...)``:

    - ``record.notification["status"] == "failed"`` with fewer than ``max_attempts`` attempts;
    - an email action (SEND_EMAIL / ESCALATE) in ``act`` mode with no notification recorded,
      older than ``stale_after_s`` (the worker died between deciding and recording).

    Over-including is safe: ``notify`` sends at most one email per decision key and reports an
    already-sent one as ``{"status": "sent", "duplicate": True}``.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out = []
    for rec in store.list(since_ms=since_ms):
        n = rec.notification or {}
        if n.get("status") == "failed":
            if int(n.get("attempts") or 1) < max_attempts:
                out.append(rec)
        elif not n and rec.action in {a.value for a in EMAIL_ACTIONS} and rec.mode == "act" \
                and now - int(rec.created_at or 0) > stale_after_s * 1000:
            out.append(rec)
        if limit is not None and len(out) >= limit:
            break
    return out
