"""What every chat, paging and webhook channel shares: at most one message per decision and
channel, the incident the failure belongs to, redaction, and one result shape.

A channel subclasses ``Channel`` and says how a ``Notice`` becomes its wire payload
(``payload``) and how it is posted (``post``). ``notify(snapshot, decision, record)`` — the
``Notifier`` protocol — then:

1. skips actions that need nobody (RETRY, IGNORE, ...);
2. claims ``(channel, action, decision key)`` in the store (``TriageState`` kind ``channel``) with a
   conditional write: a second delivery of the same decision reports the first one's result
   instead of posting again; a failed or abandoned attempt is taken over under its etag;
3. joins the failure's incident (``shared.notify.incidents``; idempotent per decision), so the
   message can say how many other jobs fail the same way;
4. builds the notice (redacted, bounded), posts it through the one ``ChannelClient``, and returns
   ``{"status": "sent" | "failed" | ..., "channel": name, ...}`` for ``DecisionRecord.notification``.

Nothing here raises for a send problem: a failure is a result, and the composite
(``shared.notify.routing``) hands the decision to the next channel.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from shared.errors import ChannelError, SecretError, StoreError
from shared.models import Action, Decision
from shared.signing import key_from_secret

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.secrets import SecretProvider
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

from shared.notify import incidents
from shared.notify.client import ChannelAnswer, ChannelClient, check_url
from shared.notify.notice import Notice, build_notice
from shared.notify.notifier import EMAIL_ACTIONS
from shared.notify.render import _MAX_ERROR, _one_line, decision_links

__all__ = ["Channel", "STATE_KIND", "ChannelNotConfigured"]

_log = logging.getLogger(__name__)

STATE_KIND = "channel"
_STATE_TTL_S = 30 * 86400
_STALE_SENDING_MS = 10 * 60 * 1000    # a "sending" claim older than this was abandoned (a crash)


class ChannelNotConfigured(Exception):
    """The channel's secret is missing or malformed; the message names the secret."""


class Channel:
    """Base of the webhook-style channels. ``name`` and ``secret`` (the setting holding the URL
    or key) are set by each subclass."""

    name = ""
    secret = ""

    def __init__(self, settings: "Settings", *, secrets: "SecretProvider", store: "Store | None" = None,
                 client: ChannelClient | None = None, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._secrets = secrets
        self._store = store
        self._client = client or ChannelClient()
        self._owns_client = client is None
        self._clock = clock

    # --- configuration -------------------------------------------------------------------
    def configured(self) -> bool:
        """True when the channel's secret is set (a Key Vault hiccup counts as configured: the
        send then fails and is retried, rather than the channel being skipped silently)."""
        try:
            return self._secrets.get_optional(self.secret) is not None
        except SecretError:
            return True

    def _secret_value(self) -> str:
        try:
            value = self._secrets.get_optional(self.secret)
        except SecretError as exc:
            raise ChannelError(f"{self.name}: {exc}", channel=self.name, retryable=True) from exc
        if not value:
            raise ChannelNotConfigured(f"{self.name} is not configured: set the secret {self.secret}")
        return value

    def _url(self) -> str:
        try:
            return check_url(self._secret_value(), setting=self.secret)
        except ValueError as exc:
            raise ChannelNotConfigured(f"{self.name}: {exc}") from None

    # --- what a subclass provides ----------------------------------------------------------
    def payload(self, notice: Notice) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def post(self, notice: Notice, body: Mapping[str, Any]) -> tuple[ChannelAnswer, dict[str, Any]]:
        """Send ``body``; returns the answer and extra fields for the result."""
        return self._client.post_json(self.name, self._url(), body), {}

    # --- building --------------------------------------------------------------------------
    def links(self, record: "DecisionRecord", decision_key: str) -> dict[str, str]:
        """The decision's signed links (when TRIAGE_PUBLIC_BASE_URL and the signing key are set)."""
        if not self._settings.public_base_url:
            return {}
        try:
            raw = self._secrets.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
            key = key_from_secret(raw) if raw else None
        except (SecretError, ValueError) as exc:
            _log.warning("feedback links left out of the %s message: %s", self.name, exc)
            return {}
        if not record.decision_key:
            from dataclasses import replace

            record = replace(record, decision_key=decision_key)
        return decision_links(self._settings, key, record, now=self._clock())

    def outage(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord") -> incidents.Incident | None:
        """The incident this failure belongs to (joined once per decision; None without a store)."""
        if self._store is None:
            return None
        from shared.redact import redact

        cause = incidents.cause_of(snapshot, decision)
        name = _one_line(redact(self._secrets.scrub(record.job_name or snapshot.job_name)), 120)
        try:
            return incidents.join(self._store, self._settings, cause, job_id=str(record.job_id or snapshot.job_id),
                                  job_name=name, run_id=snapshot.run_id,
                                  decision_key=record.decision_key or snapshot.decision_key,
                                  action=Action(str(decision.action)).value, now_ms=int(self._clock() * 1000))
        except StoreError as exc:
            _log.warning("incident grouping skipped for %s: %s", record.decision_key, exc)
            return None

    def notice(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord",
               outage: incidents.Incident | None = None, links: Mapping[str, str] | None = None) -> Notice:
        key = record.decision_key or snapshot.decision_key
        return build_notice(snapshot, decision, record, settings=self._settings,
                            links=self.links(record, key) if links is None else links,
                            scrub=self._secrets.scrub, now=self._clock(), outage=outage)

    def preview(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord", *,
                links: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The exact payload ``notify`` would post (nothing is sent, nothing stored): the failure
        shown as the first of its incident."""
        from shared.redact import redact

        outage = incidents.solo(incidents.cause_of(snapshot, decision), job_id=str(record.job_id),
                                job_name=_one_line(redact(self._secrets.scrub(record.job_name)), 120),
                                run_id=snapshot.run_id, decision_key=record.decision_key,
                                action=Action(str(decision.action)).value, now_ms=int(self._clock() * 1000))
        return self.payload(self.notice(snapshot, decision, record, outage, links=links))

    # --- the notifier protocol ---------------------------------------------------------------
    def notify(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord") -> dict[str, Any]:
        action = Action(str(decision.action))
        now_ms = int(self._clock() * 1000)
        key = record.decision_key or snapshot.decision_key
        if action not in EMAIL_ACTIONS:
            return {"status": "skipped", "channel": self.name, "reason": f"action {action.value} needs nobody",
                    "at": now_ms}
        try:
            claim = self._claim(f"{action.value}:{key}", now_ms)
        except StoreError as exc:
            return self._failed(f"store: {exc}", now_ms, attempts=1, retryable=True)
        if claim is not None and "duplicate" in claim:
            return claim["duplicate"]
        attempts = claim["attempts"] if claim else 1
        try:
            outage = self.outage(snapshot, decision, record)
            notice = self.notice(snapshot, decision, record, outage)
            answer, extra = self.post(notice, self.payload(notice))
        except ChannelNotConfigured as exc:
            result = self._failed(str(exc), now_ms, attempts=attempts, retryable=False)
        except ChannelError as exc:
            result = self._failed(str(exc), now_ms, attempts=attempts, retryable=exc.retryable,
                                  status=exc.status, code=exc.error_code)
        except SecretError as exc:
            result = self._failed(f"{self.name}: {exc}", now_ms, attempts=attempts, retryable=True)
        else:
            result = {"status": "sent", "channel": self.name, "at": now_ms, "attempts": attempts,
                      "http_status": answer.status, **extra}
            if outage is not None:
                result["incident"] = outage.dedup_key
                result["incident_key"] = outage.key
                result["incident_jobs"] = len(outage.jobs)
        self._finish(f"{action.value}:{key}", claim, result)
        if result["status"] == "failed":
            _log.warning("%s message for decision %s not sent: %s", self.name, key, result["error"])
        return result

    def _failed(self, error: str, now_ms: int, *, attempts: int, retryable: bool, status: int | None = None,
                code: str | None = None) -> dict[str, Any]:
        from shared.redact import redact

        out: dict[str, Any] = {"status": "failed", "channel": self.name,
                               "error": _one_line(redact(self._secrets.scrub(str(error))), _MAX_ERROR),
                               "retryable": bool(retryable), "attempts": attempts, "at": now_ms}
        if status is not None:
            out["http_status"] = status
        if code:
            out["error_code"] = code
        return out

    # --- at most once per decision and channel ------------------------------------------------
    def _claim(self, key: str, now_ms: int) -> dict[str, Any] | None:
        """None without a store; {"duplicate": result} when another attempt owns or finished it;
        else {"entry": state entry, "attempts": n}."""
        if self._store is None:
            return None
        state_key = f"{self.name}:{key}"
        for _ in range(10):
            entry = self._store.state_get(STATE_KIND, state_key)
            if entry is None:
                new = self._store.state_put(STATE_KIND, state_key, {"status": "sending", "at": now_ms, "attempts": 1},
                                            if_absent=True, ttl_s=_STATE_TTL_S)
                if new is not None:
                    return {"entry": new, "attempts": 1}
                continue
            value = entry.value
            status = value.get("status")
            stale = status == "sending" and now_ms - int(value.get("at") or 0) > _STALE_SENDING_MS
            if status == "failed" or stale:
                attempts = int(value.get("attempts") or 1) + 1
                new = self._store.state_put(STATE_KIND, state_key, {"status": "sending", "at": now_ms,
                                                                    "attempts": attempts},
                                            etag=entry.etag, ttl_s=_STATE_TTL_S)
                if new is not None:
                    return {"entry": new, "attempts": attempts}
                continue
            if status == "sending":
                # another attempt holds the claim (slow, or dead mid-send): not known to be
                # delivered, so the caller keeps the notification undelivered and looks again later
                return {"duplicate": {"status": "failed", "in_flight": True, "retryable": True,
                                      "channel": self.name, "attempts": int(value.get("attempts") or 1),
                                      "error": f"another attempt has been sending this notice for "
                                               f"{max(0, now_ms - int(value.get('at') or 0)) // 1000} s; "
                                               "not known to be delivered yet", "at": now_ms}}
            prev = dict(value.get("result") or {"status": status, "channel": self.name})
            prev["duplicate"] = True
            return {"duplicate": prev}
        raise StoreError(f"{self.name} claim of {key}: too much contention")

    def _finish(self, key: str, claim: dict[str, Any] | None, result: dict[str, Any]) -> None:
        if self._store is None or claim is None:
            return
        entry = claim["entry"]
        value = {"status": result["status"], "at": result["at"], "attempts": claim["attempts"], "result": result}
        try:
            self._store.state_put(STATE_KIND, f"{self.name}:{key}", value, etag=entry.etag, ttl_s=_STATE_TTL_S)
        except StoreError as exc:
            _log.warning("%s: could not record the result for %s: %s", self.name, key, exc)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
