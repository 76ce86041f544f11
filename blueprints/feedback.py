"""HTTP feedback on decisions: ``POST /api/feedback`` (function key) for tools;
``GET /api/feedback/{token}`` (a confirmation page) and ``POST /api/feedback/confirm`` (its
button) for the links in triage emails, anonymous because the signed token is the credential. What each answers is described, and handled, in ``shared/app/feedback.py``;
the triggers below only build settings, store and signing key from the environment.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.errors import ConfigError, SecretError, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["bp"]

log = logging.getLogger(__name__)

bp = func.Blueprint()


# --- the triggers ------------------------------------------------------------------------------

def _settings() -> Any:
    from shared.config import Settings

    return Settings.from_env()


def _open_store(settings: Settings) -> Any:
    from shared.app.runtime import build_store

    return build_store(settings)


@bp.function_name("feedback_post")
@bp.route(route="feedback", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def feedback_post(req: func.HttpRequest) -> func.HttpResponse:
    from shared.app.feedback import handle_post
    from shared.app.http import json_response

    try:
        settings = _settings()
        store = _open_store(settings)
    except (ConfigError, StoreError) as exc:
        log.warning("feedback endpoint unavailable: %s", exc)
        return json_response(503, {"error": "the decision store is unavailable; try again later"})
    with store:
        return handle_post(req, store=store, settings=settings)


def _signing_key(settings: Any) -> bytes | None:
    from shared.app.runtime import build_secrets
    from shared.signing import key_from_secret

    with build_secrets(settings) as secrets:
        raw = secrets.get_optional("TRIAGE_FEEDBACK_SIGNING_KEY")
    return key_from_secret(raw) if raw else None


def _links_not_set_up(exc: Exception) -> func.HttpResponse:
    from shared.app.feedback import page

    log.warning("feedback signing key unavailable: %s", exc)
    return page(503, "Feedback links are not set up",
                ["This app cannot read its feedback signing key. Ask the team that runs it."])


@bp.function_name("feedback_link")
@bp.route(route="feedback/{token}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def feedback_link(req: func.HttpRequest) -> func.HttpResponse:
    """The page a link in an email opens: it shows what the link does and changes nothing."""
    from shared.app.feedback import handle_link

    try:
        settings = _settings()
        key = _signing_key(settings)
    except (ConfigError, SecretError, ValueError) as exc:
        return _links_not_set_up(exc)
    return handle_link(req, signing_key=key, open_store=lambda: _open_store(settings))


@bp.function_name("feedback_confirm")
@bp.route(route="feedback/confirm", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def feedback_confirm(req: func.HttpRequest) -> func.HttpResponse:
    """The confirmation page's button: the signed token in the form body is the credential."""
    from shared.app.feedback import handle_confirm
    from shared.app.runtime import open_runtime

    try:
        settings = _settings()
        key = _signing_key(settings)
    except (ConfigError, SecretError, ValueError) as exc:
        return _links_not_set_up(exc)
    return handle_confirm(req, signing_key=key, open_store=lambda: _open_store(settings),
                          open_runtime=lambda: open_runtime(settings), settings=settings)
