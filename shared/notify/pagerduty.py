"""PagerDuty through the Events API v2: one incident per outage.

``POST {PAGERDUTY_EVENTS_URL}`` (default ``https://events.pagerduty.com/v2/enqueue``) with
``{"routing_key", "event_action", "dedup_key", "payload": {"summary", "source", "severity",
"timestamp", "component", "group", "class", "custom_details"}, "links", "client", "client_url"}``;
PagerDuty answers 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``,
400 for an invalid event (not retried), 429 and 5xx (retried).

- ESCALATE: the failure joins its cause's incident (``shared.notify.incidents``) and the event's
  ``dedup_key`` is the incident's, so every job failing the same way within
  ``TRIAGE_INCIDENT_WINDOW`` lands on one alert. Each job that joins sends one ``trigger`` with the
  same ``dedup_key`` and the whole picture: the summary says "12 jobs failing: <cause>: a, b, …"
  and ``custom_details.jobs`` lists them.
- SEND_EMAIL routed here (``TRIAGE_NOTIFY_VIA=pagerduty``): one alert per decision, severity
  ``warning``, its own ``dedup_key``.
- ``resolve(dedup_key)``: the ``resolve`` event, sent when every job of the incident recovered
  (``resolve_recovered`` in ``shared.notify.routing``) or a person marked the decision handled.

The routing key (``PAGERDUTY_ROUTING_KEY``, a secret) is in every event's body, so it is never
logged and is scrubbed from every error.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping

from shared.errors import ChannelError
from shared.models import Action

from shared.notify.channel import Channel, ChannelNotConfigured
from shared.notify.client import ChannelAnswer, check_url
from shared.notify.notice import Notice
from shared.notify.render import _one_line

__all__ = ["PagerDutyChannel", "SEVERITIES"]

SEVERITIES = ("critical", "error", "warning", "info")
_MAX_SUMMARY = 1024
_MAX_DEDUP = 255
_MAX_JOBS = 50


def decision_dedup_key(workspace: str, decision_key: str) -> str:
    digest = hashlib.sha256(f"{workspace}|{decision_key}".encode()).hexdigest()[:12]
    return f"triage-decision-{digest}-{decision_key}"[:_MAX_DEDUP]


class PagerDutyChannel(Channel):
    name = "pagerduty"
    secret = "PAGERDUTY_ROUTING_KEY"

    def _events_url(self) -> str:
        try:
            return check_url(self._settings.pagerduty_events_url, setting="PAGERDUTY_EVENTS_URL")
        except ValueError as exc:
            raise ChannelNotConfigured(str(exc)) from None

    def _routing_key(self) -> str:
        key = self._secret_value().strip()
        if not key or any(c.isspace() for c in key) or len(key) > 128:
            raise ChannelNotConfigured("pagerduty: the secret PAGERDUTY_ROUTING_KEY is malformed "
                                       "(expected the 32-character integration key)")
        return key

    # --- payload ---------------------------------------------------------------------------
    def _summary(self, notice: Notice) -> str:
        inc = notice.outage
        if notice.action == Action.ESCALATE.value and inc is not None and len(inc.escalated()) > 1:
            jobs = inc.escalated()
            n = max(len(jobs), 1)
            names = ", ".join(_one_line(j.get("name") or f"job {j['job_id']}", 60) for j in jobs[:_MAX_JOBS])
            return _one_line(f"{n} jobs failing: {inc.label}: {names}", _MAX_SUMMARY)
        return _one_line(notice.title, _MAX_SUMMARY)

    def dedup_key(self, notice: Notice) -> str:
        if notice.action == Action.ESCALATE.value and notice.outage is not None:
            return notice.outage.dedup_key
        return decision_dedup_key(notice.workspace, notice.decision_key)

    def payload(self, notice: Notice, *, routing_key: str = "<PAGERDUTY_ROUTING_KEY>") -> dict[str, Any]:
        """The trigger event (``routing_key`` is filled in when sending; a preview shows a marker)."""
        details: dict[str, Any] = {
            "headline": notice.headline,
            "what_to_do": notice.todo,
            "suggested_fix": notice.fix,
            "job": notice.job_name,
            "job_id": notice.job_id,
            "run_id": notice.run_id,
            "category": notice.category,
            "decision": notice.action,
            "confidence": notice.confidence,
            "decided_by": notice.decided_by,
            "reason": notice.reason,
            "root_cause": notice.excerpt,
            "decision_key": notice.decision_key,
            "mode": notice.mode,
        }
        inc = notice.outage
        if inc is not None:
            jobs = inc.escalated() if notice.action == Action.ESCALATE.value else list(inc.jobs)
            details["incident"] = {
                "cause": inc.label,
                "jobs_failing": max(len(jobs), 1),
                "jobs": [{"job_id": j["job_id"], "name": j.get("name", ""), "run_id": j.get("run_id"),
                          "decision_key": j.get("decision_key"), "recovered": bool(j.get("recovered"))}
                         for j in jobs[:_MAX_JOBS]],
                "opened_at": _iso(inc.opened_at),
            }
            if notice.outage_text:
                details["other_jobs"] = notice.outage_text
        event: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": self.dedup_key(notice),
            "payload": {
                "summary": self._summary(notice),
                "source": notice.workspace or "databricks",
                "severity": notice.severity if notice.severity in SEVERITIES else "error",
                "timestamp": _iso(int(self._clock() * 1000)),
                "component": _one_line(notice.job_name, 200),
                "group": "databricks-jobs",
                "class": notice.category,
                "custom_details": details,
            },
            "client": "Databricks job triage",
        }
        if self._settings.public_base_url:
            event["client_url"] = self._settings.public_base_url
        links = [{"href": url, "text": label} for _, label, url in notice.links]
        if links:
            event["links"] = links
        return event

    def post(self, notice: Notice, body: Mapping[str, Any]) -> tuple[ChannelAnswer, dict[str, Any]]:
        event = {**body, "routing_key": self._routing_key()}
        answer = self._send(event)
        return answer, {"dedup_key": event["dedup_key"]}

    def _send(self, event: Mapping[str, Any]) -> ChannelAnswer:
        answer = self._client.post_json(self.name, self._events_url(), event)
        status = answer.json.get("status") if isinstance(answer.json, Mapping) else None
        if status not in (None, "success"):
            raise ChannelError(f"pagerduty did not accept the event: {status}", channel=self.name,
                               status=answer.status, error_code=str(status), retryable=False)
        return answer

    def resolve(self, dedup_key: str) -> dict[str, Any]:
        """Send the resolve event for ``dedup_key``; the result dict (never raises)."""
        now_ms = int(self._clock() * 1000)
        try:
            answer = self._send({"routing_key": self._routing_key(), "event_action": "resolve",
                                 "dedup_key": str(dedup_key)[:_MAX_DEDUP]})
        except ChannelNotConfigured as exc:
            return self._failed(str(exc), now_ms, attempts=1, retryable=False)
        except ChannelError as exc:
            return self._failed(str(exc), now_ms, attempts=exc.attempts, retryable=exc.retryable,
                                status=exc.status, code=exc.error_code)
        return {"status": "resolved", "channel": self.name, "dedup_key": dedup_key, "at": now_ms,
                "http_status": answer.status}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(max(0, int(ms)) / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
