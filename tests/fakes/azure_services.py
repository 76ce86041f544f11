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
  ``Failed``); scripted 429/5xx faults; repeatable requests (a retried POST with the same
  ``Repeatability-Request-Id`` is answered as the first one, and not sent twice).

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
        self._real_sleep = real_sleep
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
        if self._real_sleep:
            time.sleep(self._real_sleep)

    def send(self, request: Any, **kwargs: Any) -> FakeResponse:
        seen = SeenRequest(request.method, request.url, dict(request.headers), _body_json(request))
        with self._lock:
            self.requests.append(seen)
        return self.handler(request)


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


class AcsEmailService:
    """An ACS resource's email endpoint.

    ``running_polls``: how many status polls answer Running before the final status.
    ``final_status``: "Succeeded" or "Failed" for the next operations.
    ``send_faults``: responses for the next POSTs, e.g. ``[(429, {"Retry-After": "3"}), (500, {})]``.
    ``hang``: status polls answer Running for as long as it is set.
    ``apply_faults_after_accept``: a 5xx fault is answered *after* the message was accepted
    (the service sent it, the client saw an error) - the repeatable-request case.
    """

    def __init__(self, endpoint: str = "https://acs-triage-test.communication.azure.com") -> None:
        self.endpoint = endpoint.rstrip("/")
        self.accepted: list[SentEmail] = []
        self.operations: dict[str, _Operation] = {}
        self.by_repeatability: dict[str, str] = {}
        self.running_polls = 1
        self.final_status = "Succeeded"
        self.final_error: dict[str, Any] | None = None
        self.send_faults: list[tuple[int, dict[str, str]]] = []
        self.apply_faults_after_accept = False
        self.hang = threading.Event()
        self.posts = 0
        self.polls = 0
        self.transport = ServiceTransport(self)
        self._lock = threading.Lock()

    @property
    def delivered(self) -> list[SentEmail]:
        """Messages whose operation ended Succeeded."""
        return [op.email for op in self.operations.values() if op.final == "Succeeded" and op.polls_left <= 0
                and op.polls > 0]

    def connection_string(self, key: bytes) -> str:
        import base64

        return f"endpoint={self.endpoint}/;accesskey={base64.b64encode(key).decode('ascii')}"

    def __call__(self, request: Any) -> FakeResponse:
        url = urlsplit(request.url)
        assert f"https://{url.netloc}" == self.endpoint, request.url
        auth = request.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") or auth.startswith("HMAC-SHA256 ")):
            return FakeResponse(request, 401, {"error": {"code": "Denied", "message": "Denied by the resource provider."}})
        api_version = parse_qs(url.query).get("api-version", [""])[0]
        assert api_version, "every ACS request carries api-version"
        with self._lock:
            if request.method == "POST" and url.path == "/emails:send":
                return self._send(request, api_version)
            if request.method == "GET" and url.path.startswith("/emails/operations/"):
                return self._status(request, url.path.rsplit("/", 1)[1])
        return FakeResponse(request, 404, {"error": {"code": "NotFound", "message": "no such route"}})

    def _send(self, request: Any, api_version: str) -> FakeResponse:
        self.posts += 1
        fault = self.send_faults.pop(0) if self.send_faults else None
        if fault and not self.apply_faults_after_accept:
            status, headers = fault
            return FakeResponse(request, status, {"error": {"code": "TooManyRequests" if status == 429 else
                                                            "InternalServerError", "message": "fault"}}, headers)
        rid = request.headers.get("Repeatability-Request-Id")
        if rid and rid in self.by_repeatability:          # a retry of a request already accepted
            op_id = self.by_repeatability[rid]
        else:
            msg = _body_json(request)
            error = _validate(msg)
            if error:
                return FakeResponse(request, 400, {"error": {"code": "BadRequest", "message": error}})
            op_id = request.headers.get("Operation-Id") or str(uuid.uuid4())
            email = SentEmail(operation_id=op_id, message=msg, headers=dict(request.headers))
            self.accepted.append(email)
            self.operations[op_id] = _Operation(email=email, polls_left=self.running_polls,
                                                final=self.final_status, error=self.final_error)
            if rid:
                self.by_repeatability[rid] = op_id
        if fault:
            status, headers = fault
            return FakeResponse(request, status, {"error": {"code": "InternalServerError", "message": "fault"}},
                                headers)
        return FakeResponse(request, 202, {"id": op_id, "status": "Running"}, {
            "Operation-Location": f"{self.endpoint}/emails/operations/{op_id}?api-version={api_version}",
            "operation-id": op_id,
            "Retry-After": "0",
        })

    def _status(self, request: Any, op_id: str) -> FakeResponse:
        self.polls += 1
        op = self.operations.get(op_id)
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
