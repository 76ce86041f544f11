"""What ``health`` says, for both of its faces: ``GET /api/health`` (blueprints/health.py) and
``python -m shared health`` (shared/commands/health.py). One function, so both show the same
figures: the app's version and mode, what is configured, whether every decision is moving on
(``shared.app.lifecycle.lifecycle_health``: decisions past their deadline, actions retrying,
notifications undelivered, approvals being carried out) and the day's budget.

Only booleans, counts and non-secret facts: no secret, no host name of a secret store, no
storage account, no workspace URL and (unless ``keys``, for the command line) no decision key.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

__all__ = ["health_report", "store_spend_today"]

log = logging.getLogger(__name__)


def health_report(env: Mapping[str, str] | None = None, *,
                  spend_today: Callable[["Settings"], dict[str, Any] | None] | None = None,
                  recount: bool = False, keys: bool = False, now: int | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when the settings parse and nothing is stuck, else 503.

    ``spend_today(settings)`` gives today's spend counters (None: not known); ``recount`` counts
    the decisions now instead of reading the last sweep's summary; ``keys`` adds the keys of what
    is stuck (never on the anonymous endpoint)."""
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
    from shared.app.approvals import WithOpenApprovals   # approvals of older decisions, as the sweep counts them
    from shared.app.lifecycle import lifecycle_health

    healthy, lifecycle = lifecycle_health(settings, now=now, recount=recount, keys=keys, view=WithOpenApprovals)
    extra = settings.extra
    storage = (settings.storage or settings.azure_webjobs_storage
               or extra.get("AzureWebJobsStorage__tableServiceUri") or extra.get("AzureWebJobsStorage__accountName"))
    spend = spend_today(settings) if spend_today is not None else None
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
        "budget": {"usd_per_day": settings.budget_usd_per_day,
                   "today_usd": spend["total_usd"] if spend else None,
                   "today_model_usd": spend["model_usd"] if spend else None},
    }


def store_spend_today(settings: "Settings") -> dict[str, Any] | None:
    """Today's spend counters read from the decision store (the command line has no process-wide
    store open); None when there is no store yet or it cannot be read. Never creates it."""
    from shared.store import open_store, storage_choice
    from shared.store.spend import today

    options: dict[str, Any] = ({} if storage_choice(settings)[0] == "sqlite"
                               else {"retry_total": 1, "retry_backoff_factor": 0.2})
    try:
        with open_store(settings, check=False, must_exist=True, **options) as store:
            return dict(today(store))
    except Exception as exc:  # noqa: BLE001 - health reports; it never fails on a store hiccup
        log.info("health: spend counters unavailable: %s", type(exc).__name__)
        return None
