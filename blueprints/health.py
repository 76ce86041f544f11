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
minute. The body is built by ``shared.app.health.health_report``; ``python -m shared health`` is
the command-line twin (the same figures, plus the keys of what is stuck).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import azure.functions as func

__all__ = ["bp", "health", "health_report"]

bp = func.Blueprint()


def health_report(env: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for the current settings (``shared.app.health.health_report``, which
    ``python -m shared health`` prints too): today's spend from the store this process has open."""
    from shared.app.health import health_report as report
    from shared.app.runtime import process_spend_today

    return report(env, spend_today=process_spend_today)


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    status, body = health_report()
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json",
                             headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
