"""``POST /api/databricks/webhook``: a Databricks job notification in, a queued triage request out.

Auth level FUNCTION (the function key in the destination URL, ``?code=...``) plus, when the
secrets TRIAGE_WEBHOOK_USERNAME / TRIAGE_WEBHOOK_PASSWORD are set, the HTTP Basic credentials
of the Databricks notification destination. Everything else is ``shared.app.webhook.handle_webhook``;
this adapter builds its collaborators from the environment. Any
unexpected server-side problem answers 503 "try again" (the sweep also finds the failure), never
a 500 or a stack trace.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import azure.functions as func

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["bp", "databricks_webhook", "handle"]

log = logging.getLogger(__name__)

bp = func.Blueprint()


# Queue clients, kept per process (they keep their connections) and keyed by their whole
# configuration, so a changed setting builds a new one; no setting is read at import. The Key
# Vault reader is kept the same way by shared.app.runtime.process_secrets.
_lock = threading.Lock()
_queues: dict[tuple[Any, ...], Any] = {}


def _queue(settings: Settings) -> Any:
    from shared.app.queue import TriageQueue, queue_settings

    key = (*queue_settings(settings), settings.queue_name)
    with _lock:
        if key not in _queues:
            _queues[key] = TriageQueue.from_settings(settings)
        return _queues[key]


def handle(req: func.HttpRequest) -> func.HttpResponse:
    """The webhook: settings, credentials and queue from the environment, then ``handle_webhook``."""
    from shared.config import Settings
    from shared.errors import ConfigError, SecretError
    from shared.app.runtime import process_secrets
    from shared.app.webhook import UNAVAILABLE, answer, handle_webhook, webhook_credentials

    try:
        settings = Settings.from_env()
        credentials = webhook_credentials(process_secrets(settings))

        def enqueue(request: Any) -> Any:
            return _queue(settings).send(request)

        return handle_webhook(req, settings=settings, credentials=credentials, enqueue=enqueue)
    except (ConfigError, SecretError) as exc:
        log.error("webhook: the app cannot accept notifications: %s", exc)
        return answer(503, UNAVAILABLE)
    except Exception:  # noqa: BLE001 - the last line of defence: no 500, no stack trace to the caller
        log.exception("webhook: unexpected error")
        return answer(503, UNAVAILABLE)


@bp.function_name("databricks_webhook")
@bp.route(route="databricks/webhook", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def databricks_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)
