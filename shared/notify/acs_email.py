"""Email through Azure Communication Services, and no storms.

``EmailNotifier.notify(snapshot, decision, record) -> dict``: at most one email per decision
key; repeated failures of one job with one fingerprint inside ``TRIAGE_EMAIL_WINDOW`` are
counted, not sent, and the next email after the window says how many there were. Sends go
through ``azure-communication-email``'s ``EmailClient`` (keyless with ``ACS_ENDPOINT`` and
the app's identity, or ``ACS_CONNECTION_STRING`` from the secrets), with azure-core retrying
throttling and 5xx, and the send poller bounded in time. The returned dict belongs in
``DecisionRecord.notification``; a failed send says ``{"status": "failed", ...}`` there and
``pending_notifications(store)`` finds it again for the next sweep.
"""

from __future__ import annotations

import dataclasses

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from shared.errors import ConfigError, SecretError, StoreError
from shared.models import Action, Decision
from shared.redact import redact
from shared.signing import key_from_secret

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential
    from shared.config import Settings
    from shared.secrets import SecretProvider
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

from shared.notify import incidents
from shared.notify.notice import outage_text
from shared.notify.notifier import EMAIL_ACTIONS, Email, Similar
from shared.notify.recipients import _ADDRESS, recipients_for
from shared.notify.render import _MAX_ERROR, _one_line, decision_links, render_email

__all__ = ["EmailNotifier", "pending_notifications", "repeatability_id"]

_log = logging.getLogger(__name__)

_STATE_EMAIL = "email"              # TriageState kind: one entry per decision key
_STATE_WINDOW = "email-window"      # TriageState kind: one entry per job id + fingerprint
_EMAIL_STATE_TTL_S = 30 * 86400
_WINDOW_KEEP_S = 7 * 86400          # a window entry outlives its window so its count is carried
# --- sending ------------------------------------------------------------------------------

class _SendFailed(Exception):
    """``reuse``: ACS may have accepted the message (the answer was lost, a 5xx, the poll timed
    out): the next attempt repeats this request (same repeatability id and first-sent time), so
    within ACS's 5-minute window it cannot be sent twice."""

    def __init__(self, error: str, *, status: int | None = None, code: str | None = None,
                 retryable: bool = True, reuse: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.code = code
        self.retryable = retryable
        self.reuse = reuse


_REPEAT_NS = uuid.UUID("6f1c2a4e-5b7d-4c0e-9a3f-1d2e3f4a5b6c")


def repeatability_id(decision_key: str, attempt: int) -> str:
    """The ACS repeatability id (and operation id) of one send attempt, derived from the
    decision key: a resend after a crash is the same request, not a new email."""
    return str(uuid.uuid5(_REPEAT_NS, f"{decision_key}#{int(attempt)}"))


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
        credential: TokenCredential | None = None,
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
        credential: TokenCredential | None = None,
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
        # One email per decision key and notice: an escalation of a decision that was not itself
        # an escalation (its action failed or came too late, its email went unanswered) is a second
        # notice with its own claim and repeatability ids, never a duplicate of the first email.
        escalation = Action(str(decision.action)) is Action.ESCALATE and record.action != Action.ESCALATE.value
        notice = f"{key}:escalate" if escalation else key
        claim = self._claim(notice, now_ms)
        if claim.duplicate is not None:
            prev = claim.duplicate
            if prev.get("status") == "sending":
                # Another attempt holds the claim: a slow worker, or one that died mid-send. The
                # email is not known to be delivered: say so, so the record stays undelivered and
                # the next sweep looks again (a stale claim is then repeated as the same request).
                since = int(prev.get("at") or 0)
                return {"status": "failed", "in_flight": True, "retryable": True,
                        "attempts": int(prev.get("attempts") or 1), "operation_id": prev.get("operation_id")
                        or repeatability_id(notice, int(prev.get("attempts") or 1)),
                        "error": f"another attempt has been sending this email for {max(0, now_ms - since) // 1000} s; "
                                 "not known to be delivered yet", "at": now_ms}
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
            self._finish(notice, entry, result)
            _log.warning("email for decision %s not sent: no recipient (set %s)", key, what)
            return result
        similar: Similar | None
        if claim.first:
            window = self._window(record, decision, key, now_ms)
            if not window.send:
                value = {"status": "suppressed", "at": now_ms, "attempts": attempts, "count": window.count,
                         "emailed_decision_key": window.emailed_key}
                self._store.state_put(_STATE_EMAIL, notice, value, etag=entry.etag, ttl_s=_EMAIL_STATE_TTL_S)
                _log.info("email for decision %s suppressed: failure %d of this job and fingerprint in the window",
                          key, window.count)
                return {"status": "suppressed", "reason": "a similar failure of this job was emailed in the window",
                        "count": window.count, "emailed_decision_key": window.emailed_key, "at": now_ms}
            similar = window.similar
            if similar is not None:
                entry = self._store.state_put(_STATE_EMAIL, notice, {**entry.value, "similar": similar.to_dict()},
                                              etag=entry.etag, ttl_s=_EMAIL_STATE_TTL_S) or entry
        else:
            similar = Similar.from_dict(entry.value.get("similar"))

        outage = self._outage(snapshot, decision, record, key, now_ms)
        attempt_id = repeatability_id(notice, attempts)
        first_sent = int(entry.value.get("first_sent") or now_ms)   # a repeated attempt renders as it first did
        base = {"to": list(rcpt.to), "recipient_source": rcpt.source, "attempts": attempts,
                "sends": int(entry.value.get("sends") or attempts), "operation_id": attempt_id}
        try:
            links = self._links(record, key, now=first_sent / 1000)
            email = render_email(snapshot, decision, record, settings=self._settings, links=links,
                                 recipients=rcpt, similar=similar,
                                 scrub=self._secrets.scrub if self._secrets is not None else None,
                                 now=first_sent / 1000,
                                 others=outage_text(outage, str(record.job_id or snapshot.job_id or "nojob")))
            base["subject"] = email.subject
            self._send(email, attempt_id, first_sent_ms=first_sent)
        except _SendFailed as exc:
            result = {"status": "failed", **base, "error": exc.error, "retryable": exc.retryable, "at": now_ms}
            if exc.reuse:
                result["repeat"] = {"first_sent": first_sent}
            if exc.status is not None:
                result["http_status"] = exc.status
            if exc.code:
                result["error_code"] = exc.code
            self._finish(notice, entry, result)
            _log.warning("email for decision %s failed (attempt %d): %s", key, attempts, exc.error)
            return result
        result = {"status": "sent", **base, "at": int(self._clock() * 1000)}
        if similar is not None:
            result["similar"] = similar.to_dict()
        self._finish(notice, entry, result)
        _log.info("email for decision %s sent to %d recipient(s) (%s)", key, len(rcpt.to), rcpt.source)
        return result

    # --- store: one email per decision key ----------------------------------------------
    def _claim(self, key: str, now_ms: int) -> "_Claim":
        stale_ms = int((2 * self._send_timeout + 60) * 1000)
        for _ in range(10):
            entry = self._store.state_put(_STATE_EMAIL, key, {"status": "sending", "at": now_ms, "attempts": 1,
                                                              "first_sent": now_ms, "sends": 1},
                                          if_absent=True, ttl_s=_EMAIL_STATE_TTL_S)
            if entry is not None:
                return _Claim(entry=entry, attempts=1, first=True)
            cur = self._store.state_get(_STATE_EMAIL, key)
            if cur is None:
                continue
            status = cur.value.get("status")
            stale = status == "sending" and now_ms - int(cur.value.get("at") or 0) > stale_ms
            if status == "failed" or stale:
                # An attempt ACS may have accepted (a crash mid-send, a lost answer) is repeated as
                # the same request; one that surely failed is followed by a new one.
                repeat = stale or bool(cur.value.get("repeat"))
                attempts = int(cur.value.get("attempts") or 1) + (0 if repeat else 1)
                first_sent = int(cur.value.get("first_sent") or now_ms) if repeat else now_ms
                # every send counts towards the escalation, a repeat of the same request too
                sends = int(cur.value.get("sends") or cur.value.get("attempts") or 1) + 1
                value = {k: v for k, v in cur.value.items() if k != "repeat"}
                taken = self._store.state_put(_STATE_EMAIL, key,
                                              {**value, "status": "sending", "at": now_ms, "attempts": attempts,
                                               "first_sent": first_sent, "sends": sends},
                                              etag=cur.etag, ttl_s=_EMAIL_STATE_TTL_S)
                if taken is not None:
                    return _Claim(entry=taken, attempts=attempts, first=False)
                continue
            return _Claim(duplicate=dict(cur.value))
        raise StoreError(f"email state {key}: too much contention")

    def _finish(self, key: str, entry: Any, result: Mapping[str, Any]) -> None:
        value = {k: result[k] for k in ("status", "at", "attempts", "sends", "operation_id", "error", "retryable")
                 if k in result}
        if result.get("repeat"):
            value["repeat"] = True
        value["first_sent"] = entry.value.get("first_sent")
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
        if window_ms <= 0 or decision.approval == "pending":   # an approval request is never folded away
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

    # --- one incident per outage ----------------------------------------------------------
    def _outage(self, snapshot: "Snapshot", decision: Decision, record: "DecisionRecord", key: str,
                now_ms: int) -> "incidents.Incident | None":
        """The incident of this failure's cause, joined once per decision key; None when the
        grouping state cannot be written (the email goes out without the count)."""
        cause = incidents.cause_of(snapshot, decision)
        name = _one_line(redact(self._secrets.scrub(record.job_name or snapshot.job_name)
                                if self._secrets is not None else record.job_name or snapshot.job_name), 120)
        try:
            return incidents.join(self._store, self._settings, cause,
                                  job_id=str(record.job_id or snapshot.job_id or "nojob"), job_name=name,
                                  run_id=snapshot.run_id, decision_key=key, action=Action(str(decision.action)).value,
                                  now_ms=now_ms)
        except StoreError as exc:
            _log.warning("incident grouping skipped for %s: %s", key, exc)
            return None

    # --- feedback links -----------------------------------------------------------------
    def _links(self, record: "DecisionRecord", decision_key: str, *, now: float | None = None) -> dict[str, str]:
        if not self._settings.public_base_url or self._secrets is None:
            return {}
        try:
            raw = self._secrets.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
            key = key_from_secret(raw) if raw else None
        except (SecretError, ValueError) as exc:
            _log.warning("feedback links left out of the email: %s", exc)
            return {}
        if not record.decision_key:
            record = dataclasses.replace(record, decision_key=decision_key)
        return decision_links(self._settings, key, record, now=self._clock() if now is None else now)

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

    def _send(self, email: Email, attempt_id: str, *, first_sent_ms: int | None = None) -> dict[str, Any]:
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
        # after a 429/5xx, and a repeat of this attempt after a crash, cannot send the email twice.
        sent = (first_sent_ms / 1000) if first_sent_ms else None
        headers = {"Repeatability-Request-Id": attempt_id,
                   "Repeatability-First-Sent": formatdate(sent, usegmt=True)}
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
            if status == 412 and self._accepted_earlier(client, attempt_id):
                return {"id": attempt_id, "status": "Succeeded"}
            if status is not None and status < 300:  # the poller read a terminal "Failed"/"Canceled"
                raise _SendFailed(_bounded(f"ACS send operation failed: {_describe(exc, with_status=False)}"),
                                  code=_code(exc), retryable=True) from exc
            # 412: ACS no longer tracks the first send (over 5 minutes): the next attempt is a new request.
            retryable = status is None or status >= 500 or status in (408, 409, 412, 429)
            raise _SendFailed(_bounded(_describe(exc)), status=status, code=_code(exc), retryable=retryable,
                              reuse=status is None or status >= 500 or status == 409) from exc
        except AzureError as exc:
            raise _SendFailed(_bounded(f"{type(exc).__name__}: {exc}"), retryable=True, reuse=True) from exc
        if not poller.done():
            raise _SendFailed(f"ACS did not confirm the send within {self._send_timeout:g}s "
                              f"(operation {attempt_id})", retryable=True, reuse=True)
        status = str((result or {}).get("status") or "")
        if status.lower() != "succeeded":
            err = (result or {}).get("error") or {}
            raise _SendFailed(_bounded(f"ACS send ended with status {status or 'unknown'}: "
                                       f"{err.get('code') or ''} {err.get('message') or ''}".strip()),
                              code=err.get("code"), retryable=True)
        return dict(result)

    def _accepted_earlier(self, client: Any, attempt_id: str) -> bool:
        """After a 412 (ACS no longer dedupes this repeat: its first send is past the 5-minute
        window), ask ACS for the operation of that first send: its id is the repeatability id.
        True when ACS delivered it (nothing to send again); False when ACS does not know it (404)
        or it failed, so a new request is right. Raises ``_SendFailed`` (the same request again
        later) when it is still running or ACS cannot say now."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        version = getattr(getattr(client, "_config", None), "api_version", None) or "2023-03-31"
        try:
            resp = client.send_request(HttpRequest("GET", f"/emails/operations/{attempt_id}",
                                                   params={"api-version": version}))
            body = resp.json() if resp.status_code == 200 else {}
        except (AzureError, ValueError) as exc:
            raise _SendFailed(_bounded(f"ACS answered 412 and the earlier send could not be looked up: "
                                       f"{type(exc).__name__}: {exc}"), retryable=True, reuse=True) from exc
        if resp.status_code == 404:
            return False
        status = str((body or {}).get("status") or "").lower() if isinstance(body, dict) else ""
        if resp.status_code != 200 or status in ("running", "notstarted"):
            raise _SendFailed(f"ACS answered 412 and the earlier send {attempt_id} is "
                              f"{status or f'unknown (HTTP {resp.status_code})'}: looking again later",
                              status=resp.status_code, retryable=True, reuse=True)
        if status == "succeeded":
            _log.info("ACS had accepted and delivered email operation %s earlier: not sent again", attempt_id)
            return True
        return False

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
    - an email action (SEND_EMAIL / ESCALATE) in ``act`` mode (or a "triage failed" escalation,
      sent in shadow mode too) with no notification recorded, older than ``stale_after_s`` (the
      worker died between deciding and recording).

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
        elif not n and rec.action in {a.value for a in EMAIL_ACTIONS} \
                and (rec.mode == "act" or rec.decision_key.endswith("-triage-failed")) \
                and now - int(rec.created_at or 0) > stale_after_s * 1000:
            out.append(rec)
        if limit is not None and len(out) >= limit:
            break
    return out
