"""The generic webhook channel: a signed JSON POST, for anything the other channels do not cover.

``POST {TRIAGE_WEBHOOK_URL}`` with the notice as JSON (``{"type": "triage.notification",
"version": 1, "id", "sent_at", "notice": {...}}``) and two headers:

    X-Triage-Timestamp: 1767225600
    X-Triage-Signature: v1=<hex HMAC-SHA256 of "<timestamp>." + the raw body, keyed by TRIAGE_WEBHOOK_SECRET>

How a receiver verifies it (docs/channels.md has the full recipe): read the raw body before
parsing it, reject a timestamp more than five minutes from its own clock (a replay), compute
``hmac_sha256(secret, f"{timestamp}.".encode() + body)`` and compare it with the header's hex
value in constant time. ``verify_signature`` below is that check. ``id`` is stable per decision
(``<decision key>``), so a receiver can drop a redelivery.

Any 2xx is success; 429 and 5xx are retried, other answers are not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import Any, Mapping

from shared.notify.channel import Channel
from shared.notify.client import ChannelAnswer
from shared.notify.notice import Notice

__all__ = ["WebhookChannel", "sign", "verify_signature", "SIGNATURE_HEADER", "TIMESTAMP_HEADER"]

SIGNATURE_HEADER = "X-Triage-Signature"
TIMESTAMP_HEADER = "X-Triage-Timestamp"
TOLERANCE_S = 300


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{int(timestamp)}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify_signature(secret: str | bytes, headers: Mapping[str, str], body: bytes, *, now: float,
                     tolerance_s: int = TOLERANCE_S) -> bool:
    """The receiver's check: a fresh timestamp and a matching signature (constant-time)."""
    lower = {k.lower(): v for k, v in headers.items()}
    raw_ts = str(lower.get(TIMESTAMP_HEADER.lower(), "")).strip()
    given = str(lower.get(SIGNATURE_HEADER.lower(), "")).strip()
    if not (raw_ts.isascii() and raw_ts.isdigit()) or not given:
        return False
    if abs(now - int(raw_ts)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(raw_ts), body), given)


class WebhookChannel(Channel):
    name = "webhook"
    secret = "TRIAGE_WEBHOOK_URL"

    def payload(self, notice: Notice) -> dict[str, Any]:
        return {"type": "triage.notification", "version": 1, "id": notice.decision_key,
                "sent_at": datetime.fromtimestamp(self._clock(), tz=timezone.utc).isoformat(timespec="seconds"),
                "notice": notice.to_dict()}

    def signed(self, body: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        from shared.notify.channel import ChannelNotConfigured

        secret = self._secrets.get_optional("TRIAGE_WEBHOOK_SECRET")
        if not secret:
            raise ChannelNotConfigured("webhook is not configured: set the secret TRIAGE_WEBHOOK_SECRET "
                                       "(the key that signs each request)")
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ts = int(self._clock())
        return data, {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, data)}

    def post(self, notice: Notice, body: Mapping[str, Any]) -> tuple[ChannelAnswer, dict[str, Any]]:
        url = self._url()
        data, headers = self.signed(body)
        return self._client.post_json(self.name, url, body, data=data, headers=headers), {}
