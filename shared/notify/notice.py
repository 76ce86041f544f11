"""What a chat, paging or webhook message says, built once for every channel.

``build_notice(...)`` turns a decision into a ``Notice``: the same words the email uses
(``render._build_view``: headline, what to do, suggested fix, root cause), already redacted
(``shared.redact`` plus the secret values the ``SecretProvider`` handed out) and bounded, so a
channel only lays them out. Links are absolute http(s) URLs only: the run in Databricks and the
signed buttons (feedback "correct"/"wrong"; "approve"/"reject" when the decision asks for one).
``Notice.outage`` carries the incident the failure belongs to (how many other jobs fail the same
way, and which).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from shared.models import Action, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord

from shared.notify.incidents import Incident
from shared.notify.notifier import Recipients
from shared.notify.render import _build_view, _one_line, _safe_url

__all__ = ["Notice", "build_notice", "LINK_LABELS"]

_MAX_EXCERPT = 1500        # chat cards stay readable; the email and the run page have the rest
_MAX_JOBS_LISTED = 25

LINK_LABELS = {
    "run": "Open the run in Databricks",
    "approve": "Approve",
    "reject": "Reject",
    "correct": "Diagnosis correct",
    "wrong": "Diagnosis wrong",
}
_ORDER = ("run", "approve", "reject", "correct", "wrong")


@dataclass(frozen=True)
class Notice:
    action: str
    category: str
    severity: str                    # critical (ESCALATE), warning (SEND_EMAIL), info (others)
    title: str
    headline: str
    todo: str
    fix: str
    job_name: str
    job_id: str
    run_id: str
    run_url: str
    workspace: str
    ended: str
    reason: str
    excerpt: str
    confidence: str
    decided_by: str
    decision_key: str
    mode: str
    links: tuple[tuple[str, str, str], ...] = ()     # (kind, label, url)
    outage: Incident | None = None
    outage_text: str = ""                            # "11 other jobs fail the same way: a, b, …"
    facts: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("action", "category", "severity", "title", "headline", "todo", "fix",
                                             "job_name", "job_id", "run_id", "run_url", "workspace", "ended",
                                             "reason", "excerpt", "confidence", "decided_by", "decision_key",
                                             "mode", "outage_text")}
        out["links"] = {kind: url for kind, _, url in self.links}
        if self.outage is not None:
            out["incident"] = {"dedup_key": self.outage.dedup_key, "cause": self.outage.label,
                               "jobs": [{"job_id": j["job_id"], "name": j.get("name", ""), "run_id": j.get("run_id")}
                                        for j in self.outage.jobs],
                               "count": self.outage.count}
        return out


def _severity(action: Action) -> str:
    if action is Action.ESCALATE:
        return "critical"
    if action is Action.SEND_EMAIL:
        return "warning"
    return "info"


def outage_text(incident: Incident | None, job_id: str) -> str:
    """How many other jobs fail the same way, and which (bounded)."""
    if incident is None:
        return ""
    others = incident.others(str(job_id))
    n = max(len(others), incident.count - 1)
    if n <= 0:
        return ""
    names = [_one_line(j.get("name") or f"job {j['job_id']}", 60) for j in others[:_MAX_JOBS_LISTED]]
    more = n - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
    return (f"{n} other job{'s' if n != 1 else ''} fail{'s' if n == 1 else ''} the same way "
            f"({incident.label}): {listed}.")


def build_notice(snapshot: "Snapshot", decision: Decision, record: "DecisionRecord", *, settings: "Settings",
                 links: Mapping[str, str] | None = None, scrub: Callable[[str], str] | None = None,
                 now: float | None = None, outage: Incident | None = None) -> Notice:
    """The channel-neutral message for a decision; nothing is sent."""
    v = _build_view(snapshot, decision, record, settings=settings, links=dict(links or {}),
                    recipients=Recipients((), ""), similar=None, scrub=scrub,
                    now=time.time() if now is None else now)
    action = Action(str(decision.action))
    urls: dict[str, str] = {}
    if v.run_url:
        urls["run"] = v.run_url
    for kind, url in (links or {}).items():
        safe = _safe_url(url)
        if safe and kind in LINK_LABELS:
            urls[kind] = safe
    ordered = tuple((k, LINK_LABELS[k], urls[k]) for k in _ORDER if k in urls)
    excerpt = v.excerpt if len(v.excerpt) <= _MAX_EXCERPT else v.excerpt[: _MAX_EXCERPT - 1] + "…"
    text = outage_text(outage, v.job_id or str(record.job_id))
    facts = tuple((k, val) for k, val in (
        ("Job", v.job_name + (f" (id {v.job_id})" if v.job_id else "")),
        ("Run", v.run_id),
        ("Category", v.category),
        ("Decision", f"{v.action} ({v.confidence}, {v.decided_by})"),
        ("Workspace", v.workspace),
        ("Ended", v.ended),
        ("Retries so far", f"{v.prior_retries} of {v.max_retries}"),
        ("Decision key", v.decision_key),
    ) if val)
    return Notice(action=action.value, category=v.category, severity=_severity(action), title=v.subject,
                  headline=v.headline, todo=v.todo, fix=v.fix, job_name=v.job_name, job_id=v.job_id,
                  run_id=v.run_id, run_url=v.run_url, workspace=v.workspace, ended=v.ended, reason=v.reason,
                  excerpt=excerpt, confidence=v.confidence, decided_by=v.decided_by, decision_key=v.decision_key,
                  mode=v.mode, links=ordered, outage=outage, outage_text=text, facts=facts)
