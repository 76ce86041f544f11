"""Local stand-ins for PagerDuty's Events API v2, a Teams workflow webhook, a Slack incoming webhook
and a generic signed-webhook receiver: one HTTP server on loopback that checks the wire format
of each request the way the service does and answers the way it does.

- ``POST /v2/enqueue`` (PagerDuty Events API v2): ``routing_key`` must be the integration key the
  stand-in was given (else 400 ``invalid event``); ``event_action`` trigger / acknowledge /
  resolve; ``dedup_key`` at most 255 characters; a trigger needs ``payload.summary`` (at most
  1024), ``payload.source`` and ``payload.severity`` (critical / error / warning / info); each
  link needs ``href``. 202 ``{"status": "success", "message": "Event processed", "dedup_key"}``.
  Alerts are kept by ``dedup_key`` (triggered / resolved) as PagerDuty keeps them.
- ``POST /teams/<id>``: the message envelope (``type`` message, ``attachments`` of
  ``application/vnd.microsoft.card.adaptive`` with ``content.type`` AdaptiveCard, a version and a
  body; ``Action.OpenUrl`` actions with absolute URLs) -> 202.
- ``POST /slack/<id>``: ``text`` and/or ``blocks`` (at most 50; known types; header plain text at
  most 150; section text at most 3000; at most 10 fields; buttons with plain-text labels and
  URLs) -> 200 ``ok``; 400 ``invalid_blocks`` / ``invalid_payload`` / ``no_text`` otherwise.
- ``POST /hook/<id>``: the ``X-Triage-Timestamp`` / ``X-Triage-Signature`` HMAC-SHA256 check with
  the secret it was given -> 200, else 401.

``inject(path_prefix, *statuses)`` makes the next requests to a path fail with those statuses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _random
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ChannelServices", "Seen"]

_SEVERITIES = {"critical", "error", "warning", "info"}
_ACTIONS = {"trigger", "acknowledge", "resolve"}
_SLACK_BLOCKS = {"header", "section", "context", "actions", "divider", "image", "rich_text", "markdown"}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    status: int


@dataclass
class Alert:
    dedup_key: str
    status: str = "triggered"
    events: list[dict[str, Any]] = field(default_factory=list)


class ChannelServices:
    def __init__(self) -> None:
        self.routing_key = _random.token_hex(16)              # 32 characters, like an integration key
        self.webhook_secret = _random.token_urlsafe(32)
        self.teams_path = f"/teams/{uuid.uuid4().hex}"
        self.slack_path = f"/slack/{uuid.uuid4().hex}"
        self.hook_path = f"/hook/{uuid.uuid4().hex}"
        self.seen: list[Seen] = []
        self.alerts: dict[str, Alert] = {}
        self._faults: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> "ChannelServices":
        services = self

        class Handler(_Handler):
            owner = services

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def events_url(self) -> str:
        return self.base + "/v2/enqueue"

    @property
    def teams_url(self) -> str:
        return self.base + self.teams_path

    @property
    def slack_url(self) -> str:
        return self.base + self.slack_path

    @property
    def hook_url(self) -> str:
        return self.base + self.hook_path

    def env(self) -> dict[str, str]:
        return {"PAGERDUTY_EVENTS_URL": self.events_url, "PAGERDUTY_ROUTING_KEY": self.routing_key,
                "TEAMS_WEBHOOK_URL": self.teams_url, "SLACK_WEBHOOK_URL": self.slack_url,
                "TRIAGE_WEBHOOK_URL": self.hook_url, "TRIAGE_WEBHOOK_SECRET": self.webhook_secret}

    # --- faults and views -----------------------------------------------------------------
    def inject(self, path_prefix: str, *statuses: int) -> None:
        with self._lock:
            self._faults.setdefault(path_prefix, []).extend(statuses)

    def _fault(self, path: str) -> int | None:
        with self._lock:
            for prefix, queue in self._faults.items():
                if path.startswith(prefix) and queue:
                    return queue.pop(0)
        return None

    def to(self, prefix: str, *, accepted_only: bool = False) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(prefix) and (not accepted_only or s.status < 300)]

    def pagerduty_events(self) -> list[dict[str, Any]]:
        return [s.body for s in self.to("/v2/enqueue", accepted_only=True)]

    # --- the services -----------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        fault = self._fault(path)
        if fault is not None:
            return fault, {"status": "error", "message": "injected"} if path == "/v2/enqueue" else "injected"
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return 400, "invalid_payload" if path.startswith("/slack") else {"error": "content type"}
        if path.startswith(self.hook_path):
            return self._hook(headers, raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["not JSON"]}
        if path == "/v2/enqueue":
            return self._pagerduty(body)
        if path == self.teams_path:
            return self._teams(body)
        if path == self.slack_path:
            return self._slack(body)
        return 404, "no_service"

    def _pagerduty(self, event: Any) -> tuple[int, Any]:
        errors = []
        if not isinstance(event, dict):
            errors.append("event must be an object")
            event = {}
        if event.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        action = event.get("event_action")
        if action not in _ACTIONS:
            errors.append("'event_action' is invalid")
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
            errors.append("'dedup_key' is invalid")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is required")
        if action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing")
            else:
                summary = payload.get("summary")
                if not isinstance(summary, str) or not summary or len(summary) > 1024:
                    errors.append("'payload.summary' is invalid")
                if not isinstance(payload.get("source"), str) or not payload["source"]:
                    errors.append("'payload.source' is missing")
                if payload.get("severity") not in _SEVERITIES:
                    errors.append("'payload.severity' is invalid")
                if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                    errors.append("'payload.custom_details' must be an object")
            for link in event.get("links") or []:
                if not isinstance(link, dict) or not str(link.get("href", "")).startswith(("http://", "https://")):
                    errors.append("'links' entries need an href")
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        dedup = dedup or uuid.uuid4().hex
        with self._lock:
            alert = self.alerts.get(dedup)
            if action == "trigger":
                if alert is None or alert.status == "resolved":
                    alert = self.alerts[dedup] = Alert(dedup)
                alert.events.append(event)
            elif alert is not None and alert.status != "resolved":
                alert.events.append(event)
                if action == "resolve":
                    alert.status = "resolved"
                else:
                    alert.status = "acknowledged"
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    @staticmethod
    def _teams(body: Any) -> tuple[int, Any]:
        def bad(why: str) -> tuple[int, Any]:
            return 400, {"error": {"code": "InvalidRequestContent", "message": why}}

        if not isinstance(body, dict) or body.get("type") != "message":
            return bad("the body must be a message")
        attachments = body.get("attachments")
        if not isinstance(attachments, list) or not attachments:
            return bad("attachments are missing")
        for a in attachments:
            if not isinstance(a, dict) or a.get("contentType") != "application/vnd.microsoft.card.adaptive":
                return bad("an attachment is not an Adaptive Card")
            card = a.get("content")
            if not isinstance(card, dict) or card.get("type") != "AdaptiveCard" or not card.get("version"):
                return bad("the card must have type AdaptiveCard and a version")
            if not isinstance(card.get("body"), list) or not card["body"]:
                return bad("the card has no body")
            for element in card["body"]:
                if not isinstance(element, dict) or element.get("type") not in ("TextBlock", "FactSet", "Container",
                                                                               "ColumnSet", "ActionSet"):
                    return bad("unknown card element")
                if element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
                    return bad("a TextBlock needs text")
            for action in card.get("actions") or []:
                if action.get("type") != "Action.OpenUrl" or not urlsplit(str(action.get("url"))).netloc \
                        or not action.get("title"):
                    return bad("an action must be Action.OpenUrl with a title and an absolute url")
        return 202, ""

    @staticmethod
    def _slack(body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, "invalid_payload"
        blocks = body.get("blocks")
        if not body.get("text") and not blocks:
            return 400, "no_text"
        if blocks is not None:
            if not isinstance(blocks, list) or len(blocks) > 50:
                return 400, "invalid_blocks"
            for b in blocks:
                kind = b.get("type") if isinstance(b, dict) else None
                if kind not in _SLACK_BLOCKS:
                    return 400, "invalid_blocks"
                if kind == "header":
                    t = b.get("text") or {}
                    if t.get("type") != "plain_text" or not t.get("text") or len(t["text"]) > 150:
                        return 400, "invalid_blocks"
                if kind == "section":
                    t = b.get("text")
                    fields = b.get("fields")
                    if t is None and not fields:
                        return 400, "invalid_blocks"
                    if t is not None and (t.get("type") not in ("mrkdwn", "plain_text") or not t.get("text")
                                          or len(t["text"]) > 3000):
                        return 400, "invalid_blocks"
                    if fields is not None and (len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields)):
                        return 400, "invalid_blocks"
                if kind == "actions":
                    elements = b.get("elements") or []
                    if not elements or len(elements) > 25:
                        return 400, "invalid_blocks"
                    for e in elements:
                        label = e.get("text") or {}
                        if e.get("type") != "button" or label.get("type") != "plain_text" \
                                or not 0 < len(label.get("text", "")) <= 75 \
                                or not urlsplit(str(e.get("url"))).netloc:
                            return 400, "invalid_blocks"
        return 200, "ok"

    def _hook(self, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        ts = headers.get("x-triage-timestamp", "")
        sig = headers.get("x-triage-signature", "")
        expected = "v1=" + hmac.new(self.webhook_secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
        if not ts.isdigit() or not hmac.compare_digest(expected, sig):
            return 401, {"error": "bad signature"}
        try:
            json.loads(raw)
        except ValueError:
            return 400, {"error": "not JSON"}
        return 200, {"ok": True}


class _Handler(BaseHTTPRequestHandler):
    owner: ChannelServices

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path
        status, answer = self.owner.handle(path, headers, raw)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.owner._lock:
            self.owner.seen.append(Seen(path, headers, raw, body, status))
        data = answer if isinstance(answer, bytes) else (
            json.dumps(answer).encode() if isinstance(answer, (dict, list)) else str(answer).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(answer, (dict, list)) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
