"""The one HTTP client of the chat, paging and webhook channels: a JSON POST with time-outs,
bounded retries and typed errors.

    client = ChannelClient()
    answer = client.post_json("teams", url, body)          # -> ChannelAnswer(status, text, json)

- Every request has a connect and a read time-out; nothing waits forever.
- 429, 5xx and connection failures are retried a few times with a growing pause (``Retry-After``
  is honoured up to ``max_pause_s``); 4xx are not (the message or the credential is wrong, and
  sending it again changes nothing).
- Failures raise ``ChannelError`` with the channel's name, the HTTP status and the service's own
  error code when its answer carries one. The URL is never in an error or a log line: a Teams,
  Slack or webhook URL is a credential (whoever has it can post).
- Redirects are not followed (a webhook URL that redirects is a misconfiguration, and following it
  would send the message somewhere nobody configured).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from shared.errors import ChannelError
from shared.redact import redact

__all__ = ["ChannelAnswer", "ChannelClient", "check_url"]

_log = logging.getLogger(__name__)

_MAX_BODY = 512 * 1024          # PagerDuty's event limit; a bound for every channel
_MAX_ERROR_TEXT = 300
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ChannelAnswer:
    status: int
    text: str
    json: Any = None
    attempts: int = 1


def check_url(url: str, *, setting: str) -> str:
    """The URL when it is an absolute https URL (http only on loopback, for local stand-ins);
    ``ValueError`` naming the setting (never the value) otherwise."""
    u = (url or "").strip()
    try:
        parts = urlsplit(u)
    except ValueError:
        raise ValueError(f"{setting} is not a URL") from None
    if not parts.hostname or parts.username or parts.password or any(c.isspace() for c in u):
        raise ValueError(f"{setting} is not an absolute https URL")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise ValueError(f"{setting} must be an https URL")
    return u


def _error_code(payload: Any, text: str) -> str | None:
    """The service's own error code: PagerDuty ``{"status": "invalid event", "errors": [...]}``,
    Slack's plain-text answers (``invalid_payload``, ``no_service``), a JSON ``error``/``code``."""
    if isinstance(payload, Mapping):
        for key in ("error_code", "code", "error", "status"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value[:80]
            if isinstance(value, Mapping) and isinstance(value.get("code"), str):
                return str(value["code"])[:80]
    t = text.strip()
    if t and len(t) <= 60 and " " not in t and t.isascii():
        return t
    return None


class ChannelClient:
    """JSON POSTs to channel endpoints with ``requests``.

    :param timeout_s: (connect, read) seconds for each attempt.
    :param attempts: tries in all for a retryable failure (429, 5xx, no answer).
    :param backoff_s: the first pause; doubled each time, never above ``max_pause_s``.
    :param sleep: how to wait (tests pass one that records instead of sleeping).
    """

    def __init__(self, *, timeout_s: tuple[float, float] = (5.0, 15.0), attempts: int = 3, backoff_s: float = 1.0,
                 max_pause_s: float = 20.0, sleep: Callable[[float], None] = time.sleep,
                 session: Any = None) -> None:
        if attempts < 1 or backoff_s < 0 or max_pause_s < 0:
            raise ValueError("attempts must be >= 1, backoff_s and max_pause_s >= 0")
        self._timeout = timeout_s
        self._attempts = int(attempts)
        self._backoff = float(backoff_s)
        self._max_pause = float(max_pause_s)
        self._sleep = sleep
        self._session = session
        self._owns_session = session is None

    def _requests_session(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def post_json(self, channel: str, url: str, body: Any, *, headers: Mapping[str, str] | None = None,
                  data: bytes | None = None, ok: Callable[[int], bool] = lambda s: 200 <= s < 300) -> ChannelAnswer:
        """POST ``body`` as JSON (or the exact bytes ``data``, for a signed body) and return the
        answer; ``ChannelError`` when every attempt failed or the answer is a refusal."""
        import requests

        payload = data if data is not None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if len(payload) > _MAX_BODY:
            raise ChannelError(f"{channel}: the message is {len(payload)} bytes, over the {_MAX_BODY} limit",
                               channel=channel, retryable=False)
        h = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "databricks-triage",
             **dict(headers or {})}
        last: ChannelError | None = None
        for attempt in range(1, self._attempts + 1):
            pause = self._backoff * (2 ** (attempt - 1))
            try:
                resp = self._requests_session().post(url, data=payload, headers=h, timeout=self._timeout,
                                                     allow_redirects=False)
            except requests.RequestException as exc:
                last = ChannelError(f"{channel}: no answer ({type(exc).__name__})", channel=channel, retryable=True)
            else:
                text = resp.text[:4096] if resp.content else ""
                try:
                    parsed = resp.json() if text else None
                except ValueError:
                    parsed = None
                if ok(resp.status_code):
                    return ChannelAnswer(resp.status_code, text, parsed, attempt)
                status = resp.status_code
                code = _error_code(parsed, text)
                detail = redact(" ".join(text.split()))[:_MAX_ERROR_TEXT]
                retryable = status == 429 or status >= 500 or status == 408
                last = ChannelError(f"{channel} refused the message" + (f": {detail}" if detail else ""),
                                    channel=channel, status=status, error_code=code, retryable=retryable)
                if 300 <= status < 400:
                    last = ChannelError(f"{channel}: the URL redirects (HTTP {status}); configure the final URL",
                                        channel=channel, status=status, retryable=False)
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.strip().isdigit():
                    pause = float(retry_after.strip())
            if not last.retryable or attempt == self._attempts:
                break
            _log.info("%s: attempt %d failed (%s); trying again", channel, attempt,
                      f"HTTP {last.status}" if last.status else "no answer")
            self._sleep(min(pause, self._max_pause))
        assert last is not None
        last.attempts = attempt
        raise last

    def close(self) -> None:
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None
