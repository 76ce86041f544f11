"""Which channels tell whom: the composite notifier, and resolving incidents when jobs recover.

``RoutedNotifier`` is the ``Notifier`` the app uses when any channel besides email is configured.
For each decision it picks a route and tries the channels on it in order:

- SEND_EMAIL: ``TRIAGE_NOTIFY_VIA`` (default ``email``), or the job tag ``triage.notify_via``;
- ESCALATE: ``TRIAGE_ESCALATE_VIA`` (default ``email``), or the job tag ``triage.escalate_via``.

A tag is a comma list of channel *names* and only chooses among the channels configured here
(their URLs and keys come from Key Vault): a name that is unknown, not configured, or not a plain
name (a URL, a key) is ignored and noted, so a job's tags can never point the app at a URL.

The first channel that delivers ends the route; a channel that fails (after its own retries)
hands the decision to the next one; when every channel on the route failed, email is tried last
if it is configured and was not on the route, so a person is still told. A channel another
attempt is still sending on (``in_flight``: a slow or crashed worker holds its claim) ends the
route as not yet delivered, without trying the next channels: the next sweep looks again.
The returned dict, for ``DecisionRecord.notification``, is the delivering channel's result with
``"channels"``: one
entry per channel tried (``{"channel", "status", "error"?, ...}``). When all failed, ``status`` is
``failed`` and ``retryable`` says whether the next sweep should try again
(``retry_notifications`` then starts the route over; a channel that already delivered reports
its earlier result instead of sending twice).

``resolve_recovered(...)`` (called by every sweep): the jobs of open incidents whose run has
since succeeded (a repair by a person, or one the app made) are marked recovered; when all of an
incident's paged jobs have, its PagerDuty alert is resolved, exactly once. ``recovered(...)`` is
the same step for one decision a person marked handled (``decisions handled KEY``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any, Mapping

from shared.config import CHANNELS
from shared.errors import DatabricksError, StoreError
from shared.models import Action, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.databricks.client import DatabricksClient
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

from shared.notify import incidents
from shared.notify.notifier import EMAIL_ACTIONS, Notifier

__all__ = ["RoutedNotifier", "route_for", "resolve_recovered", "recovered", "build_channels", "CHANNEL_SECRETS"]

# The secret that configures each channel (email is configured by EMAIL_SENDER and ACS).
CHANNEL_SECRETS = {"pagerduty": "PAGERDUTY_ROUTING_KEY", "teams": "TEAMS_WEBHOOK_URL",
                   "slack": "SLACK_WEBHOOK_URL", "webhook": "TRIAGE_WEBHOOK_URL"}

_log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z]{2,20}$")
_DELIVERED = ("sent", "suppressed", "sending")
_KEEP = ("status", "channel", "error", "retryable", "attempts", "http_status", "error_code", "dedup_key",
         "incident", "duplicate", "count", "reason", "in_flight", "sends")


def route_for(snapshot: "Snapshot", decision: Decision, settings: "Settings",
              configured: Mapping[str, Any]) -> tuple[list[str], str, list[str]]:
    """(channel names in order, where the route came from, notes about ignored tag entries)."""
    action = Action(str(decision.action))
    if action is Action.ESCALATE:
        tag, default, setting = "triage.escalate_via", settings.escalate_via, "TRIAGE_ESCALATE_VIA"
    else:
        tag, default, setting = "triage.notify_via", settings.notify_via, "TRIAGE_NOTIFY_VIA"
    raw = snapshot.tags.get(tag, "")
    notes: list[str] = []
    chosen: list[str] = []
    for part in raw.replace(";", ",").split(","):
        name = part.strip().lower()
        if not name:
            continue
        if not _NAME.fullmatch(name) or name not in CHANNELS:
            notes.append(f"job tag {tag}: ignored an entry that is not a channel name (use {', '.join(CHANNELS)})")
        elif name not in configured:
            notes.append(f"job tag {tag}: channel {name} is not configured here")
        elif name not in chosen:
            chosen.append(name)
    if chosen:
        return chosen, f"job tag {tag}", notes
    return list(default), setting, notes


def build_channels(settings: "Settings", secrets: Any, *, store: "Store | None",
                   client: Any = None, names: Any = None, **kwargs: Any) -> dict[str, Any]:
    """The configured webhook-style channels (their secret is set), by name, sharing one
    ``ChannelClient``. ``names`` limits which are built (default: all)."""
    from shared.notify.client import ChannelClient
    from shared.notify.pagerduty import PagerDutyChannel
    from shared.notify.slack import SlackChannel
    from shared.notify.teams import TeamsChannel
    from shared.notify.webhook import WebhookChannel

    shared_client = client or ChannelClient()
    out: dict[str, Any] = {}
    for cls in (PagerDutyChannel, TeamsChannel, SlackChannel, WebhookChannel):
        if names is not None and cls.name not in names:
            continue
        channel = cls(settings, secrets=secrets, store=store, client=shared_client, **kwargs)
        if channel.configured():
            out[cls.name] = channel
    return out


class RoutedNotifier:
    """Tries the route's channels in order (see the module doc). ``channels`` maps a channel name
    to its notifier; only configured channels belong in it."""

    def __init__(self, settings: "Settings", channels: Mapping[str, Notifier]) -> None:
        self._settings = settings
        self._channels = dict(channels)

    @property
    def names(self) -> list[str]:
        return list(self._channels)

    def channel(self, name: str) -> Notifier | None:
        return self._channels.get(name)

    def notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord") -> dict[str, Any]:
        action = Action(str(decision.action))
        now_ms = int(time.time() * 1000)
        if action not in EMAIL_ACTIONS:
            return {"status": "skipped", "reason": f"action {action.value} needs nobody", "at": now_ms}
        route, source, notes = route_for(snapshot, decision, self._settings, self._channels)
        tried: list[dict[str, Any]] = []
        order = list(route)
        if "email" in self._channels and "email" not in order:
            order.append("email")                 # the last resort, only when everything else failed
        for index, name in enumerate(order):
            notifier = self._channels.get(name)
            if notifier is None:
                tried.append({"channel": name, "status": "not configured"})
                continue
            try:
                result = dict(notifier.notify(snapshot, decision, record))
            except Exception as exc:  # noqa: BLE001 - one channel's bug must not silence the others
                _log.exception("channel %s raised for decision %s", name, record.decision_key)
                result = {"status": "failed", "error": f"{type(exc).__name__} in channel {name}", "retryable": True}
            result.setdefault("channel", name)
            tried.append({k: result[k] for k in _KEEP if k in result})
            if result.get("in_flight"):
                break         # another attempt is sending on this channel: wait for it, tell nobody twice
            if result.get("status") in _DELIVERED:
                out = dict(result)
                out.update(route=route, route_source=source, channels=tried)
                if notes:
                    out["notes"] = notes
                if index >= len(route):
                    out["fallback"] = True
                return out
        failures = [t for t in tried if t["status"] not in _DELIVERED]
        out = {"status": "failed", "route": route, "route_source": source, "channels": tried, "at": now_ms,
               "attempts": max([int(t.get("attempts") or 1) for t in failures] or [1]),
               "sends": max([int(t.get("sends") or t.get("attempts") or 1) for t in failures] or [1]),
               "retryable": any(t.get("retryable", False) for t in failures),
               "error": "; ".join(f"{t['channel']}: {t.get('error') or t['status']}" for t in failures)[:500]
               or f"no channel on the route {route}"}
        if notes:
            out["notes"] = notes
        return out

    def close(self) -> None:
        # Each notifier, then the HTTP client the channels share (its connections).
        from shared.notify.client import ChannelClient

        clients = {id(c): c for n in self._channels.values()
                   if isinstance(c := getattr(n, "_client", None), ChannelClient)}
        for thing in [*self._channels.values(), *clients.values()]:
            close = getattr(thing, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - closing is best effort
                    _log.debug("closing %s failed: %s", type(thing).__name__, exc)


# --- incidents: resolve when the jobs recover -----------------------------------------------------

def _run_succeeded(run: Mapping[str, Any]) -> bool:
    from shared.snapshot import RunState

    history = [r for r in (run.get("repair_history") or []) if isinstance(r, Mapping)]
    latest = history[-1] if history else run
    state = RunState.from_api(latest)
    if not state.result_state and not state.life_cycle_state:
        state = RunState.from_api(run)
    return state.terminal and state.result_state == "SUCCESS"


def _paged(rec: "DecisionRecord") -> bool:
    """The decision's notice went to PagerDuty (an incident's or its own alert)."""
    n = rec.notification or {}
    if n.get("channel") == "pagerduty" and n.get("dedup_key"):
        return True
    return bool(n.get("incident_key")) and rec.action == Action.ESCALATE.value


def recovered(settings: "Settings", rec: "DecisionRecord", *, store: "Store", notifier: Any,
              now_ms: int, how: str) -> dict[str, Any] | None:
    """This decision's job recovered (``how``: "run succeeded" or "marked handled"): record it on
    the decision, mark its job in the incident, and resolve the page when nothing is left open —
    the incident's (once every paged job recovered; exactly once) or the decision's own alert.
    Returns what was resolved, or None."""
    pagerduty = notifier.channel("pagerduty") if hasattr(notifier, "channel") else None
    n = dict(rec.notification or {})
    n.update(recovered_at=now_ms, recovered_how=how)
    rec.notification = n
    store.update(rec)
    key = n.get("incident_key")
    if key and rec.action == Action.ESCALATE.value:
        after = incidents.mark_recovered(store, settings, key, job_id=rec.job_id, decision_key=rec.decision_key,
                                         now_ms=now_ms)
        if after is None or not after.resolved_now:
            return None
        result = pagerduty.resolve(after.dedup_key) if pagerduty is not None else {"status": "not configured"}
        if result.get("status") != "resolved":
            _log.warning("incident %s recovered but its page was not resolved: %s", after.dedup_key,
                         result.get("error") or result.get("status"))
        return {"incident": after.dedup_key, "cause": after.label, "jobs": len(after.jobs), **result}
    if n.get("channel") == "pagerduty" and n.get("dedup_key") and pagerduty is not None:
        return {"incident": n["dedup_key"], "jobs": 1, **pagerduty.resolve(n["dedup_key"])}
    return None


def resolve_recovered(settings: "Settings", *, client: "DatabricksClient", store: "Store", notifier: Any,
                      now_ms: int | None = None, lookback_s: int = 2 * 86400,
                      max_run_reads: int = 100) -> list[dict[str, Any]]:
    """For every paged decision not yet recovered: when its run has since succeeded (a repair by
    a person, or one the app made), it recovered (``recovered``). At most ``max_run_reads``
    ``runs/get`` calls per sweep (the rest wait for the next one). Returns one entry per page
    resolved."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    done: list[dict[str, Any]] = []
    reads = 0
    for rec in store.list(since_ms=now - lookback_s * 1000):
        n = rec.notification or {}
        if n.get("recovered_at") or not _paged(rec):
            continue
        inc = None
        if n.get("incident_key") and rec.action == Action.ESCALATE.value:
            try:
                inc = incidents.get(store, n["incident_key"])
            except StoreError as exc:
                _log.warning("incident %s: %s", n["incident_key"], exc)
                continue
            if inc is None or inc.dedup_key != n.get("incident"):
                continue
        if inc is not None and inc.status == "resolved":
            ok = True                              # resolved by the others' recovery or a person
        else:
            if reads >= max_run_reads:
                continue
            reads += 1
            try:
                ok = _run_succeeded(client.get_run(rec.run_id, include_history=True))
            except DatabricksError as exc:
                _log.info("cannot read run %s to see whether it recovered (%s)", rec.run_id, exc)
                continue
        if not ok:
            continue
        out = recovered(settings, rec, store=store, notifier=notifier, now_ms=now, how="run succeeded")
        if out is not None:
            done.append(out)
    return done
