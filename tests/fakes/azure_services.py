"""Azure services answered through azure-core's transport hook.

``ServiceTransport(handler)`` is an ``HttpTransport``: the real SDK client (``SecretClient``,
``EmailClient``) builds and signs the real request, runs its real policies (retry, challenge
auth, LRO polling) and hands the request to this transport instead of the network. The
handlers below answer the way the services do:

- ``KeyVaultService``: the challenge flow (an unauthenticated request gets 401 with a
  ``WWW-Authenticate: Bearer authorization=..., resource=...`` challenge), then
  ``GET /secrets/{name}/?api-version=...`` -> the secret bundle, or 404 ``SecretNotFound``.
- ``AcsEmailService``: ``POST /emails:send`` -> 202 with ``Operation-Location`` and
  ``operation-id``; ``GET /emails/operations/{id}`` -> ``Running`` then ``Succeeded`` (or
  ``Failed``); scripted 429/5xx faults and dropped connections; hold points (a send held before
  or after the service accepted it); repeatable requests as ACS documents them (a repeat of an
  accepted POST inside the 5-minute window is answered as the first one and not sent twice; 409
  while the first is in progress; 412 past the window; 400 for malformed headers), on a clock a
  test can move. ``tests.fakes.acs_https`` serves the same service over real HTTPS, for worker
  subprocesses.

``sleep`` is recorded, not slept, so retries with Retry-After and LRO polling cost no time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

__all__ = [
    "FakeResponse",
    "ServiceTransport",
    "SeenRequest",
    "FakeCredential",
    "KeyVaultService",
    "AcsEmailService",
    "SentEmail",
    "Dropped",
    "DROP",
    "REPEAT_WINDOW_S",
]


class _Internal:
    def close(self) -> None:
        pass


class FakeResponse(HttpResponseImpl):
    """An azure-core HttpResponse with a body already in memory."""

    def __init__(self, request: Any, status: int, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        h = case_insensitive_dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
            h.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        h.setdefault("Content-Length", str(len(body)))
        super().__init__(request=request, internal_response=_Internal(), status_code=status,
                         reason=_REASONS.get(status, "Status"), content_type=h.get("Content-Type"),
                         headers=h, stream_download_generator=None)
        self._content = body


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class SeenRequest:
    """A request as it was when it reached the transport (policies may change the object later)."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any


class ServiceTransport(HttpTransport):
    """Hands every request to ``handler(request) -> FakeResponse`` and records a copy of it."""

    def __init__(self, handler: Callable[[Any], FakeResponse], *, real_sleep: float = 0.0) -> None:
        self.handler = handler
        self.requests: list[SeenRequest] = []
        self.sleeps: list[float] = []
        self.real_sleep = real_sleep
        self._lock = threading.Lock()

    def __enter__(self) -> "ServiceTransport":
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, duration: float) -> None:
        self.sleeps.append(duration)
        if self.real_sleep:
            time.sleep(self.real_sleep)

    def send(self, request: Any, **kwargs: Any) -> FakeResponse:
        seen = SeenRequest(request.method, request.url, dict(request.headers), _body_json(request))
        with self._lock:
            self.requests.append(seen)
        try:
            return self.handler(request)
        except Dropped as exc:          # what the requests transport raises for a lost answer
            from azure.core.exceptions import ServiceResponseError

            raise ServiceResponseError(f"Connection aborted: {exc}") from None


class FakeCredential:
    """A TokenCredential: hands out a fixed bearer token and records the scopes asked for."""

    def __init__(self, token: str = "fake-access-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def _body_json(request: Any) -> Any:
    raw = request.content if hasattr(request, "content") else request.body
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# --- Key Vault --------------------------------------------------------------------------------

class KeyVaultService:
    """One vault. ``secrets`` maps Key Vault names to values; change it to "rotate"."""

    TENANT = "00000000-0000-0000-0000-000000000001"

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self.vault_url = f"https://kv{uuid.uuid4().hex[:12]}.vault.azure.net"
        self.secrets: dict[str, str] = dict(secrets or {})
        self.gets: dict[str, int] = {}       # authorized GETs per secret name
        self.challenges = 0
        self.faults: list[int] = []          # statuses to answer next, in order (e.g. 503)
        self.transport = ServiceTransport(self)

    def __call__(self, request: Any) -> FakeResponse:
        url = urlsplit(request.url)
        assert url.scheme == "https" and f"https://{url.netloc}" == self.vault_url, request.url
        if not request.headers.get("Authorization"):
            self.challenges += 1
            return FakeResponse(request, 401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is "
                                                         "missing a Bearer or PoP token."}},
                                {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/'
                                                     f'{self.TENANT}", resource="https://vault.azure.net"'})
        assert request.headers["Authorization"].startswith("Bearer ")
        assert "api-version" in parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        assert request.method == "GET" and parts[0] == "secrets", request.url
        name = parts[1]
        self.gets[name] = self.gets.get(name, 0) + 1
        if self.faults:
            status = self.faults.pop(0)
            return FakeResponse(request, status, {"error": {"code": "ServiceUnavailable", "message": "try later"}})
        if name not in self.secrets:
            return FakeResponse(request, 404, {"error": {"code": "SecretNotFound", "message":
                                                         f"A secret with (name/id) {name} was not found in this "
                                                         "key vault."}})
        version = uuid.uuid4().hex
        return FakeResponse(request, 200, {
            "value": self.secrets[name],
            "id": f"{self.vault_url}/secrets/{name}/{version}",
            "attributes": {"enabled": True, "created": 1767225600, "updated": 1767225600,
                           "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {},
        })


# --- Azure Communication Services email --------------------------------------------------------

@dataclass
class SentEmail:
    operation_id: str
    message: dict[str, Any]
    headers: dict[str, str]

    @property
    def to(self) -> list[str]:
        return [r["address"] for r in self.message["recipients"]["to"]]

    @property
    def subject(self) -> str:
        return self.message["content"]["subject"]

    @property
    def html(self) -> str:
        return self.message["content"]["html"]

    @property
    def text(self) -> str:
        return self.message["content"]["plainText"]


@dataclass
class _Operation:
    email: SentEmail
    polls_left: int
    final: str
    error: dict[str, Any] | None = None
    polls: int = 0
    created: float = 0.0


class Dropped(Exception):
    """The service closes the connection without answering. Over HTTPS
    (``tests.fakes.acs_https``) the socket is closed; through ``ServiceTransport`` azure-core's
    ``ServiceResponseError`` is raised, as the requests transport does for a lost answer."""


DROP = "drop"                 # a send fault: the connection is dropped instead of an answer
REPEAT_WINDOW_S = 300         # ACS tracks a repeatable request for 5 minutes after its first send


@dataclass
class _Tracked:
    """One repeatable request as ACS remembers it: its first-sent time, what it asked for, and
    the answer it got (``status`` None while it is still being processed)."""

    first_sent: float
    digest: str
    status: int | None = None
    body: Any = None
    headers: dict[str, str] | None = None


class AcsEmailService:
    """An ACS resource's email endpoint.

    ``running_polls``: how many status polls answer Running before the final status.
    ``final_status``: "Succeeded" or "Failed" for the next operations.
    ``send_faults``: answers for the next POSTs, e.g. ``[(429, {"Retry-After": "3"}), (500, {})]``;
    ``(DROP, {})`` drops the connection instead.
    ``hang``: status polls answer Running for as long as it is set.
    ``apply_faults_after_accept``: a send fault is answered *after* the message was accepted
    (the service sent it, the client saw an error or nothing) - the repeatable-request case.
    ``hold``: ``"before"`` or ``"after"``: the next send is held before the service accepts it
    (it is never sent) or after (it is sent, its answer never arrives); the service sets
    ``holding`` and waits for ``release`` (at most a minute), then drops the connection. A test
    kills the client while it waits.
    ``access_key``: when set, the HMAC signature of a connection-string client is checked.
    ``operation_retention_s``: how long an operation's status can be read (None: for ever);
    after that ``GET /emails/operations/{id}`` answers 404, as for an id the service never had.

    Repeatable requests, as ACS documents them: a POST with ``Repeatability-Request-Id`` (a GUID)
    and ``Repeatability-First-Sent`` (an IMF-fixdate; both are needed, a POST with neither is
    simply not repeatable, as the SDK sends it); a malformed or missing one is answered 400; a
    first-sent time older than the 5-minute tracked window 412; a repeat inside the window that
    does not match the first request 400, one that matches gets 409 while the first is still in
    progress, else the first one's answer (2xx/4xx) without sending again (a 5xx is executed
    again). Every answer says ``Repeatability-Result: accepted|rejected``. The window is measured
    on ``clock`` plus ``clock_offset_s`` (``advance(s)`` moves it without sleeping).
    """

    def __init__(self, endpoint: str = "https://acs-triage-test.communication.azure.com", *,
                 clock: Callable[[], float] = time.time, access_key: bytes | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.clock = clock
        self.clock_offset_s = 0.0
        self.access_key = access_key
        self.accepted: list[SentEmail] = []
        self.operations: dict[str, _Operation] = {}
        self.tracked: dict[str, _Tracked] = {}
        self.answers: list[tuple[str, int | None]] = []    # (repeatability id, status; None = dropped) per POST
        self.running_polls = 1
        self.final_status = "Succeeded"
        self.final_error: dict[str, Any] | None = None
        self.send_faults: list[tuple[int | str, dict[str, str]]] = []
        self.apply_faults_after_accept = False
        self.hang = threading.Event()
        self.hold: str | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.operation_retention_s: float | None = None
        self.posts = 0
        self.polls = 0
        self.transport = ServiceTransport(self)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.clock() + self.clock_offset_s

    def advance(self, seconds: float) -> None:
        """Move the service's clock on (the repeatability window), without sleeping."""
        self.clock_offset_s += seconds

    @property
    def by_repeatability(self) -> dict[str, str]:
        """Repeatability id -> operation id of the requests the service accepted."""
        return {rid: str((t.body or {}).get("id")) for rid, t in self.tracked.items() if t.status == 202}

    @property
    def delivered(self) -> list[SentEmail]:
        """Messages whose operation ended Succeeded."""
        return [op.email for op in self.operations.values() if op.final == "Succeeded" and op.polls_left <= 0
                and op.polls > 0]

    @property
    def emails_sent(self) -> list[SentEmail]:
        """Messages the service took on and delivers, whether or not anyone polled for them."""
        return [op.email for op in self.operations.values() if op.final == "Succeeded"]

    def connection_string(self, key: bytes) -> str:
        import base64

        return f"endpoint={self.endpoint}/;accesskey={base64.b64encode(key).decode('ascii')}"

    def __call__(self, request: Any) -> FakeResponse:
        url = urlsplit(request.url)
        assert f"https://{url.netloc}" == self.endpoint, request.url
        auth = request.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") or auth.startswith("HMAC-SHA256 ")) or not self._signed(request, auth):
            return FakeResponse(request, 401, {"error": {"code": "Denied", "message": "Denied by the resource provider."}})
        api_version = parse_qs(url.query).get("api-version", [""])[0]
        assert api_version, "every ACS request carries api-version"
        if request.method == "POST" and url.path == "/emails:send":
            return self._post(request, api_version)
        with self._lock:
            if request.method == "GET" and url.path.startswith("/emails/operations/"):
                return self._status(request, url.path.rsplit("/", 1)[1])
        return FakeResponse(request, 404, {"error": {"code": "NotFound", "message": "no such route"}})

    def _signed(self, request: Any, auth: str) -> bool:
        """The HMAC-SHA256 scheme of a connection-string client: x-ms-date, host and the body's
        SHA-256, signed with the access key."""
        if self.access_key is None or not auth.startswith("HMAC-SHA256 "):
            return True
        import base64
        import hashlib
        import hmac

        url = urlsplit(request.url)
        body = _raw_body(request)
        content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        if request.headers.get("x-ms-content-sha256") != content_hash:
            return False
        path = url.path + (f"?{url.query}" if url.query else "")
        to_sign = f"{request.method.upper()}\n{path}\n{request.headers.get('x-ms-date', '')};{url.netloc};{content_hash}"
        want = base64.b64encode(hmac.new(self.access_key, to_sign.encode("utf-8"), hashlib.sha256).digest()).decode()
        return auth == f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={want}"

    def _post(self, request: Any, api_version: str) -> FakeResponse:
        rid = request.headers.get("Repeatability-Request-Id") or ""
        with self._lock:
            self.posts += 1
            hold, self.hold = self.hold, None
            fault = self.send_faults.pop(0) if self.send_faults else None
        if hold == "before":
            self._held(rid)
            raise Dropped("held before the service accepted the message")
        with self._lock:
            if fault and not self.apply_faults_after_accept:
                return self._answer(rid, request, *fault)
            response = self._send(request, api_version, rid, keep_in_progress=hold == "after")
        if hold == "after" and response.status_code == 202:
            self._held(rid)
            with self._lock:
                if rid in self.tracked:
                    self.tracked[rid].status = 202     # processed: a repeat now gets its answer
            raise Dropped("held after the service accepted the message")
        if fault:
            with self._lock:
                return self._answer(rid, request, *fault)
        return response

    def _held(self, rid: str) -> None:
        with self._lock:
            self.answers.append((rid, None))
        self.holding.set()
        self.release.wait(60)

    def _answer(self, rid: str, request: Any, status: int | str, headers: dict[str, str]) -> FakeResponse:
        if status == DROP:
            self.answers.append((rid, None))
            raise Dropped("the connection was dropped")
        assert isinstance(status, int)
        self.answers.append((rid, status))
        code = "TooManyRequests" if status == 429 else "InternalServerError" if status >= 500 else "BadRequest"
        return FakeResponse(request, status, {"error": {"code": code, "message": "fault"}}, headers)

    def _rejected(self, request: Any, rid: str, status: int, code: str, message: str) -> FakeResponse:
        self.answers.append((rid, status))
        return FakeResponse(request, status, {"error": {"code": code, "message": message}},
                            {"Repeatability-Result": "rejected"})

    def _send(self, request: Any, api_version: str, rid: str, *, keep_in_progress: bool = False) -> FakeResponse:
        sent_header = request.headers.get("Repeatability-First-Sent")
        if not rid and sent_header is None:
            return self._accept(request, api_version, None, "", None)     # not a repeatable request
        first_sent = _imf_fixdate(sent_header or "")
        if not _is_guid(rid):
            return self._rejected(request, rid, 400, "InvalidRepeatabilityRequestId",
                                  "Repeatability-Request-Id must be a GUID.")
        if first_sent is None:
            return self._rejected(request, rid, 400, "InvalidRepeatabilityFirstSent",
                                  "Repeatability-First-Sent must be a date in IMF-fixdate format.")
        if self.now() - first_sent > REPEAT_WINDOW_S:
            return self._rejected(request, rid, 412, "PreconditionFailed",
                                  "Repeatability-First-Sent header is not within the 5 minute window.")
        msg = _body_json(request)
        digest = json.dumps(msg, sort_keys=True)
        seen = self.tracked.get(rid)
        if seen is not None and seen.status is not None and seen.status >= 500:
            seen = None                                      # a 5xx is executed again
        if seen is not None:
            if seen.digest != digest or seen.first_sent != first_sent:
                return self._rejected(request, rid, 400, "RepeatabilityRequestMismatch",
                                      "The request does not match the earlier request with this Repeatability-Request-Id.")
            if seen.status is None:
                return self._rejected(request, rid, 409, "Conflict", "The earlier request with this "
                                      "Repeatability-Request-Id is still being processed.")
            self.answers.append((rid, seen.status))
            return FakeResponse(request, seen.status, seen.body, {**(seen.headers or {}),
                                                                    "Repeatability-Result": "accepted"})
        tracked = _Tracked(first_sent=first_sent, digest=digest)
        self.tracked[rid] = tracked
        return self._accept(request, api_version, msg, rid, tracked, keep_in_progress=keep_in_progress)

    def _accept(self, request: Any, api_version: str, msg: Any, rid: str, tracked: _Tracked | None, *,
                keep_in_progress: bool = False) -> FakeResponse:
        if msg is None:
            msg = _body_json(request)
        tracked = tracked or _Tracked(first_sent=self.now(), digest="")
        result = {"Repeatability-Result": "accepted"} if rid else {}
        error = _validate(msg)
        if error:
            tracked.status, tracked.body = 400, {"error": {"code": "BadRequest", "message": error}}
            self.answers.append((rid, 400))
            return FakeResponse(request, 400, tracked.body, result)
        op_id = request.headers.get("Operation-Id") or str(uuid.uuid4())
        email = SentEmail(operation_id=op_id, message=msg, headers=dict(request.headers))
        self.accepted.append(email)
        self.operations[op_id] = _Operation(email=email, polls_left=self.running_polls,
                                            final=self.final_status, error=self.final_error, created=self.now())
        tracked.body = {"id": op_id, "status": "Running"}
        tracked.headers = {
            "Operation-Location": f"{self.endpoint}/emails/operations/{op_id}?api-version={api_version}",
            "operation-id": op_id,
            "Retry-After": "0",
        }
        tracked.status = None if keep_in_progress else 202
        self.answers.append((rid, 202))
        return FakeResponse(request, 202, tracked.body, {**tracked.headers, **result})

    def _status(self, request: Any, op_id: str) -> FakeResponse:
        self.polls += 1
        op = self.operations.get(op_id)
        if op is not None and self.operation_retention_s is not None \
                and self.now() - op.created > self.operation_retention_s:
            op = None                                   # forgotten
        if op is None:
            return FakeResponse(request, 404, {"error": {"code": "NotFound", "message": "unknown operation"}})
        op.polls += 1
        if self.hang.is_set() or op.polls_left > 0:
            op.polls_left -= 1
            return FakeResponse(request, 200, {"id": op_id, "status": "Running"}, {"Retry-After": "0"})
        body: dict[str, Any] = {"id": op_id, "status": op.final}
        if op.final != "Succeeded":
            body["error"] = op.error or {"code": "EmailDroppedAllRecipientsSuppressed",
                                         "message": "Message was dropped because all recipients were suppressed"}
        return FakeResponse(request, 200, body)


def _raw_body(request: Any) -> bytes:
    raw = request.content if hasattr(request, "content") else request.body
    if raw is None:
        return b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _imf_fixdate(value: str) -> float | None:
    """Seconds since the epoch of an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), else None."""
    from email.utils import parsedate_to_datetime

    if not value.endswith(" GMT"):
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _validate(msg: Any) -> str:
    if not isinstance(msg, dict):
        return "body must be a JSON object"
    if not msg.get("senderAddress"):
        return "senderAddress is required"
    to = ((msg.get("recipients") or {}).get("to")) or []
    if not to or not all(isinstance(r, dict) and r.get("address") for r in to):
        return "recipients.to must list at least one address"
    content = msg.get("content") or {}
    if not content.get("subject"):
        return "content.subject is required"
    if not (content.get("plainText") or content.get("html")):
        return "content needs plainText or html"
    return ""
