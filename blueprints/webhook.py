"""``POST /api/databricks/webhook``: a Databricks job notification in, a queued triage request out.

Auth level FUNCTION (the function key in the destination URL, ``?code=...``) plus, when the
secrets TRIAGE_WEBHOOK_USERNAME / TRIAGE_WEBHOOK_PASSWORD are set, the HTTP Basic credentials
of the Databricks notification destination. Everything else is ``shared.webhook.handle_webhook``;
this adapter builds its collaborators from the environment and turns the answer into JSON. Any
unexpected server-side problem answers 503 "try again" (the sweep also finds the failure), never
a 500 or a stack trace.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import azure.functions as func

__all__ = ["bp", "databricks_webhook", "handle", "json_response"]

log = logging.getLogger(__name__)

bp = func.Blueprint()

_JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_UNAVAILABLE = {"status": "unavailable", "error": "the notification could not be accepted now; try again"}

# Queue clients, kept per process (they keep their connections) and keyed by their whole
# configuration, so a changed setting builds a new one; no setting is read at import. The Key
# Vault reader is kept the same way by shared.runtime.process_secrets.
_lock = threading.Lock()
_queues: dict[tuple[Any, ...], Any] = {}


def json_response(status: int, body: dict[str, Any]) -> func.HttpResponse:
    headers = dict(_JSON_HEADERS)
    if status == 401:
        from shared.webhook import BASIC_REALM

        headers["WWW-Authenticate"] = BASIC_REALM
    elif status == 405:
        headers["Allow"] = "POST"
    elif status == 503:
        headers["Retry-After"] = "30"
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers)


def _queue(settings: Any) -> Any:
    from shared.queue import TriageQueue, queue_settings

    key = (*queue_settings(settings), settings.queue_name)
    with _lock:
        if key not in _queues:
            _queues[key] = TriageQueue.from_settings(settings)
        return _queues[key]


def handle(req: func.HttpRequest) -> func.HttpResponse:
    """The webhook: settings, credentials and queue from the environment, then ``handle_webhook``."""
    from shared.config import Settings
    from shared.errors import ConfigError, SecretError
    from shared.runtime import process_secrets
    from shared.webhook import handle_webhook, webhook_credentials

    try:
        settings = Settings.from_env()
        credentials = webhook_credentials(process_secrets(settings))

        def enqueue(request: Any) -> Any:
            return _queue(settings).send(request)

        status, body = handle_webhook(req, settings=settings, credentials=credentials, enqueue=enqueue)
    except (ConfigError, SecretError) as exc:
        log.error("webhook: the app cannot accept notifications: %s", exc)
        status, body = 503, dict(_UNAVAILABLE)
    except Exception:  # noqa: BLE001 - the last line of defence: no 500, no stack trace to the caller
        log.exception("webhook: unexpected error")
        status, body = 503, dict(_UNAVAILABLE)
    return json_response(status, body)


@bp.function_name("databricks_webhook")
@bp.route(route="databricks/webhook", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def databricks_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)
