"""The Databricks webhook, without the Functions runtime: authenticate, validate, enqueue, answer.

A Databricks *notification destination* of type HTTP webhook POSTs identifiers only — no state,
no error text (docs.databricks.com, "Add notifications on a job"; the shapes are kept verbatim
in tests/app/test_webhook.py)::

    {"event_type": "jobs.on_failure", "workspace_id": "...",
     "run": {"run_id": "..."}, "job": {"job_id": "...", "name": "..."}}

A task-level notification adds ``"task": {"task_key": "..."}``; ``run.run_id`` is then the task
run and ``run.parent_run_id`` the job run, which is what gets triaged. Ids arrive as strings or
numbers. ``jobs.on_failure`` becomes a ``TriageRequest`` on the queue; every other event type
(``jobs.on_start``, ``jobs.on_success``, ``jobs.on_duration_warning_threshold_exceeded``, and
codes added later) is answered "ignored" with the reason.

``handle_webhook(request, settings=..., credentials=..., enqueue=...) -> HttpResponse`` is the
whole HTTP behaviour; ``blueprints/webhook.py`` only builds its collaborators from the environment:

    401  HTTP Basic credentials missing or wrong (when TRIAGE_WEBHOOK_USERNAME/PASSWORD are set)
    405  not a POST
    413  body over 256 KiB
    415  not JSON (Content-Type other than application/json, or a charset other than UTF-8)
    400  not a JSON object of the documented shape (the answer says what is wrong)
    200  a valid notification that needs no triage (the answer says why)
    202  queued: the answer carries the request id
    503  the queue (or the app's configuration) failed: try again; the sweep also catches it

No Databricks, LLM or email call happens here; nothing in the body is ever echoed back beyond a
short, quoted excerpt of an unknown event type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from shared.app.http import json_response
from shared.app.messages import (
    FAILURE_EVENT,
    MESSAGE_VERSION,
    TriageRequest,
    _excerpt,
    _json_type,
    _reject_constant,
    parse_id,
)
from shared.errors import ConfigError, RequestError, TriageError

if TYPE_CHECKING:  # pragma: no cover
    import azure.functions as func
    from shared.config import Settings
    from shared.secrets import SecretProvider

__all__ = [
    "MAX_BODY_BYTES",
    "FAILURE_EVENT",
    "DOCUMENTED_EVENTS",
    "MESSAGE_VERSION",
    "BASIC_REALM",
    "TriageRequest",
    "Ignored",
    "WebhookCredentials",
    "WebhookRequest",
    "parse_notification",
    "parse_id",
    "check_basic_auth",
    "webhook_credentials",
    "handle_webhook",
    "answer",
    "UNAVAILABLE",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
DOCUMENTED_EVENTS = (
    "jobs.on_start",
    "jobs.on_success",
    "jobs.on_failure",
    "jobs.on_duration_warning_threshold_exceeded",
)
_MAX_NAME = 1024          # job names are at most 4096 in Databricks; we keep a bounded label
_MAX_TASK_KEY = 100       # Databricks' limit on task keys
_MAX_EVENT_TYPE = 200
_JSON_TYPES = ("application/json",)
_CHARSETS = ("utf-8", "utf8", "us-ascii")
BASIC_REALM = 'Basic realm="databricks-triage", charset="UTF-8"'


# --- the request on the queue -------------------------------------------------------------------

@dataclass(frozen=True)
class Ignored:
    """A valid notification that needs no triage, and why."""

    event_type: str
    reason: str


# --- parsing ------------------------------------------------------------------------------------

def _object(doc: Mapping[str, Any], name: str, *, required: bool) -> Mapping[str, Any]:
    value = doc.get(name)
    if value is None:
        if required:
            raise RequestError(f"{name} is missing: a job notification has {name!r} as an object")
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"{name} must be an object, not {_json_type(value)}")
    return value


def _string(doc: Mapping[str, Any], name: str, where: str, limit: int) -> str:
    value = doc.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a string, not {_json_type(value)}")
    return value[:limit]


def _check_content_type(content_type: str | None) -> None:
    if content_type is None or not content_type.strip():
        return   # no Content-Type: read the body as JSON (RFC 9110 lets the recipient decide)
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media not in _JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
        raise RequestError(f"Content-Type must be application/json, got {_excerpt(media)}", status=415)
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in _CHARSETS:
                raise RequestError(f"JSON must be UTF-8, got charset {_excerpt(charset)}", status=415)


def parse_notification(body: bytes, content_type: str | None = "application/json") -> TriageRequest | Ignored:
    """Validate a Databricks job notification.

    Returns a ``TriageRequest`` for ``jobs.on_failure`` (the run to triage is the parent job run
    for a task-level notification), ``Ignored`` for any other event type. Raises
    ``RequestError`` with status 413 (too large), 415 (not JSON) or 400 (not the documented shape)."""
    if body is None:
        body = b""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted", status=413)
    _check_content_type(content_type)
    if not body.strip():
        raise RequestError("the body is empty; expected a Databricks job notification (JSON)")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError("the body is nested too deeply to be a job notification") from None
    except ValueError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestError(f"the body is not valid JSON{where}") from None
    if not isinstance(doc, dict):
        raise RequestError(f"the body must be a JSON object, not {_json_type(doc)}")

    event_type = doc.get("event_type")
    if event_type is None:
        raise RequestError("event_type is missing (e.g. \"jobs.on_failure\")")
    if not isinstance(event_type, str) or not event_type.strip():
        raise RequestError(f"event_type must be a non-empty string, not {_json_type(event_type)}")
    event_type = event_type.strip()[:_MAX_EVENT_TYPE]
    if event_type != FAILURE_EVENT:
        if event_type in DOCUMENTED_EVENTS:
            reason = f"{event_type} needs no triage: only {FAILURE_EVENT} is triaged"
        else:
            reason = f"unknown event type {_excerpt(event_type)}: only {FAILURE_EVENT} is triaged"
        return Ignored(event_type=event_type, reason=reason)

    run = _object(doc, "run", required=True)
    job = _object(doc, "job", required=False)
    task = _object(doc, "task", required=False)
    run_id = parse_id(run.get("run_id"), "run.run_id")
    if run_id is None:
        raise RequestError("run.run_id is missing")
    parent = parse_id(run.get("parent_run_id"), "run.parent_run_id")
    task_key = _string(task, "task_key", "task.task_key", _MAX_TASK_KEY)
    if task and parent is None:
        # run.run_id is then a task run: triaging it as a job run would escalate a false failure
        raise RequestError("run.parent_run_id is missing: a task-level notification (with task) "
                           "names the job run there")
    workspace_id = doc.get("workspace_id")
    if workspace_id is None:
        ws = ""
    elif isinstance(workspace_id, bool) or not isinstance(workspace_id, (int, str)):
        raise RequestError(f"workspace_id must be a number or a string, not {_json_type(workspace_id)}")
    else:
        ws = str(workspace_id).strip()
        if len(ws) > 64 or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in ws):
            raise RequestError(f"workspace_id is not a workspace id: {_excerpt(ws)}")
    return TriageRequest(
        run_id=parent if parent is not None else run_id,
        task_run_id=run_id if parent is not None else None,
        task_key=task_key,
        job_id=parse_id(job.get("job_id"), "job.job_id"),
        job_name=_string(job, "name", "job.name", _MAX_NAME),
        workspace_id=ws,
        event_type=event_type,
    )


# --- authentication -----------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookCredentials:
    """The HTTP Basic user name and password the Databricks destination sends."""

    username: str
    password: str

    def __repr__(self) -> str:  # never show them
        return "WebhookCredentials(<hidden>)"


def webhook_credentials(secrets: "SecretProvider") -> WebhookCredentials | None:
    """The configured webhook credentials, or None when neither secret is set (then the function
    key alone protects the webhook). ConfigError when only one of the two is set."""
    username = secrets.get_optional("TRIAGE_WEBHOOK_USERNAME")
    password = secrets.get_optional("TRIAGE_WEBHOOK_PASSWORD")
    if username is None and password is None:
        return None
    if username is None or password is None:
        missing = "TRIAGE_WEBHOOK_USERNAME" if username is None else "TRIAGE_WEBHOOK_PASSWORD"
        raise ConfigError(f"{missing} is not set: set both webhook secrets, or neither")
    return WebhookCredentials(username, password)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def check_basic_auth(authorization: str | None, credentials: WebhookCredentials | None) -> None:
    """Check an ``Authorization`` header against the credentials in constant time (both the user
    name and the password are always compared, as equal-length digests). RequestError 401."""
    if credentials is None:
        return
    if not authorization:
        raise RequestError("credentials are required (HTTP Basic)", status=401)
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise RequestError("credentials are required (HTTP Basic)", status=401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("the Basic credentials are not valid base64", status=401) from None
    user, sep, password = decoded.partition(b":")
    if not sep:
        raise RequestError("the Basic credentials have no ':' between user name and password", status=401)
    user_ok = hmac.compare_digest(_digest(user), _digest(credentials.username.encode("utf-8")))
    password_ok = hmac.compare_digest(_digest(password), _digest(credentials.password.encode("utf-8")))
    if not (user_ok & password_ok):
        raise RequestError("the credentials are wrong", status=401)


# --- the handler --------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookRequest:
    """A plain request (the handler also takes ``azure.functions.HttpRequest`` as is)."""

    method: str
    headers: Mapping[str, str]
    body: bytes = b""

    def get_body(self) -> bytes:
        return self.body


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except Exception:  # noqa: BLE001 - a header mapping of any kind
        value = None
    if value is None and hasattr(headers, "items"):
        lowered = name.lower()
        for key, v in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                value = v
                break
    return value if isinstance(value, str) else None


UNAVAILABLE = {"status": "unavailable", "error": "the notification could not be accepted now; try again"}


def _rejected(exc: RequestError) -> tuple[int, dict[str, Any]]:
    return exc.status, {"status": "rejected", "error": exc.message}


def answer(status: int, body: Mapping[str, Any]) -> "func.HttpResponse":
    """The webhook's JSON answer, with the headers its status calls for."""
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = BASIC_REALM
    elif status == 405:
        headers["Allow"] = "POST"
    elif status == 503:
        headers["Retry-After"] = "30"
    return json_response(status, body, headers)


def handle_webhook(
    request: Any,
    *,
    settings: "Settings",
    credentials: WebhookCredentials | None,
    enqueue: Callable[[TriageRequest], Any],
    now_ms: int | None = None,
    new_id: Callable[[], str] | None = None,
) -> "func.HttpResponse":
    """Answer one webhook delivery with a JSON ``HttpResponse``. Never raises for anything the
    client sent; ``enqueue`` failures answer 503."""
    return answer(*_handle(request, settings=settings, credentials=credentials, enqueue=enqueue, now_ms=now_ms,
                           new_id=new_id))


def _handle(
    request: Any,
    *,
    settings: "Settings",
    credentials: WebhookCredentials | None,
    enqueue: Callable[[TriageRequest], Any],
    now_ms: int | None,
    new_id: Callable[[], str] | None,
) -> tuple[int, dict[str, Any]]:
    from shared.app.runtime import resolve_workspace, workspaces

    method = str(getattr(request, "method", "") or "").upper()
    if method != "POST":
        return 405, {"status": "rejected", "error": "use POST"}
    headers = getattr(request, "headers", None)
    try:
        check_basic_auth(_header(headers, "Authorization"), credentials)
        body = request.get_body() or b""
        if not isinstance(body, (bytes, bytearray)):
            body = str(body).encode("utf-8", "surrogatepass")
        parsed = parse_notification(bytes(body), _header(headers, "Content-Type"))
    except RequestError as exc:
        if exc.status == 401:
            log.warning("webhook: rejected a delivery: %s", exc.message)
        return _rejected(exc)
    if isinstance(parsed, Ignored):
        log.info("webhook: ignored %s", parsed.event_type)
        return 200, {"status": "ignored", "event_type": parsed.event_type, "reason": parsed.reason}

    try:
        if not workspaces(settings):
            raise ConfigError("no Databricks workspace is configured: set DATABRICKS_HOST or TRIAGE_WORKSPACES")
        workspace = resolve_workspace(settings, parsed.workspace_id)
    except ConfigError as exc:
        log.error("webhook: cannot accept notifications: %s", exc)
        return 503, {"status": "unavailable", "error": "the app is not configured to triage runs; see its log"}
    if workspace is None:
        log.warning("webhook: notification for workspace %s, which is not configured", parsed.workspace_id)
        return 200, {"status": "ignored", "event_type": parsed.event_type,
                     "reason": f"workspace {parsed.workspace_id} is not one this app triages (TRIAGE_WORKSPACES)"}

    request_id = (new_id or (lambda: uuid.uuid4().hex))()
    received = int(time.time() * 1000) if now_ms is None else int(now_ms)
    triage_request = TriageRequest(
        **{**asdict(parsed), "workspace": workspace.host, "request_id": request_id, "received_at": received,
           "workspace_id": parsed.workspace_id or workspace.id, "source": "webhook"})
    try:
        enqueue(triage_request)
    except (TriageError, OSError) as exc:
        log.error("webhook: could not queue run %s (request %s): %s", triage_request.run_id, request_id, exc)
        return 503, {"status": "unavailable", "error": "could not queue the request; try again"}
    log.info("webhook: queued run %s of job %s (request %s)", triage_request.run_id, triage_request.job_id,
             request_id)
    return 202, {"status": "accepted", "request_id": request_id, "run_id": triage_request.run_id}
