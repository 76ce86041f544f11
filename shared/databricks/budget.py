"""The budget check before acting: a rerun is estimated (``shared.decide.budget``, pure) and held
against today's spend (``shared.store.spend``); one that would pass the app's daily cap
(``TRIAGE_BUDGET_USD_PER_DAY``) or the job's (tag ``triage.budget_usd_per_day``) becomes an
email to the owner. The pipeline calls ``within_budget`` in its one planning step, at decision
time and again when a resumed action surely has not taken effect (``shared.app.lifecycle.budget_again``),
and ``spend_rerun`` once a rerun has been started (once per decision, however often it is seen).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from shared.models import Action, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.databricks.actions import ActionPlan
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

__all__ = ["within_budget", "say_budget", "spend_rerun"]

log = logging.getLogger(__name__)


def within_budget(plan: "ActionPlan", snapshot: "Snapshot", settings: "Settings", store: "Store",
                  now: int) -> tuple["ActionPlan", dict[str, Any]]:
    """(plan, cost): the plan as it may be carried out, and what the decision records
    (``{}`` for an action that starts no rerun; else ``{"rerun": estimate}``, plus ``stopped_by``
    and ``reason`` when a cap stopped it)."""
    from shared.decide import budget

    if plan.action not in (Action.RETRY, Action.RETRY_WITH_NEW_PARAMS) or not plan.sends:
        return plan, {}
    estimate = budget.rerun_estimate(snapshot, plan.requests, budget.prices_of(settings))
    cost: dict[str, Any] = {"rerun": estimate.to_dict()}
    app_cap, job_cap = settings.budget_usd_per_day, budget.job_cap(snapshot.tags)
    if app_cap is None and job_cap is None:
        return plan, cost
    from shared.store.spend import day_of, spent

    job_id = str(snapshot.job_id or "nojob")
    try:
        day = day_of(now)
        app_spent = spent(store, day=day) if app_cap is not None else 0.0
        job_spent = spent(store, day=day, job_id=job_id) if job_cap is not None else 0.0
    except Exception as exc:  # noqa: BLE001 - an unknown spend cannot be checked: do not spend
        log.warning("spend counters unavailable (%s): run %s is not rerun", type(exc).__name__, snapshot.run_id)
        app_spent = job_spent = float("inf")
    why = budget.over_budget(estimate.usd, app_spent=app_spent, app_cap=app_cap, job_spent=job_spent,
                             job_cap_usd=job_cap)
    if not why:
        return plan, cost
    cost["stopped_by"] = "app" if "TRIAGE_BUDGET_USD_PER_DAY" in why else "job"
    cost["reason"] = why
    plan = dataclasses.replace(
        plan, action=Action.SEND_EMAIL, kind="notify", notify="owner", requests=(), not_before=now, restore={},
        fallback_reason=f"budget: {why}",
        recommendation=f"Rerun it by hand if it is worth about ${estimate.usd:.2f}, or raise the budget.")
    return plan, cost


def say_budget(decision: Decision, cost: dict[str, Any]) -> Decision:
    """A decision the budget stopped says so in its reason, with what the rerun would have cost."""
    if not cost.get("stopped_by"):
        return decision
    return dataclasses.replace(decision, reason=f"Not retried: {cost['reason']}. {decision.reason}".strip())


SPENT_KIND = "spent"     # TriageState: one entry per decision whose rerun was counted
_SPENT_KEEP_S = 8 * 86400   # longer than the sweep reconciles unfinished actions (a week): never counted twice


def spend_rerun(record: "DecisionRecord", store: "Store") -> None:
    """Count a started rerun's estimate against today's budget, once per decision: after
    Databricks accepted the request (the worker whose ``decided -> acting`` write won), or when
    the sweep finds in ``repair_history`` that the repair ran although its worker died before
    recording it. The first caller to write the decision's ``spent`` marker counts it; a second
    (a resend of a submit answered with the run it already made, a reconciliation after the
    worker had counted) does not. A crash between the marker and the count loses one count
    (logged), never counts twice."""
    from shared.store.spend import add_spend, day_of

    cost = record.decision.get("cost") if isinstance(record.decision, dict) else None
    rerun = cost.get("rerun") if isinstance(cost, dict) else None
    usd = rerun.get("usd") if isinstance(rerun, dict) else None
    result = record.action_result if isinstance(record.action_result, dict) else {}
    if not usd or (result.get("repair_id") is None and result.get("run_id") is None):
        return      # nothing was started (e.g. a resize in place that could not be made)
    try:
        first = store.state_put(SPENT_KIND, record.decision_key, {"usd": float(usd), "job_id": record.job_id},
                                if_absent=True, ttl_s=_SPENT_KEEP_S)
        if first is None:
            log.info("the rerun of %s is already counted against the budget", record.decision_key)
            return
        add_spend(store, float(usd), day=day_of(), job_id=record.job_id)
    except Exception as exc:  # noqa: BLE001 - the rerun is started; a lost count is logged, not fatal
        log.warning("could not count the rerun of %s against the budget: %s", record.decision_key, exc)
