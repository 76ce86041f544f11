"""``GET /api/health`` (anonymous): is the app up, what version, which mode, what is configured,
and is every decision moving on.

Only booleans, counts and non-secret facts: no secret, no host name of a secret store, no
storage account, no workspace URL, no decision key. One point read of the decision store (the
summary the last sweep kept: decisions past their deadline, actions retrying, notifications
undelivered; see docs/lifecycle.md); no Key Vault or Databricks round trip, so the probe is
cheap and cannot be used to make the app call out. 503 when the settings are invalid, the store
is unreachable, or something is stuck (a decision past its deadline, a notification nobody
received, a sweep that stopped running), so Azure Monitor can alert on it.
Today's spend and the daily cap come from the process's open store, read at most once a
minute.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

import azure.functions as func

__all__ = ["bp", "health", "health_report"]

log = logging.getLogger(__name__)

bp = func.Blueprint()


def health_report(env: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for the current settings: 200 when they parse, else 503."""
    from shared import __version__
    from shared.config import Settings
    from shared.errors import TriageError

    try:
        settings = Settings.from_env(env)
        from shared.app.runtime import workspaces

        count = len(workspaces(settings))
    except TriageError as exc:
        log.error("health: the settings are not valid: %s", exc)
        return 503, {"status": "misconfigured", "version": __version__,
                     "error": "the app settings are not valid; see the function log"}
    from shared.app.lifecycle import lifecycle_health

    healthy, lifecycle = lifecycle_health(settings)
    extra = settings.extra
    storage = (settings.storage or settings.azure_webjobs_storage
               or extra.get("AzureWebJobsStorage__tableServiceUri") or extra.get("AzureWebJobsStorage__accountName"))
    return (200 if healthy else 503), {
        "status": "ok" if healthy else "stuck",
        "version": __version__,
        "mode": settings.mode,
        "lifecycle": lifecycle,
        "integrations": {
            "databricks": count > 0,
            "databricks_workspaces": count,
            "databricks_auth": settings.databricks_auth,
            "storage": bool(storage) and not str(settings.storage).startswith("sqlite:"),
            "llm": settings.llm_configured,
            "email": bool(settings.email_sender and (settings.acs_endpoint or extra.get("ACS_CONNECTION_STRING")
                                                     or settings.key_vault_url)),
            "key_vault": bool(settings.key_vault_url),
            "feedback_links": bool(settings.public_base_url),
        },
        # the routes by channel name (which channels are configured is a secret-store question)
        "channels": {"notify_via": list(settings.notify_via), "escalate_via": list(settings.escalate_via)},
        "budget": _budget(settings),
    }


def _budget(settings: Any) -> dict[str, Any]:
    """The daily cap and today's spend (from the store this process has open, read at most once a
    minute; null until a trigger has opened it)."""
    from shared.app.runtime import process_spend_today

    spend = process_spend_today(settings)
    return {"usd_per_day": settings.budget_usd_per_day,
            "today_usd": spend["total_usd"] if spend else None,
            "today_model_usd": spend["model_usd"] if spend else None}


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    status, body = health_report()
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
