"""HTTP feedback on decisions: a JSON API for tools and the signed links in triage emails.

- ``POST /api/feedback`` (function key): ``{"decision_key", "verdict": "correct"|"wrong",
  "correct_action"?, "correct_category"?, "comment"?, "job_id"?}`` -> 200 with the stored
  feedback; 400 with a message for bad input, 404 for an unknown decision, 413 for a body over
  16 KiB, 503 when the store is unreachable.
- ``GET /api/feedback/{token}`` (anonymous: the signed token is the credential): checks the
  HMAC-SHA256 signature (key: the ``TRIAGE_FEEDBACK_SIGNING_KEY`` secret, through
  ``shared.secrets``) and the expiry *before* touching the store, records the verdict
  (idempotent: a second click changes nothing) and answers a small self-contained HTML page.
  400 for a malformed or forged token, 410 for an expired one, 404 for an unknown decision,
  503 when the signing key or the store is missing.

The request handling is in ``shared/feedback_http.py``; the triggers below only build settings,
store and key from the environment.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from shared.errors import ConfigError, SecretError, StoreError
from shared.feedback_http import handle_link, handle_post, json_response, page

__all__ = ["bp"]

log = logging.getLogger(__name__)

bp = func.Blueprint()


# --- the triggers ------------------------------------------------------------------------------

def _settings() -> Any:
    from shared.config import Settings

    return Settings.from_env()


def _open_store(settings: Any) -> Any:
    from shared.runtime import build_store

    return build_store(settings)


@bp.function_name("feedback_post")
@bp.route(route="feedback", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def feedback_post(req: func.HttpRequest) -> func.HttpResponse:
    try:
        settings = _settings()
        store = _open_store(settings)
    except (ConfigError, StoreError) as exc:
        log.warning("feedback endpoint unavailable: %s", exc)
        return json_response(503, {"error": "the decision store is unavailable; try again later"})
    with store:
        return handle_post(req, store=store)


@bp.function_name("feedback_link")
@bp.route(route="feedback/{token}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def feedback_link(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runtime import build_secrets
    from shared.signing import key_from_secret

    key: bytes | None = None
    try:
        settings = _settings()
        with build_secrets(settings) as secrets:
            raw = secrets.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
        key = key_from_secret(raw) if raw else None
    except (ConfigError, SecretError, ValueError) as exc:
        log.warning("feedback signing key unavailable: %s", exc)
        return page(503, "Feedback links are not set up",
                     ["This app cannot read its feedback signing key. Ask the team that runs it."])
    return handle_link(req, signing_key=key, open_store=lambda: _open_store(settings))
