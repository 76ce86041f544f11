"""Spend in the report: what the decisions of a period cost, per day, job and category, against
the daily budget. Pure (records in, figures out); the amounts are the ones each decision recorded
(``decision.cost.rerun`` for a rerun the app started, ``decision.llm.cost_usd`` for a model call),
so the report needs no other table. The live counters the budget is enforced with are in
``shared.store.spend``.

- spent: reruns the app started (act mode, acted) plus model calls
- would have spent: the estimates of reruns decided in shadow mode (what acting would cost)
- stopped: reruns the budget turned into an email (``decision.cost.stopped_by``)
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from shared.store import DecisionRecord

__all__ = ["summarise_spend", "render_spend_text"]

_RETRIES = ("RETRY", "RETRY_WITH_NEW_PARAMS")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _usd(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0


def _costs(r: DecisionRecord) -> tuple[float, float, float, bool]:
    """(rerun spent, model spent, rerun that shadow mode would have spent, stopped by the budget)."""
    decision = r.decision if isinstance(r.decision, Mapping) else {}
    cost = decision.get("cost") if isinstance(decision.get("cost"), Mapping) else {}
    rerun = _usd((cost.get("rerun") or {}).get("usd") if isinstance(cost.get("rerun"), Mapping) else None)
    llm = decision.get("llm") if isinstance(decision.get("llm"), Mapping) else {}
    model = _usd(llm.get("cost_usd"))
    result = r.action_result if isinstance(r.action_result, Mapping) else {}
    started = r.mode == "act" and r.status == "acted" and r.action in _RETRIES and not result.get("error")
    return (rerun if started else 0.0, model, rerun if r.mode == "shadow" and r.action in _RETRIES else 0.0,
            bool(cost.get("stopped_by")))


def summarise_spend(records: Iterable[DecisionRecord], *, budget_usd_per_day: float | None = None,
                    top: int = 10) -> dict[str, Any]:
    days: dict[str, dict[str, Any]] = {}
    jobs: dict[str, dict[str, Any]] = {}
    cats: dict[str, dict[str, Any]] = {}
    total = {"reruns_usd": 0.0, "model_usd": 0.0, "shadow_reruns_usd": 0.0, "stopped": 0}
    for r in records:
        rerun, model, shadow, stopped = _costs(r)
        if not (rerun or model or shadow or stopped):
            continue
        rows = (days.setdefault(_day(r.created_at), {"day": _day(r.created_at)}),
                jobs.setdefault(r.job_id, {"job_id": r.job_id, "job_name": r.job_name}),
                cats.setdefault(r.category or "UNKNOWN", {"category": r.category or "UNKNOWN"}), total)
        for row in rows:
            row["reruns_usd"] = row.get("reruns_usd", 0.0) + rerun
            row["model_usd"] = row.get("model_usd", 0.0) + model
            row["shadow_reruns_usd"] = row.get("shadow_reruns_usd", 0.0) + shadow
            row["stopped"] = row.get("stopped", 0) + int(stopped)
    for row in [*days.values(), *jobs.values(), *cats.values(), total]:
        for key in ("reruns_usd", "model_usd", "shadow_reruns_usd"):
            row[key] = round(row.get(key, 0.0), 4)
        row["spent_usd"] = round(row["reruns_usd"] + row["model_usd"], 4)
    for row in days.values():
        row["budget_usd"] = budget_usd_per_day
        row["over_budget"] = budget_usd_per_day is not None and row["spent_usd"] > budget_usd_per_day
    by_spend = lambda row: (-(row["spent_usd"] + row["shadow_reruns_usd"]), str(row.get("job_id") or row.get("category")))  # noqa: E731
    return {"budget_usd_per_day": budget_usd_per_day, "total": total,
            "per_day": sorted(days.values(), key=lambda d: d["day"]),
            "per_job": sorted(jobs.values(), key=by_spend)[:top],
            "per_category": sorted(cats.values(), key=by_spend)}


def render_spend_text(summary: Mapping[str, Any], table: Any) -> list[str]:
    """The spend section of the text report (``table(headers, rows)`` draws a table)."""
    total = summary.get("total") or {}
    if not (total.get("spent_usd") or total.get("shadow_reruns_usd") or total.get("stopped")):
        return []
    cap = summary.get("budget_usd_per_day")
    out = ["", f"Spend (budget {'$%.2f a day' % cap if cap is not None else 'not set'}; "
               f"shadow: what acting would have cost)"]
    out.append(table(["DAY", "SPENT", "RERUNS", "MODEL", "SHADOW_RERUNS", "STOPPED", "BUDGET"],
                     [[d["day"], f"${d['spent_usd']:.2f}", f"${d['reruns_usd']:.2f}", f"${d['model_usd']:.4f}",
                       f"${d['shadow_reruns_usd']:.2f}", str(d["stopped"]),
                       "-" if cap is None else ("OVER" if d["over_budget"] else f"${cap:.2f}")]
                      for d in summary["per_day"]]))
    out += ["", table(["JOB_ID", "JOB_NAME", "SPENT", "SHADOW_RERUNS", "STOPPED"],
                      [[str(j["job_id"]), str(j.get("job_name") or "-")[:50], f"${j['spent_usd']:.2f}",
                        f"${j['shadow_reruns_usd']:.2f}", str(j["stopped"])] for j in summary["per_job"]])]
    out += ["", table(["CATEGORY", "SPENT", "SHADOW_RERUNS", "STOPPED"],
                      [[c["category"], f"${c['spent_usd']:.2f}", f"${c['shadow_reruns_usd']:.2f}", str(c["stopped"])]
                       for c in summary["per_category"]])]
    return out
